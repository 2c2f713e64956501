from __future__ import annotations

from datetime import timedelta

import pytest

from closeloop.analytics.data import Scope
from closeloop.analytics.figures import handoffs, report

from .conftest import T0, at

pytestmark = pytest.mark.django_db


def _report(history, **kw):
    return report(Scope(history.practice.supervisor, T0 - timedelta(days=1), history.now, history.now, **kw))


def _row(table, key):
    return next(r for r in table.rows if r["key"] == key)


def test_it_measures_each_milestone_per_request_type_leaving_merged_duplicates_out(history):
    """Referrals A and D (C is merged): ack A 10 min; first human action A 1 h, D 2 h → p50 1.5,
    p90 1 + 0.9 × 1 = 1.9; first answer A 14 h; close A 20 h. Appointment B closes for good at 32 h."""
    figures = _report(history)
    referral = _row(figures.tables["latency_type"], "referral")
    assert referral["cases"] == 2
    assert (referral["ack_n"], referral["ack_p50"]) == (1, 0.17)
    assert (referral["human_n"], referral["human_p50"], referral["human_p90"]) == (2, 1.5, 1.9)
    assert (referral["answer_n"], referral["answer_p50"]) == (1, 14.0)
    assert (referral["close_n"], referral["close_p50"]) == (1, 20.0)
    appointment = _row(figures.tables["latency_type"], "appointment")
    assert (appointment["answer_p50"], appointment["close_p50"]) == (3.0, 32.0)
    assert sorted(figures.tables["latency_type"].cases["referral"]) == sorted([history.a.pk, history.d.pk])


def test_it_splits_figures_by_channel_owner_and_week(history):
    figures = _report(history)
    assert {r["key"] for r in figures.tables["latency_channel"].rows} == {"email", "webform", "fax"}
    assert _row(figures.tables["latency_owner"], str(history.practice.staff["riley"].pk))["cases"] == 1
    assert [r["key"] for r in figures.tables["latency_week"].rows] == ["2026-W10"]


def test_it_splits_held_time_between_parties_and_leaves_closed_gaps_out(history):
    """Owner: A 0–2 h and 12–14 h (4 h), B 0–3 h and 30–32 h (5 h), D 2–72 h (70 h) = 79 h.
    Requester: A 2–12 h and 14–20 h (16 h), B 3–4 h (1 h) = 17 h. B's closed 4–30 h counts for nobody."""
    held = _report(history).tables["held"]
    assert _row(held, "owner")["total"] == 79.0
    assert _row(held, "requester")["total"] == 17.0
    assert _row(held, "requester")["cases"] == 2
    assert _row(held, "specialist")["cases"] == 0


def test_it_measures_dwell_per_stage(history):
    """awaiting_info: A 2–12 h; answered: A 14–20 h, B 3–4 h → total 7 h, p50 3.5 h."""
    dwell = _report(history).tables["dwell"]
    assert _row(dwell, "awaiting_info")["total"] == 10.0
    assert (_row(dwell, "answered")["total"], _row(dwell, "answered")["p50"]) == (7.0, 3.5)


def test_it_pauses_the_sla_clock_while_waiting_on_the_requester(history):
    """A answered at 14 h wall-clock against an 8 h target, but 10 h of that waited on the requester:
    4 h of team time, so met. D has had 70 h of team time against 8 h: breached."""
    sla = _row(_report(history).tables["sla"], "referral")
    assert (sla["fr_met"], sla["fr_breached"], sla["fr_pending"]) == (1, 1, 0)
    assert (sla["res_met"], sla["res_breached"], sla["res_pending"]) == (1, 1, 0)
    assert sla["paused"] == 16.0
    assert _report(history).tables["sla"].cases["referral"] == [history.d.pk]


def test_it_counts_handoffs_and_ping_pong(history):
    table = _report(history).tables["handoffs"]
    assert table.cases["ping_pong"] == [history.d.pk]
    assert _row(table, "2")["cases"] == 1
    assert handoffs([None, 1, 2, 1, 1, 3]) == (3, 1)
    assert handoffs([None]) == (0, 0)


def test_it_lists_stalled_and_missed_cases_with_who_holds_them(history):
    figures = _report(history)
    stall = _row(figures.tables["stalls"], str(history.d.pk))
    assert (stall["holder"], stall["idle"], stall["waiting_on"]) == ("Casey Morgan", 66.0, "owner")
    assert [r["key"] for r in figures.tables["missed"].rows] == [str(history.d.pk)]
    assert figures.headline["missed"] == 1 and figures.headline["ping_pong"] == 1


def test_nothing_is_missed_while_follow_ups_are_on_time(history):
    figures = report(Scope(history.practice.supervisor, T0 - timedelta(days=1), at(6.5), at(6.5)))
    assert figures.headline["missed"] == 0 and figures.tables["stalls"].rows == []


def test_a_coordinator_sees_only_their_teams(history):
    riley = history.practice.staff["riley"]  # scheduling and billing
    figures = report(Scope(riley, T0 - timedelta(days=1), history.now, history.now))
    assert figures.headline["cases"] == 1
    assert figures.tables["latency_type"].cases == {"appointment": [history.b.pk]}


def working_hours():
    """09:00–17:00 UTC, Monday to Friday, on the follow-up engine's real calendar."""
    from closeloop.followups.calendar import Calendar

    day = [["09:00", "17:00"]]
    return Calendar.build(time_zone="UTC", hours={d: day for d in ("mon", "tue", "wed", "thu", "fri")})


def remeasure_everything():
    from closeloop.analytics.ledger import remeasure

    while remeasure(limit=2):
        pass


def test_it_counts_working_hours_on_the_team_calendar(history):
    """With 9–17 weekdays, A's answer at Tue 04:00 took 3 working hours (Mon 14–17), its close at
    Tue 10:00 took 4; D's first human action (Mon 16:00 → 18:00) took 1. The calendar is set after
    the history was recorded: the worker's re-measure job brings the ledger onto it."""
    from closeloop.followups.models import BusinessCalendar

    day = [["09:00", "17:00"]]
    BusinessCalendar.objects.create(name="Office", time_zone="UTC", is_default=True,
                                    hours={d: day for d in ("mon", "tue", "wed", "thu", "fri")})
    assert _report(history).headline["ledger_current"] is False
    remeasure_everything()
    figures = _report(history)
    referral = _row(figures.tables["latency_type"], "referral")
    assert (referral["answer_p50"], referral["close_p50"]) == (3.0, 4.0)
    assert (referral["human_p50"], referral["human_p90"]) == (1.0, 1.0)
    assert figures.headline["ledger_current"] is True
