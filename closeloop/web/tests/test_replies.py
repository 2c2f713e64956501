"""The reply composer: templates per request type and purpose, rendered against the case on the
server; drafts that wait for approval when the request type's policy says so."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.links import status_url
from closeloop.cases.models import Case, Message, Party
from closeloop.outbound.outbox import deliver_due
from closeloop.web.models import ReplyTemplate

from .conftest import signed_in


def template(name: str, case: Case | None = None) -> ReplyTemplate:
    return ReplyTemplate.objects.get(name=name, request_type=case.request_type if case else None)


def compose(client: Client, case: Case, chosen: ReplyTemplate) -> str:
    response = client.get(f"/c/{case.pk}/compose/", {"reply-template": chosen.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_the_demo_offers_templates_per_request_type_and_purpose(coordinator_client: Client, referral: Case) -> None:
    page = coordinator_client.get(f"/c/{referral.pk}/").content.decode()
    for offered in ("Referral accepted", "Need more information", "Closing notice", "Specialist&#x27;s answer"):
        assert f">{offered}</option>" in page
    records = ReplyTemplate.objects.get(name="Records sent", request_type__slug="records")
    assert f'<option value="{records.pk}">Records sent</option>' not in page  # a records template; a referral


def test_choosing_a_template_fills_the_draft_rendered_against_the_case(coordinator_client: Client,
                                                                       referral: Case) -> None:
    fragment = html.unescape(compose(coordinator_client, referral, template("Need more information")))
    assert "Hello Maria Gonzalez," in fragment
    assert f"We need a little more for {referral.reference}" in fragment
    assert "  - the referring provider's name\n  - the insurance company\n" in fragment
    assert status_url(referral) in fragment
    assert "Casey Morgan" in fragment  # signed by the person composing


def test_a_template_cannot_inject_markup_into_the_page(coordinator_client: Client, referral: Case) -> None:
    Party.objects.filter(pk=referral.requester_id).update(name="<script>alert(1)</script>")
    fragment = compose(coordinator_client, Case.objects.get(pk=referral.pk), template("Closing notice"))
    assert "<script>alert(1)</script>" not in fragment
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt;," in fragment


def test_it_refuses_a_template_offered_for_another_type(coordinator_client: Client, practice: Any,
                                                        referral: Case) -> None:
    records = ReplyTemplate.objects.get(name="Records sent", request_type=practice.types["records"])
    fragment = compose(coordinator_client, referral, records)
    assert "That template is not offered for this case." in fragment
    assert "Records sent" not in fragment


def test_a_broken_template_says_so_and_admin_refuses_to_save_one(coordinator_client: Client,
                                                                 referral: Case) -> None:
    broken = ReplyTemplate.objects.create(name="Broken", subject="Hi", body="{% if %}")
    assert "has an error; ask an admin to fix it" in compose(coordinator_client, referral, broken)
    with pytest.raises(ValidationError) as error:
        broken.full_clean()
    assert "body" in error.value.message_dict


def test_a_reply_waits_for_a_second_person_when_the_policy_says_so(practice: Any, referral: Case,
                                                                   smtp_server: Any) -> None:
    rt = referral.request_type
    rt.policy = {**rt.policy, "reply_approval": "second_person"}
    rt.save()
    coordinator = signed_in("coordinator")
    chosen = template("Referral accepted", referral)
    assert "Send now" not in compose(coordinator, referral, chosen)
    data = {"reply-version": referral.version, "reply-template": chosen.pk, "reply-subject": "Referral accepted",
            "reply-body": "Hello Maria, we accepted the referral.", "send": "1"}
    assert coordinator.post(f"/c/{referral.pk}/do/reply/", data).status_code == 403
    del data["send"]
    assert coordinator.post(f"/c/{referral.pk}/do/reply/", data).status_code == 302
    draft = Message.objects.get(case=referral, status=Message.Status.DRAFT)
    assert draft.purpose == "referral_accepted" and draft.created_by == practice.coordinator

    version = Case.objects.get(pk=referral.pk).version
    approve = {"approve-version": version, "approve-message": draft.pk,
               "approve-body": "Hello Maria, we accepted the referral; we call you this week."}
    page = coordinator.get(f"/c/{referral.pk}/").content.decode()
    assert "Someone other than its author approves this draft." in page
    assert coordinator.post(f"/c/{referral.pk}/do/approve/", approve).status_code == 403

    supervisor = signed_in("supervisor")
    response = supervisor.post(f"/c/{referral.pk}/do/approve/", approve, follow=True)
    assert "Reply edited, approved and sent." in response.content.decode()
    deliver_due()
    [mail] = smtp_server.to("maria@example.com")
    assert "we call you this week" in mail.message.get_content()
    assert mail.message["Subject"] == "Referral accepted"
    sent = Message.objects.get(pk=draft.pk)
    assert sent.status != Message.Status.DRAFT and sent.approved_by == practice.supervisor


def test_a_purpose_the_type_auto_sends_goes_out_without_approval(practice: Any, referral: Case) -> None:
    actions.hand_to_specialist(referral, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Consult?")
    specialist = signed_in("specialist")
    chosen = template("Specialist's answer")
    assert "Send now" not in compose(specialist, referral, chosen)  # a specialist drafts; an approver sends
    actions.record_specialist_answer(referral, actions.Actor.of(practice.specialist), answer="Next week.")
    rt = referral.request_type
    rt.auto_send = [*rt.auto_send, "reply"]
    rt.save()
    assert "Send now" in compose(specialist, referral, chosen)
    response = specialist.post(f"/c/{referral.pk}/do/reply/", {
        "reply-version": Case.objects.get(pk=referral.pk).version, "reply-template": chosen.pk,
        "reply-subject": "Your referral", "reply-body": "We will see Maria next week.", "send": "1"})
    assert response.status_code == 302, response.content.decode()
    sent = Message.objects.get(case=referral, direction="out", subject="Your referral")
    assert (sent.status, sent.purpose) == ("queued", chosen.purpose)


def test_admins_edit_reply_templates(practice: Any) -> None:
    client = Client()
    client.force_login(practice.admin.user)
    assert client.get("/admin/web/replytemplate/").status_code == 200
    response = client.post("/admin/web/replytemplate/add/", {
        "name": "Results ready", "purpose": "reply", "request_type": practice.types["results"].pk,
        "subject": "Results for {{ reference }}", "body": "{% for x in %}", "position": 5, "is_active": "on"})
    assert response.status_code == 200 and "template error" in response.content.decode()
    assert not ReplyTemplate.objects.filter(name="Results ready").exists()


def test_send_now_is_not_offered_while_the_case_awaits_an_answer(practice: Any, referral: Case) -> None:
    supervisor = signed_in("supervisor")
    chosen = template("Referral accepted", referral)
    assert "Send now" in compose(supervisor, referral, chosen)
    actions.hand_to_specialist(referral, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Consult?")
    fragment = compose(supervisor, referral, chosen)
    assert "Send now" not in fragment
    assert "Sending a reply answers the case, which a case in" in fragment
    assert "Save draft for approval" in fragment
    page = supervisor.get(f"/c/{referral.pk}/").content.decode()
    assert "Send now" not in page and "cannot be yet" in page
