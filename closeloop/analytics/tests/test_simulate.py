from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from closeloop.analytics.simulate import Inputs, Policy, replicate
from closeloop.testing.histories import answered_referrals

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
    _recorded_history(practice)
    with time_machine.travel(T0 + timedelta(days=16), tick=False), pytest.raises(CommandError, match="withheld"):
        call_command("simulate", "--days", "17", "--runs", "2", "--tolerance", "0.0001", stdout=StringIO())


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
    inputs = Inputs(arrivals=[i * 1800.0 for i in range(200)], horizon=200 * 1800.0 + 86400, coordinators=1,
                    profiles=[(2700.0, 0.0, 0.0)], triage_spans=[], p_triage=0.0)
    alone = replicate(inputs, Policy(), "alone", runs=1)
    helped = replicate(inputs, Policy(extra_coordinators=1), "helped", runs=1)
    assert helped.p90 is not None and alone.p90 is not None
    assert helped.p90 == pytest.approx(2700.0)  # two 22.5-minute touches, no waiting
    assert alone.p90 > 10 * helped.p90
