from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.invariant import problems
from closeloop.cases.models import Case, Event, Party
from closeloop.cases.stages import NextAction, Stage, WaitingOn

pytestmark = pytest.mark.django_db


def _open(practice, slug="referral", **kw):
    requester = Party.objects.create(name="Maria Gonzalez", email="maria@example.com")
    return actions.open_case(actor=actions.Actor.system(), subject="Knee pain referral", body="Please see Maria.",
                             request_type=practice.types[slug] if slug else None, requester=requester, **kw)


def test_it_opens_a_typed_case_in_progress_with_team_due_times_and_missing_fields(practice):
    case = _open(practice)
    assert case.reference == f"CL-{case.pk:06d}"
    assert case.stage == Stage.IN_PROGRESS
    assert case.team == practice.teams["intake"]
    assert case.waiting_on == WaitingOn.OWNER and case.next_action == NextAction.WORK
    assert case.next_due_at is not None and case.first_response_due_at is not None
    assert "date_of_birth" in case.missing_fields
    assert problems(case) == []
    assert list(case.events.values_list("kind", flat=True)) == ["opened"]


def test_it_opens_an_untyped_case_at_triage(practice):
    case = _open(practice, slug=None)
    assert case.stage == Stage.TRIAGE and case.next_action == NextAction.TRIAGE
    assert case.team is not None


def test_asking_for_missing_info_waits_on_the_requester_and_mails_them(practice):
    case = _open(practice)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator))
    case.refresh_from_db()
    assert case.stage == Stage.AWAITING_INFO and case.waiting_on == WaitingOn.REQUESTER
    assert case.next_action == NextAction.CHASE_REQUESTER
    outbox = case.outbox.get()
    assert outbox.to == ["maria@example.com"] and case.reference in outbox.subject
    assert "/s/" in outbox.body


def test_the_awaited_reply_stops_the_wait(practice):
    case = _open(practice)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator))
    actions.record_inbound_message(case, actions.Actor.requester("maria@example.com"), sender="maria@example.com",
                                   subject="Re: info", body="DOB 1961-03-14")
    assert case.stage == Stage.IN_PROGRESS and case.waiting_on == WaitingOn.OWNER


def test_supplying_every_missing_field_resumes_work(practice):
    case = _open(practice, slug="appointment")
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator))
    actions.record_fields(case, actions.Actor.requester(), {
        "patient_name": "Maria Gonzalez", "date_of_birth": {"value": "1961-03-14", "confidence": 1.0},
        "phone": {"value": "+16175550142", "source": {"kind": "status_page"}},
    })
    assert case.missing_fields == [] and case.stage == Stage.IN_PROGRESS


def test_a_stale_copy_loses_with_a_conflict_and_nothing_is_overwritten(practice):
    case = _open(practice)
    stale = Case.objects.get(pk=case.pk)
    actions.assign(case, actions.Actor.of(practice.coordinator), owner=practice.coordinator)
    with pytest.raises(actions.ConflictError):
        actions.snooze(stale, actions.Actor.of(practice.supervisor), until=timezone.now() + timedelta(days=1),
                       reason="waiting for fax")
    case.refresh_from_db()
    assert case.owner == practice.coordinator and case.snoozed_until is None
    assert case.events.count() == 2


def test_closed_cases_refuse_work_until_reopened(practice):
    case = _open(practice)
    actions.close(case, actions.Actor.of(practice.coordinator), outcome="completed")
    assert case.waiting_on == WaitingOn.NONE and case.next_due_at is None
    with pytest.raises(actions.TransitionError):
        actions.snooze(case, actions.Actor.of(practice.coordinator), until=timezone.now() + timedelta(days=1),
                       reason="x")
    actions.reopen(case, actions.Actor.of(practice.coordinator), reason="patient called back")
    assert case.stage == Stage.IN_PROGRESS and problems(case) == []


def test_closing_tells_the_requester_the_outcome(practice):
    case = _open(practice)
    actions.close(case, actions.Actor.of(practice.coordinator), outcome="appointment booked")
    assert case.outbox.filter(purpose="outcome", to=["maria@example.com"]).exists()


def test_the_specialist_loop_goes_brief_answer_reply_answered(practice):
    case = _open(practice)
    coordinator = actions.Actor.of(practice.coordinator)
    actions.hand_to_specialist(case, coordinator, specialist=practice.specialist, question="Surgery or PT?")
    assert case.waiting_on == WaitingOn.SPECIALIST
    actions.record_specialist_answer(case, actions.Actor.of(practice.specialist), answer="PT first.")
    assert case.stage == Stage.READY_TO_REPLY
    draft = actions.draft_reply(case, coordinator, subject="Your referral", body="We suggest PT first.")
    assert case.next_action == NextAction.APPROVE_REPLY
    actions.approve_and_send(case, actions.Actor.of(practice.supervisor), message=draft)
    draft.refresh_from_db()
    assert case.stage == Stage.ANSWERED and draft.status == "queued" and draft.message_id
    assert case.first_responded_at is not None


def test_snooze_sets_the_wake_time_as_due_and_a_reply_keeps_the_snooze_reason_visible(practice):
    case = _open(practice)
    until = timezone.now() + timedelta(days=2)
    actions.snooze(case, actions.Actor.of(practice.coordinator), until=until, reason="patient travelling")
    assert case.next_action == NextAction.WAKE and case.next_due_at == until
    actions.wake(case, actions.Actor.system())
    assert case.next_action == NextAction.WORK and case.snoozed_until is None


def test_only_a_snoozed_case_can_be_woken(practice):
    case = _open(practice)
    with pytest.raises(actions.TransitionError, match="not snoozed"):
        actions.wake(case, actions.Actor.of(practice.coordinator))
    assert not case.events.filter(kind="woken").exists()


def test_escalation_goes_to_the_team_lead_and_raises_priority(practice):
    case = _open(practice)
    actions.escalate(case, actions.Actor.system("followups"), reason="first response target breached")
    assert case.owner == practice.staff["jordan"] and case.priority == "high" and case.escalation_level == 1


def test_merge_folds_the_duplicate_into_the_primary(practice):
    primary = _open(practice)
    dup = _open(practice)
    actions.record_fields(dup, actions.Actor.system(), {"phone": "+16175550142"})
    actions.merge(dup, primary, actions.Actor.of(practice.coordinator))
    primary.refresh_from_db()
    assert dup.stage == Stage.CLOSED and dup.merged_into == primary and dup.outcome == "merged"
    assert primary.field_value("phone") == "+16175550142"
    with pytest.raises(actions.TransitionError):
        actions.reopen(dup, actions.Actor.of(practice.coordinator), reason="oops")


def test_events_are_append_only(practice):
    case = _open(practice)
    event = case.events.get()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        Event.objects.filter(case=case).update(kind="x")
    with pytest.raises(TypeError):
        Event.objects.filter(case=case).delete()


def test_invalid_transitions_are_refused(practice):
    case = _open(practice)
    with pytest.raises(actions.TransitionError):
        actions.record_specialist_answer(case, actions.Actor.of(practice.specialist), answer="x")


def test_the_external_check_follows_the_types_policy(practice):
    """A case waiting on an outside party is next looked at after the type's `external_check_days`
    (as the worker reschedules it), not a fixed three days."""
    from closeloop.cases.deadlines import next_due

    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "external_check_days": 1}
    rt.save()
    case = _open(practice)
    case.stage, case.waiting_on = Stage.WAITING_EXTERNAL, WaitingOn.EXTERNAL
    case.next_action = NextAction.CHECK_EXTERNAL
    now = timezone.now()
    assert next_due(case, now) == now + timedelta(hours=8)  # no calendar: one business day is 8 hours
