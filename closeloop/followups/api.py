"""Follow-ups over HTTP (/api/followups/): what is due, snooze and wake, policies, calendars,
the noise budget, mail that failed and its retry. Every read is scoped to the cases the caller
may see (cases/access.py); changing a policy needs the `configure` permission (admins)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from pydantic import field_validator

from closeloop.cases import actions
from closeloop.cases.access import can, visible_cases
from closeloop.cases.deadlines import DEFAULT_CADENCE_DAYS
from closeloop.cases.models import AuditEntry, Case, RequestType, Role, Staff, Team, parse_reference
from closeloop.cases.stages import Stage
from closeloop.outbound import retries
from closeloop.outbound.models import OutboxMessage

from . import noise
from .calendar import DAY_NAMES, CalendarError, _minutes, calendar_for_team
from .models import Sent, TeamCalendar

router = Router(tags=["followups"])

# Policy keys the follow-up engine reads from RequestType.policy, with their defaults (docs/followups.md).
POLICY_DEFAULTS: dict[str, Any] = {
    "autoclose_days": 5, "triage_hours": 4, "reply_hours": 4, "specialist_reminder_hours": 16,
    "external_check_days": 3, "reminder_fractions": [0.5, 0.9], "escalation_chain": ["team_lead", "supervisor"],
    "breach_repeat_hours": 8, "reassign_after_hours": None, "priority_targets": {},
}
CHAIN_STEPS = {"team_lead", "supervisor"}


def _staff(request: HttpRequest) -> Staff:
    return request.staff  # type: ignore[attr-defined, no-any-return]


def _need(request: HttpRequest, permission: str) -> None:
    if not can(_staff(request), permission):
        raise HttpError(403, f"your role may not {permission} here")


# ---------------------------------------------------------------- due and upcoming


class FollowupOut(Schema):
    reference: str
    subject: str
    stage: str
    waiting_on: str
    next_action: str
    next_due_at: datetime | None
    overdue: bool
    team: str | None
    owner: str | None
    followup_step: int
    escalation_level: int
    snoozed_until: datetime | None
    snooze_reason: str


def _out(case: Case, now: datetime) -> FollowupOut:
    return FollowupOut(
        reference=case.reference, subject=case.subject, stage=case.stage, waiting_on=case.waiting_on,
        next_action=case.next_action, next_due_at=case.next_due_at,
        overdue=case.next_due_at is not None and case.next_due_at <= now,
        team=case.team.slug if case.team else None, owner=case.owner.user.username if case.owner else None,
        followup_step=case.followup_step, escalation_level=case.escalation_level,
        snoozed_until=case.snoozed_until, snooze_reason=case.snooze_reason)


class DueFilter(Schema):
    within_hours: float = Field(24.0, ge=0, le=24 * 90, description="Also list what falls due this soon.")
    team: str | None = None
    mine: bool = Field(False, description="Only cases I own or am briefed on.")
    limit: int = Field(100, ge=1, le=500)


@router.get("/due", response=list[FollowupOut], summary="Due and upcoming follow-ups, earliest first")
def due(request: HttpRequest, filters: Query[DueFilter]) -> list[FollowupOut]:
    now = timezone.now()
    staff = _staff(request)
    cases = (visible_cases(staff).exclude(stage=Stage.CLOSED)
             .filter(next_due_at__lte=now + timedelta(hours=filters.within_hours))
             .select_related("team", "owner__user").order_by("next_due_at", "id"))
    if filters.team:
        cases = cases.filter(team__slug=filters.team)
    if filters.mine:
        cases = cases.filter(Q(owner=staff) | Q(specialist=staff))
    return [_out(case, now) for case in cases[: filters.limit]]


def _case(request: HttpRequest, ref: str) -> Case:
    pk = int(ref) if ref.isdigit() else parse_reference(ref)
    if pk is None:
        raise HttpError(404, f"{ref!r} is not a case reference")
    return get_object_or_404(visible_cases(_staff(request)).select_related("team", "owner__user", "request_type",
                                                                           "requester"), pk=pk)


class SnoozeIn(Schema):
    until: datetime
    reason: str = Field(..., min_length=1, max_length=200)
    version: int | None = Field(None, description="The version you loaded; a newer one answers 409.")


class WakeIn(Schema):
    version: int | None = None


def _check_version(case: Case, version: int | None) -> None:
    if version is not None and version != case.version:
        raise actions.ConflictError(f"{case.reference} was changed by someone else; reload it and try again")


@router.post("/cases/{ref}/snooze", response=FollowupOut, summary="Snooze a case until a time, with a reason")
def snooze(request: HttpRequest, ref: str, payload: SnoozeIn) -> FollowupOut:
    _need(request, "work")
    case = _case(request, ref)
    _check_version(case, payload.version)
    actions.snooze(case, actions.Actor.of(_staff(request)), until=payload.until, reason=payload.reason)
    return _out(case, timezone.now())


@router.post("/cases/{ref}/wake", response=FollowupOut, summary="Wake a snoozed case now")
def wake(request: HttpRequest, ref: str, payload: WakeIn) -> FollowupOut:
    _need(request, "work")
    case = _case(request, ref)
    _check_version(case, payload.version)
    if case.snoozed_until is None:
        raise actions.ActionError(f"{case.reference} is not snoozed", field="ref")
    actions.wake(case, actions.Actor.of(_staff(request)))
    return _out(case, timezone.now())


# ---------------------------------------------------------------- policies


class PolicyOut(Schema):
    request_type: str
    first_response_hours: float
    resolution_hours: float
    followup_cadence_days: list[float]
    policy: dict[str, Any] = Field(description="Every follow-up policy key, with the defaults filled in.")


def _policy_out(rt: RequestType) -> PolicyOut:
    return PolicyOut(
        request_type=rt.slug, first_response_hours=rt.first_response_hours, resolution_hours=rt.resolution_hours,
        followup_cadence_days=[float(d) for d in rt.followup_cadence_days or DEFAULT_CADENCE_DAYS],
        policy={**POLICY_DEFAULTS, "daily_cap": settings.CLOSELOOP_NOISE_DAILY_CAP,
                "min_gap_hours": settings.CLOSELOOP_NOISE_MIN_GAP_HOURS,
                "quiet_hours": settings.CLOSELOOP_QUIET_HOURS or None, **(rt.policy or {})})


@router.get("/policies/{slug}", response=PolicyOut, summary="A request type's follow-up policy")
def read_policy(request: HttpRequest, slug: str) -> PolicyOut:
    return _policy_out(get_object_or_404(RequestType, slug=slug))


class PolicyIn(Schema):
    """Only the keys given change; `null` removes a policy key (its default applies again)."""

    first_response_hours: float | None = Field(None, gt=0, le=24 * 365)
    resolution_hours: float | None = Field(None, gt=0, le=24 * 365)
    followup_cadence_days: list[float] | None = Field(None, min_length=1, max_length=20)
    autoclose_days: float | None = Field(None, gt=0, le=365)
    specialist_reminder_hours: float | None = Field(None, gt=0, le=24 * 90)
    external_check_days: float | None = Field(None, gt=0, le=365)
    reminder_fractions: list[float] | None = Field(None, max_length=10)
    escalation_chain: list[str] | None = Field(None, max_length=5)
    breach_repeat_hours: float | None = Field(None, gt=0, le=24 * 90)
    reassign_after_hours: float | None = Field(None, gt=0, le=24 * 90)
    daily_cap: int | None = Field(None, ge=1, le=100)
    min_gap_hours: float | None = Field(None, ge=0, le=24 * 30)
    quiet_hours: list[str] | None = Field(None, min_length=2, max_length=2)

    @field_validator("followup_cadence_days")
    @classmethod
    def _positive_days(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 < d <= 365 for d in value):
            raise ValueError("each cadence step is between 0 and 365 business days")
        return value

    @field_validator("reminder_fractions")
    @classmethod
    def _fractions(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 < f < 1 for f in value):
            raise ValueError("reminder fractions lie strictly between 0 and 1")
        return sorted(value) if value is not None else None

    @field_validator("escalation_chain")
    @classmethod
    def _chain(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and set(value) - CHAIN_STEPS:
            raise ValueError(f"escalation steps are {sorted(CHAIN_STEPS)}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            try:
                start, end = (_minutes(v) for v in value)
            except CalendarError as exc:
                raise ValueError(str(exc)) from None
            if start == end:
                raise ValueError("quiet hours start and end at different times")
        return value


FIELD_KEYS = ("first_response_hours", "resolution_hours", "followup_cadence_days")


@router.patch("/policies/{slug}", response=PolicyOut, summary="Change a request type's policy (admins)")
def change_policy(request: HttpRequest, slug: str, payload: PolicyIn) -> PolicyOut:
    _need(request, "configure")
    rt = get_object_or_404(RequestType, slug=slug)
    given = payload.model_dump(exclude_unset=True)
    policy = dict(rt.policy or {})
    for key, value in given.items():
        if key in FIELD_KEYS:
            if value is None:
                raise actions.ActionError(f"{key} cannot be removed", field=key)
            setattr(rt, key, value)
        elif value is None:
            policy.pop(key, None)
        else:
            policy[key] = value
    rt.policy = policy
    rt.save()
    return _policy_out(rt)


# ---------------------------------------------------------------- calendars


class CalendarOut(Schema):
    team: str
    calendar: str | None = Field(description="The calendar's name; null: the default, or always open.")
    time_zone: str
    hours: dict[str, list[list[str]]]
    holidays: list[str]
    country: str
    subdivision: str
    at: datetime
    is_open: bool
    next_open: datetime
    due: datetime | None = Field(description="`at` plus `hours` business hours, when `hours` is given.")


class CalendarQuery(Schema):
    at: datetime | None = Field(None, description="The instant to look at (default now); with a zone.")
    hours: float | None = Field(None, ge=0, le=24 * 365, description="Business hours to add to `at`.")


def _hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@router.get("/calendars/{team}", response=CalendarOut, summary="A team's business calendar and due-time arithmetic")
def team_calendar(request: HttpRequest, team: str, query: Query[CalendarQuery]) -> CalendarOut:
    row = get_object_or_404(Team, slug=team)
    at = query.at or timezone.now()
    if timezone.is_naive(at):
        raise actions.ActionError("give `at` with a time zone, e.g. 2026-03-02T09:00:00-05:00", field="at")
    link = TeamCalendar.objects.filter(team=row).select_related("calendar").first()
    stored = link.calendar if link else None
    cal = calendar_for_team(row.pk)
    return CalendarOut(
        team=row.slug, calendar=stored.name if stored else None, time_zone=str(cal.tz),
        hours={DAY_NAMES[i]: [[_hm(a), _hm(b)] for a, b in spans] for i, spans in enumerate(cal.week) if spans},
        holidays=sorted(d.isoformat() for d in cal.holidays), country=cal.country, subdivision=cal.subdivision,
        at=at, is_open=cal.is_open_at(at), next_open=cal.next_open(at),
        due=cal.add_hours(at, query.hours) if query.hours is not None else None)


# ---------------------------------------------------------------- noise budget


class SentOut(Schema):
    case: str | None
    purpose: str
    at: datetime


class NoiseOut(Schema):
    recipient: str
    daily_cap: int
    sent_last_24h: int
    last_sent_at: datetime | None
    next_allowed_at: datetime = Field(description="When the daily cap and quiet hours next allow a message.")
    recent: list[SentOut] = Field(description="The last 24 hours' follow-ups about cases you may see.")


@router.get("/noise", response=NoiseOut, summary="A recipient's noise budget")
def noise_budget(request: HttpRequest, recipient: str, case: str | None = None) -> NoiseOut:
    """With `case`, the budget is that case's (its request type's cap, gap and quiet hours)."""
    _need(request, "work")
    recipient = recipient.strip()
    now = timezone.now()
    window = now - timedelta(hours=24)
    subject = _case(request, case) if case else None
    stats = Sent.objects.filter(recipient=recipient, at__gt=window).aggregate(n=Count("id"), last=Max("at"))
    visible = visible_cases(_staff(request)).values("pk")
    recent = (Sent.objects.filter(recipient=recipient, at__gt=window, case__in=visible)
              .select_related("case").order_by("-at")[:50])
    budget = noise.Budget.for_case(subject) if subject else noise.Budget(
        daily_cap=settings.CLOSELOOP_NOISE_DAILY_CAP, min_gap=timedelta(0), quiet=None)
    allowed = noise.next_allowed(subject, recipient, now, budget) if subject else _cap_free(recipient, now, budget)
    return NoiseOut(recipient=recipient, daily_cap=budget.daily_cap, sent_last_24h=stats["n"],
                    last_sent_at=stats["last"], next_allowed_at=allowed,
                    recent=[SentOut(case=s.case.reference if s.case else None, purpose=s.purpose, at=s.at)
                            for s in recent])


def _cap_free(recipient: str, now: datetime, budget: noise.Budget) -> datetime:
    times = list(Sent.objects.filter(recipient=recipient, at__gt=now - timedelta(hours=24))
                 .order_by("-at").values_list("at", flat=True)[: budget.daily_cap])
    return times[-1] + timedelta(hours=24) if len(times) >= budget.daily_cap else now


# ---------------------------------------------------------------- mail that did not go


class FailedMailOut(Schema):
    id: int
    case: str | None
    purpose: str
    to: list[str]
    subject: str
    status: str
    failure: str = Field(description="refused (5xx), deferred (4xx until the retry time ran out) or unreachable "
                                     "(our SMTP server was down; sent again by itself when it answers).")
    last_error: str
    created_at: datetime
    message_id: str


def _mail_out(row: OutboxMessage) -> FailedMailOut:
    return FailedMailOut(id=row.pk, case=row.case.reference if row.case else None, purpose=row.purpose, to=row.to,
                         subject=row.subject, status=row.status, failure=row.failure, last_error=row.last_error,
                         created_at=row.created_at, message_id=row.message_id)


def _mail_rows(request: HttpRequest) -> Any:
    """Outbox rows of cases the caller may see; rows with no case (staff digests) for supervisors and admins."""
    staff = _staff(request)
    rows = OutboxMessage.objects.select_related("case")
    if staff.role in (Role.SUPERVISOR, Role.ADMIN):
        return rows
    return rows.filter(case__in=visible_cases(staff))


@router.get("/mail/failed", response=list[FailedMailOut], summary="Mail that failed, newest first")
def failed_mail(request: HttpRequest, case: str | None = None, limit: int = Query(100, ge=1, le=500)) -> Any:
    _need(request, "work")
    rows = _mail_rows(request).filter(status=OutboxMessage.Status.FAILED)
    if case:
        rows = rows.filter(case=_case(request, case))
    return [_mail_out(row) for row in rows.order_by("-due_at", "-id")[:limit]]


@router.post("/mail/{mail_id}/retry", response=FailedMailOut, summary="Send a failed message again")
def retry_mail(request: HttpRequest, mail_id: int) -> FailedMailOut:
    """The same message (Message-ID, idempotency key) goes back to the outbox, due now, with a fresh retry
    time; the case records `mail_retried` with who asked."""
    _need(request, "work")
    row = get_object_or_404(_mail_rows(request), pk=mail_id)
    try:
        row = retries.retry_by_hand(row, _staff(request))
    except ValueError as exc:
        raise HttpError(409, str(exc)) from exc
    AuditEntry.objects.create(user=_staff(request).user, action="mail_retry", case=row.case,
                              detail=f"outbox {row.pk} to {', '.join(row.to)}"[:300],
                              ip=request.META.get("REMOTE_ADDR"))
    return _mail_out(row)
