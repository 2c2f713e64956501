"""Which case an inbound message belongs to: threading, near-duplicates, floods.

Trust order: our own Message-IDs in In-Reply-To/References and our signed reply
address among the recipients (unguessable, so trusted whoever sends), then the ID of a
message we received (the sender's to choose, so trusted only from the case's requester
or a staff user), then a `CL-000123` reference in the subject (guessable, so trusted
only from the case's requester), then the same requester with an open case about the
same subject. A stranger naming a case by a received ID or its reference opens a new
case linked to it, for a person to judge.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from django.conf import settings

from closeloop.cases.models import Case, Message, Staff, parse_reference
from closeloop.cases.stages import Stage
from closeloop.outbound.models import OutboxMessage

from . import reply
from .models import InboundMessage
from .parse import Parsed

PREFIX_RE = re.compile(r"^\s*((re|aw|sv|fw|fwd|wg|tr|antw)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
QUOTE_RE = re.compile(r"(?m)^\s*>.*$")


def normal_subject(subject: str) -> str:
    return " ".join(PREFIX_RE.sub("", subject or "").lower().split())[:300]


def _follow(case: Case | None) -> Case | None:
    """A merged case sends its mail on to the case it was merged into."""
    seen = 0
    while case is not None and case.merged_into_id and seen < 10:
        case = case.merged_into
        seen += 1
    return case


def by_headers(parsed: Parsed) -> tuple[Case | None, Case | None]:
    """(the case, when the headers name a message of ours or the sender is a party to it;
    the case, when they name only a message we received and the sender is a stranger).

    Our Message-IDs carry an unguessable token, so they are trusted whoever sends. A
    received message's ID is the sender's to choose (a fax gateway's counter), so it is
    trusted only from the case's requester or a staff user.
    """
    ids = parsed.thread_ids
    if not ids:
        return None, None
    ours = OutboxMessage.objects.filter(message_id__in=ids, case__isnull=False).values_list("case_id", flat=True)
    case_id = ours.first()
    if case_id:
        return _follow(Case.objects.filter(pk=case_id).first()), None
    received: int | None = None
    for case_id, direction in Message.objects.filter(message_id__in=ids).values_list("case_id", "direction")[:20]:
        if direction != Message.Direction.INBOUND:
            return _follow(Case.objects.filter(pk=case_id).first()), None
        received = received or case_id
    case = _follow(Case.objects.select_related("requester").filter(pk=received).first()) if received else None
    if case is None:
        return None, None
    return (case, None) if is_party(case, parsed.sender) else (None, case)


def is_party(case: Case, sender: str) -> bool:
    """The sender is the case's requester or an active staff user (by address)."""
    sender = sender.strip().lower()
    if not sender:
        return False
    if case.requester is not None and (case.requester.email or "").strip().lower() == sender:
        return True
    return Staff.objects.filter(is_active=True, user__is_active=True, user__email__iexact=sender).exists()


def by_reply_address(parsed: Parsed, envelope_recipients: list[str]) -> Case | None:
    """A valid signed reply address among the recipients (headers or SMTP envelope)."""
    case_id = reply.case_id_in([*envelope_recipients, *parsed.recipients])
    return _follow(Case.objects.filter(pk=case_id).first()) if case_id else None


def by_reference(parsed: Parsed) -> tuple[Case | None, Case | None]:
    """(the case, if the sender is its requester; the case, if someone else quotes its reference)."""
    pk = parse_reference(parsed.subject)
    case = _follow(Case.objects.select_related("requester").filter(pk=pk).first()) if pk else None
    if case is None:
        return None, None
    requester = (case.requester.email if case.requester else "").strip().lower()
    if parsed.sender and requester == parsed.sender:
        return case, None
    return None, case


def by_sender(parsed: Parsed, requester_ids: list[int] | None = None) -> Case | None:
    """`requester_ids`: the parties with the sender's address, when the caller has read them
    (none: no case can match, and nothing is asked of the database)."""
    subject = normal_subject(parsed.subject)
    if not parsed.sender or len(subject) < 4 or requester_ids == []:
        return None
    cases = (Case.objects.filter(requester__email=parsed.sender) if requester_ids is None
             else Case.objects.filter(requester_id__in=requester_ids))
    return cases.filter(subject__iexact=subject).exclude(stage=Stage.CLOSED).order_by("-opened_at").first()


def content_key(parsed: Parsed) -> str:
    """The same sender saying the same thing, ignoring quoting, spacing, case and Re:/Fwd:."""
    body = " ".join(QUOTE_RE.sub("", parsed.body).lower().split())
    digest = hashlib.sha256()
    for part in (parsed.sender, normal_subject(parsed.subject), body):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    for attachment in parsed.attachments:
        digest.update(hashlib.sha256(attachment.content).digest())
    return digest.hexdigest()


def near_duplicate(row: InboundMessage, key: str, now: datetime) -> InboundMessage | None:
    since = now - timedelta(minutes=settings.CLOSELOOP_INTAKE_DEDUPE_MINUTES)
    return (InboundMessage.objects.filter(content_key=key, received_at__gte=since, case__isnull=False)
            .exclude(pk=row.pk).order_by("received_at", "id").first())


def flooding(sender: str, now: datetime) -> int:
    """How many cases this sender opened in the window (0 for an unknown sender)."""
    if not sender:
        return 0
    since = now - timedelta(minutes=settings.CLOSELOOP_INTAKE_SENDER_WINDOW_MINUTES)
    return InboundMessage.objects.filter(sender=sender, result="opened", received_at__gte=since).count()


def bounced_case(parsed: Parsed) -> Case | None:
    ids = [*parsed.bounced_ids, *parsed.thread_ids]
    if not ids:
        return None
    # A bounce is about mail we sent: a received message's ID (anyone's to guess) names no case.
    case_id = (OutboxMessage.objects.filter(message_id__in=ids, case__isnull=False)
               .values_list("case_id", flat=True).first()
               or Message.objects.filter(message_id__in=ids).exclude(direction=Message.Direction.INBOUND)
               .values_list("case_id", flat=True).first())
    return Case.objects.filter(pk=case_id).first() if case_id else None
