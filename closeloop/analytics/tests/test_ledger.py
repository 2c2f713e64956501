from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from closeloop.analytics.clock import Timeline
from closeloop.analytics.ledger import rebuild_cases
from closeloop.analytics.models import Interval
from closeloop.cases import actions, ledger
from closeloop.followups.calendar import Calendar

from .conftest import at

pytestmark = pytest.mark.django_db


def _rows(case_ids):
    return list(Interval.objects.filter(case_id__in=case_ids).order_by("case_id", "start", "event_id").values_list(
        "event_id", "party", "stage", "start", "end", "seconds", "elapsed", "active", "paused"))


def test_the_timeline_agrees_with_the_calendar_across_dst_holidays_and_split_days():
    calendar = Calendar.build(time_zone="Europe/London", holidays=["2026-03-30"],
                              hours={"mon": [["08:30", "12:00"], ["13:00", "17:30"]], "wed": [["00:00", "24:00"]],
                                     "fri": [["09:00", "12:00"]], "sat": [["22:00", "24:00"]]})
    timeline, rng = Timeline(calendar), random.Random(3)
    origin = datetime(2026, 3, 20, tzinfo=UTC)
    for _ in range(300):
        start = origin + timedelta(minutes=rng.randrange(0, 60 * 24 * 40))
        end = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
        assert timeline.at(end) - timeline.at(start) == pytest.approx(calendar.seconds_between(start, end))


def test_the_ledger_holds_the_same_intervals_as_the_events_say(history):
    """Every event writes its interval as it happens; the held ones match cases.ledger."""
    a = history.a
    derived = ledger.for_case(a.pk, history.now)
    stored = Interval.objects.filter(case_id=a.pk).exclude(party="none").order_by("start")
    assert [(i.party, i.start, i.end) for i in stored] == [(d.party, d.start, d.end) for d in derived]
    last = Interval.objects.filter(case_id=a.pk, end__isnull=True).get()
    assert (last.kind, last.elapsed, last.active, last.paused) == ("closed", 20 * 3600.0, 4 * 3600.0, 16 * 3600.0)


def test_rebuilding_from_the_events_gives_the_rows_written_as_they_happened(history):
    ids = [history.a.pk, history.b.pk, history.c.pk, history.d.pk]
    before = _rows(ids)
    assert rebuild_cases(ids) == len(before)
    assert _rows(ids) == before


def test_an_event_recorded_out_of_time_order_is_slotted_in(history):
    """An event dated between two others (a late import) splits the interval it falls in."""
    d = history.d
    actions.record_event(d, actions.Actor.system("import"), "note", now=at(5.5))
    starts = list(Interval.objects.filter(case_id=d.pk).order_by("start").values_list("start", "end"))
    assert (at(5), at(5.5)) in starts and (at(5.5), at(6)) in starts
    assert starts[-1] == (at(6), None)


def test_events_written_in_bulk_get_their_intervals_like_events_written_one_by_one(practice):
    """The follow-up worker chases a batch with one insert (no post_save); the ledger still follows."""
    from closeloop.cases.models import Case, Party

    cases = []
    for n in range(3):
        requester = Party.objects.create(name=f"Requester {n}", email=f"r{n}@example.com")
        case = actions.open_case(actor=actions.Actor.system(), subject="Referral", body="Please see.",
                                 request_type=practice.types["referral"], requester=requester, now=at(0))
        actions.request_missing_info(case, actions.Actor.of(practice.coordinator), now=at(1))
        cases.append(case)
    fresh = list(Case.objects.filter(pk__in=[c.pk for c in cases]).order_by("pk"))
    chased = actions.chase_requesters(fresh, actions.Actor.system("follow-ups"), now=at(30))
    assert len(chased) == 3
    ids = [c.pk for c in cases]
    written = _rows(ids)
    assert sum(1 for row in written if row[4] is None) == 3  # one open interval per case: the chase
    assert {row[0] for row in written} >= {event.pk for event in chased.values()}
    rebuild_cases(ids)
    assert _rows(ids) == written
