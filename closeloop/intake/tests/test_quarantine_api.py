"""Quarantine dismissal over the API: a required reason, the page's roles, audited, 409 once not quarantined."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from closeloop.cases.models import AuditEntry
from closeloop.cases.tokens import create_token
from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process

pytestmark = pytest.mark.django_db


def _quarantined(settings):
    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 100
    raw = b"From: maria@example.com\r\nSubject: Referral\r\nMessage-ID: <big@x>\r\n\r\n" + b"knee pain " * 40
    row, _ = receive_and_process(Inbound(channel="import", raw=raw))
    row.refresh_from_db()
    assert row.status == "quarantined"
    return row


def dismiss(staff, inbound_id, payload):
    token = create_token(staff, "test")
    body = {"data": json.dumps(payload), "content_type": "application/json"} if payload is not None else {}
    return Client().post(f"/api/intake/inbound/{inbound_id}/dismiss", HTTP_AUTHORIZATION=f"Bearer {token}",
                         REMOTE_ADDR="10.0.0.7", **body)


def test_staff_dismiss_a_quarantined_message_with_a_reason_kept_and_audited(practice, settings):
    row = _quarantined(settings)
    response = dismiss(practice.coordinator, row.pk, {"reason": "  spam, no patient  "})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "dismissed" and response.json()["id"] == row.pk
    row.refresh_from_db()
    assert row.status == "dismissed" and row.meta["dismissed"]["reason"] == "spam, no patient"
    assert row.meta["dismissed"]["by"] == practice.coordinator.user.username
    audit = AuditEntry.objects.get(action="quarantine_dismiss")
    assert audit.user == practice.coordinator.user and audit.ip == "10.0.0.7"
    assert dismiss(practice.coordinator, row.pk, {"reason": "again"}).status_code == 409
    assert AuditEntry.objects.filter(action="quarantine_dismiss").count() == 1


def test_a_dismissal_needs_a_reason(practice, settings):
    row = _quarantined(settings)
    assert dismiss(practice.coordinator, row.pk, None).status_code == 400  # no body at all
    assert dismiss(practice.coordinator, row.pk, {}).status_code == 422
    blank = dismiss(practice.coordinator, row.pk, {"reason": "   "})
    assert blank.status_code == 400 and "say why" in blank.json()["detail"]
    assert dismiss(practice.coordinator, row.pk, {"reason": "x" * 301}).status_code == 422
    assert InboundMessage.objects.get(pk=row.pk).status == "quarantined"


def test_only_roles_that_work_the_quarantine_dismiss(practice, settings):
    row = _quarantined(settings)
    assert dismiss(practice.specialist, row.pk, {"reason": "mine now"}).status_code == 403
    assert dismiss(practice.coordinator, row.pk + 999, {"reason": "gone"}).status_code == 404
    assert InboundMessage.objects.get(pk=row.pk).status == "quarantined"
    assert dismiss(practice.supervisor, row.pk, {"reason": "test message"}).status_code == 200


def test_a_processed_message_is_not_dismissed(practice, settings):
    row, _ = receive_and_process(Inbound(channel="import", raw=(
        b"From: maria@example.com\r\nSubject: Referral\r\nMessage-ID: <ok@x>\r\n\r\nknee pain")))
    row.refresh_from_db()
    assert row.status == "processed"
    answer = dismiss(practice.coordinator, row.pk, {"reason": "spam"})
    assert answer.status_code == 409 and "not in quarantine" in answer.json()["detail"]
