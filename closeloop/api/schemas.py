from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import AwareDatetime, EmailStr, Field

from closeloop.cases.models import Case, Event


class PartyIn(Schema):
    name: str = Field("", max_length=200)
    email: EmailStr | None = None
    phone: str = Field("", max_length=40)
    organisation: str = Field("", max_length=200)


class FieldIn(Schema):
    value: Any
    confidence: float = Field(1.0, ge=0, le=1)
    source: dict[str, Any] = Field(default_factory=dict)


class DocumentIn(Schema):
    filename: str = Field(..., min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", max_length=100)
    content_base64: str


class CaseIn(Schema):
    subject: str = Field(..., min_length=1, max_length=300)
    body: str = Field("", max_length=100_000)
    request_type: str | None = Field(None, description="Request type slug; leave empty to triage.")
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    requester: PartyIn | None = None
    fields: dict[str, FieldIn] = Field(default_factory=dict)
    documents: list[DocumentIn] = Field(default_factory=list, max_length=20)
    team: str | None = Field(None, description="Team slug")
    owner: str | None = Field(None, description="Username")
    channel: str = Field("api", max_length=20)


class PartyOut(Schema):
    id: int
    name: str
    email: str
    phone: str


class DocumentOut(Schema):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    page_count: int | None


class CaseOut(Schema):
    id: int
    reference: str
    subject: str
    request_type: str | None
    priority: str
    stage: str
    team: str | None
    owner: str | None
    specialist: str | None
    waiting_on: str
    next_action: str
    next_due_at: datetime | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    requester: PartyOut | None
    fields: dict[str, Any]
    missing_fields: list[str]
    outcome: str
    escalation_level: int
    opened_at: datetime
    closed_at: datetime | None
    updated_at: datetime
    version: int
    overdue: bool

    @staticmethod
    def from_case(case: Case, now: datetime) -> CaseOut:
        return CaseOut(
            id=case.pk, reference=case.reference, subject=case.subject,
            request_type=case.request_type.slug if case.request_type else None, priority=case.priority,
            stage=case.stage, team=case.team.slug if case.team else None,
            owner=case.owner.user.username if case.owner else None,
            specialist=case.specialist.user.username if case.specialist else None,
            waiting_on=case.waiting_on, next_action=case.next_action, next_due_at=case.next_due_at,
            first_response_due_at=case.first_response_due_at, resolution_due_at=case.resolution_due_at,
            requester=PartyOut(id=case.requester.pk, name=case.requester.name, email=case.requester.email,
                               phone=case.requester.phone) if case.requester else None,
            fields=case.fields, missing_fields=case.missing_fields, outcome=case.outcome,
            escalation_level=case.escalation_level, opened_at=case.opened_at, closed_at=case.closed_at,
            updated_at=case.updated_at, version=case.version,
            overdue=bool(case.next_due_at and case.next_due_at < now and case.is_open),
        )


class CaseDetailOut(CaseOut):
    documents: list[DocumentOut] = Field(default_factory=list)


class EventOut(Schema):
    id: int
    at: datetime
    actor_kind: str
    actor: str
    kind: str
    from_stage: str
    to_stage: str
    waiting_on: str
    data: dict[str, Any]

    @staticmethod
    def from_event(e: Event) -> EventOut:
        return EventOut(id=e.pk, at=e.at, actor_kind=e.actor_kind, actor=e.actor_label, kind=e.kind,
                        from_stage=e.from_stage, to_stage=e.to_stage, waiting_on=e.waiting_on, data=e.data)


class MessageOut(Schema):
    id: int
    direction: str
    status: str
    purpose: str
    sender: str
    recipients: list[str]
    subject: str
    body: str
    created_at: datetime


class Versioned(Schema):
    version: int | None = Field(None, description="The version you loaded; a newer one answers 409.")


class AssignIn(Versioned):
    team: str | None = None
    owner: str | None = None
    reason: str = ""


class ClassifyIn(Versioned):
    request_type: str
    confidence: float | None = Field(None, ge=0, le=1)


class TriageIn(Versioned):
    reason: str = Field(..., min_length=1)


class InboundMessageIn(Versioned):
    sender: str = Field("", max_length=300)
    subject: str = Field("", max_length=300)
    body: str = Field(..., max_length=100_000)
    channel: str = Field("api", max_length=20)
    from_requester: bool = True


class FieldsIn(Versioned):
    fields: dict[str, FieldIn]


class RequestInfoIn(Versioned):
    fields: list[str] | None = None
    message: str = ""


class WaitIn(Versioned):
    party: Literal["requester", "specialist", "external"]
    until: AwareDatetime = Field(..., description="With its zone: 2026-03-02T09:00:00-05:00 or …Z")
    reason: str = ""


class HandIn(Versioned):
    specialist: str = Field(..., description="Username of the specialist")
    question: str = Field(..., min_length=1)


class AnswerIn(Versioned):
    answer: str = Field(..., min_length=1)


class DraftIn(Versioned):
    subject: str = ""
    body: str = Field(..., min_length=1)


class SendIn(Versioned):
    draft_id: int | None = None
    subject: str = ""
    body: str = ""


class SnoozeIn(Versioned):
    until: AwareDatetime = Field(..., description="With its zone: 2026-03-02T09:00:00-05:00 or …Z")
    reason: str = Field(..., min_length=1)


class EscalateIn(Versioned):
    reason: str = Field(..., min_length=1)
    to: str | None = Field(None, description="Username")


class CloseIn(Versioned):
    outcome: str = Field(..., min_length=1, max_length=40)
    note: str = ""
    notify: bool = True


class ReopenIn(Versioned):
    reason: str = Field(..., min_length=1)


class MergeIn(Versioned):
    into: str = Field(..., description="Reference or id of the primary case")


class ErrorOut(Schema):
    detail: str
    field: str | None = None


class ConflictOut(Schema):
    """A 409: the case changed since the client loaded it (stale `version`) or the move does not fit its stage."""

    detail: str
    field: str | None = None
    version: int = Field(..., description="The case's version now: send it to retry on the current state.")
    case: CaseDetailOut = Field(..., description="The case as it is now, as GET /api/cases/{ref} returns it.")

