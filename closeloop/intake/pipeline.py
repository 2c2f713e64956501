"""The intake pipeline: raw first, then small stages, each allowed to end the chain.

`receive(inbound)` stores the raw bytes and commits a `received` row before anything
else happens. `process(row)` then runs, in one transaction:

1. parse      raw bytes → `Parsed`; an exact repeat of a Message-ID already handled ends here
2. bounce     a delivery report is recorded on the case whose mail bounced, never answered
3. thread     our Message-IDs in the headers, our signed reply address, a received
              message's ID from a party to its case, or the requester quoting a reference
4. dedupe     the same sender saying the same thing within the window: linked, not reopened
5. weak match the same requester, an open case, the same subject
6. guard      a sender opening too many cases in the window is quarantined (a flood)
7. open       a new case at stage NEW (understanding classifies it)
8. ack        the requester hears at once, unless the mail was automatic
9. handoff    the case is marked ready for understanding

Any exception rolls the transaction back and quarantines the row with its error; the
raw bytes stay, and `retry(row)` runs the chain again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.actions import Actor
from closeloop.cases.documents import DocumentRejected, over_limit, store_document
from closeloop.cases.models import Case, Document, Party, RequestType, Team
from closeloop.cases.stages import Stage
from closeloop.outbound.models import OutboxMessage

from . import lookups, match
from .inbound import Inbound, read_raw, store_raw
from .models import InboundMessage
from .parse import Parsed, parse
from .reply import reply_address, without_tag

log = logging.getLogger(__name__)
CLAIM_SECONDS = 300
EMAIL_CHANNELS = {"imap", "smtp", "import"}
FLOOD = "flood:"
REFERENCE_STRANGER = "quotes the reference of a case with another requester"
RECEIVED_ID_STRANGER = ("replies to a message that case received, but the sender is neither its requester nor "
                        "staff (a received Message-ID can be guessed)")
Status = InboundMessage.Status


class Stop(Exception):  # a normal end of the chain, not an error
    def __init__(self, result: str, status: str = Status.PROCESSED) -> None:
        super().__init__(result)
        self.result, self.status = result, status


class IntakeError(Exception):
    """A defined refusal (flood, size); the row is quarantined with this message."""


@dataclass
class Work:
    row: InboundMessage
    now: datetime
    parsed: Parsed = field(default_factory=Parsed)
    case: Case | None = None
    suspect: Case | None = None
    suspect_reason: str = ""
    notes: list[str] = field(default_factory=list)
    _documents: list[Document] | None = None
    _parties: list[Party] | None = None

    @property
    def sender_actor(self) -> Actor:
        return Actor.requester(self.parsed.sender or self.row.channel)


# ---------------------------------------------------------------- receive, claim, retry


def receive(inbound: Inbound, *, claimed_until: datetime | None = None) -> tuple[InboundMessage, bool]:
    """Store the raw bytes and record the row; (row, False) when this input was already received.

    With `claimed_until` the row is born claimed by the caller, who processes it at once
    (one UPDATE fewer); a worker takes it over only if that claim expires.
    """
    digest = inbound.sha256
    external_id = (inbound.external_id or f"sha256:{digest}")[:300]
    path = store_raw(inbound.raw, digest)
    try:
        # Insert first: the unique (channel, external_id) answers "seen before?" without
        # a SELECT on the common path; a repeat costs one rolled-back savepoint instead.
        with transaction.atomic():
            row = InboundMessage.objects.create(
                channel=inbound.channel, external_id=external_id, format=inbound.format, sha256=digest,
                size=len(inbound.raw), raw_path=path, message_id=inbound.message_id[:300],
                sender=inbound.sender.strip().lower()[:300], received_at=inbound.received_at, meta=inbound.meta,
                claimed_until=claimed_until, attempts=1 if claimed_until else 0,
            )
    except IntegrityError:  # received before (a re-import, a resend, another process a moment ago)
        return InboundMessage.objects.get(channel=inbound.channel, external_id=external_id), False
    return row, True


def claim(row: InboundMessage, now: datetime) -> bool:
    """Compare-and-set: exactly one process gets to work on a received row."""
    rows = InboundMessage.objects.filter(
        pk=row.pk, status=Status.RECEIVED, claimed_until=row.claimed_until, attempts=row.attempts,
    ).update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), attempts=row.attempts + 1)
    if rows == 1:
        row.claimed_until, row.attempts = now + timedelta(seconds=CLAIM_SECONDS), row.attempts + 1
    return rows == 1


def receive_and_process(inbound: Inbound, now: datetime | None = None) -> tuple[InboundMessage, bool]:
    row, created = receive(inbound, claimed_until=timezone.now() + timedelta(seconds=CLAIM_SECONDS))
    if created:
        _run(row, now or timezone.now())
    return row, created


def process(row: InboundMessage, now: datetime | None = None) -> InboundMessage:
    now = now or timezone.now()
    if row.status != Status.RECEIVED or not claim(row, now):
        return row
    return _run(row, now)


def _run(row: InboundMessage, now: datetime) -> InboundMessage:
    """The stages in one transaction, on a row this process holds the claim for."""
    work = Work(row=row, now=now)
    try:
        with transaction.atomic():
            try:
                for stage in STAGES:
                    stage(work)
            except Stop as stop:
                _finish(work, stop.status, stop.result)
    except Exception as exc:  # any failure quarantines; the raw bytes stay
        log.warning("inbound %s quarantined: %s", row.pk, exc, exc_info=not isinstance(exc, IntakeError))
        quarantine(row, f"{type(exc).__name__}: {exc}" if not isinstance(exc, IntakeError) else str(exc))
    return row


def quarantine(row: InboundMessage, error: str) -> None:
    row.status, row.error, row.claimed_until, row.case = Status.QUARANTINED, error[:4000], None, None
    # What parsing learnt before the failure (the transaction rolled it back) shows in the quarantine.
    InboundMessage.objects.filter(pk=row.pk).update(status=row.status, error=row.error, claimed_until=None,
                                                    case=None, processed_at=timezone.now(), sender=row.sender,
                                                    sender_name=row.sender_name, subject=row.subject)


def retry(row: InboundMessage, now: datetime | None = None) -> InboundMessage:
    """Send a quarantined row through the pipeline again (after a fix or a policy change)."""
    if row.status != Status.QUARANTINED:
        raise ValueError(f"inbound {row.pk} is {row.status}, not quarantined")
    meta = row.meta
    if row.error.startswith(FLOOD):  # a person looked at it and accepts it: the flood guard lets it through
        meta = {**meta, "flood_accepted": True}
    InboundMessage.objects.filter(pk=row.pk, status=Status.QUARANTINED).update(
        status=Status.RECEIVED, error="", claimed_until=None, result="", meta=meta)
    row.refresh_from_db()
    return process(row, now=now)


def process_due(limit: int = 100) -> int:
    """Worker job: claim the oldest received rows (or ones whose claim expired) and process them."""
    done = 0
    now = timezone.now()
    ready = InboundMessage.objects.filter(status=Status.RECEIVED).order_by("received_at", "id")
    for row in ready[:limit]:
        if row.claimed_until is not None and row.claimed_until > now:
            continue
        process(row)
        done += 1
    return done


def handoff(case: Case, inbound: InboundMessage, *, opened: bool = False) -> None:
    """Hand the case to understanding: a job row the worker claims (classify, extract, complete).

    `opened`: the case was opened in this transaction, so no job for it can exist yet."""
    from closeloop.understanding.pipeline import enqueue_case

    enqueue_case(case, opened=opened)


def _finish(work: Work, status: str, result: str) -> None:
    row = work.row
    row.status, row.result, row.case, row.error = status, result, work.case, ""
    row.processed_at, row.claimed_until = work.now, None
    row.save(update_fields=["status", "result", "case", "error", "processed_at", "claimed_until", "message_id",
                            "sender", "sender_name", "subject", "content_key"])


# ---------------------------------------------------------------- stages


def stage_parse(work: Work) -> None:
    row = work.row
    if row.meta.get("unreadable"):  # a watched-folder file that could not be read: nothing to parse yet
        raise IntakeError(str(row.meta["unreadable"]))
    if row.size > settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES:
        raise IntakeError(over_limit("the message", row.size, settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES))
    work.parsed = parsed = parse(read_raw(row.raw_path), row.format, row.meta)
    parsed.sender = parsed.sender or row.sender
    row.message_id, row.sender, row.sender_name = parsed.message_id, parsed.sender, parsed.sender_name
    row.subject, row.content_key = parsed.subject, match.content_key(parsed)
    if parsed.message_id:
        # The same message (also by another channel) has the same content; a different message
        # reusing the Message-ID (a scanner's fixed counter) is a new input.
        earlier = list(InboundMessage.objects.filter(
            message_id=parsed.message_id, content_key=row.content_key, pk__lt=row.pk,
            status__in=[Status.PROCESSED, Status.DUPLICATE],
        ).order_by("id").values_list("case_id", flat=True)[:1])
        if earlier:
            work.case = Case.objects.filter(pk=earlier[0]).first() if earlier[0] else None
            raise Stop("same_message_id", Status.DUPLICATE)


def stage_bounce(work: Work) -> None:
    if not work.parsed.bounce:
        return
    work.case = match.bounced_case(work.parsed)
    if work.case is not None:
        actions.record_event(work.case, Actor.system("intake"), "mail_bounced", {
            "inbound": work.row.pk, "from": work.parsed.sender, "subject": work.parsed.subject,
        }, now=work.now)
    raise Stop("bounce")


def stage_thread(work: Work) -> None:
    case, suspect = match.by_headers(work.parsed)
    case = case or match.by_reply_address(work.parsed, work.row.meta.get("rcpt_to") or [])
    if case is None and suspect is not None:
        work.suspect, work.suspect_reason = suspect, RECEIVED_ID_STRANGER
    if case is None:
        case, by_reference = match.by_reference(work.parsed)
        if work.suspect is None and by_reference is not None:
            work.suspect, work.suspect_reason = by_reference, REFERENCE_STRANGER
    if case is not None:
        _thread_into(work, case)


def stage_dedupe(work: Work) -> None:
    earlier = match.near_duplicate(work.row, work.row.content_key, work.now)
    if earlier is None or earlier.case is None:
        return
    work.case = earlier.case
    actions.record_event(work.case, Actor.system("intake"), "duplicate_received",
                         {"inbound": work.row.pk, "duplicate_of": earlier.pk}, now=work.now)
    raise Stop("linked", Status.DUPLICATE)


def stage_weak_match(work: Work) -> None:
    if work.suspect is None and work.row.channel in EMAIL_CHANNELS:
        case = match.by_sender(work.parsed, [party.pk for party in _parties(work)])
        if case is not None:
            _thread_into(work, case)
    if work.parsed.auto_reply:  # an automatic message about nothing we know: keep it, open nothing
        raise Stop("auto_reply")


def stage_guard(work: Work) -> None:
    if work.row.format == InboundMessage.Format.FILE and not _documents(work):
        raise IntakeError("the file was not accepted: " + "; ".join(work.notes))
    if work.row.meta.get("flood_accepted"):
        return
    opened = match.flooding(work.parsed.sender, work.now)
    if opened >= settings.CLOSELOOP_INTAKE_SENDER_LIMIT:
        raise IntakeError(
            f"{FLOOD} {work.parsed.sender} opened {opened} cases in the last "
            f"{settings.CLOSELOOP_INTAKE_SENDER_WINDOW_MINUTES} minutes; retry to accept this one"
        )


def stage_open(work: Work) -> None:
    parsed, row = work.parsed, work.row
    request_type, team = _route(work)
    fields = {name: {"value": value, "confidence": 1.0, "source": {"channel": row.channel, "inbound": row.pk}}
              for name, value in parsed.fields.items() if not name.startswith("_") and value not in (None, "")}
    case = actions.open_case(
        actor=work.sender_actor, subject=parsed.subject or "(no subject)", body=parsed.body or "(empty message)",
        request_type=request_type, requester=_requester(work), channel=_case_channel(row.channel),
        fields=fields, team=team, stage=Stage.NEW, now=work.now, message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to, documents=_documents(work),
    )
    work.case = case
    if work.notes:
        actions.record_event(case, Actor.system("intake"), "attachments_rejected", {"reasons": work.notes},
                             now=work.now)
    if work.suspect is not None:
        _link_suspect(work, case, work.suspect)


def stage_ack(work: Work) -> None:
    case, parsed = work.case, work.parsed
    assert case is not None
    if parsed.sender and not parsed.suppress_ack and not answerable(parsed.sender):
        reason = f"the sender address {parsed.sender!r} is not a mail address"
        actions.record_event(case, Actor.system("intake"), "ack_not_sent", {"inbound": work.row.pk, "reason": reason},
                             now=work.now)
    elif parsed.sender and not parsed.suppress_ack:
        from closeloop.outbound.outbox import enqueue
        from closeloop.outbound.templates import render

        subject, body = render(case, "ack", {"next_step": _next_step(case, work.notes),
                                             "expected": case.first_response_due_at or case.next_due_at})
        # A case opened a moment ago has one message: the request itself, to thread under.
        thread = (parsed.message_id, parsed.message_id)
        enqueue(case=case, purpose="ack", to=[parsed.sender], subject=subject, body=body, now=work.now,
                headers={"X-Loop": f"closeloop@{settings.CLOSELOOP_MAIL_DOMAIN}",
                         "Reply-To": reply_address(case.pk, _arrived_at(work.row))}, thread=thread)
    handoff(case, work.row, opened=True)
    raise Stop("opened")


STAGES = [stage_parse, stage_bounce, stage_thread, stage_dedupe, stage_weak_match, stage_guard, stage_open,
          stage_ack]


# ---------------------------------------------------------------- helpers


def _thread_into(work: Work, case: Case) -> None:
    parsed = work.parsed
    work.case = case
    if parsed.auto_reply or parsed.loop:
        actions.record_event(case, Actor.system("intake"), "auto_reply_received",
                             {"inbound": work.row.pk, "from": parsed.sender, "subject": parsed.subject}, now=work.now)
        raise Stop("auto_reply")
    if _specialist_answer(work, case):
        raise Stop("specialist_answered")
    actions.record_inbound_message(
        case, work.sender_actor, sender=parsed.sender, subject=parsed.subject, body=parsed.body or "(empty message)",
        channel=_case_channel(work.row.channel), message_id=parsed.message_id, in_reply_to=parsed.in_reply_to,
        documents=_documents(work), now=work.now,
    )
    if work.notes:
        actions.record_event(case, Actor.system("intake"), "attachments_rejected", {"reasons": work.notes},
                             now=work.now)
    handoff(case, work.row)  # a reply or an attachment may supply missing fields
    raise Stop("threaded")


def _specialist_answer(work: Work, case: Case) -> bool:
    """The briefed specialist answered by replying to the notification: record it as the answer."""
    specialist = case.specialist
    sender = work.parsed.sender.lower()
    if case.stage != "awaiting_specialist" or specialist is None or not sender:
        return False
    if sender != (specialist.user.email or "").lower():
        return False
    # A From header is anyone's to write (the requester holds the ack and the signed Reply-To):
    # only a reply to the brief, whose Message-ID went to the specialist alone, is the answer.
    if not OutboxMessage.objects.filter(case=case, purpose="specialist_brief",
                                        message_id__in=work.parsed.thread_ids).exists():
        return False
    answer = _without_quote(work.parsed.body or "")
    if not answer:
        return False
    actions.record_specialist_answer(case, Actor.of(specialist), answer=answer, now=work.now)
    return True


def _without_quote(body: str) -> str:
    """The new text of a reply: up to the first quoted line or 'On … wrote:' header."""
    kept = []
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith(">") or (stripped.startswith("On ") and stripped.endswith("wrote:")):
            break
        if stripped.startswith("-----Original Message-----"):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _documents(work: Work) -> list[Document]:
    """Store each attachment that passes the type and size checks; note why the others did not."""
    if work._documents is None:
        work._documents = []
        for attachment in work.parsed.attachments:
            try:
                work._documents.append(store_document(attachment.content, attachment.filename,
                                                      attachment.content_type, source=work.row.channel))
            except DocumentRejected as exc:
                work.notes.append(str(exc))
        work.notes += [str(n) for n in work.parsed.fields.get("_notes", [])]
    return work._documents


def _link_suspect(work: Work, case: Case, other: Case) -> None:
    """Someone who is not a party named another case (its reference, a message it received): a new
    case, linked for a person to judge."""
    data = {"inbound": work.row.pk, "from": work.parsed.sender}
    actions.record_event(case, Actor.system("intake"), "linked_case",
                         {**data, "case": other.pk, "reason": work.suspect_reason or REFERENCE_STRANGER},
                         now=work.now)
    actions.record_event(other, Actor.system("intake"), "referenced_by_other_sender", {**data, "case": case.pk},
                         now=work.now)


def _route(work: Work) -> tuple[RequestType | None, Team | None]:
    """The request type and the team, chosen as `actions.open_case` would, from cached rows."""
    meta, parsed = work.row.meta, work.parsed
    slug = meta.get("request_type") or parsed.request_type or settings.CLOSELOOP_INTAKE_DEFAULT_TYPE
    request_type = lookups.request_type(slug) if slug else None
    team = lookups.team(meta["team"]) if meta.get("team") else None
    if team is None and request_type is not None and request_type.routing_team_id:
        team = request_type.routing_team
    return request_type, team or lookups.fallback_team()


def _parties(work: Work) -> list[Party]:
    """The parties with the sender's address, oldest first (read once: the weak match and the requester)."""
    if work._parties is None:
        sender = work.parsed.sender
        work._parties = sorted(Party.objects.filter(email=sender), key=lambda p: p.pk) if sender else []
    return work._parties


def _requester(work: Work) -> Party | None:
    if not work.parsed.sender:
        return None
    parties = _parties(work)
    if not parties:
        parties.append(Party.objects.create(email=work.parsed.sender, name=work.parsed.sender_name))
    return parties[0]


def answerable(address: str) -> bool:
    """One syntactically valid address with a domain (`maria` alone would go to a local mailbox)."""
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def _arrived_at(row: InboundMessage) -> str:
    recipients = row.meta.get("rcpt_to") or []
    return without_tag(recipients[0]) if recipients and row.channel == "smtp" else ""


def _case_channel(channel: str) -> str:
    return {"imap": "email", "smtp": "email", "import": "email", "webform": "web", "folder": "fax"}.get(
        channel, channel)


def _next_step(case: Case, notes: list[str]) -> str:
    policy = case.request_type.policy if case.request_type else {}
    team = case.team.name if case.team else "our"
    text = str(policy.get("ack_next_step") or f"the {team} team will review your request and contact you "
                                                 "if anything is missing.")
    if notes:
        text += "\nWe could not accept some attachments: " + "; ".join(notes) + "."
    return text
