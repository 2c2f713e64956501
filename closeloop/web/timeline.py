"""The case timeline: events and messages in one list, described in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from closeloop.cases.models import Case, Event, Message
from closeloop.outbound.models import OutboxMessage

from .forms import staff_label

EVENT_LABELS = {
    "opened": "Opened", "assigned": "Assigned", "classified": "Classified", "sent_to_triage": "Sent to triage",
    "message_received": "Message received", "fields_recorded": "Information recorded",
    "info_requested": "Asked for information", "waiting": "Waiting", "handed_to_specialist": "Handed to specialist",
    "specialist_answered": "Specialist answered", "reply_drafted": "Reply drafted", "reply_sent": "Reply sent",
    "snoozed": "Snoozed", "woken": "Woken", "escalated": "Escalated", "closed": "Closed", "reopened": "Reopened",
    "merged": "Merged", "merged_in": "Duplicate merged in", "links_revoked": "Requester links revoked",
    "rated": "Requester rated the outcome", "mail_failed": "Mail could not be delivered",
    "document_uploaded": "Document uploaded", "requester_unreachable": "Requester could not be reached by email",
    # Mail out, and what became of it.
    "mail_delayed": "Mail delayed: still trying", "mail_requeued": "Mail queued again after the outage",
    "mail_retried": "Mail sent again on request", "mail_bounced": "Mail bounced",
    "ack_sent": "Acknowledgement sent", "ack_not_sent": "No acknowledgement sent",
    # Intake's notes on what arrived.
    "auto_reply_received": "Automatic reply received", "duplicate_received": "Duplicate received",
    "attachments_rejected": "Attachments refused", "linked_case": "Linked to another case",
    "referenced_by_other_sender": "Named by another sender", "document_unreadable": "Document unreadable",
    # Follow-ups.
    "requester_chased": "Requester chased", "owner_reminded": "Owner reminded",
    "specialist_reminded": "Specialist reminded", "reminder_undelivered": "Reminder could not be delivered",
    "priority_set": "Priority set",
}


@dataclass
class Entry:
    at: datetime
    kind: str  # "event" or "message"
    title: str
    who: str
    detail: str = ""
    message: Message | None = None
    retry_mail: int | None = None  # a failed outbox row staff may send again from here


def describe(event: Event) -> str:
    data: dict[str, Any] = event.data or {}
    parts = []
    for key in ("reason", "question", "answer", "outcome", "note", "message"):
        value = data.get(key)
        if isinstance(value, str) and value:
            parts.append(value)
    if event.kind == "classified" and data.get("to_type"):
        parts.append(f"as {data['to_type']}" + (f" (confidence {data['confidence']:.0%})"
                                                  if isinstance(data.get("confidence"), int | float) else ""))
    if event.kind in ("info_requested", "fields_recorded"):
        names = data.get("fields") or []
        parts.append(", ".join(staff_label(str(n)) for n in names))
    if event.kind == "mail_failed":  # which mail and why, so staff can fix the address before a retry
        to = data.get("to")
        if isinstance(to, list) and to:
            parts.append("to " + ", ".join(str(a) for a in to))
        if isinstance(data.get("error"), str) and data["error"]:
            parts.append(f"the server said: {data['error'][:300]}")
    if isinstance(data.get("reasons"), list):  # attachments_rejected: each file and why
        parts.append("; ".join(str(r) for r in data["reasons"][:10]))
    if event.kind in ("mail_bounced", "auto_reply_received") and data.get("from"):
        parts.append(f"from {data['from']}: {data.get('subject') or '(no subject)'}")
    if event.kind == "rated" and data.get("rating"):
        parts.append(f"{data['rating']} of 5")
    if event.kind == "snoozed" and data.get("until"):
        parts.append(f"until {data['until'][:16].replace('T', ' ')}")
    return " · ".join(p for p in parts if p)


def _failed_mail(events: list[Event]) -> set[int]:
    """Outbox rows named by these mail_failed events that are failed still (no query when there is none)."""
    named = {e.data.get("outbox") for e in events if e.kind == "mail_failed" and isinstance(e.data, dict)}
    ids = [pk for pk in named if isinstance(pk, int)]
    if not ids:
        return set()
    return set(OutboxMessage.objects.filter(pk__in=ids, status=OutboxMessage.Status.FAILED)
               .values_list("pk", flat=True))


def timeline(case: Case, limit: int = 300) -> list[Entry]:
    events = list(case.events.order_by("-at", "-id")[:limit])
    failed = _failed_mail(events)
    entries = []
    for e in events:
        if e.kind == "message_received":
            continue
        entry = Entry(e.at, "event", EVENT_LABELS.get(e.kind, e.kind.replace("_", " ").capitalize()),
                      e.actor_label or e.get_actor_kind_display(), describe(e))
        outbox = (e.data or {}).get("outbox") if e.kind == "mail_failed" else None
        if outbox in failed:  # the newest failure of a message still failed carries its Retry button
            entry.retry_mail = outbox
            failed.discard(outbox)
        entries.append(entry)
    for m in case.messages.exclude(status__in=[Message.Status.DRAFT, Message.Status.DISCARDED]).order_by(
            "-created_at", "-id")[:limit]:
        title = {"in": "Message from", "out": "Message to", "note": "Note by"}[m.direction]
        who = m.sender if m.direction == "in" else ", ".join(m.recipients)
        entries.append(Entry(m.created_at, "message", f"{title} {who}".strip(), m.get_status_display(),
                             m.subject, m))
    # Messages sort after the event that caused them at the same instant.
    entries.sort(key=lambda e: (e.at, e.kind == "message"), reverse=True)
    return entries


def sla_progress(case: Case, now: datetime) -> dict[str, Any] | None:
    """How much of the resolution time is used, for the header's progress bar."""
    due = case.resolution_due_at
    if due is None or not case.is_open:
        return None
    total = max(due - case.opened_at, timedelta(minutes=1))
    used = (now - case.opened_at) / total
    return {"percent": max(0, min(100, round(used * 100))), "due": due, "late": now > due,
            "first_due": case.first_response_due_at, "first_done": case.first_responded_at}
