"""Intake over HTTP: submissions from other systems, and the staff quarantine (list, detail, retry, dismiss)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import field_validator

from closeloop.cases.access import can, visible_cases
from closeloop.cases.links import status_url
from closeloop.cases.models import Role, Staff

from .channels.api.adapter import KeyReused, submit
from .inbound import read_raw
from .models import InboundMessage
from .pipeline import answerable, retry
from .quarantine import REASON_MAX, CannotDismiss, dismiss
from .ratelimit import refusal

router = Router(tags=["intake"])


class AttachmentIn(Schema):
    filename: str = Field(..., min_length=1, max_length=255)
    content_type: str = Field("", max_length=100)
    content_base64: str


class SubmissionIn(Schema):
    subject: str = Field("", max_length=300)
    body: str = Field("", max_length=200_000)
    email: str = Field("", max_length=254)
    name: str = Field("", max_length=200)
    request_type: str = Field("", max_length=50)
    fields: dict[str, Any] = Field(default_factory=dict)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)

    @field_validator("email")
    @classmethod
    def one_address(cls, value: str) -> str:
        """Empty, or one mail address: the acknowledgement goes there."""
        value = value.strip()
        if value and not answerable(value):
            raise ValueError("email must be one mail address, like name@example.com")
        return value


class InboundOut(Schema):
    id: int
    channel: str
    status: str
    result: str
    error: str
    sender: str
    subject: str
    received_at: datetime
    processed_at: datetime | None
    attempts: int
    size: int
    sha256: str
    case: str | None = None
    status_url: str | None = None

    @staticmethod
    def of(row: InboundMessage) -> InboundOut:
        return InboundOut(
            id=row.pk, channel=row.channel, status=row.status, result=row.result, error=row.error,
            sender=row.sender, subject=row.subject, received_at=row.received_at, processed_at=row.processed_at,
            attempts=row.attempts, size=row.size, sha256=row.sha256,
            case=row.case.reference if row.case else None, status_url=status_url(row.case) if row.case else None,
        )


class InboundFilters(Schema):
    status: str | None = None
    channel: str | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)


class InboundPage(Schema):
    count: int
    items: list[InboundOut]


def _staff(request: HttpRequest) -> Staff:
    return request.staff  # type: ignore[attr-defined, no-any-return]


def _visible(staff: Staff) -> QuerySet[InboundMessage]:
    """Quarantined rows (no case yet) go to those who may work cases; the rest follow the case's visibility."""
    if not can(staff, "work"):
        raise HttpError(403, "your role may not see the intake queue")
    rows = InboundMessage.objects.select_related("case")
    if staff.role in (Role.SUPERVISOR, Role.ADMIN):
        return rows
    return rows.filter(Q(case__isnull=True) | Q(case__in=visible_cases(staff)))


@router.post("/submissions", response={200: InboundOut, 201: InboundOut}, summary="Submit a request")
def create_submission(request: HttpRequest, payload: SubmissionIn) -> Status | HttpResponse:
    """Open (or join) a case from another system. Send `Idempotency-Key` to make retries safe."""
    if (refused := refusal(request)) is not None:
        return refused
    staff = _staff(request)
    if not can(staff, "work"):
        raise HttpError(403, "your role may not submit requests")
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 200:
        raise HttpError(400, "Idempotency-Key is longer than 200 characters")
    try:
        row, created = submit(request.body, staff, key)
    except KeyReused as exc:
        raise HttpError(409, str(exc)) from None
    row.refresh_from_db()
    return Status(201 if created else 200, InboundOut.of(row))


@router.get("/inbound", response=InboundPage, summary="List inbound messages; status=quarantined is the quarantine")
def list_inbound(request: HttpRequest, filters: Query[InboundFilters]) -> InboundPage | HttpResponse:
    if (refused := refusal(request)) is not None:
        return refused
    rows = _visible(_staff(request))
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.channel:
        rows = rows.filter(channel=filters.channel)
    page = rows.order_by("-received_at", "-id")[filters.offset:filters.offset + filters.limit]
    return InboundPage(count=rows.count(), items=[InboundOut.of(r) for r in page])


@router.get("/inbound/{inbound_id}", response=InboundOut, summary="One inbound message")
def get_inbound(request: HttpRequest, inbound_id: int) -> InboundOut | HttpResponse:
    if (refused := refusal(request)) is not None:
        return refused
    return InboundOut.of(get_object_or_404(_visible(_staff(request)), pk=inbound_id))


@router.get("/inbound/{inbound_id}/raw", summary="The raw bytes as received (supervisors and admins)")
def get_raw(request: HttpRequest, inbound_id: int) -> HttpResponse:
    if (refused := refusal(request)) is not None:
        return refused
    staff = _staff(request)
    if staff.role not in (Role.SUPERVISOR, Role.ADMIN):
        raise HttpError(403, "only supervisors and admins may download raw messages")
    row = get_object_or_404(InboundMessage, pk=inbound_id)
    kind = {"mime": "message/rfc822", "json": "application/json"}.get(row.format, "application/octet-stream")
    raw = HttpResponse(read_raw(row.raw_path), content_type=kind)
    raw["Content-Disposition"] = f'attachment; filename="inbound-{row.pk}"'
    return raw


@router.post("/inbound/{inbound_id}/retry", response=InboundOut, summary="Retry a quarantined message")
def retry_inbound(request: HttpRequest, inbound_id: int) -> InboundOut | HttpResponse:
    if (refused := refusal(request)) is not None:
        return refused
    row = get_object_or_404(_visible(_staff(request)), pk=inbound_id)
    if row.status != InboundMessage.Status.QUARANTINED:
        raise HttpError(409, f"inbound {row.pk} is {row.status}, not quarantined")
    row = retry(row)
    row.refresh_from_db()
    return InboundOut.of(row)


class DismissIn(Schema):
    reason: str = Field(..., min_length=1, max_length=REASON_MAX,
                        description="Why it needs nothing (spam, a test, handled by phone); kept and audited.")


@router.post("/inbound/{inbound_id}/dismiss", response=InboundOut, summary="Dismiss a quarantined message")
def dismiss_inbound(request: HttpRequest, inbound_id: int, body: DismissIn) -> InboundOut | HttpResponse:
    """Seen, nothing to do (the Quarantine page's Dismiss): the message leaves the open quarantine, kept with
    its raw bytes, who, when and why; an audit entry `quarantine_dismiss`. 409 when it is not quarantined."""
    if (refused := refusal(request)) is not None:
        return refused
    staff = _staff(request)
    row = get_object_or_404(_visible(staff), pk=inbound_id)
    if row.status != InboundMessage.Status.QUARANTINED:
        raise HttpError(409, f"inbound {row.pk} is not in quarantine (it is {row.status})")
    try:
        row = dismiss(row.pk, staff, body.reason, ip=request.META.get("REMOTE_ADDR"))
    except CannotDismiss as refused_:
        changed = InboundMessage.objects.filter(pk=row.pk).exclude(status=InboundMessage.Status.QUARANTINED)
        raise HttpError(409 if changed.exists() else 400, str(refused_)) from refused_
    return InboundOut.of(row)
