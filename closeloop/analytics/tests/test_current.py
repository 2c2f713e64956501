from __future__ import annotations

from datetime import timedelta

import pytest

from closeloop.analytics.clock import Clock
from closeloop.analytics.current import missed, open_cases, stalled
from closeloop.analytics.data import Scope
from closeloop.analytics.figures import report

from .conftest import T0, at

pytestmark = pytest.mark.django_db


def _scope(history, staff=None, now=None):
    now = now or history.now
    return Scope(staff or history.practice.supervisor, T0 - timedelta(days=1), now, now)


def _office_hours():
    from closeloop.followups.models import BusinessCalendar

    day = [["09:00", "17:00"]]
    BusinessCalendar.objects.create(name="Office", time_zone="UTC", is_default=True,
                                    hours={d: day for d in ("mon", "tue", "wed", "thu", "fri")})


def test_a_stall_is_measured_in_working_hours_since_the_last_event(history):
    """D's last event is Mon 20:00; at Thu 14:00 that is 66 wall hours but 21 working hours
    (Tue 8, Wed 8, Thu 9–14): stalled past a 20 h limit, not past a 22 h one."""
    _office_hours()
    [case] = stalled(_scope(history), 20, Clock())
    assert (case.id, case.idle, case.last_event_at, case.owner_id) == (
        history.d.pk, 21 * 3600.0, at(6), history.practice.coordinator.pk)
    assert stalled(_scope(history), 22, Clock()) == []


def test_the_stall_limit_is_a_setting_and_the_table_says_who_holds_the_case(history, settings):
    settings.CLOSELOOP_ANALYTICS_STALL_HOURS = 70
    assert report(_scope(history)).tables["stalls"].rows == []
    settings.CLOSELOOP_ANALYTICS_STALL_HOURS = 60
    table = report(_scope(history)).tables["stalls"]
    assert [(r["label"], r["holder"], r["waiting_on"], r["idle"]) for r in table.rows] == [
        (history.d.reference, "Casey Morgan", "owner", 66.0)]
    assert "over 60 working hours" in table.title


def test_stalls_ignore_events_after_now_and_closed_cases(history):
    """At 6.5 h nothing has been idle for 8 h; at 72 h only D (A and B are closed)."""
    assert stalled(_scope(history, now=at(6.5)), 8, Clock()) == []
    assert [c.id for c in stalled(_scope(history), 8, Clock())] == [history.d.pk]


def test_a_coordinator_sees_only_stalls_in_their_teams(history):
    riley = history.practice.staff["riley"]  # scheduling and billing; D is an intake referral
    assert stalled(_scope(history, staff=riley), 8, Clock()) == []


def test_open_cases_and_missed_follow_ups_come_from_one_query_each(history, django_assert_max_num_queries):
    scope = _scope(history)
    with django_assert_max_num_queries(1):
        assert [c.id for c in open_cases(scope)] == [history.d.pk]
    with django_assert_max_num_queries(1):
        assert [c.id for c in missed(scope, history.now - timedelta(hours=1))] == [history.d.pk]
