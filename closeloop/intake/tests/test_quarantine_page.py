"""Staff see every intake failure with its error, and a retry that can succeed once the cause is fixed."""

from __future__ import annotations

import pytest
from django.test import Client

from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process

pytestmark = pytest.mark.django_db


def _oversized(settings):
    """A message refused by the flood guard (limit 0): parsed, so sender and subject are known."""
    settings.CLOSELOOP_INTAKE_SENDER_LIMIT = 0
    raw = (b"From: maria@example.com\r\nSubject: Referral <b>now</b>\r\nMessage-ID: <big@x>\r\n\r\n"
           + b"knee pain " * 40)
    row, _ = receive_and_process(Inbound(channel="import", raw=raw))
    row.refresh_from_db()
    assert row.status == "quarantined"
    return row


def test_the_quarantine_page_lists_failures_escaped_and_counts_them(practice, settings):
    row = _oversized(settings)
    client = Client()
    client.force_login(practice.coordinator.user)
    page = client.get("/q/quarantine/").content.decode()
    assert "maria@example.com" in page and "flood" in page
    assert f"/q/quarantine/{row.pk}/retry" in page
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode().count("closeloop_quarantine_size 1") == 1


def test_retry_after_the_cause_is_fixed_opens_the_case(practice, settings):
    # Over the size limit (a staff retry accepts a flood at once, so that cause will not do here).
    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 100
    raw = b"From: maria@example.com\r\nSubject: Referral\r\nMessage-ID: <big@x>\r\n\r\n" + b"knee pain " * 40
    row, _ = receive_and_process(Inbound(channel="import", raw=raw))
    client = Client()
    client.force_login(practice.coordinator.user)
    response = client.post(f"/q/quarantine/{row.pk}/retry", follow=True)
    assert b"Still failing" in response.content
    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 1_000_000
    response = client.post(f"/q/quarantine/{row.pk}/retry", follow=True)
    row.refresh_from_db()
    assert row.status == "processed" and row.case is not None
    assert row.case.reference.encode() in response.content
    assert b"Nothing in quarantine" in response.content


def test_specialists_cannot_work_the_quarantine(practice, settings):
    row = _oversized(settings)
    client = Client()
    client.force_login(practice.specialist.user)
    assert client.get("/q/quarantine/").status_code == 403
    assert client.post(f"/q/quarantine/{row.pk}/retry").status_code == 403
    assert InboundMessage.objects.get(pk=row.pk).status == "quarantined"
