"""Reply templates and who may send a reply without approval.

A template renders against a small dict of plain values (never the Case object), with Django's
template language and autoescaping off: the result is an email's plain text. The page shows it in a
textarea, which escapes it like any other value."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.template import Context, Template, TemplateSyntaxError

from closeloop.cases.access import can
from closeloop.cases.links import status_url
from closeloop.cases.models import Case, Message, RequestType, Staff
from closeloop.cases.stages import Stage, can_move
from closeloop.outbound.templates import FIELD_LABELS

from .models import ReplyTemplate

SIGN_OFF = "\n\nKind regards,\n{{ sender_name }}\n{{ team }}"

# name, purpose, request type slug (None: every type), subject, body. Seeded by migration 0003 and the demo.
DEFAULTS: list[tuple[str, str, str | None, str, str]] = [
    ("Specialist's answer", "reply", None, "Re: {{ subject }} [{{ reference }}]",
     "Hello {{ requester_name }},\n\n{{ specialist_answer|default:'(write the answer here)' }}" + SIGN_OFF),
    ("Need more information", "need_info", None, "We need a little more for {{ reference }}",
     "Hello {{ requester_name }},\n\nThank you for your request {{ reference }}. To move it forward we still "
     "need:\n{% for item in missing %}  - {{ item }}\n{% empty %}  - (say what you need)\n{% endfor %}\n"
     "You can reply to this email, or add it on your status page: {{ status_url }}" + SIGN_OFF),
    ("Closing notice", "closing", None, "Your request {{ reference }} is complete",
     "Hello {{ requester_name }},\n\nWe have finished handling your request {{ reference }} "
     "({{ subject }}). If anything is still open for you, reply to this email within 14 days and we will "
     "pick it up again." + SIGN_OFF),
    ("Records sent", "records_sent", "records", "Records sent: {{ reference }}",
     "Hello {{ requester_name }},\n\nThe records you asked for{% if patient_name %} for {{ patient_name }}"
     "{% endif %} were sent today by the route given on the signed release. Please allow two working days "
     "for them to arrive." + SIGN_OFF),
    ("Appointment offered", "appointment_offered", "appointment", "Appointment offered: {{ reference }}",
     "Hello {{ requester_name }},\n\nWe can offer{% if patient_name %} {{ patient_name }}{% endif %} an "
     "appointment on (day, date) at (time) with (clinician). Reply to this email to confirm, or tell us "
     "which other times suit you." + SIGN_OFF),
    ("Referral accepted", "referral_accepted", "referral", "Referral accepted: {{ reference }}",
     "Hello {{ requester_name }},\n\nThank you for the referral{% if patient_name %} of {{ patient_name }}"
     "{% endif %}. We have accepted it and will contact the patient within two working days to book a "
     "new-patient consultation." + SIGN_OFF),
]


def seed_defaults(template_model: Any = ReplyTemplate, type_model: Any = RequestType) -> int:
    """Create the default templates that are missing; type-specific ones only where the type exists.
    Takes the model classes so migration 0003 can pass its historical models."""
    types = {t.slug: t for t in type_model.objects.filter(slug__in=[d[2] for d in DEFAULTS if d[2]])}
    created = 0
    for position, (name, purpose, slug, subject, body) in enumerate(DEFAULTS):
        if slug is not None and slug not in types:
            continue
        _, made = template_model.objects.get_or_create(
            name=name, request_type=types.get(slug) if slug else None,
            defaults={"purpose": purpose, "subject": subject, "body": body, "position": position * 10})
        created += made
    return created


def seed_demo(**_: Any) -> None:
    """The demo seeder hook (WebConfig.demo_seed): the default templates, linked to the demo's types."""
    seed_defaults()


def templates_for(case: Case) -> QuerySet[ReplyTemplate]:
    """Active templates for this case's type first, then those for every type."""
    query = Q(request_type__isnull=True)
    if case.request_type_id:
        query |= Q(request_type_id=case.request_type_id)
    return (ReplyTemplate.objects.filter(query, is_active=True).select_related("request_type")
            .order_by("request_type", "position", "name"))


def check_syntax(source: str) -> str:
    try:
        Template(source)
    except TemplateSyntaxError as exc:
        return f"template error: {exc}"
    return ""


def context_for(case: Case, sender: Staff) -> dict[str, Any]:
    patient = case.fields.get("patient_name") if isinstance(case.fields, dict) else None
    requester = case.requester
    return {
        "reference": case.reference, "subject": case.subject, "status_url": status_url(case),
        "requester_name": (requester.name if requester else "") or "there",
        "patient_name": str(patient.get("value") or "") if isinstance(patient, dict) else "",
        "request_type": case.request_type.name if case.request_type else "",
        "missing": [FIELD_LABELS.get(n, n.replace("_", " ")) for n in case.missing_fields],
        "specialist_answer": case.specialist_answer, "sender_name": sender.display_name,
        "team": case.team.name if case.team else "",
    }


def render_reply(template: ReplyTemplate, case: Case, sender: Staff) -> tuple[str, str]:
    """(subject, body); raises TemplateSyntaxError when an admin saved a broken template."""
    context = Context(context_for(case, sender), autoescape=False)
    subject = " ".join(Template(template.subject).render(context).split())[:300]
    return subject, Template(template.body).render(context).strip() + "\n"


# ---------------------------------------------------------------- approval policy


def second_person(case: Case) -> bool:
    """`RequestType.policy["reply_approval"] == "second_person"`: every reply is a draft that someone
    other than its author approves (four eyes)."""
    return bool(case.request_type and (case.request_type.policy or {}).get("reply_approval") == "second_person")


def why_not_now(case: Case) -> str:
    """Why a reply cannot go out from the case's stage ("" when it can): sending answers the case."""
    if case.stage == Stage.ANSWERED or can_move(case.stage, Stage.ANSWERED):
        return ""
    return (f"Sending a reply answers the case, which a case in “{Stage(case.stage).label}” cannot be yet: "
            "save it as a draft; it can go out once the case is in progress or ready to reply.")


def may_send_directly(case: Case, staff: Staff, purpose: str) -> bool:
    if why_not_now(case):
        return False
    if case.request_type and purpose in (case.request_type.auto_send or []):
        return can(staff, "comment")
    return can(staff, "approve") and not second_person(case)


def may_approve(case: Case, staff: Staff, draft: Message) -> bool:
    if not can(staff, "approve"):
        return False
    return not (second_person(case) and draft.created_by_id == staff.pk)
