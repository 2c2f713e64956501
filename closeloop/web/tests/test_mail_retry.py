"""Failed outbound mail is retried from the case page: POST with CSRF, staff who work the case only, audited."""

from __future__ import annotations

from typing import Any

from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import AuditEntry, Case, Message
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import deliver_due

from .conftest import signed_in


def _failed_request(case: Case, smtp_server: Any) -> OutboxMessage:
    """Ask the requester for information; the mail server refuses the address for good."""
    smtp_server.handler.refuse_with = "550 5.1.1 mailbox unavailable"
    actions.request_missing_info(case, actions.Actor.system())
    deliver_due()
    smtp_server.handler.refuse_with = None
    row = OutboxMessage.objects.get(case=case, purpose="missing_info")
    assert row.status == OutboxMessage.Status.FAILED
    return row


def _retry_url(case: Case, row: OutboxMessage) -> str:
    return f"/c/{case.pk}/mail/{row.pk}/retry"


def test_it_offers_retry_on_failed_mail_and_queues_it_again(coordinator_client: Client, referral: Case,
                                                            smtp_server: Any) -> None:
    row = _failed_request(referral, smtp_server)
    html = coordinator_client.get(f"/c/{referral.pk}/").content.decode()
    assert f'action="{_retry_url(referral, row)}"' in html and "Mail could not be delivered" in html
    assert "to maria@example.com" in html and "5.1.1 mailbox unavailable" in html  # which mail, and why
    response = coordinator_client.post(_retry_url(referral, row), follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "queued again" in page and "Mail sent again on request" in page  # the event's label
    assert f'action="{_retry_url(referral, row)}"' not in page  # no button once it is no longer failed
    row.refresh_from_db()
    assert row.status == OutboxMessage.Status.PENDING
    assert Message.objects.get(message_id=row.message_id).status == Message.Status.QUEUED
    assert referral.events.get(kind="mail_retried").actor_label
    assert AuditEntry.objects.filter(action="mail_retry", case=referral, user__username="coordinator").exists()
    assert deliver_due() == 1 and smtp_server.to("maria@example.com")


def test_a_second_retry_of_the_same_message_says_it_is_not_failed(coordinator_client: Client, referral: Case,
                                                                  smtp_server: Any) -> None:
    row = _failed_request(referral, smtp_server)
    coordinator_client.post(_retry_url(referral, row))
    response = coordinator_client.post(_retry_url(referral, row), follow=True)
    assert "not retried" in response.content.decode()
    assert referral.events.filter(kind="mail_retried").count() == 1


def test_retry_needs_a_role_that_works_cases_and_the_case_in_sight(practice: Any, referral: Case,
                                                                   smtp_server: Any) -> None:
    row = _failed_request(referral, smtp_server)
    referral.refresh_from_db()
    actions.hand_to_specialist(referral, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Consult?")
    specialist = signed_in("specialist")
    assert specialist.get(f"/c/{referral.pk}/").status_code == 200
    assert _retry_url(referral, row) not in specialist.get(f"/c/{referral.pk}/").content.decode()
    assert specialist.post(_retry_url(referral, row)).status_code == 403
    other = actions.open_case(actor=actions.Actor.system(), subject="Records for court",
                              request_type=practice.types["records"])
    supervisor = signed_in("supervisor")
    assert supervisor.post(f"/c/{other.pk}/mail/{row.pk}/retry").status_code == 404  # not this case's mail
    assert signed_in("coordinator").post(f"/c/{other.pk}/mail/{row.pk}/retry").status_code == 404
    assert signed_in("coordinator").get(_retry_url(referral, row)).status_code == 405
    assert OutboxMessage.objects.get(pk=row.pk).status == OutboxMessage.Status.FAILED


def test_retry_refuses_a_post_without_the_csrf_token(practice: Any, referral: Case, smtp_server: Any) -> None:
    row = _failed_request(referral, smtp_server)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="coordinator", password="demo")
    assert client.post(_retry_url(referral, row)).status_code == 403
    assert OutboxMessage.objects.get(pk=row.pk).status == OutboxMessage.Status.FAILED
