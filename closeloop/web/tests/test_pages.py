"""Staff pages through the Django test client: permissions, CSRF, escaping, conflicts, query counts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import AuditEntry, Case, Message, Party
from closeloop.cases.stages import Stage
from closeloop.outbound.models import OutboxMessage

from .conftest import signed_in


def test_it_sends_anonymous_visitors_to_sign_in(db: None) -> None:
    response = Client().get("/q/mine/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_shows_my_work_by_due_time_with_counts(coordinator_client: Client, referral: Case) -> None:
    response = coordinator_client.get("/", follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert referral.reference in html
    assert "My work" in html and "Human triage" in html and "Quarantine" in html


def test_it_renders_a_script_subject_as_text(coordinator_client: Client, practice: Any) -> None:
    case = actions.open_case(actor=actions.Actor.system(), subject="<script>alert(1)</script>",
                             request_type=practice.types["other"], owner=practice.coordinator)
    for url in ("/q/team/", f"/c/{case.pk}/"):
        html = coordinator_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_audits_every_view_of_a_case(coordinator_client: Client, referral: Case) -> None:
    coordinator_client.get(f"/c/{referral.pk}/")
    entry = AuditEntry.objects.get(case=referral, action="view")
    assert entry.user.username == "coordinator"


def test_it_hides_cases_outside_the_persons_teams(practice: Any) -> None:
    records = actions.open_case(actor=actions.Actor.system(), subject="Records for court",
                                request_type=practice.types["records"])
    assert signed_in("coordinator").get(f"/c/{records.pk}/").status_code == 404
    assert signed_in("specialist").get(f"/c/{records.pk}/").status_code == 404
    assert signed_in("supervisor").get(f"/c/{records.pk}/").status_code == 200


def test_it_refuses_actions_a_role_may_not_take(practice: Any, referral: Case) -> None:
    actions.hand_to_specialist(referral, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Consult?")
    client = signed_in("specialist")
    response = client.post(f"/c/{referral.pk}/do/assign/", {"assign-version": referral.version,
                                                            "assign-owner": practice.specialist.pk})
    assert response.status_code == 403


def test_it_requires_the_csrf_token(practice: Any, referral: Case) -> None:
    client = Client(enforce_csrf_checks=True)
    client.login(username="coordinator", password="demo")
    response = client.post(f"/c/{referral.pk}/do/snooze/", {"snooze-version": referral.version})
    assert response.status_code == 403


def test_it_says_when_someone_else_changed_the_case_first(coordinator_client: Client, practice: Any,
                                                           referral: Case) -> None:
    stale = referral.version
    actions.escalate(referral, actions.Actor.of(practice.supervisor), reason="VIP")
    response = coordinator_client.post(f"/c/{referral.pk}/do/snooze/", {
        "snooze-version": stale, "snooze-until": "2099-01-01T09:00", "snooze-reason": "waiting for fax"})
    assert response.status_code == 409
    assert "Someone else changed this case first" in response.content.decode()
    assert "waiting for fax" in response.content.decode()  # what they typed is kept
    assert Case.objects.get(pk=referral.pk).snoozed_until is None


def test_it_requests_missing_information_with_the_prefilled_fields(coordinator_client: Client,
                                                                   referral: Case) -> None:
    page = coordinator_client.get(f"/c/{referral.pk}/").content.decode()
    assert re.search(r'name="request_info-fields_wanted" value="insurance_payer"[^>]*checked', page)
    assert not re.search(r'name="request_info-fields_wanted" value="reason"[^>]*checked', page)
    response = coordinator_client.post(f"/c/{referral.pk}/do/request_info/", {
        "request_info-version": referral.version, "request_info-fields_wanted": ["insurance_payer"],
        "request_info-message": "A photo of the insurance card is fine."})
    assert response.status_code == 302
    case = Case.objects.get(pk=referral.pk)
    assert case.stage == Stage.AWAITING_INFO
    mail = OutboxMessage.objects.get(case=case, purpose="missing_info")
    assert "insurance company" in mail.body and "A photo of the insurance card is fine." in mail.body


def test_asking_a_requester_without_email_says_nothing_was_sent(coordinator_client: Client, referral: Case) -> None:
    Party.objects.filter(pk=referral.requester_id).update(email="")
    response = coordinator_client.post(f"/c/{referral.pk}/do/request_info/", {
        "request_info-version": referral.version, "request_info-fields_wanted": ["insurance_payer"]}, follow=True)
    page = response.content.decode()
    assert "no email address on file, so nothing was sent: ask them yourself on +1 617 555 0142" in page
    assert not OutboxMessage.objects.filter(case=referral, purpose="missing_info").exists()


def test_it_shows_a_clear_error_for_a_bad_action(coordinator_client: Client, referral: Case) -> None:
    response = coordinator_client.post(f"/c/{referral.pk}/do/snooze/", {
        "snooze-version": referral.version, "snooze-until": "2001-01-01T09:00", "snooze-reason": "x"})
    assert response.status_code == 400
    assert "snooze until a time in the future" in response.content.decode()


@pytest.mark.parametrize("query", ["CL-{pk:06d}", "1961-03-14", "617-555-0142", "gonzalez", "knee"])
def test_it_finds_a_case_by_reference_birth_date_phone_and_text(coordinator_client: Client, referral: Case,
                                                                query: str) -> None:
    other = actions.open_case(actor=actions.Actor.system(), subject="Billing statement",
                              request_type=None, requester=Party.objects.create(name="Ann Lee"))
    html = coordinator_client.get("/q/team/", {"q": query.format(pk=referral.pk)}).content.decode()
    assert referral.reference in html
    assert other.reference not in html


def test_it_assigns_and_snoozes_in_bulk(coordinator_client: Client, practice: Any, referral: Case) -> None:
    second = actions.open_case(actor=actions.Actor.system(), subject="Second", request_type=practice.types["other"])
    jordan = practice.staff["jordan"]
    response = coordinator_client.post("/bulk/", {"ids": [referral.pk, second.pk], "op": "assign",
                                                  "owner": jordan.pk, "next": "/q/team/"})
    assert response.status_code == 302 and response["Location"] == "/q/team/"
    assert set(Case.objects.filter(owner=jordan).values_list("pk", flat=True)) == {referral.pk, second.pk}
    coordinator_client.post("/bulk/", {"ids": [second.pk], "op": "snooze", "until": "2099-01-01T08:00",
                                       "reason": "after the holidays"})
    assert Case.objects.get(pk=second.pk).snooze_reason == "after the holidays"
    for away in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):  # only paths on this site
        response = coordinator_client.post("/bulk/", {"ids": [second.pk], "op": "assign", "owner": jordan.pk,
                                                      "next": away})
        assert response["Location"] == "/q/mine/", away


def test_it_polls_and_says_when_the_case_changed(coordinator_client: Client, practice: Any, referral: Case) -> None:
    seen = referral.version
    assert "changed" not in coordinator_client.get(f"/c/{referral.pk}/poll/?v={seen}").content.decode()
    actions.escalate(referral, actions.Actor.of(practice.supervisor), reason="VIP")
    assert "This case changed" in coordinator_client.get(f"/c/{referral.pk}/poll/?v={seen}").content.decode()


def test_it_shows_triage_suggestions(coordinator_client: Client, practice: Any) -> None:
    case = actions.open_case(actor=actions.Actor.system(), subject="Knee?", request_type=None)
    actions.send_to_triage(case, actions.Actor.model("classifier"), reason="low confidence",
                           suggestions=[{"type": "referral", "confidence": 0.55}])
    html = coordinator_client.get(f"/c/{case.pk}/").content.decode()
    assert "Suggestions for triage" in html and "referral — 55%" in html


def test_it_keeps_hot_pages_to_a_fixed_number_of_queries(coordinator_client: Client, practice: Any,
                                                         referral: Case, django_assert_max_num_queries: Any) -> None:
    for i in range(30):
        actions.open_case(actor=actions.Actor.system(), subject=f"Case {i}", request_type=practice.types["other"],
                          owner=practice.coordinator, requester=Party.objects.create(name=f"P {i}"))
    with django_assert_max_num_queries(10):  # page ids, then those rows
        assert coordinator_client.get("/q/team/").status_code == 200
    with django_assert_max_num_queries(18):  # + the reply templates offered
        assert coordinator_client.get(f"/c/{referral.pk}/").status_code == 200


def test_sessions_expire_after_the_configured_age(coordinator_client: Client, referral: Case, settings: Any) -> None:
    import time_machine
    from django.utils import timezone

    assert settings.SESSION_COOKIE_AGE == 8 * 3600 and settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    with time_machine.travel(timezone.now() + timedelta(hours=7, minutes=50)):
        assert coordinator_client.get("/q/mine/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=8, minutes=1)):
        response = coordinator_client.get("/q/mine/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")
        # A polling page is sent to the sign-in page as a whole page, not swapped into its rows.
        poll = coordinator_client.get(f"/c/{referral.pk}/poll/?v=1", HTTP_HX_REQUEST="true",
                                      HTTP_HX_CURRENT_URL=f"http://testserver/c/{referral.pk}/")
        assert poll.status_code == 204
        assert poll["HX-Redirect"] == f"/login/?next=%2Fc%2F{referral.pk}%2F"


def test_an_approvers_corrections_survive_a_conflict(coordinator_client: Client, practice: Any,
                                                     referral: Case) -> None:
    draft = actions.draft_reply(referral, actions.Actor.of(practice.staff["jordan"]), subject="Re: knee",
                                body="Hello,\n\nWe can see Maria.")
    stale = referral.version
    actions.escalate(referral, actions.Actor.of(practice.supervisor), reason="VIP")
    response = coordinator_client.post(f"/c/{referral.pk}/do/approve/", {
        "approve-version": stale, "approve-message": draft.pk, "approve-subject": "Re: knee, corrected",
        "approve-body": "Hello,\n\nWe can see Maria on Tuesday."})
    page = response.content.decode()
    assert response.status_code == 409 and "Someone else changed this case first" in page
    assert "We can see Maria on Tuesday." in page and "Re: knee, corrected" in page  # nothing typed is lost
    assert f'name="approve-version" value="{Case.objects.get(pk=referral.pk).version}"' in page
    assert Message.objects.get(pk=draft.pk).status == Message.Status.DRAFT


def test_it_says_why_an_approval_failed(coordinator_client: Client, practice: Any, referral: Case) -> None:
    draft = actions.draft_reply(referral, actions.Actor.of(practice.staff["jordan"]), subject="Re: knee",
                                body="Hello")
    Message.objects.filter(pk=draft.pk).update(status=Message.Status.DISCARDED)
    other = actions.draft_reply(referral, actions.Actor.of(practice.staff["jordan"]), subject="Re: knee 2",
                                body="Hello again")
    response = coordinator_client.post(f"/c/{referral.pk}/do/approve/", {
        "approve-version": Case.objects.get(pk=referral.pk).version, "approve-message": draft.pk,
        "approve-body": "Hello, corrected"})
    assert response.status_code == 400
    assert "that draft was already sent or discarded" in response.content.decode()
    assert Message.objects.get(pk=other.pk).status == Message.Status.DRAFT


def test_a_checklist_value_survives_a_conflict(coordinator_client: Client, practice: Any, referral: Case) -> None:
    stale = referral.version
    actions.escalate(referral, actions.Actor.of(practice.supervisor), reason="VIP")
    response = coordinator_client.post(f"/c/{referral.pk}/do/field/", {
        "field-version": stale, "field-name": "insurance_payer", "field-value": "Blue Cross MA"})
    page = response.content.decode()
    assert response.status_code == 409 and "Someone else changed this case first" in page
    assert 'value="Blue Cross MA"' in page
    assert "insurance_payer" not in Case.objects.get(pk=referral.pk).fields


def test_a_case_cannot_be_escalated_to_someone_who_may_not_work_it(practice: Any, referral: Case) -> None:
    """A specialist answers questions but cannot assign, ask, reply or close: as the owner, the case would stall."""
    page = signed_in("coordinator").get(f"/c/{referral.pk}/").content.decode()
    escalate_form = page[page.index('id="act-escalate"'):]
    assert f'value="{practice.specialist.pk}"' not in escalate_form[:escalate_form.index("</form>")]
    response = signed_in("coordinator").post(f"/c/{referral.pk}/do/escalate/", {
        "escalate-version": referral.version, "escalate-reason": "needs a clinician",
        "escalate-to": practice.specialist.pk})
    assert response.status_code == 400
    assert Case.objects.get(pk=referral.pk).owner == practice.coordinator
