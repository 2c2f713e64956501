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


def _seconds(help_text: str) -> models.FloatField:
    return models.FloatField(null=True, help_text=help_text)


def _held(help_text: str) -> models.FloatField:
    return models.FloatField(default=0.0, help_text=help_text)


class CaseFacts(models.Model):
    """One row per case: what the figures need from its ledger, kept up to its latest event.

    Written with the intervals (`analytics.facts`, called from ledger.py in the same transaction):
    milestones in working seconds from opening, time held per party and dwell per stage over the
    finished intervals, the running interval (`last_*`, measured at the report's `now`), the owner
    chain's handoffs and ping-pongs, and the SLA targets in working seconds. The dashboard then reads
    one row per case instead of grouping a million intervals.
    """

    case = models.OneToOneField(Case, primary_key=True, on_delete=models.CASCADE, related_name="analytics_facts")
    ack = _seconds("to the first ack_sent event")
    ack_at = models.DateTimeField(null=True)
    human = _seconds("to the first event by staff")
    answer = _seconds("to the first reply_sent")
    answer_active = _seconds("owner + specialist time before the first reply")
    answer_paused = _seconds("requester + external time before the first reply")
    close = _seconds("to the last move into closed")
    close_active = _seconds("owner + specialist time before the last close")
    close_paused = _seconds("requester + external time before the last close")
    held_owner = _held("finished intervals held by the owner")
    held_specialist = _held("finished intervals held by a specialist")
    held_requester = _held("finished intervals waiting on the requester")
    held_external = _held("finished intervals waiting on an external party")
    dwell_new = _held("held time in stage new")
    dwell_triage = _held("held time in stage triage")
    dwell_awaiting_info = _held("held time in stage awaiting_info")
    dwell_in_progress = _held("held time in stage in_progress")
    dwell_awaiting_specialist = _held("held time in stage awaiting_specialist")
    dwell_waiting_external = _held("held time in stage waiting_external")
    dwell_ready_to_reply = _held("held time in stage ready_to_reply")
    dwell_answered = _held("held time in stage answered")
    dwell_closed = _held("held time in stage closed")
    last_at = models.DateTimeField(help_text="start of the running interval (the latest event)")
    last_party = models.CharField(max_length=12, blank=True)
    last_stage = models.CharField(max_length=24, blank=True)
    last_team_id = models.IntegerField(null=True)
    chained = models.BooleanField(default=False, help_text="has at least one assigned event")
    chain_previous = models.BigIntegerField(null=True, help_text="the person before the current one")
    chain_current = models.BigIntegerField(null=True)
    handoffs = models.IntegerField(default=0)
    pongs = models.IntegerField(default=0, help_text="returns to the person two owners back (A→B→A)")
    fr_target = _seconds("working seconds from opening to first_response_due_at")
    res_target = _seconds("working seconds from opening to resolution_due_at")

    def __str__(self) -> str:
        return f"facts of case {self.case_id}"
