"""Cases over HTTP: create, read, list, every action, the event list."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError

from closeloop.cases import actions
from closeloop.cases.access import can, visible_cases
from closeloop.cases.documents import DocumentRejected, store_document
from closeloop.cases.models import (
    AuditEntry,
    Case,
    Document,
    Message,
    Organisation,
    Party,
    RequestType,
    Staff,
    Team,
    parse_reference,
)
from closeloop.cases.stages import OPEN_STAGES, Stage, TransitionError, WaitingOn
from closeloop.understanding.pipeline import enqueue_case
from closeloop.web.replies import may_approve, second_person

from . import schemas as s
from .ratelimit import PerToken

router = Router(tags=["cases"], throttle=PerToken("cases", "CLOSELOOP_API_CASES_RATE_LIMIT"))


def _staff(request: HttpRequest) -> Staff:
    return request.staff  # type: ignore[attr-defined, no-any-return]


def _actor(request: HttpRequest) -> actions.Actor:
    return actions.Actor.of(_staff(request))


def _base(request: HttpRequest) -> QuerySet[Case]:
    return visible_cases(_staff(request)).select_related(
        "request_type", "team", "owner__user", "specialist__user", "requester"
    )


def _get(request: HttpRequest, ref: str) -> Case:
    # isascii: "²" and other scripts' digits pass isdigit() but not int()
    pk = int(ref) if ref.isascii() and ref.isdigit() else parse_reference(ref)
    if pk is None:
        raise HttpError(404, f"{ref!r} is not a case reference")
    return get_object_or_404(_base(request), pk=pk)


def _need(request: HttpRequest, permission: str) -> None:
    if not can(_staff(request), permission):
        raise HttpError(403, f"your role may not {permission} cases")


def _check_version(case: Case, version: int | None) -> None:
    if version is not None and version != case.version:
        raise actions.ConflictError(f"{case.reference} was changed by someone else; reload it and try again")


def _team(slug: str | None) -> Team | None:
    if not slug:
        return None
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise actions.ActionError(f"no team {slug!r}", field="team")
    return team


def _user(username: str | None, field: str) -> Staff | None:
    if not username:
        return None
    staff = Staff.objects.select_related("user").filter(user__username=username, is_active=True).first()
    if staff is None:
        raise actions.ActionError(f"no active staff member {username!r}", field=field)
    return staff


def _request_type(slug: str | None) -> RequestType | None:
    if not slug:
        return None
    rt = RequestType.objects.filter(slug=slug, is_active=True).select_related("routing_team").first()
    if rt is None:
        raise actions.ActionError(f"no request type {slug!r}", field="request_type")
    return rt


def _out(case: Case) -> s.CaseOut:
    return s.CaseOut.from_case(case, timezone.now())


def _audit(request: HttpRequest, action: str, case: Case | None, detail: str = "") -> None:
    AuditEntry.objects.create(user=request.user if request.user.is_authenticated else _staff(request).user,
                              action=action, case=case, detail=detail[:300],
                              ip=request.META.get("REMOTE_ADDR"))


@router.post("/", response={201: s.CaseDetailOut}, summary="Open a case")
def create_case(request: HttpRequest, payload: s.CaseIn) -> Status:
    _need(request, "work")
    decoded: list[tuple[s.DocumentIn, bytes]] = []
    for i, doc in enumerate(payload.documents):
        try:
            decoded.append((doc, base64.b64decode(doc.content_base64, validate=True)))
        except (binascii.Error, ValueError):
            raise actions.ActionError("not valid base64", field=f"documents.{i}.content_base64") from None
    with transaction.atomic():
        requester = _party(payload.requester) if payload.requester else None
        case = actions.open_case(
            actor=_actor(request), subject=payload.subject, body=payload.body,
            request_type=_request_type(payload.request_type), requester=requester, channel=payload.channel,
            fields={k: v.dict() for k, v in payload.fields.items()}, priority=payload.priority,
            team=_team(payload.team), owner=_user(payload.owner, "owner"),
        )
        for i, (doc, content) in enumerate(decoded):
            try:
                store_document(content, doc.filename, doc.content_type, source="api", case=case)
            except DocumentRejected as exc:
                raise actions.ActionError(str(exc), field=f"documents.{i}") from None
        enqueue_case(case, opened=True)  # read it like any other intake: fields, urgency, type if none given
    # The creator sees what they created even when it is routed to a team outside their own.
    return Status(201, _detail(Case.objects.get(pk=case.pk)))


def _party(p: s.PartyIn) -> Party:
    org = Organisation.objects.get_or_create(name=p.organisation)[0] if p.organisation else None
    if p.email:
        existing = Party.objects.filter(email__iexact=p.email).first()
        if existing is not None:
            return existing
    return Party.objects.create(name=p.name, email=p.email or "", phone=p.phone, organisation=org)


def _detail(case: Case) -> s.CaseDetailOut:
    docs = [s.DocumentOut(id=d.pk, filename=d.filename, content_type=d.content_type, size=d.size,
                          sha256=d.sha256, page_count=d.page_count) for d in case.documents.all()]
    return s.CaseDetailOut(**_out(case).dict(), documents=docs)


MAX_OFFSET = 1_000_000_000  # beyond a 64-bit LIMIT/OFFSET it was a database error (500)


class CaseFilters(Schema):
    stage: str | None = None
    team: str | None = None
    owner: str | None = None
    waiting_on: str | None = None
    request_type: str | None = None
    overdue: bool | None = None
    open: bool | None = None
    q: str | None = None
    limit: int = Field(50, description="1–200; larger asks get 200")
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class CasePage(Schema):
    count: int
    items: list[s.CaseOut]


@router.get("/", response=CasePage, summary="List cases")
def list_cases(request: HttpRequest, filters: Query[CaseFilters]) -> CasePage:
    qs = _base(request)
    now = timezone.now()
    if filters.stage:
        qs = qs.filter(stage__in=_known(filters.stage.split(","), Stage.values, "stage"))
    if filters.open is not None:
        qs = qs.filter(stage__in=OPEN_STAGES) if filters.open else qs.exclude(stage__in=OPEN_STAGES)
    if filters.team:
        qs = qs.filter(team=_team(filters.team))
    if filters.owner:
        qs = qs.filter(owner__user__username=filters.owner)
    if filters.waiting_on:
        qs = qs.filter(waiting_on=_known([filters.waiting_on], WaitingOn.values, "waiting_on")[0])
    if filters.request_type:
        if not RequestType.objects.filter(slug=filters.request_type).exists():
            raise actions.ActionError(f"no request type {filters.request_type!r}", field="request_type")
        qs = qs.filter(request_type__slug=filters.request_type)
    if filters.overdue is not None:
        late = Q(next_due_at__lt=now, stage__in=OPEN_STAGES)
        qs = qs.filter(late) if filters.overdue else qs.exclude(late)
    if filters.q:
        qs = qs.filter(_text_query(filters.q))
    limit = max(1, min(filters.limit, 200))
    page = list(qs.order_by("next_due_at", "id")[filters.offset:filters.offset + limit])
    return CasePage(count=qs.count(), items=[s.CaseOut.from_case(c, now) for c in page])


def _known(values: list[str], known: list[str], field: str) -> list[str]:
    """A filter's values, or a 400 naming the ones that match nothing (a typo is not an empty queue)."""
    unknown = [v for v in values if v not in known]
    if unknown:
        raise actions.ActionError(f"unknown {field} {', '.join(map(repr, unknown))}; one of {', '.join(known)}",
                                  field=field)
    return values


def _text_query(q: str) -> Q:
    pk = parse_reference(q)
    if pk is not None:
        return Q(pk=pk)
    return (Q(subject__icontains=q) | Q(summary__icontains=q) | Q(requester__name__icontains=q)
            | Q(requester__email__icontains=q) | Q(requester__phone__icontains=q))


@router.get("/{ref}", response=s.CaseDetailOut, summary="Get a case")
def get_case(request: HttpRequest, ref: str) -> s.CaseDetailOut:
    case = _get(request, ref)
    _audit(request, "api_view", case)
    return _detail(case)


@router.get("/{ref}/events", response=list[s.EventOut], summary="The case's events, oldest first")
def list_events(request: HttpRequest, ref: str) -> list[s.EventOut]:
    case = _get(request, ref)
    _audit(request, "api_view", case, "events")
    return [s.EventOut.from_event(e) for e in case.events.all()]


@router.get("/{ref}/messages", response=list[s.MessageOut], summary="The case's messages, oldest first")
def list_messages(request: HttpRequest, ref: str) -> list[Message]:
    case = _get(request, ref)
    _audit(request, "api_view", case, "messages")
    return list(case.messages.all())


class CaseConflict(Exception):
    """A 409 that carries the case as it is now (api.py answers it with `schemas.ConflictOut`)."""

    def __init__(self, message: str, case: s.CaseDetailOut) -> None:
        super().__init__(message)
        self.case = case


ACTION = {200: s.CaseDetailOut, 409: s.ConflictOut}  # every action's answers (400/403/404/422 as everywhere)


def _act(request: HttpRequest, ref: str, payload: s.Versioned, permission: str,
         run: Callable[[Case, actions.Actor], Any]) -> s.CaseDetailOut:
    _need(request, permission)
    case = _get(request, ref)
    try:
        _check_version(case, payload.version)
        run(case, _actor(request))
    except (actions.ConflictError, TransitionError) as exc:
        # the client's picture is out of date: give it the case as it is, so it recovers without a second GET
        current = _get(request, ref)
        _audit(request, "api_view", current, "conflict")
        raise CaseConflict(str(exc), _detail(current)) from exc
    return _detail(_get(request, ref))


@router.post("/{ref}/assign", response=ACTION, summary="Assign to a team and/or person")
def assign(request: HttpRequest, ref: str, payload: s.AssignIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.assign(
        c, a, team=_team(payload.team), owner=_user(payload.owner, "owner"), reason=payload.reason))


@router.post("/{ref}/classify", response=ACTION, summary="Set or correct the request type")
def classify(request: HttpRequest, ref: str, payload: s.ClassifyIn) -> s.CaseDetailOut:
    def run(c: Case, a: actions.Actor) -> Any:
        rt = _request_type(payload.request_type)
        assert rt is not None
        return actions.set_request_type(c, a, rt, confidence=payload.confidence)

    return _act(request, ref, payload, "work", run)


@router.post("/{ref}/triage", response=ACTION, summary="Send to the human triage queue")
def triage(request: HttpRequest, ref: str, payload: s.TriageIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.send_to_triage(c, a, reason=payload.reason))


@router.post("/{ref}/messages", response=ACTION, summary="Record an inbound message")
def record_message(request: HttpRequest, ref: str, payload: s.InboundMessageIn) -> s.CaseDetailOut:
    def run(c: Case, a: actions.Actor) -> Any:
        actor = actions.Actor.requester(payload.sender) if payload.from_requester else a
        with transaction.atomic():
            event = actions.record_inbound_message(c, actor, sender=payload.sender, subject=payload.subject,
                                                   body=payload.body, channel=payload.channel)
            enqueue_case(c)  # what it supplies fills the checklist, as a reply by mail does
        return event

    return _act(request, ref, payload, "work", run)


@router.post("/{ref}/fields", response=ACTION, summary="Record fields")
def record_fields(request: HttpRequest, ref: str, payload: s.FieldsIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.record_fields(
        c, a, {k: v.dict() for k, v in payload.fields.items()}))


@router.post("/{ref}/request-info", response=ACTION, summary="Ask the requester for what is missing")
def request_info(request: HttpRequest, ref: str, payload: s.RequestInfoIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.request_missing_info(
        c, a, fields=payload.fields, message=payload.message))


@router.post("/{ref}/wait", response=ACTION, summary="Wait on a party until a time")
def wait(request: HttpRequest, ref: str, payload: s.WaitIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.wait_on(
        c, a, party=payload.party, until=payload.until, reason=payload.reason))


@router.post("/{ref}/hand-to-specialist", response=ACTION, summary="Brief a specialist")
def hand(request: HttpRequest, ref: str, payload: s.HandIn) -> s.CaseDetailOut:
    def run(c: Case, a: actions.Actor) -> Any:
        specialist = _user(payload.specialist, "specialist")
        assert specialist is not None
        return actions.hand_to_specialist(c, a, specialist=specialist, question=payload.question)

    return _act(request, ref, payload, "work", run)


@router.post("/{ref}/specialist-answer", response=ACTION, summary="Record the specialist's answer")
def answer(request: HttpRequest, ref: str, payload: s.AnswerIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "answer", lambda c, a: actions.record_specialist_answer(
        c, a, answer=payload.answer))


@router.post("/{ref}/drafts", response=ACTION, summary="Draft a reply for approval")
def draft(request: HttpRequest, ref: str, payload: s.DraftIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.draft_reply(
        c, a, subject=payload.subject or f"Re: {c.subject}", body=payload.body))


@router.post("/{ref}/send", response=ACTION, summary="Approve a draft, or send a reply")
def send(request: HttpRequest, ref: str, payload: s.SendIn) -> s.CaseDetailOut:
    def run(c: Case, a: actions.Actor) -> Any:
        message = None
        if payload.draft_id is not None:
            message = Message.objects.filter(pk=payload.draft_id, case=c).first()
            if message is None:
                raise actions.ActionError("no such draft on this case", field="draft_id")
            # The request type's approval policy binds the API as it binds the web app (four eyes).
            if message.status == Message.Status.DRAFT and not may_approve(c, _staff(request), message):
                raise HttpError(403, "someone other than its author approves this draft")
        elif second_person(c):
            raise HttpError(403, "replies of this request type need a second person's approval: post a draft")
        return actions.approve_and_send(c, a, message=message, subject=payload.subject, body=payload.body)

    return _act(request, ref, payload, "approve", run)


@router.post("/{ref}/snooze", response=ACTION, summary="Snooze until a time, with a reason")
def snooze(request: HttpRequest, ref: str, payload: s.SnoozeIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.snooze(
        c, a, until=payload.until, reason=payload.reason))


@router.post("/{ref}/wake", response=ACTION, summary="End a snooze")
def wake(request: HttpRequest, ref: str, payload: s.Versioned) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.wake(c, a))


@router.post("/{ref}/escalate", response=ACTION, summary="Escalate")
def escalate(request: HttpRequest, ref: str, payload: s.EscalateIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "escalate", lambda c, a: actions.escalate(
        c, a, reason=payload.reason, to=_user(payload.to, "to")))


@router.post("/{ref}/close", response=ACTION, summary="Close with an outcome")
def close(request: HttpRequest, ref: str, payload: s.CloseIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.close(
        c, a, outcome=payload.outcome, note=payload.note, notify=payload.notify))


@router.post("/{ref}/reopen", response=ACTION, summary="Reopen a closed case")
def reopen(request: HttpRequest, ref: str, payload: s.ReopenIn) -> s.CaseDetailOut:
    return _act(request, ref, payload, "work", lambda c, a: actions.reopen(c, a, reason=payload.reason))


@router.post("/{ref}/merge", response=ACTION, summary="Merge this duplicate into a primary case")
def merge(request: HttpRequest, ref: str, payload: s.MergeIn) -> s.CaseDetailOut:
    def run(c: Case, a: actions.Actor) -> Any:
        return actions.merge(c, _get(request, payload.into), a)

    return _act(request, ref, payload, "merge", run)


__all__ = ["router", "Document", "datetime"]
