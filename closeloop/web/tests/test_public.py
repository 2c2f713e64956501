"""The requester status page, sign-in with a second factor, password reset by email."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.links import status_token
from closeloop.cases.models import Case, Event
from closeloop.cases.stages import Stage
from closeloop.web.models import TotpDevice

from .conftest import signed_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _ask(case: Case, practice: Any) -> Case:
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator))
    return Case.objects.get(pk=case.pk)


def test_it_shows_the_requester_what_we_wait_on_without_staff_details(practice: Any, referral: Case) -> None:
    case = _ask(referral, practice)
    html = Client().get(f"/s/{status_token(case)}/").content.decode()
    assert case.reference in html and "waiting on you" in html
    assert "The insurance company" in html
    assert "Casey" not in html and "Morgan" not in html  # the owner's name is staff-only


def test_it_lets_the_requester_fill_missing_fields(practice: Any, referral: Case) -> None:
    case = _ask(referral, practice)
    url = f"/s/{status_token(case)}/"
    Client().post(url, {"form": "fields", "field-insurance_payer": "Blue Cross", "field-referring_provider": "Dr Shah"})
    case.refresh_from_db()
    assert case.field_value("insurance_payer") == "Blue Cross"
    assert case.missing_fields == [] and case.stage == Stage.IN_PROGRESS
    assert Event.objects.filter(case=case, kind="fields_recorded", actor_kind="requester").exists()


def test_it_takes_an_upload_for_a_missing_document(practice: Any) -> None:
    case = actions.open_case(actor=actions.Actor.system(), subject="Records", request_type=practice.types["records"],
                             fields={"patient_name": {"value": "A"}, "date_of_birth": {"value": "1990-01-01"}})
    case = _ask(case, practice)
    url = f"/s/{status_token(case)}/"
    response = Client().post(url, {"form": "upload", "for_field": "records_release",
                                   "document": SimpleUploadedFile("release.png", PNG, "image/png")})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.documents.get().filename == "release.png"
    assert case.field_value("records_release") == "release.png" and case.stage == Stage.IN_PROGRESS


def test_it_refuses_an_executable_upload_with_a_clear_message(practice: Any, referral: Case) -> None:
    case = _ask(referral, practice)
    url = f"/s/{status_token(case)}/"
    response = Client().post(url, {"form": "upload", "document": SimpleUploadedFile("x.exe", b"MZ...")}, follow=True)
    assert "this kind of file is not accepted" in response.content.decode()
    assert not case.documents.exists()


def test_it_records_one_rating_after_closure(practice: Any, referral: Case) -> None:
    actions.close(referral, actions.Actor.of(practice.coordinator), outcome="completed")
    url = f"/s/{status_token(referral)}/"
    client = Client()
    client.post(url, {"form": "rating", "rating": "5"})
    client.post(url, {"form": "rating", "rating": "1"})
    assert [e.data for e in Event.objects.filter(case=referral, kind="rated")] == [{"rating": 5}]
    assert "you rated us 5 of 5" in client.get(url).content.decode()


def test_it_refuses_forged_and_revoked_links(practice: Any, referral: Case) -> None:
    token = status_token(referral)
    assert Client().get(f"/s/{token[:-2]}xx/").status_code == 404
    signed_in("coordinator").post(f"/c/{referral.pk}/do/revoke/", {"revoke-version": referral.version})
    assert Client().get(f"/s/{token}/").status_code == 404
    assert Client().get(f"/s/{status_token(Case.objects.get(pk=referral.pk))}/").status_code == 200


def test_it_rate_limits_the_status_page(practice: Any, referral: Case) -> None:
    client = Client()
    codes = [client.get(f"/s/{status_token(referral)}/").status_code for _ in range(62)]
    assert codes[:60] == [200] * 60 and codes[-1] == 429


def test_it_requires_the_csrf_token_on_the_status_page(practice: Any, referral: Case) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/s/{status_token(referral)}/", {"form": "fields", "field-insurance_payer": "x"})
    assert response.status_code == 403


def test_it_asks_for_a_code_after_the_password_once_two_step_is_on(practice: Any) -> None:
    client = signed_in("coordinator")
    page = client.get("/account/two-step/").content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")  # type: ignore[union-attr]
    client.post("/account/two-step/", {"code": pyotp.TOTP(secret).now()})
    assert TotpDevice.objects.get(user__username="coordinator").confirmed_at is not None

    fresh = Client()
    response = fresh.post("/login/", {"username": "coordinator", "password": "demo"})
    assert response["Location"] == "/login/verify/"
    assert fresh.get("/q/mine/").status_code == 302  # not signed in yet
    assert fresh.post("/login/verify/", {"code": "000000"}).status_code == 400
    TotpDevice.objects.filter(user__username="coordinator").update(last_step=0)
    assert fresh.post("/login/verify/", {"code": pyotp.TOTP(secret).now()}).status_code == 302
    assert fresh.get("/q/mine/").status_code == 200


def test_it_does_not_accept_the_same_code_twice(practice: Any) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="jordan")
    device = TotpDevice.objects.create(user=user, secret=pyotp.random_base32())
    from closeloop.web.auth import _check_code

    code = pyotp.TOTP(device.secret).now()
    assert _check_code(device, code) is True
    assert _check_code(device, code) is False


def test_it_emails_a_password_reset_link(practice: Any, smtp_server: Any) -> None:
    Client().post("/password/reset/", {"email": "coordinator@lakeside-ortho.example"})
    [mail] = smtp_server.to("coordinator@lakeside-ortho.example")
    link = re.search(r"https?://[^/]+(/password/reset/\S+/)", mail.message.get_content()).group(1)  # type: ignore[union-attr]
    client = Client()
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    client.post(form.redirect_chain[-1][0], {"new_password1": "a-long-new-passphrase", "new_password2":
                                             "a-long-new-passphrase"})
    assert Client().login(username="coordinator", password="a-long-new-passphrase")


def test_a_merged_requests_link_follows_the_case_it_joined(practice: Any, referral: Case) -> None:
    duplicate = actions.open_case(actor=actions.Actor.system("intake"), subject="Referral again: knee",
                                  request_type=practice.types["referral"], requester=referral.requester)
    actions.merge(duplicate, referral, actions.Actor.of(practice.coordinator))
    url = f"/s/{status_token(Case.objects.get(pk=duplicate.pk))}/"
    html = Client().get(url).content.decode()
    assert f"joined with {referral.reference}" in html
    assert "Your request is complete" not in html and "How did we do?" not in html
    assert "We are working on your request." in html or "We received your request" in html
    Client().post(url, {"form": "rating", "rating": "1"})
    assert not Event.objects.filter(kind="rated").exists()


def _two_step(username: str) -> str:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    user = get_user_model().objects.get(username=username)
    return TotpDevice.objects.create(user=user, secret=pyotp.random_base32(), confirmed_at=timezone.now()).secret


def test_two_step_codes_are_limited_per_account_not_only_per_address(practice: Any) -> None:
    secret = _two_step("jordan")
    client = Client()
    client.post("/login/", {"username": "jordan", "password": "demo"})
    for n in range(5):  # wrong guesses spread over addresses, each well under the per-address limit
        assert client.post("/login/verify/", {"code": "000000"}, REMOTE_ADDR=f"10.0.0.{n}").status_code == 400
    refused = client.post("/login/verify/", {"code": pyotp.TOTP(secret).now()}, REMOTE_ADDR="10.0.1.1")
    assert refused.status_code == 429 and "Too many wrong codes" in refused.content.decode()
    assert client.get("/q/mine/").status_code == 302  # still not signed in


def test_sign_ins_and_two_step_changes_are_in_the_audit_trail(practice: Any) -> None:
    from closeloop.cases.models import AuditEntry

    Client().post("/login/", {"username": "riley", "password": "wrong"})
    client = Client()
    client.post("/login/", {"username": "riley", "password": "demo"})
    page = client.get("/account/two-step/").content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")  # type: ignore[union-attr]
    client.post("/account/two-step/", {"code": pyotp.TOTP(secret).now()})
    TotpDevice.objects.filter(user__username="riley").update(last_step=0)
    client.post("/account/two-step/", {"op": "disable", "code": pyotp.TOTP(secret).now()})
    client.post("/logout/")
    trail = list(AuditEntry.objects.order_by("id").values_list("action", "user__username", "detail"))
    assert trail == [("sign_in_failed", None, "riley"), ("sign_in", "riley", ""), ("two_step_on", "riley", ""),
                     ("two_step_off", "riley", ""), ("sign_out", "riley", "")]


def test_an_oversized_upload_is_refused_without_reading_it_into_memory(practice: Any, referral: Case,
                                                                       settings: Any) -> None:
    import tracemalloc

    from django.contrib.messages import get_messages
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from closeloop.web.requester import status_page

    settings.CLOSELOOP_MAX_UPLOAD_BYTES, settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024, 256 * 1024
    case = _ask(referral, practice)
    token = status_token(case)

    def upload(megabytes: int, traced: bool = True) -> tuple[Any, Any, int]:
        request = RequestFactory().post(f"/s/{token}/", {"form": "upload", "document": SimpleUploadedFile(
            "scan.pdf", b"%PDF-1.4\n" + b"0" * (megabytes * 1024 * 1024), content_type="application/pdf")})
        request.session = SessionStore()
        request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
        if not traced:
            return request, status_page(request, token), 0
        tracemalloc.start()
        try:
            response = status_page(request, token)
            return request, response, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    upload(2, traced=False)  # the first request imports what the view needs; those allocations are not the upload's
    request, response, peak = upload(6)
    assert response.status_code == 302
    assert [str(m) for m in get_messages(request)] == ["scan.pdf is 6 MB; the limit is 1 MB"]
    assert peak < 3 * 1024 * 1024  # the 6 MB file stays on disk where the upload handler put it
    assert not case.documents.exists()
