"""The noise budget: how often one person may hear from us.

Three rules, each configurable per request type (policy keys) with settings as defaults:
- at most `daily_cap` follow-up messages per recipient in 24 hours;
- never two about the same case within `min_gap_hours`;
- nothing during the recipient's quiet hours (`quiet_hours: ["20:00", "08:00"]` in the team's zone).

`next_allowed` answers "when may we write to this person about this case?"; the worker
defers the follow-up to that instant instead of sending. `record` writes the ledger row in
the caller's transaction, so a rolled-back follow-up leaves no trace in the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q

from closeloop.cases.models import Case

from .calendar import _minutes, calendar_for_team
from .models import Sent


@dataclass(frozen=True)
class Budget:
    daily_cap: int
    min_gap: timedelta
    quiet: tuple[int, int] | None  # minutes of day [start, end), may wrap midnight

    @classmethod
    def for_case(cls, case: Case) -> Budget:
        policy = (case.request_type.policy if case.request_type else None) or {}
        quiet = policy.get("quiet_hours", getattr(settings, "CLOSELOOP_QUIET_HOURS", ""))
        if isinstance(quiet, str):
            quiet = [p.strip() for p in quiet.split("-")] if quiet else None
        return cls(
            daily_cap=int(policy.get("daily_cap", settings.CLOSELOOP_NOISE_DAILY_CAP)),
            min_gap=timedelta(hours=float(policy.get("min_gap_hours", settings.CLOSELOOP_NOISE_MIN_GAP_HOURS))),
            quiet=(_minutes(quiet[0]), _minutes(quiet[1])) if quiet else None,
        )


def _in_quiet(budget: Budget, case: Case, at: datetime) -> datetime | None:
    """The end of the quiet period `at` falls in, or None when it is not quiet."""
    if budget.quiet is None:
        return None
    start, end = budget.quiet
    local = at.astimezone(calendar_for_team(case.team_id).tz)
    minute = local.hour * 60 + local.minute
    quiet = start <= minute < end if start < end else (minute >= start or minute < end)
    if not quiet:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    # An end of 24:00 is the next midnight; wall-clock arithmetic (aware + timedelta) keeps the local time.
    return datetime.combine(day, time(0), tzinfo=local.tzinfo) + timedelta(minutes=end)


def next_allowed(case: Case, recipient: str, now: datetime, budget: Budget | None = None) -> datetime:
    """`now` when a message may go to `recipient` about `case`, else the earliest instant it may."""
    budget = budget or Budget.for_case(case)
    quiet_end = _in_quiet(budget, case, now)
    if quiet_end is not None:
        return quiet_end
    window = now - timedelta(hours=24)
    stats = Sent.objects.filter(recipient=recipient, at__gt=min(window, now - budget.min_gap)).aggregate(
        today=Count("id", filter=Q(at__gt=window)),
        last_here=Max("at", filter=Q(case=case)),
    )
    candidates = [now]
    if stats["last_here"] is not None and stats["last_here"] + budget.min_gap > now:
        candidates.append(stats["last_here"] + budget.min_gap)
    if stats["today"] >= budget.daily_cap:
        times = list(Sent.objects.filter(recipient=recipient, at__gt=window).order_by("-at")
                     .values_list("at", flat=True)[: budget.daily_cap])
        candidates.append(times[-1] + timedelta(hours=24))
    return max(candidates)


def record(case: Case, recipient: str, purpose: str, now: datetime) -> None:
    Sent.objects.create(recipient=recipient, case=case, purpose=purpose, at=now)


def next_allowed_many(pairs: Sequence[tuple[Case, str]], now: datetime) -> dict[int, datetime]:
    """`next_allowed` for many (case, recipient) pairs in one query: {case id: instant}.

    Each recipient should appear once (the counts do not include messages of this batch).
    A recipient at their daily cap is worked out by `next_allowed` itself (one more query).
    """
    budgets = {case.pk: Budget.for_case(case) for case, _ in pairs}
    out: dict[int, datetime] = {}
    open_pairs = []
    for case, recipient in pairs:
        quiet_end = _in_quiet(budgets[case.pk], case, now)
        if quiet_end is not None:
            out[case.pk] = quiet_end
        else:
            open_pairs.append((case, recipient))
    if not open_pairs:
        return out
    window = now - timedelta(hours=24)
    since = min(window, now - max(budgets[c.pk].min_gap for c, _ in open_pairs))
    today: dict[str, int] = {}
    last: dict[tuple[str, int | None], datetime] = {}
    rows = (Sent.objects.filter(recipient__in={r for _, r in open_pairs}, at__gt=since)
            .values_list("recipient", "case_id").annotate(n=Count("id", filter=Q(at__gt=window)), at=Max("at")))
    for recipient, case_id, n, at in rows:
        today[recipient] = today.get(recipient, 0) + n
        last[(recipient, case_id)] = at
    for case, recipient in open_pairs:
        budget = budgets[case.pk]
        if today.get(recipient, 0) >= budget.daily_cap:
            out[case.pk] = next_allowed(case, recipient, now, budget)
            continue
        at = last.get((recipient, case.pk))
        out[case.pk] = max(now, at + budget.min_gap) if at is not None else now
    return out


def record_many(sent: Sequence[tuple[Case, str, str]], now: datetime) -> None:
    """`record` for many (case, recipient, purpose) in one query, in the caller's transaction."""
    Sent.objects.bulk_create([Sent(recipient=recipient, case=case, purpose=purpose, at=now)
                              for case, recipient, purpose in sent])
