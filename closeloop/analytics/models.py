"""The materialised ball-holder ledger: one row per event, the interval from it to the next.

`cases.ledger` derives the same intervals in Python; this table keeps them, each measured
once in working seconds on the calendar of the team holding the case, with running totals
since the case opened, so the dashboard sums and picks instead of walking calendars.
Written by `analytics.ledger` in the transaction that writes the event.
"""

from __future__ import annotations

from django.db import models

from closeloop.cases.models import Case, Event


class Interval(models.Model):
    """From `event` to the case's next event (`end` null while it is the latest)."""

    event = models.OneToOneField(Event, primary_key=True, on_delete=models.CASCADE, related_name="+")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=40)
    actor_kind = models.CharField(max_length=10)
    from_stage = models.CharField(max_length=24, blank=True)
    stage = models.CharField(max_length=24, blank=True)
    party = models.CharField(max_length=12, blank=True)
    owner_id = models.IntegerField(null=True)
    team_id = models.IntegerField(null=True)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True)
    seconds = models.FloatField(null=True, help_text="working seconds from start to end")
    elapsed = models.FloatField(default=0.0, help_text="working seconds from opening to start")
    active = models.FloatField(default=0.0, help_text="of elapsed, held by the owner or a specialist")
    paused = models.FloatField(default=0.0, help_text="of elapsed, waiting on the requester or an external party")

    class Meta:
        indexes = [models.Index(fields=["case", "start"], name="analytics_interval_case_start")]

    def __str__(self) -> str:
        return f"case {self.case_id} {self.party} {self.start:%Y-%m-%d %H:%M}"


class LedgerState(models.Model):
    """One row: the calendars the ledger was measured on, and how far re-measuring has got."""

    fingerprint = models.CharField(max_length=64, blank=True)
    remeasured_through = models.BigIntegerField(null=True, help_text="case id; null when not re-measuring")
