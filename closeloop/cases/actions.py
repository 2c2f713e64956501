"""The only code that changes a case.

Each action validates the transition, writes the changed columns with a conditional
UPDATE on `version` (a concurrent edit loses with `ConflictError`, never silently),
appends an Event, and re-establishes the invariant: an open case has an owner (a person
or a team queue), a next action, a next due time and a party it is waiting on.
Side effects (mail) go through the outbox, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import deadlines
from .models import ActorKind, Case, Document, Event, Message, Party, Priority, RequestType, Role, Staff, Team
from .stages import DEFAULTS, OPEN_STAGES, NextAction, Stage, TransitionError, WaitingOn, check_move

__all__ = [
    "ActionError", "Actor", "ConflictError", "TransitionError", "approve_and_send", "assign", "close",
    "draft_reply", "escalate", "hand_to_specialist", "merge", "open_case", "record_event", "record_fields",
    "record_inbound_message", "record_specialist_answer", "reopen", "request_missing_info",
    "send_to_triage", "set_request_type", "snooze", "wait_on", "wake",
    # follow-up engine
    "auto_close_answered", "chase_requester", "remind", "remind_owner", "remind_specialist",
    # web
    "revoke_links",
]


class ActionError(Exception):
    """An action was refused; `field` names the offending input where there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(ActionError):
    """Someone else changed the case first; reload it and try again."""


@dataclass(frozen=True)
class Actor:
    kind: str
    staff: Staff | None = None
    label: str = ""

    @classmethod
    def of(cls, staff: Staff) -> Actor:
        return cls(ActorKind.STAFF, staff, staff.display_name)

    @classmethod
    def system(cls, label: str = "closeloop") -> Actor:
        return cls(ActorKind.SYSTEM, None, label)

    @classmethod
    def model(cls, label: str) -> Actor:
        return cls(ActorKind.MODEL, None, label)

    @classmethod
    def requester(cls, label: str = "") -> Actor:
        return cls(ActorKind.REQUESTER, None, label)


@dataclass
class _Change:
    """What one action does to a case, applied by `_commit`."""

    kind: str
    stage: str | None = None
    waiting_on: str | None = None
    next_action: str | None = None
    due: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


_TRACKED = [
    f.attname for f in Case._meta.concrete_fields if f.attname not in ("id", "version")
]


def _snapshot(case: Case) -> dict[str, Any]:
    return {name: getattr(case, name) for name in _TRACKED}


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _fallback_team() -> Team:
    team = Team.objects.filter(slug=getattr(settings, "CLOSELOOP_TRIAGE_TEAM", "intake")).first()
    team = team or Team.objects.order_by("id").first()
    if team is None:
        raise ActionError("no team exists to hold the case; create a team first", field="team")
    return team


def _establish_invariant(case: Case, change: _Change, now: datetime) -> None:
    if case.stage == Stage.CLOSED:
        case.waiting_on, case.next_action, case.next_due_at = WaitingOn.NONE, NextAction.NONE, None
        case.snoozed_until, case.snooze_reason = None, ""
        return
    if case.owner_id is None and case.team_id is None:
        rt = case.request_type
        case.team = rt.routing_team if rt and rt.routing_team_id else _fallback_team()
    waiting_on, next_action = DEFAULTS[Stage(case.stage)]
    case.waiting_on = change.waiting_on or waiting_on
    if case.snoozed_until and case.snoozed_until > now:
        case.next_action = NextAction.WAKE
    else:
        case.snoozed_until, case.snooze_reason = None, ""
        case.next_action = change.next_action or next_action
    case.next_due_at = change.due or deadlines.next_due(case, now)


def _commit(case: Case, before: dict[str, Any], actor: Actor, change: _Change, now: datetime,
            then: Callable[[Event], None] | None = None) -> Event:
    """Write the change, its event and (`then`) its side effects in one transaction."""
    from_stage = before["stage"]
    if change.stage is not None:
        check_move(from_stage, change.stage)
        case.stage = change.stage
    _establish_invariant(case, change, now)
    case.updated_at = now
    changed = {name: getattr(case, name) for name in _TRACKED if getattr(case, name) != before[name]}
    changed["updated_at"] = now
    with transaction.atomic():
        rows = Case.objects.filter(pk=case.pk, version=case.version).update(**changed, version=F("version") + 1)
        if rows != 1:
            raise ConflictError(
                f"{case.reference} was changed by someone else; reload it and try again"
            )
        case.version += 1
        event = _event(case, actor, change.kind, from_stage, now, change.data)
        if then is not None:
            then(event)
        return event


def _event(case: Case, actor: Actor, kind: str, from_stage: str, now: datetime, data: dict[str, Any]) -> Event:
    return Event.objects.create(
        case=case, at=now, actor_kind=actor.kind, actor_staff=actor.staff, actor_label=actor.label[:200],
        kind=kind, from_stage=from_stage, to_stage=case.stage, waiting_on=case.waiting_on,
        owner_id=case.owner_id, team_id=case.team_id, data=_jsonable(data),
    )


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif hasattr(value, "pk"):
            out[key] = value.pk
        else:
            out[key] = value
    return out


def _require_open(case: Case, doing: str) -> None:
    if case.stage == Stage.CLOSED:
        raise TransitionError(f"{case.reference} is closed; reopen it before you {doing}")


def _missing(case: Case) -> list[str]:
    if case.request_type is None:
        return []
    # A value its reader asks a person to confirm (source "confirm": why) is not yet had.
    have = {k for k, v in case.fields.items() if isinstance(v, dict) and v.get("value") not in (None, "")
            and not (isinstance(v.get("source"), dict) and v["source"].get("confirm"))}
    return [name for name in case.request_type.required_fields if name not in have]


def _notify(case: Case, purpose: str, to: Iterable[str], subject: str, body: str, sequence: int = 0,
            *, now: datetime, message: Message | None = None) -> None:
    from closeloop.outbound.outbox import enqueue

    recipients = [r for r in to if r]
    if recipients:
        enqueue(case=case, purpose=purpose, to=recipients, subject=subject, body=body,
                sequence=sequence, now=now, message=message)


def _requester_email(case: Case) -> str:
    return case.requester.email if case.requester_id and case.requester else ""  # type: ignore[union-attr]


# ---------------------------------------------------------------- opening and routing


def open_case(
    *,
    actor: Actor,
    subject: str,
    body: str = "",
    request_type: RequestType | None = None,
    requester: Party | None = None,
    channel: str = "api",
    fields: Mapping[str, Mapping[str, Any]] | None = None,
    priority: str | None = None,
    team: Team | None = None,
    owner: Staff | None = None,
    stage: str | None = None,
    now: datetime | None = None,
    message_id: str = "",
    in_reply_to: str = "",
    documents: Iterable[Document] = (),
) -> Case:
    """Open a case. With a request type it starts in progress; without one, at triage.

    A case opened from a message keeps that message's Message-ID and its documents,
    written in the same transaction (intake threads replies by them).
    """
    now = _now(now)
    if priority is not None and priority not in Priority.values:
        raise ActionError(f"unknown priority {priority!r}", field="priority")
    if stage is None:
        stage = Stage.IN_PROGRESS if request_type else Stage.TRIAGE
    if stage not in (Stage.NEW, Stage.TRIAGE, Stage.IN_PROGRESS):
        raise ActionError("a case opens as new, at triage or in progress", field="stage")
    _check_owner(owner, "owner")
    case = Case(
        request_type=request_type, requester=requester, channel=channel, subject=subject[:300],
        summary=body, fields=_clean_fields(fields or {}), stage=stage, opened_at=now, updated_at=now,
        priority=priority or (request_type.default_priority if request_type else Priority.NORMAL),
        team=team or (request_type.routing_team if request_type else None), owner=owner,
    )
    if owner is not None and case.team_id is None:
        case.team = owner.teams.first()
    case.missing_fields = _missing(case)
    if request_type is not None:
        case.first_response_due_at, case.resolution_due_at = deadlines.sla_targets(case, now)
    _establish_invariant(case, _Change("opened"), now)
    with transaction.atomic():
        case.save(force_insert=True)
        message = None
        if body:
            message = Message.objects.create(
                case=case, direction=Message.Direction.INBOUND, channel=channel,
                sender=requester.email if requester else "", subject=subject[:300], body=body,
                message_id=message_id[:300], in_reply_to=in_reply_to[:300], created_at=now)
        doc_ids = []
        for doc in documents:
            doc.case, doc.message = case, message
            doc_ids.append(doc.pk)
        if doc_ids:  # one UPDATE for all of them
            Document.objects.filter(pk__in=doc_ids).update(case=case, message=message)
        _event(case, actor, "opened", "", now, {
            "channel": channel, "request_type": request_type.slug if request_type else None,
            "priority": case.priority, "missing": case.missing_fields,
        })
    return case


def _clean_fields(fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, entry in fields.items():
        if not isinstance(name, str) or not name:
            raise ActionError("field names must be non-empty strings", field="fields")
        if not isinstance(entry, Mapping):
            entry = {"value": entry}
        if "value" not in entry:
            raise ActionError(f"field {name!r} has no value", field=f"fields.{name}")
        confidence = entry.get("confidence", 1.0)
        if not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
            raise ActionError(f"confidence of {name!r} must be between 0 and 1", field=f"fields.{name}")
        out[name] = {"value": entry["value"], "confidence": float(confidence), "source": entry.get("source") or {}}
    return out


def assign(case: Case, actor: Actor, *, team: Team | None = None, owner: Staff | None = None,
           reason: str = "", now: datetime | None = None) -> Event:
    """Give the case to a team queue, a person, or both."""
    _require_open(case, "assign it")
    if team is None and owner is None:
        raise ActionError("name a team, an owner, or both", field="owner")
    _check_owner(owner, "owner")
    now = _now(now)
    before = _snapshot(case)
    if team is not None:
        case.team = team
        if owner is None and case.owner_id is not None and not case.owner.teams.filter(pk=team.pk).exists():  # type: ignore[union-attr]
            case.owner = None
    if owner is not None:
        if team is not None and not owner.teams.filter(pk=team.pk).exists():
            raise ActionError(f"{owner} is not a member of {team}", field="owner")
        case.owner = owner
        if case.team_id is None:
            case.team = owner.teams.first()
    return _commit(case, before, actor, _Change("assigned", data={
        "from_owner": before["owner_id"], "to_owner": case.owner_id,
        "from_team": before["team_id"], "to_team": case.team_id, "reason": reason,
    }), now)


def _check_owner(person: Staff | None, field: str) -> None:
    """An owner must be able to work the case: active, and not a specialist (who is briefed on cases but
    may not assign, ask, reply or close them, so a case they owned would stall)."""
    if person is None:
        return
    if not person.is_active:
        raise ActionError(f"{person} is not active", field=field)
    if person.role == Role.SPECIALIST:
        raise ActionError(f"{person} is a specialist: brief them instead; a case needs an owner who can work it",
                          field=field)


def set_request_type(case: Case, actor: Actor, request_type: RequestType, *, confidence: float | None = None,
                     route: bool = True, now: datetime | None = None) -> Event:
    """Classify or re-route. A staff change here is a training label for understanding."""
    _require_open(case, "re-route it")
    now = _now(now)
    before = _snapshot(case)
    from_type = case.request_type.slug if case.request_type else None
    case.request_type = request_type
    if route and request_type.routing_team_id and request_type.routing_team_id != case.team_id:
        case.team = request_type.routing_team
        case.owner = None
    case.missing_fields = _missing(case)
    if case.first_response_due_at is None or from_type != request_type.slug:
        case.first_response_due_at, case.resolution_due_at = deadlines.sla_targets(case, case.opened_at)
    stage = Stage.IN_PROGRESS if case.stage in (Stage.NEW, Stage.TRIAGE) else None
    return _commit(case, before, actor, _Change("classified", stage=stage, data={
        "from_type": from_type, "to_type": request_type.slug, "confidence": confidence,
        "label": actor.kind == ActorKind.STAFF,
    }), now)


def send_to_triage(case: Case, actor: Actor, *, reason: str, suggestions: list[dict[str, Any]] | None = None,
                   now: datetime | None = None) -> Event:
    """Hand the decision to a person: low confidence or a request that fits no type."""
    _require_open(case, "triage it")
    now = _now(now)
    before = _snapshot(case)
    return _commit(case, before, actor, _Change("sent_to_triage", stage=Stage.TRIAGE,
                                                data={"reason": reason, "suggestions": suggestions or []}), now)


# ---------------------------------------------------------------- conversation


def record_inbound_message(
    case: Case, actor: Actor, *, sender: str, subject: str, body: str, channel: str = "email",
    message_id: str = "", in_reply_to: str = "", documents: Iterable[Document] = (), now: datetime | None = None,
) -> Message:
    """A message arrived on the case. The awaited reply stops chasing; a closed case reopens."""
    now = _now(now)
    before = _snapshot(case)
    stage: str | None = None
    kind = "message_received"
    if case.stage in (Stage.AWAITING_INFO, Stage.ANSWERED):
        stage = Stage.IN_PROGRESS
    elif case.stage == Stage.CLOSED:
        stage, kind = Stage.IN_PROGRESS, "reopened"
    if stage is not None:
        case.followup_step = 0
    with transaction.atomic():
        message = Message.objects.create(
            case=case, direction=Message.Direction.INBOUND, channel=channel, sender=sender[:300],
            subject=subject[:300], body=body, message_id=message_id[:300], in_reply_to=in_reply_to[:300],
            created_at=now,
        )
        doc_ids = []
        for doc in documents:
            doc.case, doc.message = case, message
            doc.save(update_fields=["case", "message"])
            doc_ids.append(doc.pk)
        _commit(case, before, actor, _Change(kind, stage=stage, data={
            "message": message.pk, "channel": channel, "documents": doc_ids, "reason": "new message",
        }), now)
    return message


def record_fields(case: Case, actor: Actor, fields: Mapping[str, Any], *, now: datetime | None = None) -> Event:
    """Set extracted or supplied fields (with provenance); an answered checklist resumes work."""
    now = _now(now)
    before = _snapshot(case)
    cleaned = _clean_fields(fields)
    case.fields = {**case.fields, **cleaned}
    case.missing_fields = _missing(case)
    stage = None
    if case.stage == Stage.AWAITING_INFO and not case.missing_fields:
        stage = Stage.IN_PROGRESS
        case.followup_step = 0
    return _commit(case, before, actor, _Change("fields_recorded", stage=stage, data={
        "fields": {k: v["value"] for k, v in cleaned.items()}, "missing": case.missing_fields,
    }), now)


def request_missing_info(case: Case, actor: Actor, *, fields: list[str] | None = None, message: str = "",
                         now: datetime | None = None) -> Event:
    """Ask the requester for what is missing; the follow-up engine chases until it arrives."""
    _require_open(case, "ask for information")
    now = _now(now)
    wanted = fields if fields is not None else list(case.missing_fields)
    if not wanted and not message:
        raise ActionError("say what is missing: name fields or write a message", field="fields")
    before = _snapshot(case)
    case.followup_step = 0
    if wanted:
        case.missing_fields = sorted(set(case.missing_fields) | set(wanted))
    from closeloop.outbound.templates import render

    def mail(event: Event) -> None:
        subject, body = render(case, "missing_info", {"fields": wanted, "message": message})
        _notify(case, "missing_info", [_requester_email(case)], subject, body, sequence=event.pk, now=now)

    return _commit(case, before, actor, _Change("info_requested", stage=Stage.AWAITING_INFO,
                                                data={"fields": wanted, "message": message}), now, then=mail)


def wait_on(case: Case, actor: Actor, *, party: str, until: datetime, reason: str = "",
            now: datetime | None = None) -> Event:
    """Record that the case waits on someone outside the team until a given time."""
    _require_open(case, "wait on someone")
    now = _now(now)
    stages: dict[str, Stage] = {WaitingOn.REQUESTER: Stage.AWAITING_INFO, WaitingOn.EXTERNAL: Stage.WAITING_EXTERNAL,
              WaitingOn.SPECIALIST: Stage.AWAITING_SPECIALIST}
    if party not in stages:
        raise ActionError("wait on the requester, a specialist or an external party", field="party")
    if until <= now:
        raise ActionError("the wait must end in the future", field="until")
    before = _snapshot(case)
    case.followup_step = 0
    return _commit(case, before, actor, _Change("waiting", stage=stages[party], due=until,
                                                data={"party": party, "until": until, "reason": reason}), now)


def hand_to_specialist(case: Case, actor: Actor, *, specialist: Staff, question: str,
                       now: datetime | None = None) -> Event:
    """Brief a specialist with the one question to answer."""
    _require_open(case, "hand it to a specialist")
    if not question.strip():
        raise ActionError("write the question the specialist should answer", field="question")
    if specialist.role not in (Role.SPECIALIST, Role.SUPERVISOR, Role.ADMIN):
        raise ActionError(f"{specialist} is not a specialist", field="specialist")
    now = _now(now)
    before = _snapshot(case)
    case.specialist, case.specialist_question, case.followup_step = specialist, question.strip(), 0
    from closeloop.outbound.templates import render

    def mail(event: Event) -> None:
        subject, body = render(case, "specialist_brief", {"question": question})
        _notify(case, "specialist_brief", [specialist.user.email], subject, body, sequence=event.pk, now=now)

    return _commit(case, before, actor, _Change("handed_to_specialist", stage=Stage.AWAITING_SPECIALIST,
                                                data={"specialist": specialist.pk, "question": question}), now,
                   then=mail)


def record_specialist_answer(case: Case, actor: Actor, *, answer: str, now: datetime | None = None) -> Event:
    if case.stage != Stage.AWAITING_SPECIALIST:
        raise TransitionError(f"{case.reference} is not waiting on a specialist")
    if not answer.strip():
        raise ActionError("the answer is empty", field="answer")
    now = _now(now)
    before = _snapshot(case)
    case.specialist_answer = answer.strip()
    return _commit(case, before, actor, _Change("specialist_answered", stage=Stage.READY_TO_REPLY,
                                                data={"answer": answer}), now)


def draft_reply(case: Case, actor: Actor, *, subject: str, body: str, purpose: str = "reply",
                now: datetime | None = None) -> Message:
    """Write a reply that waits for approval before it goes out."""
    _require_open(case, "draft a reply")
    if not body.strip():
        raise ActionError("the reply is empty", field="body")
    now = _now(now)
    before = _snapshot(case)
    with transaction.atomic():
        message = Message.objects.create(
            case=case, direction=Message.Direction.OUTBOUND, status=Message.Status.DRAFT, purpose=purpose,
            channel="email", subject=subject[:300], body=body, recipients=[_requester_email(case)],
            created_by=actor.staff, created_at=now,
        )
        _commit(case, before, actor, _Change("reply_drafted", stage=Stage.READY_TO_REPLY,
                                             next_action=NextAction.APPROVE_REPLY,
                                             data={"message": message.pk}), now)
    return message


def approve_and_send(case: Case, actor: Actor, *, message: Message | None = None, subject: str = "",
                     body: str = "", purpose: str = "reply", now: datetime | None = None) -> Message:
    """Approve a draft (or send a new reply) to the requester; the case is then answered."""
    _require_open(case, "send a reply")
    if message is None:
        if not body.strip():
            raise ActionError("the reply is empty", field="body")
        message = Message(case=case, direction=Message.Direction.OUTBOUND, purpose=purpose, channel="email",
                          subject=subject[:300] or f"Re: {case.subject}"[:300], body=body,
                          recipients=[_requester_email(case)], created_by=actor.staff)
    elif message.case_id != case.pk or message.status != Message.Status.DRAFT:
        raise ActionError("only a draft of this case can be approved", field="message")
    if not _requester_email(case):
        raise ActionError("the requester has no email address to reply to", field="requester")
    now = _now(now)
    before = _snapshot(case)
    with transaction.atomic():
        message.status, message.approved_by, message.created_at = Message.Status.QUEUED, actor.staff, now
        message.save()
        case.first_responded_at = case.first_responded_at or now
        case.followup_step = 0
        event = _commit(case, before, actor, _Change("reply_sent", stage=Stage.ANSWERED,
                                                     data={"message": message.pk}), now)
        from closeloop.outbound.templates import with_status_link

        _notify(case, "reply", message.recipients, message.subject, with_status_link(case, message.body),
                sequence=event.pk, now=now, message=message)
    return message


# ---------------------------------------------------------------- time and escalation


def snooze(case: Case, actor: Actor, *, until: datetime, reason: str, now: datetime | None = None) -> Event:
    _require_open(case, "snooze it")
    now = _now(now)
    if until <= now:
        raise ActionError("snooze until a time in the future", field="until")
    if not reason.strip():
        raise ActionError("say why the case is snoozed", field="reason")
    before = _snapshot(case)
    case.snoozed_until, case.snooze_reason = until, reason.strip()[:200]
    return _commit(case, before, actor, _Change("snoozed", data={"until": until, "reason": reason}), now)


def wake(case: Case, actor: Actor, *, now: datetime | None = None) -> Event:
    """End a snooze early, or when it runs out; the stage's next action returns."""
    if case.snoozed_until is None and case.next_action != NextAction.WAKE:
        raise TransitionError(f"{case.reference} is not snoozed")
    now = _now(now)
    before = _snapshot(case)
    case.snoozed_until, case.snooze_reason = None, ""
    return _commit(case, before, actor, _Change("woken"), now)


def escalate(case: Case, actor: Actor, *, reason: str, to: Staff | None = None,
             now: datetime | None = None) -> Event:
    """Raise the case a level: to a named person, else the team lead, else a supervisor."""
    _require_open(case, "escalate it")
    _check_owner(to, "to")
    now = _now(now)
    before = _snapshot(case)
    target = to or _escalation_target(case, now)
    case.escalation_level += 1
    if case.priority in (Priority.LOW, Priority.NORMAL):
        case.priority = Priority.HIGH
    if target is not None:
        case.owner = target
        if case.team_id and not target.teams.filter(pk=case.team_id).exists():
            case.team = target.teams.first() or case.team
    def mail(event: Event) -> None:
        if target is not None:
            _notify(case, "escalation", [target.user.email], f"Escalated: {case.reference} {case.subject}",
                    f"{case.reference} was escalated to you: {reason}", sequence=event.pk, now=now)

    return _commit(case, before, actor, _Change("escalated", data={
        "reason": reason, "level": case.escalation_level, "to": target.pk if target else None,
    }), now, then=mail)


def _escalation_target(case: Case, now: datetime) -> Staff | None:
    """The team lead, else the first supervisor, who can own cases and is not on leave (the worker's rule)."""
    from closeloop.followups.assignment import chain_target

    return chain_target(case, "team_lead", now)


# ---------------------------------------------------------------- closing


def close(case: Case, actor: Actor, *, outcome: str, note: str = "", notify: bool = True,
          now: datetime | None = None) -> Event:
    """Close the case; the requester always hears the outcome unless staff say otherwise."""
    if not outcome.strip():
        raise ActionError("give the outcome", field="outcome")
    now = _now(now)
    before = _snapshot(case)
    case.outcome, case.outcome_note, case.closed_at = outcome.strip()[:40], note, now
    from closeloop.outbound.templates import render

    def mail(event: Event) -> None:
        if notify and outcome != "merged":
            subject, body = render(case, "outcome", {"outcome": outcome, "note": note})
            _notify(case, "outcome", [_requester_email(case)], subject, body, sequence=event.pk, now=now)

    return _commit(case, before, actor, _Change("closed", stage=Stage.CLOSED,
                                                data={"outcome": outcome, "note": note, "notified": notify}), now,
                   then=mail)


def reopen(case: Case, actor: Actor, *, reason: str, now: datetime | None = None) -> Event:
    if case.stage != Stage.CLOSED:
        raise TransitionError(f"{case.reference} is not closed")
    if case.merged_into_id:
        raise TransitionError(f"{case.reference} was merged into {case.merged_into}; reopen that case")
    now = _now(now)
    before = _snapshot(case)
    case.closed_at, case.outcome, case.followup_step = None, "", 0
    return _commit(case, before, actor, _Change("reopened", stage=Stage.IN_PROGRESS, data={"reason": reason}), now)


def merge(duplicate: Case, primary: Case, actor: Actor, *, now: datetime | None = None) -> Event:
    """Fold a duplicate into its primary: documents move, missing fields are filled, the duplicate closes."""
    if duplicate.pk == primary.pk:
        raise ActionError("a case cannot be merged into itself", field="primary")
    if primary.stage == Stage.CLOSED:
        raise TransitionError(f"{primary.reference} is closed; reopen it first")
    _require_open(duplicate, "merge it")
    now = _now(now)
    with transaction.atomic():
        Document.objects.filter(case=duplicate).update(case=primary)
        before_primary = _snapshot(primary)
        primary.fields = {**duplicate.fields, **primary.fields}
        primary.missing_fields = _missing(primary)
        _commit(primary, before_primary, actor, _Change("merged_in", data={"duplicate": duplicate.pk}), now)
        before = _snapshot(duplicate)
        duplicate.merged_into, duplicate.outcome, duplicate.closed_at = primary, "merged", now
        return _commit(duplicate, before, actor, _Change("merged", stage=Stage.CLOSED,
                                                         data={"primary": primary.pk}), now)


def record_event(case: Case, actor: Actor, kind: str, data: Mapping[str, Any] | None = None, *,
                 now: datetime | None = None) -> Event:
    """Append an event that changes nothing on the case (ack sent, bounce, rating, view)."""
    return _event(case, actor, kind, case.stage, _now(now), dict(data or {}))


def open_stages() -> frozenset[str]:
    return frozenset(str(s) for s in OPEN_STAGES)


# ---- followups actions


def chase_requester(case: Case, actor: Actor, *, now: datetime | None = None) -> Event:
    """Send the next chaser of the request type's cadence; after the last one, close with a notice.

    The chaser and the case change commit together, so a crash leaves either both or neither;
    the outbox key names the case, the step and the case version, so a retried action queues
    one message.
    """
    if case.stage != Stage.AWAITING_INFO:
        raise TransitionError(f"{case.reference} is not waiting on the requester for information")
    now = _now(now)
    steps = deadlines.cadence_days(case)
    if case.followup_step >= len(steps):
        with transaction.atomic():
            return close(case, actor, outcome="no_response", now=now,
                         note="We closed the request because we did not hear back. Reply to reopen it.")
    from closeloop.outbound.outbox import enqueue
    from closeloop.outbound.templates import render

    before = _snapshot(case)
    step, version = case.followup_step + 1, case.version
    case.followup_step = step
    with transaction.atomic():
        event = _commit(case, before, actor, _Change("requester_chased", data={"step": step, "of": len(steps)}), now)
        email = _requester_email(case)
        if email:
            subject, body = render(case, "chase", {})
            enqueue(case=case, purpose="chase", to=[email], subject=subject, body=body, now=now,
                    key=f"{case.pk}:chase:{step}@{version}")
    return event


def auto_close_answered(case: Case, actor: Actor, *, now: datetime | None = None) -> Event:
    """Close an answered case the requester did not reply to, telling them how to reopen it."""
    if case.stage != Stage.ANSWERED:
        raise TransitionError(f"{case.reference} is not answered")
    with transaction.atomic():
        return close(case, actor, outcome="resolved", now=now,
                     note="We closed the request as we did not hear back after our answer. Reply to reopen it.")


def remind(case: Case, actor: Actor, *, who: Staff | None, kind: str, due: datetime,
           data: Mapping[str, Any] | None = None, now: datetime | None = None) -> Event:
    """Record that `who` was reminded of the case (the digest carries it) and when to look again."""
    _require_open(case, "send a reminder")
    now = _now(now)
    if due <= now:
        raise ActionError("the next look must be in the future", field="due")
    before = _snapshot(case)
    return _commit(case, before, actor, _Change(kind, due=due, data={
        **dict(data or {}), "to": who.pk if who else None,
    }), now)


def remind_owner(case: Case, actor: Actor, *, due: datetime, data: Mapping[str, Any] | None = None,
                 now: datetime | None = None) -> Event:
    return remind(case, actor, who=case.owner, kind="owner_reminded", due=due, data=data, now=now)


def remind_specialist(case: Case, actor: Actor, *, due: datetime, data: Mapping[str, Any] | None = None,
                      now: datetime | None = None) -> Event:
    if case.stage != Stage.AWAITING_SPECIALIST or case.specialist is None:
        raise TransitionError(f"{case.reference} is not waiting on a specialist")
    return remind(case, actor, who=case.specialist, kind="specialist_reminded", due=due, data=data, now=now)


# ---- web actions


def revoke_links(case: Case, actor: Actor, *, reason: str = "", now: datetime | None = None) -> Event:
    """Revoke every requester status link sent so far; links made from now on work again."""
    now = _now(now)
    before = _snapshot(case)
    case.link_epoch += 1
    return _commit(case, before, actor, _Change("links_revoked", data={"reason": reason}), now)


# ---- followups bulk actions


def _cas_update_many(updates: Sequence[tuple[Case, Mapping[str, Any]]]) -> set[int]:
    """Write each case's changed columns in one UPDATE per chunk, each row only if its `version`
    is still the one loaded (the same compare-and-set as `_commit`); bumps `version`.

    Returns the ids written; a case someone else changed meanwhile is left alone.
    """
    from django.db import connection

    if not updates:
        return set()
    fields = {f.attname: f for f in Case._meta.concrete_fields}
    columns = sorted({name for _, changed in updates for name in changed})
    qn, table = connection.ops.quote_name, connection.ops.quote_name(Case._meta.db_table)
    cast = connection.vendor == "postgresql"  # VALUES columns are untyped there; SQLite must not CAST

    def set_clause(i: int, name: str) -> str:
        value = f"v.column{i + 3}"
        if cast:
            value = f"CAST({value} AS {fields[name].cast_db_type(connection) or 'text'})"
        return f"{qn(str(fields[name].column))} = {value}"

    sets = ", ".join(set_clause(i, name) for i, name in enumerate(columns))
    written: set[int] = set()
    for start in range(0, len(updates), 500):
        chunk = updates[start:start + 500]
        row = "(" + ", ".join(["%s"] * (len(columns) + 2)) + ")"
        params: list[Any] = []
        for case, _ in chunk:
            params += [case.pk, case.version]
            params += [fields[c].get_db_prep_save(getattr(case, c), connection) for c in columns]
        # Identifiers come from the model, every value is a parameter.
        sql = (f"UPDATE {table} SET {sets}, {qn('version')} = {table}.{qn('version')} + 1 "  # noqa: S608
               f"FROM (VALUES {', '.join([row] * len(chunk))}) AS v "
               f"WHERE {table}.{qn('id')} = v.column1 AND {table}.{qn('version')} = v.column2 "
               f"RETURNING {table}.{qn('id')}")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written.update(pk for (pk,) in cursor.fetchall())
    return written


def chase_requesters(cases: Sequence[Case], actor: Actor, *, now: datetime | None = None) -> dict[int, Event]:
    """`chase_requester` for many cases at once: one transaction, a fixed number of queries.

    Every case must be awaiting information with a cadence step left (the last step's
    close-with-notice stays with `chase_requester`); that is checked before anything is
    written. A case someone else changed since it was loaded (its `version` moved) is
    skipped: their change and its due time stand. Returns {case id: event} of the chased.
    """
    from closeloop.outbound.outbox import Outgoing, enqueue_many
    from closeloop.outbound.templates import render

    now = _now(now)
    planned: list[tuple[Case, dict[str, Any], str, int, int, int]] = []
    for case in cases:
        steps = deadlines.cadence_days(case)
        if case.stage != Stage.AWAITING_INFO or case.followup_step >= len(steps):
            raise TransitionError(f"{case.reference} has no chaser due; use chase_requester")
        before = _snapshot(case)
        step, version = case.followup_step + 1, case.version
        case.followup_step = step
        _establish_invariant(case, _Change("requester_chased"), now)
        case.updated_at = now
        changed = {name: getattr(case, name) for name in _TRACKED if getattr(case, name) != before[name]}
        planned.append((case, changed, before["stage"], step, len(steps), version))
    with transaction.atomic(savepoint=False):
        written = _cas_update_many([(case, changed) for case, changed, *_ in planned])
        done = [p for p in planned if p[0].pk in written]
        events = Event.objects.append_many([
            Event(case=case, at=now, actor_kind=actor.kind, actor_staff=actor.staff, actor_label=actor.label[:200],
                  kind="requester_chased", from_stage=from_stage, to_stage=case.stage, waiting_on=case.waiting_on,
                  owner_id=case.owner_id, team_id=case.team_id, data={"step": step, "of": of})
            for case, _, from_stage, step, of, _ in done])
        outgoing = []
        for case, _, _, step, _, version in done:
            case.version += 1
            email = _requester_email(case)
            if email:
                subject, body = render(case, "chase", {})
                outgoing.append(Outgoing(case=case, purpose="chase", to=[email], subject=subject, body=body,
                                         key=f"{case.pk}:chase:{step}@{version}"))
        enqueue_many(outgoing, now=now)
    return {event.case_id: event for event in events}


# ---- understanding actions


def set_priority(case: Case, actor: Actor, priority: str, *, reason: str,
                 cue: Mapping[str, Any] | None = None, now: datetime | None = None) -> Event:
    """Change the priority; the SLA due times are recomputed from the type's policy for it."""
    _require_open(case, "change its priority")
    if priority not in Priority.values:
        raise ActionError(f"unknown priority {priority!r}", field="priority")
    now = _now(now)
    before = _snapshot(case)
    from_priority = case.priority
    case.priority = priority
    case.first_response_due_at, case.resolution_due_at = deadlines.sla_targets(case, case.opened_at)
    return _commit(case, before, actor, _Change("priority_set", data={
        "from": from_priority, "to": priority, "reason": reason, "cue": dict(cue or {}),
    }), now)


# ---- outbound actions


def requester_unreachable(case: Case, actor: Actor, *, error: str, now: datetime | None = None) -> Event:
    """Our mail to the requester failed for good while the case waited on them (for information, or to
    confirm an answer): waiting would only chase a dead address and close the case unanswered, so the
    ball goes back to the owner to reach them another way."""
    if case.stage not in (Stage.AWAITING_INFO, Stage.ANSWERED):
        raise TransitionError(f"{case.reference} is not waiting on the requester")
    now = _now(now)
    before = _snapshot(case)
    case.followup_step = 0
    return _commit(case, before, actor, _Change("requester_unreachable", stage=Stage.IN_PROGRESS,
                                                data={"error": error[:500]}), now)
