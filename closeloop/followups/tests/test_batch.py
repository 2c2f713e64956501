"""The worker's batch path: many chasers in one transaction and a fixed number of queries,
with the same guarantees as one at a time (a concurrent edit wins, the noise budget holds)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from closeloop.analytics.ledger import rebuild_cases
from closeloop.cases import actions
from closeloop.cases.models import Case, Event, Message, Party
from closeloop.followups import noise
from closeloop.followups.calendar import calendar_for_team
from closeloop.followups.fill import fill
from closeloop.followups.models import Sent
from closeloop.followups.worker import run_due
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import deliver_due

from .conftest import ny

pytestmark = pytest.mark.django_db
MONDAY = ny(2026, 3, 2, 10)


def _awaiting(practice, email, now=MONDAY):
    requester = Party.objects.create(name="Maria Gonzalez", email=email)
    case = actions.open_case(actor=actions.Actor.system(), subject="Knee pain referral", body="Please see Maria.",
                             request_type=practice.types["referral"], requester=requester, now=now)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator), now=now)
    case.refresh_from_db()
    return case


def _queries_for_batch(practice, size, at):
    due = fill(size, 1.0, at - timedelta(minutes=1), request_type=practice.types["referral"])
    rebuild_cases(sorted(due))  # a live database has the ledger of each case's history
    with CaptureQueriesContext(connection) as queries:
        assert run_due(size, now=at) == size
    return len(queries)


def test_a_batch_of_chases_costs_the_same_queries_whatever_its_size(practice, office, smtp_server):
    at = ny(2026, 3, 3, 10)
    calendar_for_team(practice.types["referral"].routing_team_id)  # the per-process cache, loaded once
    small = _queries_for_batch(practice, 5, at)
    # 20, not more: SQLite takes at most 999 parameters per statement, so Django splits an insert of more than
    # 24 analytics facts rows (40 columns) in two; PostgreSQL has no such limit
    large = _queries_for_batch(practice, 20, at + timedelta(minutes=1))
    # claim, load, noise budget, begin, case CAS, events, queued outbox rows (ON CONFLICT DO NOTHING: no key
    # look-up), thread headers, messages, noise ledger, commit (inside a test: a savepoint and its release); the
    # analytics ledger: a savepoint and its release, case lock, open intervals, facts, one UPDATE closing the
    # intervals, one INSERT opening the new ones, one UPDATE of the facts columns the chase moved
    assert small == large <= 19
    assert Event.objects.filter(kind="requester_chased").count() == 25
    assert OutboxMessage.objects.filter(purpose="chase").count() == 25
    assert Message.objects.filter(purpose="chase", status="queued").count() == 25
    assert Sent.objects.count() == 25
    assert deliver_due(100) == 25
    assert len(smtp_server.messages) == 25


def test_each_case_of_a_batch_gets_what_one_chase_would_give_it(practice, office):
    case = _awaiting(practice, "maria@example.com")
    run_due(now=ny(2026, 3, 3, 10, 1))
    case.refresh_from_db()
    assert case.followup_step == 1 and case.next_due_at == ny(2026, 3, 6, 10, 1)
    event = Event.objects.filter(case=case).last()
    assert (event.kind, event.data, event.actor_label) == ("requester_chased", {"step": 1, "of": 3}, "follow-ups")
    row = OutboxMessage.objects.get(case=case, purpose="chase")
    info = OutboxMessage.objects.get(case=case, purpose="missing_info")
    assert row.in_reply_to == info.message_id and row.references == info.message_id
    assert row.idempotency_key == f"{case.pk}:chase:1@{case.version - 1}" and case.reference in row.subject
    assert Message.objects.filter(message_id=row.message_id, case=case).exists()


def test_a_concurrent_edit_wins_over_the_batch_and_only_that_case_is_left_out(practice, office):
    cases = [_awaiting(practice, f"p{i}@example.com") for i in range(3)]
    stale = [Case.objects.select_related("request_type", "requester").get(pk=c.pk) for c in cases]
    edited = Case.objects.get(pk=cases[1].pk)
    actions.record_fields(edited, actions.Actor.of(practice.coordinator), {"date_of_birth": "1961-03-14"},
                          now=ny(2026, 3, 3, 9))
    chased = actions.chase_requesters(stale, actions.Actor.system("follow-ups"), now=ny(2026, 3, 3, 10, 1))
    assert set(chased) == {cases[0].pk, cases[2].pk}
    edited.refresh_from_db()
    assert edited.followup_step == 0 and edited.fields["date_of_birth"]["value"] == "1961-03-14"
    assert not OutboxMessage.objects.filter(case=edited, purpose="chase").exists()
    assert Case.objects.get(pk=cases[0].pk).followup_step == 1


def test_the_batch_refuses_a_case_with_no_chaser_due_before_writing_anything(practice, office):
    cases = [_awaiting(practice, f"p{i}@example.com") for i in range(2)]
    cases[1].followup_step = 3  # the last step: closing with a notice is chase_requester's job
    with pytest.raises(actions.TransitionError):
        actions.chase_requesters(cases, actions.Actor.system(), now=ny(2026, 3, 3, 10, 1))
    assert not Event.objects.filter(kind="requester_chased").exists()


def test_one_recipient_twice_in_a_batch_counts_against_one_daily_budget(practice, office, settings):
    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "daily_cap": 1}
    rt.save()
    first, second = _awaiting(practice, "maria@example.com"), _awaiting(practice, "maria@example.com")
    recent = _awaiting(practice, "joe@example.com")
    Sent.objects.all().delete()  # the information requests are not follow-ups for this test
    settings.CLOSELOOP_NOISE_MIN_GAP_HOURS = 4
    noise.record(recent, "joe@example.com", "chase", ny(2026, 3, 3, 9))
    assert run_due(now=ny(2026, 3, 3, 10, 1)) == 3
    steps = dict(Case.objects.values_list("pk", "followup_step"))
    assert steps[first.pk] + steps[second.pk] == 1  # one chased, the other waits for tomorrow's budget
    waiting = Case.objects.get(pk=second.pk if steps[first.pk] else first.pk)
    assert waiting.next_due_at == ny(2026, 3, 4, 10, 1)
    assert steps[recent.pk] == 0  # chased an hour ago about this case (cap and gap)
    assert Case.objects.get(pk=recent.pk).next_due_at == ny(2026, 3, 4, 9)


def test_a_closed_calendar_defers_the_whole_batch_to_the_opening(practice, office):
    cases = [_awaiting(practice, f"p{i}@example.com") for i in range(3)]
    Case.objects.update(next_due_at=ny(2026, 3, 3, 22))
    with CaptureQueriesContext(connection) as queries:
        assert run_due(now=ny(2026, 3, 3, 23)) == 3
    assert len(queries) <= 4  # claim, load, one UPDATE per distinct opening time
    assert {c.next_due_at for c in Case.objects.filter(pk__in=[c.pk for c in cases])} == {ny(2026, 3, 4, 9)}
    assert not Event.objects.filter(kind="requester_chased").exists()
