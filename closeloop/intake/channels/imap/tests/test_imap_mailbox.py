from __future__ import annotations

import threading

import pytest
from imapclient import IMAPClient

from closeloop.intake.channels.imap.adapter import MailboxConfigError, MailboxRunner, poll_once
from closeloop.intake.models import InboundMessage, Mailbox
from closeloop.intake.tests.conftest import make_mail
from closeloop.intake.tests.dovecot import PASSWORD, USER
from closeloop.testing.waiting import wait_for


def _mailbox(dovecot, practice, monkeypatch, **kw):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    fields = dict(name="referrals", host="127.0.0.1", port=dovecot.port, security="none", username=USER,
                  password_env="TEST_IMAP_PASSWORD", folder="Intake", request_type=practice.types["referral"],
                  poll_seconds=1)
    return Mailbox.objects.create(**{**fields, **kw})


def _client(dovecot):
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False)
    client.login(USER, PASSWORD)
    if not client.folder_exists("Intake"):
        client.create_folder("Intake")
    return client


def _append(dovecot, *raws):
    client = _client(dovecot)
    for raw in raws:
        client.append("Intake", raw)
    client.logout()


@pytest.mark.django_db
def test_it_fetches_new_mail_opens_cases_and_marks_it_seen(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    _append(dovecot, make_mail(subject="Referral one"), make_mail(sender="b@example.com", subject="Referral two"))
    assert poll_once(mailbox) == 2
    rows = InboundMessage.objects.filter(channel="imap").order_by("id")
    assert [r.result for r in rows] == ["opened", "opened"]
    assert rows[0].case.request_type.slug == "referral"
    assert poll_once(mailbox) == 0
    client = _client(dovecot)
    client.select_folder("Intake")
    assert len(client.search(["SEEN"])) == 2
    client.logout()


@pytest.mark.django_db
def test_it_moves_processed_mail_when_configured(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch, after_processing="move", move_to="Done")
    _append(dovecot, make_mail())
    assert poll_once(mailbox) == 1
    client = _client(dovecot)
    assert client.select_folder("Intake")[b"EXISTS"] == 0
    assert client.select_folder("Done")[b"EXISTS"] == 1
    client.logout()


@pytest.mark.django_db
def test_a_uidvalidity_change_does_not_store_known_messages_twice(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    first = make_mail(subject="Known one", message_id="<known-1@example.com>")
    _append(dovecot, first)
    assert poll_once(mailbox) == 1
    old_validity = Mailbox.objects.get().uidvalidity
    client = _client(dovecot)
    client.delete_folder("Intake")  # recreated: the server renumbers everything
    client.create_folder("Intake")
    client.append("Intake", first)
    client.append("Intake", make_mail(sender="new@example.com", subject="Brand new"))
    client.logout()
    mailbox.refresh_from_db()
    assert poll_once(mailbox) == 1
    mailbox.refresh_from_db()
    assert mailbox.uidvalidity != old_validity and mailbox.last_uid == 2
    assert InboundMessage.objects.count() == 2


@pytest.mark.django_db
def test_a_missing_password_is_a_clear_error(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch, password_env="NO_SUCH_VARIABLE")
    with pytest.raises(MailboxConfigError, match="NO_SUCH_VARIABLE"):
        poll_once(mailbox)


@pytest.mark.django_db(transaction=True)
def test_the_idle_loop_survives_a_server_restart(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    _client(dovecot).logout()
    stop = threading.Event()
    runner = threading.Thread(target=MailboxRunner(mailbox.pk, max_backoff=0.5).run, args=(stop,), daemon=True)
    runner.start()
    try:
        _append(dovecot, make_mail(subject="Before the restart"))
        _wait(lambda: InboundMessage.objects.filter(result="opened").count() == 1)
        dovecot.stop()
        _wait(lambda: Mailbox.objects.get().last_error != "")
        dovecot.start()
        _append(dovecot, make_mail(sender="c@example.com", subject="After the restart"))
        _wait(lambda: InboundMessage.objects.filter(result="opened").count() == 2)
    finally:
        stop.set()
        runner.join(timeout=10)
    assert set(InboundMessage.objects.values_list("subject", flat=True)) == {"Before the restart", "After the restart"}


def _wait(predicate, timeout=20.0):
    wait_for(predicate, timeout, "the mailbox")


@pytest.mark.django_db
def test_a_different_message_reusing_a_known_message_id_is_still_fetched(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    _append(dovecot, make_mail(sender="scanner@example.com", subject="Scan one", message_id="<1@scanner.local>"))
    assert poll_once(mailbox) == 1
    _append(dovecot, make_mail(sender="scanner@example.com", subject="Scan two", body="Another patient",
                               message_id="<1@scanner.local>"))
    assert poll_once(mailbox) == 1
    assert sorted(InboundMessage.objects.values_list("subject", "result")) == [
        ("Scan one", "opened"), ("Scan two", "opened")]
