"""Escalation by hand and staff digests: who hears of a case, and that nobody is silently left out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from closeloop.cases import actions
from closeloop.cases.invariant import problems
from closeloop.cases.models import Case, Event, Party
from closeloop.followups.digest import send_digests
from closeloop.followups.models import Leave, Reminder
from closeloop.followups.worker import run_due
from closeloop.outbound.models import OutboxMessage

from .conftest import ny

pytestmark = pytest.mark.django_db
MONDAY = ny(2026, 3, 2, 10)


def _case(practice, owner=None):
    requester = Party.objects.create(name="Maria Gonzalez", email="maria@example.com")
    return actions.open_case(actor=actions.Actor.system(), subject="Knee pain referral", body="Please see Maria.",
                             request_type=practice.types["referral"], requester=requester, now=MONDAY, owner=owner)


def _away(staff, now=MONDAY):
    Leave.objects.create(staff=staff, starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=14))


def test_escalating_by_hand_passes_over_a_team_lead_on_leave(practice):
    """The chain's last fallback (`escalate` with no one named, the case page's button) handed the case to a
    lead on holiday; it now follows the worker's rule: someone who can own cases and is not on leave."""
    _away(practice.staff["jordan"])  # the intake team's lead
    case = _case(practice, owner=practice.coordinator)
    actions.escalate(case, actions.Actor.of(practice.coordinator), reason="stuck", now=MONDAY)
    assert case.owner == practice.supervisor and case.escalation_level == 1 and problems(case) == []


def test_escalating_by_hand_when_everyone_above_is_away_leaves_the_case_with_its_owner(practice):
    _away(practice.staff["jordan"])
    _away(practice.supervisor)
    case = _case(practice, owner=practice.coordinator)
    event = actions.escalate(case, actions.Actor.of(practice.coordinator), reason="stuck", now=MONDAY)
    assert case.owner == practice.coordinator and event.data["to"] is None and problems(case) == []


def test_escalating_by_hand_reaches_a_lead_whose_leave_is_over(practice):
    Leave.objects.create(staff=practice.staff["jordan"], starts_at=MONDAY - timedelta(days=14),
                         ends_at=MONDAY - timedelta(days=1))
    case = _case(practice, owner=practice.coordinator)
    actions.escalate(case, actions.Actor.of(practice.coordinator), reason="stuck", now=MONDAY)
    assert case.owner == practice.staff["jordan"]


def _owe(staff, case, at, text="CL owes an answer"):
    return Reminder.objects.create(staff=staff, case=case, kind="owner_reminded", text=text, urgency_at=at,
                                   created_at=at)


def test_every_due_person_gets_a_digest_in_the_round_however_many_were_digested_this_period(practice):
    """The job took the first `limit` people with pending reminders, counting people already digested this
    period (new reminders since): with more of those than the limit, everyone after them waited a period."""
    case = _case(practice)
    people = sorted(practice.staff.values(), key=lambda s: s.pk)
    early, late = people[:3], people[3:]
    at = ny(2026, 3, 2, 16, 31)
    for person in early:
        _owe(person, case, at)
    assert send_digests(now=at) == 3
    for person in early:  # reminded again within the same period: their next digest is next period's
        _owe(person, case, at)
    for person in late:
        _owe(person, case, at)
    assert send_digests(limit=2, now=at) == 2 and send_digests(limit=2, now=at) == 2
    digested = {row.to[0] for row in OutboxMessage.objects.filter(purpose="digest")}
    assert digested == {p.user.email for p in people[:7]}
    assert send_digests(limit=2, now=at) == 0
    assert Reminder.objects.filter(digest_key="").count() == 3  # the early three's second reminders wait
    next_period = at + timedelta(minutes=60)
    assert send_digests(limit=100, now=next_period) == 3


def _no_email(staff):
    staff.user.email = ""
    staff.user.save(update_fields=["email"])


def test_an_owner_without_an_email_address_is_not_reminded_into_the_void_the_team_lead_is(practice, office):
    """Reminders reach people by their digest; a blank address made the reminder vanish. The next who can act
    (the team lead) is reminded instead, and the case's timeline says why."""
    _no_email(practice.coordinator)
    case = _case(practice, owner=practice.coordinator)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 14, 1))
    run_due(now=ny(2026, 3, 2, 14, 1))  # half of the first response target used
    event = Event.objects.filter(case=case).last()
    jordan = practice.staff["jordan"]
    assert event.kind == "owner_reminded" and event.data["to"] == jordan.pk
    assert event.data["unreachable"] == [practice.coordinator.pk] and "no email address" in event.data["message"]
    assert list(Reminder.objects.filter(case=case).values_list("staff", flat=True)) == [jordan.pk]
    case.refresh_from_db()
    assert case.owner == practice.coordinator and problems(case) == []


def test_a_digest_for_someone_whose_address_was_removed_is_passed_on_and_shown_on_the_case(practice, office):
    """The reminders of someone with no email address were marked digested with no event: never told, and
    nobody knew. Each case now records `reminder_undelivered` and the next who can act gets the reminder."""
    riley = practice.staff["riley"]
    case = _case(practice, owner=riley)
    at = ny(2026, 3, 2, 16, 31)
    _owe(riley, case, at, text=f"{case.reference}: 50% of the first response target used")
    _no_email(riley)
    assert sum(send_digests(now=at) for _ in range(2)) == 1  # passed on to the lead, whose digest carries it
    event = Event.objects.get(case=case, kind="reminder_undelivered")
    jordan = practice.staff["jordan"]
    assert event.data["to"] == riley.pk and event.data["instead"] == jordan.pk
    assert "no email address" in event.data["message"]
    [digest] = OutboxMessage.objects.filter(purpose="digest")
    assert digest.to == [jordan.user.email] and case.reference in digest.body
    assert not Reminder.objects.filter(digest_key="").exists()
    assert send_digests(now=at) == 0 and len(OutboxMessage.objects.filter(purpose="digest")) == 1


def test_when_nobody_who_can_act_has_an_address_the_case_says_so(practice, office):
    riley = practice.staff["riley"]
    case = _case(practice, owner=riley)
    for person in (riley, practice.staff["jordan"], practice.supervisor):
        _no_email(person)
    _owe(riley, case, ny(2026, 3, 2, 16, 31))
    assert send_digests(now=ny(2026, 3, 2, 16, 31)) == 0
    event = Event.objects.get(case=case, kind="reminder_undelivered")
    assert event.data["instead"] is None and "nobody" in event.data["message"]
    assert not Reminder.objects.filter(digest_key="").exists()


def test_a_reassignment_between_two_people_without_addresses_queues_no_mail_to_nobody(practice, office):
    """A notice with no recipient is not a message: before, it was queued (Django then 'sent' it to nobody;
    with the refusals now kept, it would have read as a failed delivery)."""
    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "reassign_after_hours": 2}
    rt.save()
    for person in practice.staff.values():
        _no_email(person)
    case = _case(practice, owner=practice.coordinator)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 12, 30))
    run_due(now=ny(2026, 3, 2, 12, 30))
    case.refresh_from_db()
    assert case.owner not in (None, practice.coordinator)
    assert not OutboxMessage.objects.filter(case=case, purpose="reassigned").exists()
