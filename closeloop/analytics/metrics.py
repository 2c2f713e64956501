"""Prometheus text exposition of the numbers an operator alerts on.

Intake may not be installed yet: its queue depth and quarantine size read 0 until it is
(`_intake_counts` asks intake's quarantine module).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Min, Q

from closeloop.cases.models import Case
from closeloop.cases.stages import Stage
from closeloop.outbound.models import OutboxMessage


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _metric(name: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]


def _intake_counts() -> tuple[int, int, int]:
    """(queue depth, quarantine size, failing mailboxes) of intake."""
    from closeloop.intake.quarantine import failing_mailbox_count, quarantine_count, queue_depth

    return queue_depth(), quarantine_count(), failing_mailbox_count()


def exposition(now: datetime) -> str:
    open_cases = Case.objects.exclude(stage=Stage.CLOSED)
    totals = open_cases.aggregate(
        backlog=Count("id"), overdue=Count("id", filter=Q(resolution_due_at__lt=now)),
        due=Count("id", filter=Q(next_due_at__lte=now)), oldest_due=Min("next_due_at", filter=Q(next_due_at__lte=now)))
    lag = (now - totals["oldest_due"]).total_seconds() if totals["oldest_due"] else 0.0
    by_stage = dict(Case.objects.values("stage").annotate(n=Count("id")).values_list("stage", "n"))
    by_team = open_cases.values("team__slug").annotate(n=Count("id")).values_list("team__slug", "n")
    outbox = OutboxMessage.objects.filter(status__in=["pending", "sending"]).aggregate(
        n=Count("id"), oldest=Min("due_at", filter=Q(due_at__lte=now)))
    queue, quarantine, failing = _intake_counts()
    out = [
        *_metric("closeloop_backlog_cases", "Open cases.", [_line("closeloop_backlog_cases", totals["backlog"])]),
        *_metric("closeloop_team_backlog_cases", "Open cases per team.",
                 [_line("closeloop_team_backlog_cases", n, {"team": slug or "none"}) for slug, n in by_team]),
        *_metric("closeloop_overdue_cases", "Open cases past their resolution due time.",
                 [_line("closeloop_overdue_cases", totals["overdue"])]),
        *_metric("closeloop_followups_due", "Open cases whose next step is due now.",
                 [_line("closeloop_followups_due", totals["due"])]),
        *_metric("closeloop_worker_lag_seconds", "Age of the oldest due next step (0 when none is due).",
                 [_line("closeloop_worker_lag_seconds", round(lag, 1))]),
        *_metric("closeloop_outbox_queue_depth", "Outbound messages waiting to be sent.",
                 [_line("closeloop_outbox_queue_depth", outbox["n"])]),
        *_metric("closeloop_outbox_lag_seconds", "Age of the oldest due unsent message.",
                 [_line("closeloop_outbox_lag_seconds",
                        round((now - outbox["oldest"]).total_seconds(), 1) if outbox["oldest"] else 0)]),
        *_metric("closeloop_intake_queue_depth", "Inbound items not yet processed.",
                 [_line("closeloop_intake_queue_depth", queue)]),
        *_metric("closeloop_quarantine_size", "Inbound items in quarantine.",
                 [_line("closeloop_quarantine_size", quarantine)]),
        *_metric("closeloop_mailboxes_failing", "Active IMAP mailboxes whose last connection failed.",
                 [_line("closeloop_mailboxes_failing", failing)]),
        *_metric("closeloop_cases", "Cases by stage.",
                 [_line("closeloop_cases", by_stage.get(str(s), 0), {"stage": str(s)}) for s in Stage]),
    ]
    return "\n".join(out) + "\n"
