from __future__ import annotations

import random
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from closeloop.analytics import measure
from closeloop.analytics.data import Scope
from closeloop.analytics.simulate import Inputs, Policy, Trace, replicate
from closeloop.testing.histories import answered_in_lockstep, answered_referrals

from .conftest import T0

pytestmark = pytest.mark.django_db


def _recorded_history(practice, n=60, seed=3):
    """n referrals over two weeks: a coordinator picks each up, a third wait on the requester, then a reply."""
    answered_referrals(practice.coordinator, practice.types["referral"], T0, n=n, seed=seed)


def test_it_validates_the_model_against_recorded_history_before_showing_scenarios(practice):
    _recorded_history(practice)
    out = StringIO()
    with time_machine.travel(T0 + timedelta(days=16), tick=False):
        call_command("simulate", "--days", "17", "--runs", "3", stdout=out)
    text = out.getvalue()
    assert "time to first answer p50: recorded" in text and "the model is trusted" in text
    for scenario in ("as today", "one more coordinator", "automatic chasing off", "triage share 50%"):
        assert scenario in text


def test_it_withholds_scenarios_when_the_model_cannot_reproduce_history(practice):
    """120 requests at once, each answered exactly an hour later by one coordinator: a queue answers the
    first sooner and the last later, so p50 and p90 cannot both match within 10 %."""
    answered_in_lockstep(practice.coordinator, practice.types["referral"], T0 + timedelta(days=2), n=120)
    out = StringIO()
    with time_machine.travel(T0 + timedelta(days=16), tick=False), pytest.raises(CommandError, match="withheld"):
        call_command("simulate", "--days", "17", "--runs", "2", "--tolerance", "0.1", stdout=out)
    assert "within ±10%: NO" in out.getvalue()


def test_each_case_keeps_its_own_profile_so_a_quick_burst_after_slow_weeks_is_reproduced(practice):
    """Two weeks of ordinary work (answers in hours), then a compressed demo replay: a hundred cases a
    minute apart, worked one after another by one person in under a minute and a half each. Drawing
    profiles at random would give burst cases the slow weeks' hours; replaying each case with its own
    owner and measured work reproduces both eras."""
    answered_referrals(practice.coordinator, practice.types["referral"], T0, n=40, seed=5)
    burst, free, rng = T0 + timedelta(days=15), T0, random.Random(2)
    for i in range(100):
        arrival = burst + timedelta(minutes=i)
        free = max(free, arrival) + timedelta(seconds=rng.uniform(20, 90))
        answered_in_lockstep(practice.coordinator, practice.types["referral"], arrival, n=1,
                             hours=(free - arrival).total_seconds() / 3600)
    inputs = measure.recorded(Scope.last_days(practice.supervisor, T0 + timedelta(days=16), 17))
    assert len(inputs.cases) == 140 and sum(c.arrival >= 16 * 86400 for c in inputs.cases) == 100
    out = StringIO()
    with time_machine.travel(T0 + timedelta(days=16), tick=False):
        call_command("simulate", "--days", "17", "--runs", "2", stdout=out)
    assert "the model is trusted" in out.getvalue() and "one more coordinator" in out.getvalue()


def test_it_refuses_an_empty_period_with_a_clear_error(practice):
    with pytest.raises(CommandError, match="no arrivals"):
        call_command("simulate", "--days", "3", stdout=StringIO())


def test_a_synthetic_stream_runs_without_history(practice):
    out = StringIO()
    call_command("simulate", "--synthetic", "30", "--days", "7", "--runs", "2", stdout=out)
    assert "one more coordinator" in out.getvalue() and "Validation" not in out.getvalue()


def test_more_coordinators_shorten_the_queue_when_the_team_is_saturated():
    """One coordinator, a case every 30 minutes, 45 minutes of work each: the queue grows without bound;
    a second coordinator keeps up."""
    inputs = Inputs(cases=[Trace(arrival=i * 1800.0, work=2700.0) for i in range(200)],
                    horizon=200 * 1800.0 + 86400, coordinators=1)
    alone = replicate(inputs, Policy(), "alone", runs=1)
    helped = replicate(inputs, Policy(extra_coordinators=1), "helped", runs=3)  # takes every case with p = 1/2
    assert helped.p90 is not None and alone.p90 is not None and helped.p50 is not None
    assert helped.p50 < 2 * 2700.0 and alone.p90 > 10 * helped.p90
    assert alone.busy == 1.0 and helped.busy == pytest.approx(200 * 2700.0 / (2 * inputs.horizon))  # all the work


def test_a_case_not_yet_answered_takes_at_most_a_typical_cases_work_and_stays_in_the_backlog():
    """One coordinator; a case left open for a week would, counted as work, hold them all week and delay
    every answer behind it. It takes the median answered case's hour and stays open."""
    stale = Trace(arrival=0.0, work=7 * 86400.0, answered=False)
    quick = [Trace(arrival=3600.0 * (1 + i), work=3600.0) for i in range(10)]
    outcome = replicate(Inputs(cases=[stale, *quick], horizon=14 * 86400.0, coordinators=1), Policy(), "x")
    assert outcome.answered == 10 and outcome.final_backlog == 1
    assert outcome.p90 is not None and outcome.p90 <= 2 * 3600.0


def test_a_triage_share_scenario_sends_that_share_of_cases_to_triage():
    cases = [Trace(arrival=60.0 * i, work=60.0, owner=i % 50, triage=600.0 if i % 5 == 0 else 0.0)
             for i in range(1000)]
    inputs = Inputs(cases=cases, horizon=10 * 86400.0, coordinators=50, triage_spans=[600.0])
    assert inputs.p_triage == pytest.approx(0.2)
    as_recorded = replicate(inputs, Policy(), "as recorded")
    half = replicate(inputs, Policy(triage_share=0.5), "half", runs=3)
    none = replicate(inputs, Policy(triage_share=0.0), "none", runs=3)
    assert none.p90 == pytest.approx(60.0) and as_recorded.p90 == pytest.approx(660.0)
    assert half.p50 is not None and 60.0 < half.p50 <= 660.0
    assert half.mean_backlog > as_recorded.mean_backlog > none.mean_backlog  # triage is waiting, not work


def test_turning_chasing_off_never_reads_faster_because_slow_cases_left_the_sample():
    """Sixty cases an hour apart; two in three then wait 30 hours on the requester. Without chasers those
    waits take 48 hours, and more of the slow cases would finish after the period ends: counting only
    the answers inside the period, the slow ones drop out and the median looks *faster*. Every case the
    record answered is answered in every scenario (the model runs on past the period), so scenarios
    compare the same cases."""
    cases = [Trace(arrival=3600.0 * i, work=600.0, owner=0, requester=0.0 if i % 3 == 0 else 30 * 3600.0)
             for i in range(60)]
    inputs = Inputs(cases=cases, horizon=70 * 3600.0, coordinators=1)
    today = replicate(inputs, Policy(), "as today")
    off = replicate(inputs, Policy(chasing=False), "chasing off")
    assert today.p50 is not None and off.p50 is not None and today.p90 is not None and off.p90 is not None
    assert off.p50 > today.p50 and off.p90 > today.p90
    assert today.p50 == pytest.approx(30 * 3600.0 + 600.0) and off.p50 == pytest.approx(48 * 3600.0 + 600.0)
    # "Answered" still counts the answers inside the period: fewer without chasers.
    assert off.answered < today.answered < 60


def test_a_burst_shows_in_the_busiest_hour_where_the_average_over_the_period_hides_it():
    """A compressed demo replay: 2 coordinators answer 8 cases of 30 minutes' work in the first two hours
    of a 28-day period. Busy over the period is a fraction of a per cent; in the busiest hour, all of it."""
    burst = [Trace(arrival=60.0 * i, work=1800.0, owner=i % 2) for i in range(8)]
    result = replicate(Inputs(cases=burst, horizon=28 * 86400.0, coordinators=2), Policy(), "as today")
    assert result.busy == pytest.approx(8 * 1800.0 / (2 * 28 * 86400.0))
    assert result.busiest_hour == 1.0
