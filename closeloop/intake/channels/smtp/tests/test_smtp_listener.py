from __future__ import annotations

import smtplib
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest

from closeloop.intake.channels.smtp.adapter import ListenerConfig, listener
from closeloop.intake.models import InboundMessage, SmtpRoute
from closeloop.intake.tests.conftest import make_mail, running_listener
from closeloop.testing.postgres import free_port
from closeloop.testing.waiting import wait_for as _wait_for

pytestmark = pytest.mark.django_db(transaction=True)



@pytest.fixture
def smtp_intake(practice):
    with running_listener(practice, "Referrals@Intake.Local", max_bytes=200_000) as config:
        yield config


def test_it_accepts_routed_mail_stores_it_and_opens_a_typed_case(smtp_intake):
    with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
        client.sendmail("maria@example.com", ["referrals@intake.local"], make_mail(to="referrals@intake.local"))
    row = _wait_for(lambda: InboundMessage.objects.filter(channel="smtp", status="processed").first())
    assert row.result == "opened" and row.meta["request_type"] == "referral"
    assert row.case.request_type.slug == "referral" and row.case.channel == "email"
    assert row.case.outbox.filter(purpose="ack").exists()


def test_it_refuses_recipients_without_a_route(smtp_intake):
    with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("x@example.com", ["someone@elsewhere.example"], make_mail())
    assert not InboundMessage.objects.exists()


def test_it_refuses_messages_over_the_size_limit_before_storing_them(smtp_intake):
    big = make_mail(attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * 300_000)])
    with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
        with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as refused:
            client.sendmail("maria@example.com", ["referrals@intake.local"], big)
    assert refused.value.smtp_code == 552
    assert b"the limit here is 195.3 KB" in refused.value.smtp_error  # the sender's bounce says how big may be
    assert not InboundMessage.objects.exists()


def test_a_sender_that_does_not_declare_the_size_hears_the_limit_after_the_data(smtp_intake):
    big = make_mail(attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * 300_000)])
    with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
        client.ehlo()
        client.mail("maria@example.com")  # no SIZE=: the listener finds out while reading
        client.rcpt("referrals@intake.local")
        code, reply = client.data(big.replace(b"\n", b"\r\n"))  # smtplib leaves bytes' line ends alone
    assert (code, b"the limit here is 195.3 KB" in reply) == (552, True), reply
    assert not InboundMessage.objects.exists()


def test_the_same_message_resent_after_a_timeout_is_stored_once(smtp_intake):
    raw = make_mail(message_id="<resend-1@example.com>")
    for _ in range(2):
        with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
            client.sendmail("maria@example.com", ["referrals@intake.local"], raw)
    _wait_for(lambda: InboundMessage.objects.filter(status="processed").exists())
    assert InboundMessage.objects.count() == 1


def test_two_messages_from_one_sender_are_two_inputs_not_a_resend(smtp_intake):
    # The From header's <address> comes before the Message-ID: it must not be taken for it.
    for subject in ("Referral for knee pain", "Referral for hip pain"):
        with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
            client.sendmail("maria@example.com", ["referrals@intake.local"], make_mail(subject=subject))
    _wait_for(lambda: InboundMessage.objects.filter(status="processed").count() == 2)
    assert InboundMessage.objects.filter(result="opened").count() == 2


@pytest.fixture
def tls_auth_intake(practice):
    SmtpRoute.objects.create(address="records@intake.local", request_type=practice.types["records"])
    folder = Path(tempfile.mkdtemp())
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
               "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"),
               "-out", str(folder / "cert.pem")]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603  # fixed command
    config = ListenerConfig("127.0.0.1", free_port(), 1_000_000, "scanner", "s3cret",
                            str(folder / "cert.pem"), str(folder / "key.pem"))
    controller = listener(config)
    controller.start()
    yield config, folder / "cert.pem"
    controller.stop()


def test_with_auth_configured_it_needs_starttls_and_the_password(tls_auth_intake):
    config, cert = tls_auth_intake
    context = ssl.create_default_context(cafile=str(cert))
    with smtplib.SMTP(config.host, config.port) as client:
        with pytest.raises(smtplib.SMTPException):
            client.login("scanner", "s3cret")  # no AUTH before STARTTLS
    with smtplib.SMTP(config.host, config.port) as client:
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("scanner", "wrong")
    with smtplib.SMTP(config.host, config.port) as client:
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("maria@example.com", ["records@intake.local"], make_mail())  # not logged in
    with smtplib.SMTP(config.host, config.port) as client:
        client.starttls(context=context)
        client.login("scanner", "s3cret")
        client.sendmail("maria@example.com", ["records@intake.local"], make_mail())
    row = _wait_for(lambda: InboundMessage.objects.filter(status="processed").first())
    assert row.case.request_type.slug == "records"


def test_a_different_message_reusing_a_message_id_is_not_dropped(smtp_intake):
    # Scanners and fax gateways with a fixed or reset counter reuse Message-IDs: only a resend of the
    # same message is the same input.
    for patient in ("Maria Gonzalez", "John Park"):
        with smtplib.SMTP(smtp_intake.host, smtp_intake.port) as client:
            client.sendmail("scanner@example.com", ["referrals@intake.local"],
                            make_mail(sender="scanner@example.com", subject=f"Scan: {patient}",
                                      body=f"Referral for {patient}", message_id="<1@scanner.local>"))
    _wait_for(lambda: InboundMessage.objects.filter(status="processed").count() == 2)
    assert sorted(InboundMessage.objects.values_list("subject", "result")) == [
        ("Scan: John Park", "opened"), ("Scan: Maria Gonzalez", "opened")]
