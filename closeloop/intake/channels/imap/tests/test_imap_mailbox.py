from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from imapclient import IMAPClient

from closeloop.intake.channels.imap.adapter import MailboxConfigError, MailboxRunner, poll_once
from closeloop.intake.models import InboundMessage, Mailbox
from closeloop.intake.pipeline import retry
from closeloop.intake.quarantine import quarantine_count
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


def _maildir_files(dovecot):
    """The Intake folder's message files, in the order they were appended (UID order)."""
    folder = dovecot.dir / "mail" / USER / ".Intake"
    return sorted((p for sub in ("new", "cur") for p in (folder / sub).iterdir()), key=lambda p: p.name)


def _seen(dovecot, folder="Intake"):
    client = _client(dovecot)
    client.select_folder(folder)
    seen = client.search(["SEEN"])
    client.logout()
    return seen


LATER = timedelta(hours=2)


@pytest.mark.django_db
def test_a_message_the_server_cannot_read_is_skipped_shown_and_fetched_once_readable(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    _append(dovecot, make_mail(subject="Unreadable one"), make_mail(sender="b@example.com", subject="Readable two"))
    bad = _maildir_files(dovecot)[0]
    mode = bad.stat().st_mode
    bad.chmod(0)  # dovecot reads mail as nobody: it fails this FETCH and drops the connection
    assert poll_once(mailbox) == 1
    assert list(InboundMessage.objects.filter(result="opened").values_list("subject", flat=True)) == ["Readable two"]
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 2 and mailbox.last_error == ""
    entry = InboundMessage.objects.get(status="quarantined")  # staff see which message, where, and why
    assert entry.external_id == f"unreadable:imap:{mailbox.pk}:{mailbox.uidvalidity}:1"
    assert "UID 1" in entry.error and "referrals" in entry.error and "Internal error" in entry.error
    assert retry(entry).status == "quarantined"  # a staff retry says why, and loses nothing
    assert poll_once(mailbox) == 0 and quarantine_count() == 1  # not yet due: one entry, not one per poll
    for path in _maildir_files(dovecot):  # the mail admin fixes the file (dovecot may have renamed it to cur/)
        path.chmod(mode)
    assert poll_once(mailbox, now=timezone.now() + LATER) == 1
    assert quarantine_count() == 0
    opened = InboundMessage.objects.get(subject="Unreadable one", result="opened")
    assert opened.external_id == f"imap:{mailbox.pk}:{mailbox.uidvalidity}:1"
    entry.refresh_from_db()
    assert (entry.status, entry.result, entry.case) == ("duplicate", "read_later", opened.case)
    assert poll_once(mailbox, now=timezone.now() + 2 * LATER) == 0
    assert InboundMessage.objects.filter(result="opened").count() == 2 and _seen(dovecot) == [1, 2]


@pytest.mark.django_db
def test_a_move_that_fails_after_storing_is_shown_and_done_later_without_a_second_case(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch, after_processing="move", move_to="../Done")
    _append(dovecot, make_mail(subject="First"), make_mail(sender="b@example.com", subject="Second"))
    assert poll_once(mailbox) == 2  # both stored; neither could be moved (the server refuses the folder name)
    entries = InboundMessage.objects.filter(status="quarantined").order_by("id")
    assert [e.external_id.rsplit(":", 1)[1] for e in entries] == ["1", "2"]
    assert all("could not be moved to ../Done" in e.error for e in entries)
    Mailbox.objects.filter(pk=mailbox.pk).update(move_to="Done")  # the admin fixes the folder name
    mailbox.refresh_from_db()
    assert poll_once(mailbox, now=timezone.now() + LATER) == 0
    assert quarantine_count() == 0 and InboundMessage.objects.filter(result="opened").count() == 2
    assert sorted(InboundMessage.objects.filter(result="read_later").values_list("case__subject", flat=True)) == [
        "First", "Second"]
    client = _client(dovecot)
    assert client.select_folder("Intake")[b"EXISTS"] == 0 and client.select_folder("Done")[b"EXISTS"] == 2
    client.logout()


@pytest.mark.django_db(transaction=True)
def test_the_idle_loop_steps_past_a_message_that_breaks_the_connection(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    _append(dovecot, make_mail(subject="Unreadable one"))
    _maildir_files(dovecot)[0].chmod(0)
    _append(dovecot, make_mail(sender="b@example.com", subject="Readable two"))
    stop = threading.Event()
    runner = threading.Thread(target=MailboxRunner(mailbox.pk, max_backoff=0.5).run, args=(stop,), daemon=True)
    runner.start()
    try:
        _wait(lambda: InboundMessage.objects.filter(result="opened").count() == 1)
        _append(dovecot, make_mail(sender="c@example.com", subject="Readable three"))
        _wait(lambda: InboundMessage.objects.filter(result="opened").count() == 2)
    finally:
        stop.set()
        runner.join(timeout=10)
    assert quarantine_count() == 1 and Mailbox.objects.get().last_error == ""


@pytest.mark.django_db(transaction=True)
def test_a_mailbox_that_cannot_log_in_is_shown_to_staff_until_it_works_again(dovecot, practice, monkeypatch):
    from django.test import Client

    mailbox = _mailbox(dovecot, practice, monkeypatch)
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong <b>password</b>")
    _append(dovecot, make_mail(subject="Waiting behind a wrong password"))
    staff = Client()
    staff.force_login(practice.coordinator.user)
    stop = threading.Event()
    runner = threading.Thread(target=MailboxRunner(mailbox.pk, max_backoff=0.5).run, args=(stop,), daemon=True)
    runner.start()
    try:
        _wait(lambda: Mailbox.objects.get().last_error != "")
        page = staff.get("/q/quarantine/").content.decode()
        assert "Mailbox referrals is not connecting" in page
        assert "LoginError: [AUTHENTICATIONFAILED] Authentication failed." in page
        assert 'data-goto="quarantine">\n      <span>Quarantine</span><span class="count">1</span>' in page
        health = Client().get("/healthz").json()  # monitoring sees it; the public answer names no mailbox
        assert health == {"status": "degraded", "failing_mailboxes": 1}
        monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)  # the admin fixes the password
        _wait(lambda: InboundMessage.objects.filter(result="opened").exists())
        _wait(lambda: Mailbox.objects.get().last_error == "")
    finally:
        stop.set()
        runner.join(timeout=10)
    assert "not connecting" not in staff.get("/q/quarantine/").content.decode()
    assert Client().get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_a_renumbered_folder_leaves_no_stale_entry_for_a_skipped_message(dovecot, practice, monkeypatch):
    mailbox = _mailbox(dovecot, practice, monkeypatch)
    raw = make_mail(subject="Unreadable, then renumbered")
    _append(dovecot, raw)
    _maildir_files(dovecot)[0].chmod(0)
    assert poll_once(mailbox) == 0 and quarantine_count() == 1
    client = _client(dovecot)
    client.delete_folder("Intake")  # recreated with the message readable: the server renumbers everything
    client.create_folder("Intake")
    client.append("Intake", raw)
    client.logout()
    mailbox.refresh_from_db()
    assert poll_once(mailbox) == 1
    assert quarantine_count() == 0  # the rescan fetched it anew; the old UID's entry is closed, not left to rot
    stale = InboundMessage.objects.get(external_id__startswith="unreadable:")
    assert (stale.status, stale.result) == ("duplicate", "renumbered") and "UIDVALIDITY" in stale.meta["closed"]
