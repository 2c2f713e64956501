"""The specialist's one-screen brief: who, what, the one question, the documents; answer in one click."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from closeloop.cases import actions
from closeloop.cases.access import can
from closeloop.cases.models import Case
from closeloop.cases.stages import Stage

from .common import audit, case_for, staff_required
from .documents import documents_for
from .forms import staff_label

DEFAULT_ANSWERS = ["Yes: book a new-patient consultation within two weeks.",
                   "Yes: routine appointment is fine.", "No: not appropriate for this practice; redirect."]


@staff_required
def brief(request: HttpRequest, case_id: int) -> HttpResponse:
    staff = request.staff  # type: ignore[attr-defined]
    case = case_for(staff, case_id)
    waiting = case.stage == Stage.AWAITING_SPECIALIST
    if request.method == "POST":
        if not can(staff, "answer"):
            raise PermissionDenied("your role may not answer")
        answer = (request.POST.get("answer") or request.POST.get("quick") or "").strip()[:4000]
        case.version = int(request.POST.get("version") or 0)
        try:
            actions.record_specialist_answer(case, actions.Actor.of(staff), answer=answer)
        except actions.ConflictError:
            messages.error(request, "Someone else changed this case first; check the brief and answer again.")
            return redirect("web:specialist", case_id=case_id)
        except (actions.ActionError, actions.TransitionError) as exc:
            messages.error(request, str(exc))
            return redirect("web:specialist", case_id=case_id)
        messages.success(request, f"Thank you: your answer on {case.reference} is recorded.")
        return redirect("web:specialist", case_id=case_id)
    audit(request, "view", case, detail="specialist brief")
    policy = case.request_type.policy if case.request_type else {}
    answers = policy.get("specialist_answers") if isinstance(policy.get("specialist_answers"), list) else None
    return render(request, "web/specialist.html", {
        "case": case, "waiting": waiting, "documents": documents_for(case),
        "fields": [(staff_label(k), v.get("value")) for k, v in sorted(case.fields.items()) if isinstance(v, dict)],
        "answers": answers or DEFAULT_ANSWERS, "what": _what(case),
    })


def _what(case: Case) -> str:
    first = case.messages.filter(direction="in").order_by("created_at", "id").first()
    return case.summary or (first.body if first else "")
