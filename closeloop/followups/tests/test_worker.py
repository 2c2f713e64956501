from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.invariant import problems
from closeloop.cases.models import Case, Event, Party
from closeloop.cases.stages import NextAction, Stage
from closeloop.followups.models import Leave, Reminder
from closeloop.followups.worker import run_due
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import deliver_due

from .conftest import ny

pytestmark = pytest.mark.django_db
MONDAY = ny(2026, 3, 2, 10)


def _case(practice, slug="referral", now=MONDAY, email="maria@example.com", **kw):
    requester = Party.objects.create(name="Maria Gonzalez", email=email)
    return actions.open_case(actor=actions.Actor.system(), subject="Knee pain referral", body="Please see Maria.",
                             request_type=practice.types[slug], requester=requester, now=now, **kw)


def _awaiting_info(practice, now=MONDAY, **kw):
    case = _case(practice, now=now, **kw)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator), now=now)
    return case


def _due(case, at):
    """Make the case due at `at` and run the worker then."""
    Case.objects.filter(pk=case.pk).update(next_due_at=at)
    return run_due(now=at)


def _kinds(case):
    return list(Event.objects.filter(case=case).values_list("kind", flat=True))


def test_it_chases_the_requester_after_one_business_day_and_the_mail_arrives(practice, office, smtp_server):
    case = _awaiting_info(practice)
    case.refresh_from_db()
    assert case.next_due_at == ny(2026, 3, 3, 10)
    assert run_due(now=ny(2026, 3, 3, 9, 59)) == 0
    assert run_due(now=ny(2026, 3, 3, 10, 1)) == 1
    case.refresh_from_db()
    assert case.followup_step == 1 and _kinds(case)[-1] == "requester_chased"
    assert case.next_due_at == ny(2026, 3, 6, 10, 1)  # cadence [1, 3, 7]: three business days later
    deliver_due()
    chases = [m for m in smtp_server.to("maria@example.com") if "Reminder" in m.message["Subject"]]
    assert len(chases) == 1 and case.reference in chases[0].message["Subject"]
    assert problems(case) == []


def test_a_night_time_due_chase_waits_for_the_office_to_open(practice, office):
    case = _awaiting_info(practice, now=ny(2026, 3, 2, 16, 30))
    case.refresh_from_db()
    assert case.next_due_at == ny(2026, 3, 3, 16, 30)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 3, 22))  # as if set by an old policy
    assert run_due(now=ny(2026, 3, 3, 23)) == 1
    case.refresh_from_db()
    assert case.followup_step == 0 and case.next_due_at == ny(2026, 3, 4, 9)
    assert run_due(now=ny(2026, 3, 4, 9)) == 1
    case.refresh_from_db()
    assert case.followup_step == 1


def test_a_chase_due_long_ago_happens_once_and_the_next_is_scheduled_from_now(practice, office):
    case = _awaiting_info(practice)
    late = ny(2026, 3, 20, 11)  # the worker was down for two weeks: three steps were "missed"
    assert run_due(now=late) == 1
    assert run_due(now=late + timedelta(minutes=1)) == 0
    case.refresh_from_db()
    assert case.followup_step == 1 and _kinds(case).count("requester_chased") == 1
    assert case.next_due_at == ny(2026, 3, 25, 11)
    assert OutboxMessage.objects.filter(case=case, purpose="chase").count() == 1


def test_chasing_stops_the_moment_the_reply_arrives(practice, office):
    case = _awaiting_info(practice)
    run_due(now=ny(2026, 3, 3, 10, 5))
    case.refresh_from_db()
    actions.record_inbound_message(case, actions.Actor.requester("maria@example.com"), sender="maria@example.com",
                                   subject="Re: info", body="DOB 1961-03-14", now=ny(2026, 3, 3, 12))
    case.refresh_from_db()
    assert case.stage == Stage.IN_PROGRESS and case.followup_step == 0
    run_due(now=ny(2026, 3, 6, 12))
    assert OutboxMessage.objects.filter(case=case, purpose="chase").count() == 1


def test_after_the_last_chaser_the_case_closes_with_a_notice(practice, office):
    case = _awaiting_info(practice)
    at = ny(2026, 3, 3, 10, 5)
    for _ in range(4):
        case.refresh_from_db()
        at = max(at, case.next_due_at + timedelta(minutes=5))
        assert run_due(now=at) == 1
    case.refresh_from_db()
    assert case.stage == Stage.CLOSED and case.outcome == "no_response"
    assert _kinds(case).count("requester_chased") == 3
    assert OutboxMessage.objects.filter(case=case, purpose="outcome").count() == 1


def test_an_answered_case_closes_itself_after_the_quiet_days(practice, office):
    case = _case(practice)
    actions.approve_and_send(case, actions.Actor.of(practice.coordinator), body="Booked for Friday.", now=MONDAY)
    case.refresh_from_db()
    assert case.next_action == NextAction.CONFIRM_RESOLVED and case.next_due_at == ny(2026, 3, 9, 10)
    run_due(now=ny(2026, 3, 9, 10, 1))
    case.refresh_from_db()
    assert case.stage == Stage.CLOSED and case.outcome == "resolved"


def test_a_snoozed_case_wakes_when_the_snooze_runs_out(practice, office):
    case = _case(practice, owner=practice.coordinator)
    actions.snooze(case, actions.Actor.of(practice.coordinator), until=ny(2026, 3, 4, 9), reason="fax promised",
                   now=MONDAY)
    run_due(now=ny(2026, 3, 4, 9, 1))
    case.refresh_from_db()
    assert case.snoozed_until is None and _kinds(case)[-1] == "woken"


def test_owner_reminders_at_half_and_ninety_percent_then_escalation_up_the_chain(practice, office):
    case = _case(practice, owner=practice.coordinator)  # first response 8 business hours
    case.refresh_from_db()
    assert case.next_due_at == ny(2026, 3, 3, 10)
    assert run_due(now=ny(2026, 3, 2, 15)) == 0
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 14))
    run_due(now=ny(2026, 3, 2, 14, 1))  # 4h01 of 8h used
    case.refresh_from_db()
    assert _kinds(case)[-1] == "owner_reminded"
    assert Event.objects.filter(case=case).last().data["fraction"] == 0.5
    assert case.next_due_at == ny(2026, 3, 3, 9, 12)  # 90 % of 8h = 7h12 business time
    run_due(now=case.next_due_at)
    case.refresh_from_db()
    assert Event.objects.filter(case=case).last().data["fraction"] == 0.9
    assert case.next_due_at == ny(2026, 3, 3, 10)
    run_due(now=ny(2026, 3, 3, 10))
    case.refresh_from_db()
    assert case.owner == practice.staff["jordan"] and case.escalation_level == 1  # the intake team lead
    run_due(now=case.next_due_at)
    case.refresh_from_db()
    assert case.owner == practice.supervisor and case.escalation_level == 2
    run_due(now=case.next_due_at)
    case.refresh_from_db()
    assert case.escalation_level == 2 and case.next_due_at > ny(2026, 3, 5, 9)
    reminders = Reminder.objects.filter(case=case)
    assert {r.staff.user.username for r in reminders} >= {"coordinator"}


def test_time_waiting_on_the_requester_does_not_count_against_the_team(practice, office):
    from closeloop.followups.clocks import sla_status

    case = _case(practice, owner=practice.coordinator)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator), now=ny(2026, 3, 2, 12))
    actions.record_inbound_message(case, actions.Actor.requester(), sender="maria@example.com", subject="Re",
                                   body="here", now=ny(2026, 3, 4, 12))
    status = sla_status(case, ny(2026, 3, 4, 13))
    assert status.first_response.elapsed_seconds == 3 * 3600  # 10-12 Monday, 12-13 Wednesday
    assert not status.paused and not status.breached
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator), now=ny(2026, 3, 4, 13))
    paused = sla_status(case, ny(2026, 3, 9, 13))
    assert paused.paused and paused.first_response.elapsed_seconds == 3 * 3600
    assert paused.first_response.remaining_seconds == 5 * 3600


def test_a_case_that_fails_to_evaluate_is_pushed_forward_and_the_error_surfaces(practice, office):
    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "reminder_fractions": "half"}
    rt.save()
    case = _case(practice, owner=practice.coordinator)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 14))
    with pytest.raises(ValueError, match="reminder_fractions"):
        run_due(now=ny(2026, 3, 2, 14, 1))
    case.refresh_from_db()
    assert case.next_due_at == ny(2026, 3, 2, 14, 16)
    assert run_due(now=ny(2026, 3, 2, 14, 2)) == 0


def test_the_noise_budget_keeps_a_gap_between_messages_about_one_case(practice, office, settings):
    from closeloop.followups import noise

    settings.CLOSELOOP_NOISE_MIN_GAP_HOURS = 24
    case = _awaiting_info(practice)
    noise.record(case, "maria@example.com", "chase", ny(2026, 3, 3, 9))
    run_due(now=ny(2026, 3, 3, 10, 1))
    case.refresh_from_db()
    assert case.followup_step == 0 and case.next_due_at == ny(2026, 3, 4, 9)


def test_the_daily_cap_defers_to_when_the_oldest_message_leaves_the_window(practice, office):
    from closeloop.followups import noise

    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "daily_cap": 2}
    rt.save()
    case = _awaiting_info(practice)
    other = _case(practice, email="maria@example.com")
    noise.record(other, "maria@example.com", "chase", ny(2026, 3, 2, 11))
    noise.record(other, "maria@example.com", "chase", ny(2026, 3, 3, 9))
    run_due(now=ny(2026, 3, 3, 10, 1))
    case.refresh_from_db()
    assert case.followup_step == 0 and case.next_due_at == ny(2026, 3, 3, 11)


def test_quiet_hours_hold_a_message_until_they_end(practice, office):
    from closeloop.followups import noise

    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "quiet_hours": ["20:00", "08:00"]}
    rt.save()
    case = _case(practice)
    assert noise.next_allowed(case, "maria@example.com", ny(2026, 3, 2, 21)) == ny(2026, 3, 3, 8)
    assert noise.next_allowed(case, "maria@example.com", ny(2026, 3, 3, 7)) == ny(2026, 3, 3, 8)
    assert noise.next_allowed(case, "maria@example.com", ny(2026, 3, 3, 9)) == ny(2026, 3, 3, 9)


def test_a_team_queue_case_gets_the_least_loaded_available_owner(practice, office):
    jordan, coordinator = practice.staff["jordan"], practice.coordinator
    for staff in (practice.supervisor, practice.admin, practice.specialist, practice.staff["drkim"]):
        staff.auto_assign = False
        staff.save()
    _case(practice, owner=coordinator)
    case = _case(practice, email="new@example.com")
    assert case.owner is None and case.team == practice.teams["intake"]
    _due(case, ny(2026, 3, 2, 11))
    case.refresh_from_db()
    assert case.owner == jordan and _kinds(case)[-1] == "assigned"
    Leave.objects.create(staff=jordan, starts_at=MONDAY, ends_at=MONDAY + timedelta(days=7))
    third = _case(practice, email="third@example.com")
    _due(third, ny(2026, 3, 2, 12))
    third.refresh_from_db()
    assert third.owner == coordinator


def test_a_requesters_open_cases_stay_with_one_owner(practice, office):
    first = _case(practice, owner=practice.supervisor)
    second = actions.open_case(actor=actions.Actor.system(), subject="Another", request_type=practice.types["referral"],
                               requester=first.requester, now=MONDAY)
    _due(second, ny(2026, 3, 2, 11))
    second.refresh_from_db()
    assert second.owner == practice.supervisor


def test_an_owner_who_does_not_act_in_time_loses_the_case_with_a_notice(practice, office):
    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "reassign_after_hours": 2}
    rt.save()
    case = _case(practice, owner=practice.coordinator)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 12, 30))
    run_due(now=ny(2026, 3, 2, 12, 30))
    case.refresh_from_db()
    assert case.owner != practice.coordinator and case.owner is not None
    notice = OutboxMessage.objects.get(case=case, purpose="reassigned")
    assert "coordinator@lakeside-ortho.example" in notice.to


def test_staff_get_one_digest_per_period_most_urgent_first(practice, office, smtp_server, settings):
    from closeloop.followups.digest import send_digests

    settings.CLOSELOOP_DIGEST_MINUTES = 60
    late = _case(practice, owner=practice.coordinator, now=ny(2026, 3, 2, 12))
    early = _case(practice, owner=practice.coordinator, now=ny(2026, 3, 2, 9), email="b@example.com")
    for case in (late, early):
        Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 16, 30))
    run_due(now=ny(2026, 3, 2, 16, 30))
    assert Reminder.objects.filter(staff=practice.coordinator).count() == 2
    assert send_digests(now=ny(2026, 3, 2, 16, 31)) == 1
    assert send_digests(now=ny(2026, 3, 2, 16, 32)) == 0
    deliver_due()
    digests = smtp_server.to("coordinator@lakeside-ortho.example")
    assert len(digests) == 1
    body = digests[0].message.get_content()
    assert body.index(early.reference) < body.index(late.reference)
    # Due times read in the office's own zone (New York, EST before 8 March), not in UTC.
    early.refresh_from_db()
    local = early.resolution_due_at.astimezone(ZoneInfo("America/New_York"))
    assert f"due {local:%a %d %b %H:%M} EST" in body and "UTC" not in body


def test_the_worker_loop_runs_the_follow_up_jobs(practice, office):
    from closeloop.worker import jobs

    names = [name for name, _ in jobs()]
    assert "closeloop.followups.worker.run_due" in names and "closeloop.followups.digest.send_digests" in names


def test_specialists_are_never_picked_to_own_a_case(practice, office):
    """Specialists sit in the intake team to be briefed; they cannot assign, ask, reply or close, so a case
    they owned would stall. Automatic assignment picks only people who can work a case."""
    for staff in (practice.supervisor, practice.admin, practice.coordinator, practice.staff["jordan"]):
        staff.auto_assign = False
        staff.save()
    case = _case(practice)
    _due(case, ny(2026, 3, 2, 11))
    case.refresh_from_db()
    assert case.owner is None and not problems(case)  # it waits in the team queue, not with a specialist
    for who in (practice.specialist, practice.staff["drkim"]):
        with pytest.raises(actions.ActionError, match="specialist"):
            actions.assign(case, actions.Actor.of(practice.supervisor), owner=who)
        with pytest.raises(actions.ActionError, match="specialist"):
            actions.escalate(case, actions.Actor.of(practice.supervisor), reason="stuck", to=who)
    with pytest.raises(actions.ActionError, match="specialist"):
        _case(practice, email="other@example.com", owner=practice.specialist)


def _breached(practice, owner):
    """An owned referral whose 8-hour first response target ran out on Tuesday at 10:00."""
    case = _case(practice, owner=owner)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 3, 10, 5))
    return case


@pytest.mark.parametrize("away", ["inactive", "on_leave"])
def test_escalation_passes_over_a_team_lead_who_left_or_is_on_leave(practice, office, away):
    """The chain is owner → team lead → supervisor; a lead who cannot take the case is skipped, not handed
    it (before: an inactive lead made every escalation raise and the case never escalated)."""
    jordan = practice.staff["jordan"]  # the intake team's lead
    if away == "inactive":
        jordan.is_active = False
        jordan.save()
    else:
        Leave.objects.create(staff=jordan, starts_at=MONDAY, ends_at=MONDAY + timedelta(days=14), reason="holiday")
    case = _breached(practice, practice.coordinator)
    run_due(now=ny(2026, 3, 3, 10, 5))
    case.refresh_from_db()
    assert case.escalation_level == 1 and case.owner == practice.supervisor
    assert OutboxMessage.objects.filter(case=case, purpose="escalation", to=[practice.supervisor.user.email]).exists()
    assert problems(case) == []


def test_a_reminder_for_an_owner_on_leave_goes_to_the_team_lead(practice, office):
    """Leave means no assignment and no reminders: what the absent owner owes reaches someone who is in
    (the team lead), not a digest the owner reads after their holiday."""
    Leave.objects.create(staff=practice.coordinator, starts_at=MONDAY, ends_at=MONDAY + timedelta(days=14))
    case = _case(practice, owner=practice.coordinator)
    Case.objects.filter(pk=case.pk).update(next_due_at=ny(2026, 3, 2, 14, 1))
    run_due(now=ny(2026, 3, 2, 14, 1))  # half of the first response target used
    case.refresh_from_db()
    event = Event.objects.filter(case=case).last()
    assert event.kind == "owner_reminded" and event.data["to"] == practice.staff["jordan"].pk
    assert list(Reminder.objects.filter(case=case).values_list("staff__user__username", flat=True)) == ["jordan"]
    assert case.owner == practice.coordinator and problems(case) == []


def test_quiet_hours_that_end_at_midnight_hold_a_message_until_midnight(practice, office):
    """["20:00", "24:00"] is accepted as quiet hours; before, their end was read as the start of the same day,
    an instant already past, so the message went out at 21:00 in the middle of them."""
    from closeloop.followups import noise

    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "quiet_hours": ["20:00", "24:00"]}
    rt.save()
    case = _case(practice)
    assert noise.next_allowed(case, "maria@example.com", ny(2026, 3, 2, 21)) == ny(2026, 3, 3, 0)
    assert noise.next_allowed(case, "maria@example.com", ny(2026, 3, 2, 19)) == ny(2026, 3, 2, 19)
    rt.policy = {**rt.policy, "quiet_hours": ["22:00", "07:30"]}  # across the spring-forward night
    rt.save()
    assert noise.next_allowed(case, "maria@example.com", ny(2026, 3, 7, 23)) == ny(2026, 3, 8, 7, 30)


def test_a_request_for_information_that_bounces_hands_the_case_back_to_staff(practice, office, smtp_server):
    """The requester's address no longer exists: waiting on them would only chase a dead address three times
    and close the case as 'no response'. The case goes back to its owner, who must reach them another way."""

    async def no_such_user(server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such user"

    smtp_server.handler.handle_RCPT = no_such_user
    case = _case(practice, owner=practice.coordinator)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator), fields=["date_of_birth"], now=MONDAY)
    deliver_due()
    case.refresh_from_db()
    assert _kinds(case)[-2:] == ["mail_failed", "requester_unreachable"]
    assert (case.stage, case.waiting_on, case.owner) == (Stage.IN_PROGRESS, "owner", practice.coordinator)
    assert problems(case) == []
    run_due(now=ny(2026, 3, 3, 10, 5))
    assert "requester_chased" not in _kinds(case)


def test_an_answer_that_bounces_is_not_auto_closed_as_resolved(practice, office, smtp_server):
    async def no_such_user(server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such user"

    smtp_server.handler.handle_RCPT = no_such_user
    case = _case(practice, owner=practice.coordinator)
    actions.approve_and_send(case, actions.Actor.of(practice.coordinator), body="Booked for Friday.", now=MONDAY)
    deliver_due()
    case.refresh_from_db()
    assert case.stage == Stage.IN_PROGRESS and _kinds(case)[-1] == "requester_unreachable"
    run_due(now=ny(2026, 3, 9, 10, 1))
    case.refresh_from_db()
    assert case.stage != Stage.CLOSED


def test_our_own_mail_server_down_for_hours_does_not_hand_cases_back(practice, office, settings):
    """When the retry time runs out the message fails, but the fault was ours (nothing answered), not the
    address: the case keeps waiting on the requester (and the message goes when the server answers again)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_PORT = 1  # nothing listens there
    case = _case(practice, owner=practice.coordinator)
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator), fields=["date_of_birth"], now=MONDAY)
    retry_for = timedelta(hours=settings.CLOSELOOP_OUTBOX_RETRY_HOURS)
    OutboxMessage.objects.filter(case=case).update(attempts=7, failing_since=timezone.now() - retry_for)
    deliver_due()
    case.refresh_from_db()
    assert OutboxMessage.objects.get(case=case, purpose="missing_info").status == "failed"
    assert _kinds(case)[-1] == "mail_failed" and case.stage == Stage.AWAITING_INFO


def test_a_requester_without_email_is_not_chased_into_the_void_the_case_comes_back_to_its_owner(practice, office):
    """A faxed referral's requester may have no email address: chasers would be recorded but go nowhere, and
    the case would close as 'no response' with nobody told. At the first chaser it returns to its owner."""
    case = _awaiting_info(practice, email="", owner=practice.coordinator)
    assert _due(case, ny(2026, 3, 3, 10, 30)) == 1
    case.refresh_from_db()
    assert case.stage == Stage.IN_PROGRESS and case.owner == practice.coordinator
    assert _kinds(case)[-1] == "requester_unreachable" and "requester_chased" not in _kinds(case)
    assert "no email address" in Event.objects.filter(case=case).last().data["error"]
    assert not problems(case) and not OutboxMessage.objects.filter(case=case, purpose="chase").exists()
