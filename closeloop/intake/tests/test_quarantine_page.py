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


def _csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/q/quarantine/")
    return client, client.cookies["csrftoken"].value


def test_staff_dismiss_an_entry_that_needs_nothing_kept_audited_and_listed_apart(practice, settings):
    from closeloop.cases.models import AuditEntry

    row = _oversized(settings)
    client, token = _csrf_client(practice.coordinator.user)
    assert client.post(f"/q/quarantine/{row.pk}/dismiss", {"reason": "spam"}).status_code == 403  # no CSRF token
    response = client.post(f"/q/quarantine/{row.pk}/dismiss", {"reason": "  a test <script>x</script>  ",
                                                               "csrfmiddlewaretoken": token}, follow=True)
    page = response.content.decode()
    assert "Dismissed." in page and "Nothing in quarantine" in page and "Dismissed (1)" in page
    assert '<span>Quarantine</span><span class="count">0</span>' in page
    row.refresh_from_db()  # kept, with who, when and why; the raw bytes too
    assert row.status == "dismissed" and row.meta["dismissed"]["by"] == practice.coordinator.user.username
    assert row.meta["dismissed"]["reason"] == "a test <script>x</script>" and "flood" in row.error
    audit = AuditEntry.objects.get(action="quarantine_dismiss")
    assert audit.user == practice.coordinator.user and audit.detail == f"inbound {row.pk}: a test <script>x</script>"
    listed = client.get("/q/quarantine/?show=dismissed").content.decode()
    assert "maria@example.com" in listed and "a test &lt;script&gt;x&lt;/script&gt;" in listed
    assert "<script>x" not in listed
    again = client.post(f"/q/quarantine/{row.pk}/dismiss", {"reason": "twice", "csrfmiddlewaretoken": token},
                        follow=True)
    assert "Not dismissed: inbound" in again.content.decode()
    assert AuditEntry.objects.filter(action="quarantine_dismiss").count() == 1


def test_a_dismissal_needs_a_reason_and_a_role_that_works_the_quarantine(practice, settings):
    row = _oversized(settings)
    client, token = _csrf_client(practice.coordinator.user)
    response = client.post(f"/q/quarantine/{row.pk}/dismiss", {"reason": "   ", "csrfmiddlewaretoken": token},
                           follow=True)
    assert "Not dismissed: say why" in response.content.decode()
    specialist = Client()
    specialist.force_login(practice.specialist.user)
    assert specialist.post(f"/q/quarantine/{row.pk}/dismiss", {"reason": "mine now"}).status_code == 403
    assert specialist.get("/q/quarantine/?show=dismissed").status_code == 403
    assert InboundMessage.objects.get(pk=row.pk).status == "quarantined"
