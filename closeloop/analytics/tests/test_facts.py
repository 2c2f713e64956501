"""The per-case facts kept at write time equal a full recomputation, and the per-case path.

Two independent references: `rebuild_cases` folds every interval again from the events, and
the session-2 per-case rows (`data.case_rows` + `data.attach_ledger`, grouped SQL over the
intervals) compute each case's milestones and held time another way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from closeloop.analytics import columns
from closeloop.analytics.clock import Clock
from closeloop.analytics.data import attach_ledger, case_rows, ownership_changes
from closeloop.analytics.facts import FIELDS, HELD
from closeloop.analytics.figures import handoffs
from closeloop.analytics.ledger import rebuild_cases
from closeloop.analytics.models import CaseFacts
from closeloop.cases import actions
from closeloop.cases.models import Case, Party

from .conftest import at

pytestmark = pytest.mark.django_db


def _facts(ids):
    return {row["case_id"]: row for row in CaseFacts.objects.filter(case_id__in=ids).values("case_id", *FIELDS)}


def _same(left, right):
    assert left.keys() == right.keys()
    for case_id, row in left.items():
        for name, value in row.items():
            expected = right[case_id][name]
            assert value == (pytest.approx(expected) if isinstance(expected, float) else expected), (case_id, name)


def assert_agree(ids, now):
    """Live facts == facts folded afresh, and the columns == the per-case rows at `now`."""
    live = _facts(ids)
    assert len(live) == len(ids)
    rebuild_cases(ids)
    _same(live, _facts(ids))
    cases = Case.objects.filter(pk__in=ids)
    clock = Clock()
    cols = columns.load(cases, now, clock)
    rows = case_rows(cases, clock)
    attach_ledger(rows, cases, now, clock)
    chains = ownership_changes(cases)
    facts = _facts(ids)
    for i, row in enumerate(rows):
        assert cols.ids[i] == row.id
        for name in columns.MARKS:
            got = cols[name][i]
            assert (None if got != got else got) == pytest.approx(row.marks[name]), (row.id, name)
        for party in HELD:
            assert cols.held(party)[i] == pytest.approx(row.held.get(party, 0.0)), (row.id, party)
        for stage in columns.STAGES:
            assert cols.dwell(stage)[i] == pytest.approx(row.dwell.get(stage, 0.0)), (row.id, stage)
        assert bool(cols.chained[i]) == (row.id in chains)
        assert (facts[row.id]["handoffs"], facts[row.id]["pongs"]) == handoffs(chains.get(row.id, [None]))
        for target, due in (("fr_target", row.first_response_due_at), ("res_target", row.resolution_due_at)):
            expected = None if due is None else clock.seconds(row.team_id, row.opened_at, due)
            assert facts[row.id][target] == pytest.approx(expected)


def _ids(history):
    return [history.a.pk, history.b.pk, history.c.pk, history.d.pk]


def test_the_facts_of_paused_reopened_merged_and_handed_on_cases_equal_a_recomputation(history):
    assert_agree(_ids(history), history.now)
    facts = _facts(_ids(history))
    assert facts[history.a.pk]["held_requester"] == 16 * 3600.0  # paused twice: 2–12 h and 14–20 h
    assert (facts[history.b.pk]["close"], facts[history.b.pk]["held_owner"]) == (32 * 3600.0, 5 * 3600.0)
    assert (facts[history.d.pk]["handoffs"], facts[history.d.pk]["pongs"]) == (2, 1)


def test_a_report_looking_back_sums_held_time_only_up_to_its_now(history):
    assert_agree(_ids(history), at(6.5))
    assert_agree(_ids(history), at(13))


def test_the_facts_follow_the_team_calendar_after_re_measuring(history):
    from closeloop.analytics.ledger import remeasure
    from closeloop.followups.models import BusinessCalendar

    day = [["09:00", "17:00"]]
    BusinessCalendar.objects.create(name="Office", time_zone="UTC", is_default=True,
                                    hours={d: day for d in ("mon", "tue", "wed", "thu", "fri")})
    while remeasure(limit=2):
        pass
    assert _facts([history.a.pk])[history.a.pk]["answer"] == 3 * 3600.0  # Mon 14–17
    assert_agree(_ids(history), history.now)


def test_a_late_dated_event_rebuilds_the_case_facts(history):
    d = history.d
    actions.record_event(d, actions.Actor.of(history.practice.staff["riley"]), "note", now=at(0.5) + timedelta(
        hours=2))  # before D's first assignment: the first staff action moves earlier
    assert _facts([d.pk])[d.pk]["human"] == 0.5 * 3600.0
    assert_agree(_ids(history), history.now)


def test_bulk_appended_events_keep_the_facts(practice):
    made = []
    for n in range(3):
        requester = Party.objects.create(name=f"Requester {n}", email=f"r{n}@example.com")
        case = actions.open_case(actor=actions.Actor.system(), subject="Referral", body="Please see.",
                                 request_type=practice.types["referral"], requester=requester, now=at(0))
        actions.request_missing_info(case, actions.Actor.of(practice.coordinator), now=at(1))
        made.append(case)
    fresh = list(Case.objects.filter(pk__in=[c.pk for c in made]).order_by("pk"))
    assert len(actions.chase_requesters(fresh, actions.Actor.system("follow-ups"), now=at(30))) == 3
    ids = [c.pk for c in made]
    assert {f["held_requester"] for f in _facts(ids).values()} == {29 * 3600.0}
    assert_agree(ids, at(40))


def test_a_case_without_facts_gets_them_at_its_next_event(practice):
    """A database from before the facts table: the next event measures the case from its events."""
    requester = Party.objects.create(name="R", email="r@example.com")
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", body="Please see.",
                             request_type=practice.types["referral"], requester=requester, now=at(0))
    CaseFacts.objects.filter(case_id=case.pk).delete()
    actions.assign(case, actions.Actor.of(practice.coordinator), owner=practice.coordinator, now=at(2))
    assert _facts([case.pk])[case.pk]["held_owner"] == 2 * 3600.0
    assert_agree([case.pk], datetime(2026, 3, 3, tzinfo=UTC))


def test_an_acknowledgement_sent_as_a_message_moves_the_milestone(history):
    """A's ack_sent event came at 10 min; an ack message for D (opened at 2 h) at 2 h 15 min
    and a later one for A change D's acknowledgement only."""
    from closeloop.cases.models import Message

    for case, when in ((history.d, at(2.25)), (history.a, at(1))):
        Message.objects.create(case=case, direction=Message.Direction.OUTBOUND, status=Message.Status.SENT,
                               purpose="ack", created_at=when)
    cols = columns.load(Case.objects.filter(pk__in=_ids(history)), history.now, Clock())
    ack = dict(zip(cols.ids.tolist(), cols["ack"].tolist(), strict=True))
    assert (ack[history.a.pk], ack[history.d.pk]) == (600.0, 900.0)
    assert_agree(_ids(history), history.now)


def test_the_owner_chain_counts_handoffs_and_returns_as_assignments_are_written(practice):
    """casey → jordan → riley → jordan → jordan: three handoffs, one return (riley → jordan)."""
    requester = Party.objects.create(name="R", email="r@example.com")
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", body="Please see.",
                             request_type=practice.types["referral"], requester=requester, now=at(0))
    supervisor = actions.Actor.of(practice.supervisor)
    for hour, name in enumerate(("coordinator", "jordan", "riley", "jordan", "jordan"), start=1):
        actions.assign(case, supervisor, owner=practice.staff[name], now=at(hour))
    facts = _facts([case.pk])[case.pk]
    assert (facts["handoffs"], facts["pongs"]) == (3, 1)
    assert_agree([case.pk], at(10))
