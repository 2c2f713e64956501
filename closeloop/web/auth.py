"""Sign-in with an optional second factor (TOTP), and enrolment in it.

With a confirmed device, a correct password only parks the user id in the session;
`verify` logs in after a valid code. A code is accepted once (the step is remembered).
"""

from __future__ import annotations

import time
from typing import Any

import pyotp
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from .common import audit
from .models import TotpDevice
from .ratelimit import allow, rate_limited

PENDING_KEY = "closeloop_totp_pending"
PENDING_SECONDS = 300
# Code guesses per account, whatever address they come from: the per-address limit alone lets someone
# who has the password spread guesses over many addresses.
CODE_TRIES, CODE_WINDOW_S = 5, 900
ISSUER = "closeloop"


def _check_code(device: TotpDevice, code: str) -> bool:
    """True for a current code not used before; remembers its step so it cannot be replayed."""
    code = "".join(code.split())
    if not code.isdigit():
        return False
    totp = pyotp.TOTP(device.secret)
    now = time.time()
    for offset in (-1, 0, 1):
        step = int(now // totp.interval) + offset
        if step > device.last_step and totp.verify(code, for_time=step * totp.interval):
            device.last_step = step
            device.save(update_fields=["last_step"])
            return True
    return False


class SignInView(auth_views.LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
        if device is None:
            return super().form_valid(form)
        self.request.session[PENDING_KEY] = {"user": user.pk, "at": time.time(), "next": self.get_success_url(),
                                             "backend": getattr(user, "backend", "")}
        return redirect("web:verify")


@rate_limited("totp", get=30, post=10)
def verify(request: HttpRequest) -> HttpResponse:
    pending: dict[str, Any] | None = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending["at"] > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        messages.error(request, "Sign in again.")
        return redirect("web:login")
    error = ""
    if request.method == "POST":
        if not allow(f"totp-user:{pending['user']}", CODE_TRIES, CODE_WINDOW_S):
            return render(request, "web/verify.html", {"error": "Too many wrong codes for this account. Wait "
                                                                 "15 minutes, then sign in again."}, status=429)
        user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
        device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first() if user else None
        if user is not None and device is not None and _check_code(device, request.POST.get("code", "")):
            del request.session[PENDING_KEY]
            login(request, user, backend=pending["backend"] or None)
            target = pending["next"]
            safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
            return HttpResponseRedirect(target if safe else "/")
        error = "That code is not right. Use the current code from your authenticator app."
    return render(request, "web/verify.html", {"error": error}, status=400 if error else 200)


@login_required
def totp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol (show a fresh secret, confirm with a code) or turn the second factor off."""
    user = request.user
    assert user.is_authenticated  # login_required
    device, _ = TotpDevice.objects.get_or_create(user=user, defaults={"secret": pyotp.random_base32()})
    error = ""
    if request.method == "POST":
        if request.POST.get("op") == "disable" and device.confirmed_at:
            if _check_code(device, request.POST.get("code", "")):
                device.delete()
                audit(request, "two_step_off")
                messages.success(request, "Two-step sign-in is off.")
                return redirect("web:totp")
        elif not device.confirmed_at and _check_code(device, request.POST.get("code", "")):
            device.confirmed_at = timezone.now()
            device.save(update_fields=["confirmed_at"])
            audit(request, "two_step_on")
            messages.success(request, "Two-step sign-in is on: you will be asked for a code after your password.")
            return redirect("web:totp")
        error = "That code is not right. Check the time on your phone and try the current code."
    uri = pyotp.TOTP(device.secret).provisioning_uri(name=request.user.get_username(), issuer_name=ISSUER)
    grouped = " ".join(device.secret[i:i + 4] for i in range(0, len(device.secret), 4))
    return render(request, "web/totp.html", {"device": device, "uri": uri, "grouped": grouped, "error": error},
                  status=400 if error else 200)
