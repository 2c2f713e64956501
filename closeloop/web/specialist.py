"""The specialist's one-screen brief: who, what, the one question, the documents; answer in one click."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from closeloop.cases import actions
from closeloop.cases.access import can
from closeloop.cases.models import Case, Staff
from closeloop.cases.stages import Stage

from .common import audit, case_for, staff_required
from .documents import documents_for
from .forms import staff_label

DEFAULT_ANSWERS = ["Yes: book a new-patient consultation within two weeks.",
                   "Yes: routine appointment is fine.", "No: not appropriate for this practice; redirect."]


CONFLICT = "Someone else changed this case first; check the brief and send your answer again (it is kept below)."


@staff_required
def brief(request: HttpRequest, case_id: int) -> HttpResponse:
    staff = request.staff  # type: ignore[attr-defined]
    case = case_for(staff, case_id)
    if request.method == "POST":
        return _answer(request, staff, case)
    audit(request, "view", case, detail="specialist brief")
    return _render(request, case)


def _answer(request: HttpRequest, staff: Staff, case: Case) -> HttpResponse:
    """Record the answer; on a conflict or an error the brief comes back with the answer as typed."""
    if not can(staff, "answer"):
        raise PermissionDenied("your role may not answer")
    answer = _given(request.POST.get("quick", ""), request.POST.get("answer", ""))
    raw_version = request.POST.get("version", "")
    if not raw_version.isdigit():
        return _render(request, case, answer, "This form is out of date: reload the page and answer again.", 400)
    case.version = int(raw_version)
    try:
        actions.record_specialist_answer(case, actions.Actor.of(staff), answer=answer)
    except actions.ConflictError:
        return _render(request, case_for(staff, case.pk), answer, CONFLICT, 409)
    except (actions.ActionError, actions.TransitionError) as exc:
        return _render(request, case_for(staff, case.pk), answer, str(exc), 400)
    noted = " with your note" if "\nNote: " in answer else ""
    messages.success(request, f"Thank you: your answer on {case.reference} is recorded{noted}.")
    return redirect("web:specialist", case_id=case.pk)


def _given(quick: str, typed: str) -> str:
    """What the specialist answered: the button they clicked, with anything typed in the box kept as its
    note (a clicked answer is a deliberate choice; the box may hold a qualifier such as "MRI first")."""
    quick, typed = quick.strip(), typed.strip()
    if quick and typed:
        return f"{quick}\nNote: {typed}"[:4000]
    return (quick or typed)[:4000]


def _render(request: HttpRequest, case: Case, answer: str = "", error: str = "", status: int = 200) -> HttpResponse:
    policy = case.request_type.policy if case.request_type else {}
    answers = policy.get("specialist_answers") if isinstance(policy.get("specialist_answers"), list) else None
    return render(request, "web/specialist.html", {
        "case": case, "waiting": case.stage == Stage.AWAITING_SPECIALIST, "documents": documents_for(case),
        "fields": [(staff_label(k), v.get("value")) for k, v in sorted(case.fields.items()) if isinstance(v, dict)],
        "answers": answers or DEFAULT_ANSWERS, "what": _what(case), "answer": answer, "error": error,
    }, status=status)


def _what(case: Case) -> str:
    first = case.messages.filter(direction="in").order_by("created_at", "id").first()
    return case.summary or (first.body if first else "")
