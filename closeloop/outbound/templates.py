"""Wording of the messages closeloop sends. A request type may override any purpose
through `RequestType.templates[purpose] = {"subject": …, "body": …}` (Django template syntax)."""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from typing import Any

from django.template import Context, Template
from django.utils import timezone

from closeloop.cases.links import status_url
from closeloop.cases.models import Case

FIELD_LABELS = {
    "patient_name": "the patient's full name", "date_of_birth": "the patient's date of birth",
    "phone": "a phone number we can reach you on", "email": "an email address",
    "referring_provider": "the referring provider's name", "npi": "the referring provider's NPI",
    "reason": "the reason for the request", "insurance_payer": "the insurance company",
    "insurance_member_id": "the insurance member ID", "medication": "the medication and dose",
    "pharmacy": "the pharmacy", "records_release": "a signed records release form",
    "preferred_dates": "dates that suit you", "address": "the patient's address",
}

DEFAULTS: dict[str, tuple[str, str]] = {
    "ack": (
        "We received your request [{{ case.reference }}]",
        "Thank you. We received your request and gave it the reference {{ case.reference }}.\n\n"
        "What happens next: {{ next_step }}\nYou can expect a response by {{ expected|date:'l j F, H:i T' }}.\n\n"
        "Reply to this email to add anything; keep the reference in the subject.\n"
        "See where your request stands: {{ status_url }}\n",
    ),
    "missing_info": (
        "We need a little more to handle your request [{{ case.reference }}]",
        "To move your request {{ case.reference }} forward we need:\n"
        "{% for f in labels %}  - {{ f }}\n{% endfor %}{% if message %}\n{{ message }}\n{% endif %}\n"
        "Reply to this email, or add it here: {{ status_url }}\n",
    ),
    "chase": (
        "Reminder: we are waiting for information [{{ case.reference }}]",
        "We are still waiting for the following to handle your request {{ case.reference }}:\n"
        "{% for f in labels %}  - {{ f }}\n{% endfor %}\nReply to this email, or add it here: {{ status_url }}\n",
    ),
    "specialist_brief": (
        "Your input needed: {{ case.reference }} {{ case.subject }}",
        "{{ case.reference }} ({{ case.request_type }}) needs your answer:\n\n{{ question }}\n\n"
        "Reply to this email with your answer, or open the case: {{ site_url }}/specialist/{{ case.pk }}/\n",
    ),
    "outcome": (
        "Your request {{ case.reference }} is complete",
        "Your request {{ case.reference }} is now closed: {{ outcome }}.\n{% if note %}\n{{ note }}\n{% endif %}\n"
        "Tell us how we did, or see the details: {{ status_url }}\n",
    ),
}


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return Template(source)


def render(case: Case, purpose: str, extra: dict[str, Any] | None = None) -> tuple[str, str]:
    from django.conf import settings

    custom = (case.request_type.templates.get(purpose) if case.request_type else None) or {}
    subject_src, body_src = DEFAULTS.get(purpose, ("{{ case.reference }}", "{{ message }}"))
    subject_src = custom.get("subject", subject_src)
    body_src = custom.get("body", body_src)
    fields = (extra or {}).get("fields") or case.missing_fields
    context = Context({
        "case": case, "status_url": status_url(case), "site_url": settings.SITE_URL,
        "labels": [FIELD_LABELS.get(f, f.replace("_", " ")) for f in fields], **(extra or {}),
    }, autoescape=False)
    with timezone.override(zone(case)):
        subject = " ".join(_compiled(subject_src).render(context).split())
        return subject[:300], _compiled(body_src).render(context)


def zone(case: Case) -> tzinfo:
    """Dates in a message read on the case's team's clock; without a calendar, in the display zone."""
    from closeloop.followups.calendar import ALWAYS_OPEN, calendar_for_team

    calendar = calendar_for_team(case.team_id)
    return timezone.get_default_timezone() if calendar is ALWAYS_OPEN else calendar.tz


def with_status_link(case: Case, body: str) -> str:
    return f"{body.rstrip()}\n\n--\nReference {case.reference}. Where your request stands: {status_url(case)}\n"
