"""The case page and every action on it. Views call closeloop.cases.actions and nothing else writes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateSyntaxError
from django.utils import timezone
from django.views.decorators.http import require_POST

from closeloop.cases import actions
from closeloop.cases.access import can
from closeloop.cases.models import Case, Message, Staff, parse_reference
from closeloop.cases.stages import Stage
from closeloop.outbound import retries
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.templates import render as render_template

from . import forms as f
from . import replies
from .common import audit, case_for, open_cases, staff_required
from .documents import documents_for
from .models import ReplyTemplate
from .timeline import EVENT_LABELS, sla_progress, timeline
from .views import nav

SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")
CONFLICT = ("Someone else changed this case first. The page now shows their change; "
            "what you entered is kept below, so check it and submit again.")

Handler = Callable[[Case, actions.Actor, dict[str, Any], Staff], str]


def _assign(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.assign(case, actor, team=d["team"], owner=d["owner"], reason=d["reason"])
    return f"Assigned to {case.owner or case.team}."


def _classify(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.set_request_type(case, actor, d["request_type"])
    return f"Classified as {d['request_type']}; routed to {case.owner or case.team}."


def _request_info(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.request_missing_info(case, actor, fields=d["fields_wanted"] or None, message=d["message"])
    if not (case.requester and case.requester.email):
        phone = f" on {case.requester.phone}" if case.requester and case.requester.phone else ""
        return (f"The requester has no email address on file, so nothing was sent: ask them yourself{phone}. "
                "The case waits on them; when the first chaser is due it comes back to you.")
    return "Asked the requester for the missing information."


def _specialist(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.hand_to_specialist(case, actor, specialist=d["specialist"], question=d["question"])
    return f"Handed to {d['specialist']}."


def _answer(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.record_specialist_answer(case, actor, answer=d["answer"])
    return "Answer recorded; the case is ready to reply."


def _snooze(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.snooze(case, actor, until=d["until"], reason=d["reason"])
    return "Snoozed."


def _wake(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.wake(case, actor)
    return "Woken."


def _escalate(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.escalate(case, actor, reason=d["reason"], to=d["to"])
    return f"Escalated to {case.owner or case.team}."


def _close(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.close(case, actor, outcome=d["outcome"], note=d["note"], notify=d["notify"])
    return "Closed."


def _reopen(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.reopen(case, actor, reason=d["reason"] or "reopened by staff")
    return "Reopened."


def _merge(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    pk = parse_reference(d["primary"]) or (int(d["primary"]) if d["primary"].isdigit() else None)
    primary = open_cases(staff).filter(pk=pk).first() if pk else None
    if primary is None:
        raise actions.ActionError("no open case you can see has that reference", field="primary")
    actions.merge(case, primary, actor)
    return f"Merged into {primary.reference}."


def _reply(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    # The purpose comes from the chosen template, server-side: the type's auto-send policy keys on it.
    purpose = d["template"].purpose if d.get("template") else "reply"
    if d.get("send"):
        if not replies.may_send_directly(case, staff, purpose):
            raise PermissionDenied("this reply needs approval: save it as a draft")
        actions.approve_and_send(case, actor, subject=d["subject"], body=d["body"], purpose=purpose)
        return "Reply sent."
    actions.draft_reply(case, actor, subject=d["subject"], body=d["body"], purpose=purpose)
    return "Draft saved; it waits for approval."


def _approve(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    draft = Message.objects.filter(pk=d["message"], case=case, status=Message.Status.DRAFT).first()
    if draft is None:
        raise actions.ActionError("that draft was already sent or discarded", field="message")
    if not replies.may_approve(case, staff, draft):
        raise PermissionDenied("someone other than its author approves this draft")
    edited = (d.get("subject") or draft.subject) != draft.subject or (d.get("body") or draft.body) != draft.body
    # approve_and_send saves the draft it is given, so the approver's corrections go out as shown.
    draft.subject, draft.body = d.get("subject") or draft.subject, d.get("body") or draft.body
    actions.approve_and_send(case, actor, message=draft)
    return "Reply edited, approved and sent." if edited else "Reply approved and sent."


def _field(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.record_fields(case, actor, {d["name"]: {"value": d["value"], "confidence": 1.0,
                                                    "source": {"kind": "staff", "by": staff.display_name}}})
    return f"{f.staff_label(d['name'])} recorded."


def _revoke(case: Case, actor: actions.Actor, d: dict[str, Any], staff: Staff) -> str:
    actions.revoke_links(case, actor, reason=d["reason"])
    return "Every status link sent so far is revoked."


# action name → (form class, permission, handler)
ACTIONS: dict[str, tuple[type[f.VersionedForm], str, Handler]] = {
    "assign": (f.AssignForm, "work", _assign), "classify": (f.ClassifyForm, "work", _classify),
    "request_info": (f.RequestInfoForm, "work", _request_info), "specialist": (f.SpecialistForm, "work", _specialist),
    "answer": (f.AnswerForm, "answer", _answer), "snooze": (f.SnoozeForm, "work", _snooze),
    "wake": (f.ReasonForm, "work", _wake), "escalate": (f.EscalateForm, "escalate", _escalate),
    "close": (f.CloseForm, "work", _close), "reopen": (f.ReasonForm, "work", _reopen),
    "merge": (f.MergeForm, "merge", _merge), "reply": (f.ReplyForm, "comment", _reply),
    "approve": (f.ApproveForm, "approve", _approve), "field": (f.FieldForm, "work", _field),
    "revoke": (f.ReasonForm, "work", _revoke),
}


INLINE_FORMS = frozenset({"approve", "field"})


def _make_form(name: str, case: Case, data: Any = None, initial: dict[str, Any] | None = None) -> f.VersionedForm:
    form_class = ACTIONS[name][0]
    kwargs: dict[str, Any] = {"prefix": name,
                              "initial": {"version": case.version, **_initial(name, case), **(initial or {})}}
    if form_class in (f.RequestInfoForm, f.ReplyForm):
        kwargs["case"] = case
    return form_class(data, **kwargs)


def _initial(name: str, case: Case) -> dict[str, Any]:
    if name == "request_info":
        return {"fields_wanted": list(case.missing_fields),
                "message": "You can reply to this email, or add the information on your status page."}
    if name == "reply":
        return {"subject": f"Re: {case.subject} [{case.reference}]"[:300],
                "body": case.specialist_answer and f"Hello,\n\n{case.specialist_answer}\n\nKind regards,"}
    if name == "assign":
        return {"team": case.team_id, "owner": case.owner_id}
    if name == "classify":
        return {"request_type": case.request_type_id}
    return {}


def _triage_suggestions(case: Case) -> list[dict[str, Any]]:
    event = case.events.filter(kind="sent_to_triage").order_by("-at", "-id").first()
    data: dict[str, Any] = event.data if event is not None and isinstance(event.data, dict) else {}
    suggestions = data.get("suggestions")
    out = []
    for s in suggestions if isinstance(suggestions, list) else []:
        if isinstance(s, dict):
            confidence = s.get("confidence")
            out.append({"label": str(s.get("type") or s.get("label") or s.get("request_type") or "?"),
                        "percent": round(confidence * 100) if isinstance(confidence, int | float) else None,
                        "reason": str(s.get("reason") or "")})
    return out[:5]


def _render_case(request: HttpRequest, case: Case, bound: dict[str, f.VersionedForm] | None = None,
                 status: int = 200, open_action: str = "") -> HttpResponse:
    staff: Staff = request.staff  # type: ignore[attr-defined]
    bound, composer_error = bound or {}, ""
    if "reply" not in bound and request.method == "GET" and request.GET.get("template"):
        bound["reply"], composer_error = _composer(case, staff, request.GET["template"])  # a link to a template
        open_action = "reply"
    action_forms = {name: bound.get(name) or _make_form(name, case) for name in ACTIONS}
    perms = {p: can(staff, p) for p in ("work", "answer", "approve", "escalate", "merge", "comment")}
    missing_subject, missing_preview = render_template(case, "missing_info", {"message": ""})
    context = {
        **nav(request), "case": case, "timeline": timeline(case), "sla": sla_progress(case, timezone.now()),
        "forms": action_forms, "perms": perms, "open_action": open_action, "is_open": case.is_open,
        "drafts": _drafts(case, staff, bound.get("approve")),
        "send_now": replies.may_send_directly(case, staff, _purpose(action_forms["reply"])),
        "not_now": replies.why_not_now(case),
        "documents": documents_for(case), "fields": _field_rows(case),
        "missing": _checklist(case, bound.get("field")), "suggestions": _triage_suggestions(case),
        "missing_preview": missing_preview, "Stage": Stage, "composer_error": composer_error,
        "poll_seconds": settings.CLOSELOOP_WEB_POLL_SECONDS,
    }
    return render(request, "web/case.html", context, status=status)


def _drafts(case: Case, staff: Staff, approve: f.VersionedForm | None = None) -> list[dict[str, Any]]:
    """Drafts awaiting approval; the one an approver just submitted keeps the corrections they typed."""
    drafts = case.messages.filter(status=Message.Status.DRAFT).select_related("created_by__user")
    typed = approve.data if approve is not None else {}
    rows = []
    for d in drafts:
        mine = str(typed.get("approve-message", "")) == str(d.pk)
        rows.append({"message": d, "may_approve": replies.may_approve(case, staff, d),
                     "subject": (mine and typed.get("approve-subject")) or d.subject,
                     "body": (mine and typed.get("approve-body")) or d.body})
    return rows


def _checklist(case: Case, field: f.VersionedForm | None = None) -> list[tuple[str, str, str, str]]:
    """(name, label, value, note) per missing item; a value just submitted is kept, even when someone
    else filled that item first (it shows again so the person can compare and resubmit). A value
    read but awaiting confirmation (its source says `confirm`) is offered with that note."""
    typed = field.data if field is not None else {}
    name, value = str(typed.get("field-name", "")), str(typed.get("field-value", ""))
    rows = [(n, f.staff_label(n), value, "") if n == name else (n, f.staff_label(n), *_to_confirm(case, n))
            for n in case.missing_fields]
    if value and name and name not in case.missing_fields and SLUG.fullmatch(name):
        rows.append((name, f.staff_label(name), value, ""))
    return rows


def _to_confirm(case: Case, name: str) -> tuple[str, str]:
    """The reading of a field that awaits a person's confirmation, and why; else nothing."""
    entry = case.fields.get(name)
    if not isinstance(entry, dict) or entry.get("value") in (None, ""):
        return "", ""
    source = entry.get("source")
    if not isinstance(source, dict) or not source.get("confirm"):
        return "", ""
    return str(entry["value"]), str(source["confirm"])


def _purpose(form: f.VersionedForm) -> str:
    template = form["template"].value() if "template" in form.fields else None
    if not template:
        return "reply"
    chosen = ReplyTemplate.objects.filter(pk=template).values_list("purpose", flat=True).first() \
        if str(template).isdigit() else None
    return chosen or "reply"


def _composer(case: Case, staff: Staff, template_id: str) -> tuple[f.VersionedForm, str]:
    """The reply form filled from a template rendered against the case, and an error to show, if any."""
    template = replies.templates_for(case).filter(pk=template_id).first() if template_id.isdigit() else None
    if template is None:
        return _make_form("reply", case), "That template is not offered for this case." if template_id else ""
    try:
        subject, body = replies.render_reply(template, case, staff)
    except TemplateSyntaxError as exc:
        return _make_form("reply", case, initial={"template": template.pk}), \
            f"The template “{template.name}” has an error; ask an admin to fix it ({exc})."
    return _make_form("reply", case, initial={"template": template.pk, "subject": subject, "body": body}), ""


@staff_required
def compose(request: HttpRequest, case_id: int) -> HttpResponse:
    """htmx: the composer's fields filled from the chosen template (rendered here, escaped by the widget)."""
    staff: Staff = request.staff  # type: ignore[attr-defined]
    if not can(staff, "comment"):
        raise PermissionDenied("your role may not write replies")
    case = case_for(staff, case_id)
    form, error = _composer(case, staff, request.GET.get("reply-template", "") or request.GET.get("template", ""))
    return render(request, "web/_reply_fields.html", {
        "case": case, "form": form, "error": error,
        "send_now": replies.may_send_directly(case, staff, _purpose(form)),
        "not_now": replies.why_not_now(case),
        "perms": {"approve": can(staff, "approve")},
    })


def _field_rows(case: Case) -> list[dict[str, Any]]:
    rows = []
    for name, entry in sorted(case.fields.items()):
        entry = entry if isinstance(entry, dict) else {"value": entry}
        raw = entry.get("source")
        source: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rows.append({"name": name, "label": f.staff_label(name), "value": entry.get("value"),
                     "confidence": entry.get("confidence"), "source": source,
                     "has_boxes": bool(source.get("boxes"))})
    return rows


@staff_required
def case_page(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_for(request.staff, case_id)  # type: ignore[attr-defined]
    audit(request, "view", case)
    return _render_case(request, case)


@staff_required
def case_poll(request: HttpRequest, case_id: int) -> HttpResponse:
    """Polled every few seconds with the version the page was loaded with. Once someone else changed
    the case it says who and what, and swaps in the fresh header (out of band); it keeps polling with
    the page's version, so the action forms still carry it and a stale submit gets the conflict page."""
    case = case_for(request.staff, case_id)  # type: ignore[attr-defined]
    try:
        seen = int(request.GET.get("v", "0"))
    except ValueError:
        seen = 0
    changed = case.version != seen
    last = case.events.order_by("-at", "-id").first() if changed else None
    return render(request, "web/_case_poll.html", {
        "case": case, "changed": changed, "seen": seen, "poll_seconds": settings.CLOSELOOP_WEB_POLL_SECONDS,
        "last_label": EVENT_LABELS.get(last.kind, last.kind.replace("_", " ")).lower() if last else "",
        "last": last, "sla": sla_progress(case, timezone.now()) if changed else None, "is_open": case.is_open,
    })


@staff_required
@require_POST
def case_act(request: HttpRequest, case_id: int, name: str) -> HttpResponse:
    if name not in ACTIONS:
        raise Http404("no such action")
    staff: Staff = request.staff  # type: ignore[attr-defined]
    _, permission, handler = ACTIONS[name]
    if not can(staff, permission):
        raise PermissionDenied("your role may not do this")
    case = case_for(staff, case_id)
    form = _make_form(name, case, request.POST)
    if not form.is_valid():
        _say_inline(request, name, form)
        return _render_case(request, case, {name: form}, status=400, open_action=name)
    data = {**form.cleaned_data, "send": "send" in request.POST}
    case.version = data["version"]  # the conditional UPDATE refuses a stale version
    try:
        done = handler(case, actions.Actor.of(staff), data, staff)
    except actions.ConflictError:
        messages.error(request, CONFLICT)
        fresh = case_for(staff, case_id)
        return _render_case(request, fresh, {name: _rebound(name, fresh, request.POST)}, status=409,
                            open_action=name)
    except (actions.ActionError, actions.TransitionError) as exc:
        case = case_for(staff, case_id)
        form = _make_form(name, case, request.POST)
        form.is_valid()
        form.add_error(None, str(exc))
        _say_inline(request, name, form)
        return _render_case(request, case, {name: form}, status=400, open_action=name)
    messages.success(request, done)
    return redirect("web:case", case_id=case_id)


@staff_required
@require_POST
def mail_retry(request: HttpRequest, case_id: int, mail_id: int) -> HttpResponse:
    """Send a failed message of this case again (outbound.retries.retry_by_hand): the same rules as
    POST /api/followups/mail/{id}/retry (the `work` permission, the case in sight), audited."""
    staff: Staff = request.staff  # type: ignore[attr-defined]
    if not can(staff, "work"):
        raise PermissionDenied("your role may not do this")
    case = case_for(staff, case_id)
    row = OutboxMessage.objects.filter(pk=mail_id, case=case).first()
    if row is None:
        raise Http404("no such message on this case")
    try:
        row = retries.retry_by_hand(row, staff)
    except ValueError as exc:
        messages.error(request, f"Mail not retried: {exc}.")
        return redirect("web:case", case_id=case_id)
    audit(request, "mail_retry", case, f"outbox {row.pk} to {', '.join(row.to)}")
    messages.success(request, f"The message to {', '.join(row.to)} is queued again; it goes out in a moment.")
    return redirect("web:case", case_id=case_id)


def _say_inline(request: HttpRequest, name: str, form: f.VersionedForm) -> None:
    """Approving a draft and filling a checklist item are small inline forms with no room for errors:
    their errors go in the page's message area instead."""
    if name in INLINE_FORMS:
        for field, errors in form.errors.items():
            label = "" if field == "__all__" else f"{f.staff_label(field)}: "
            for error in errors:
                messages.error(request, f"{label}{error}")


def _rebound(name: str, case: Case, post: Any) -> f.VersionedForm:
    data = post.copy()
    data[f"{name}-version"] = str(case.version)
    form = _make_form(name, case, data)
    form.is_valid()
    return form


