"""A message whose FETCH kills the server's connection (no BYE: the stream ends or is reset) must not
hold up the mailbox forever: after a few losses on the same UID it is skipped like a message the
server refuses, with whatever of it arrived kept for staff. Real Dovecot behind a real TCP proxy."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from closeloop.intake.channels.imap.adapter import (
    LOSSES_BEFORE_SKIP,
    SALVAGE_CHUNK,
    ConnectionLost,
    MailboxRunner,
    poll_once,
)
from closeloop.intake.inbound import read_raw
from closeloop.intake.models import InboundMessage, Mailbox
from closeloop.intake.quarantine import quarantine_count
from closeloop.intake.tests.conftest import make_mail
from closeloop.intake.tests.dovecot import PASSWORD, USER
from closeloop.testing.waiting import wait_for

from .cutting_proxy import CuttingProxy
from .test_imap_mailbox import _append, _seen

MARKER = b"POISON-PILL-FOR-THE-SERVER"
LATER = timedelta(hours=2)


@pytest.fixture
def proxy_for(dovecot):
    proxies = []

    def make(command: bytes, **kw):
        proxies.append(CuttingProxy(dovecot.port, command, **kw).start())
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _mailbox(proxy, practice, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    return Mailbox.objects.create(name="referrals", host="127.0.0.1", port=proxy.port, security="none",
                                  username=USER, password_env="TEST_IMAP_PASSWORD", folder="Intake",
                                  request_type=practice.types["referral"], poll_seconds=1)


def _poison() -> bytes:
    """A message the server dies on when it reaches the marker, 2½ chunks in."""
    filler = "Referral letter text, line after line.\n" * (SALVAGE_CHUNK * 5 // 2 // 40)
    raw = make_mail(sender="poison@example.com", subject="Poisoned", body=filler + MARKER.decode() + "\nrest\n")
    return raw.replace(b"\n", b"\r\n")  # as the server keeps and serves it


@pytest.mark.django_db
def test_a_message_that_ends_the_connection_mid_fetch_is_skipped_with_what_arrived_kept(
        dovecot, proxy_for, practice, monkeypatch):
    proxy = proxy_for(rb"UID FETCH 2 \(BODY\.PEEK\[\]", marker=MARKER, mode="eof")
    mailbox = _mailbox(proxy, practice, monkeypatch)
    poison = _poison()
    _append(dovecot, make_mail(subject="Before"), poison, make_mail(sender="c@example.com", subject="After"))
    for _loss in range(LOSSES_BEFORE_SKIP - 1):  # a lost connection may be the network's fault: tried again
        with pytest.raises(ConnectionLost, match="UID 2"):
            poll_once(mailbox)
        assert quarantine_count() == 0 and mailbox.last_uid == 1
    assert poll_once(mailbox) == 1  # the same UID again: skipped like a poison message, and the rest comes in
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 3
    assert sorted(InboundMessage.objects.filter(result="opened").values_list("subject", flat=True)) == [
        "After", "Before"]
    entry = InboundMessage.objects.get(status="quarantined")
    assert entry.external_id == f"unreadable:imap:{mailbox.pk}:{mailbox.uidvalidity}:2"
    assert f"lost {LOSSES_BEFORE_SKIP} times" in entry.error and "UID 2" in entry.error
    kept = read_raw(entry.raw_path)  # every chunk that arrived whole before the server died
    assert len(kept) == 2 * SALVAGE_CHUNK and poison.startswith(kept) and entry.size == len(kept)
    assert f"{len(kept):,} bytes" in entry.error and entry.sender == "poison@example.com"
    staff = Client()
    staff.force_login(practice.coordinator.user)
    page = staff.get("/q/quarantine/").content.decode()
    assert "poison@example.com" in page and "UID 2" in page
    assert poll_once(mailbox) == 0 and quarantine_count() == 1  # not due yet: no refetch, no second entry
    proxy.armed = False  # the server is mended: the mailbox's own later try brings it in, whole
    assert poll_once(mailbox, now=timezone.now() + LATER) == 1
    assert quarantine_count() == 0
    opened = InboundMessage.objects.get(subject="Poisoned", result="opened")
    assert read_raw(opened.raw_path) == poison
    entry.refresh_from_db()
    assert (entry.status, entry.result, entry.case) == ("duplicate", "read_later", opened.case)
    assert _seen(dovecot) == [1, 2, 3]


@pytest.mark.django_db
def test_a_reset_on_the_whole_message_is_read_in_pieces_and_comes_in(dovecot, proxy_for, practice, monkeypatch):
    # The server dies only when asked for the whole message at once: read in chunks, all of it arrives.
    proxy = proxy_for(rb"UID FETCH 1 \(BODY\.PEEK\[\]\)", cut_after=100, mode="reset")
    mailbox = _mailbox(proxy, practice, monkeypatch)
    poison = _poison()
    _append(dovecot, poison)
    for _loss in range(LOSSES_BEFORE_SKIP - 1):
        with pytest.raises(ConnectionLost, match="reset"):
            poll_once(mailbox)
    assert poll_once(mailbox) == 1
    assert quarantine_count() == 0
    opened = InboundMessage.objects.get(result="opened")
    assert read_raw(opened.raw_path) == poison and opened.subject == "Poisoned"
    assert _seen(dovecot) == [1] and proxy.cuts == LOSSES_BEFORE_SKIP


@pytest.mark.django_db
def test_one_lost_connection_is_not_a_poison_message(dovecot, proxy_for, practice, monkeypatch):
    proxy = proxy_for(rb"UID FETCH 1 \(BODY\.PEEK\[\]", cut_after=100)
    mailbox = _mailbox(proxy, practice, monkeypatch)
    _append(dovecot, make_mail(subject="Unlucky"))
    with pytest.raises(ConnectionLost):
        poll_once(mailbox)
    proxy.armed = False  # a network blip, over
    assert poll_once(mailbox) == 1 and quarantine_count() == 0
    mailbox.refresh_from_db()
    assert (mailbox.lost_at, mailbox.lost_count) == ("", 0)


@pytest.mark.django_db(transaction=True)
def test_the_idle_loop_moves_past_a_message_that_keeps_killing_the_connection(
        dovecot, proxy_for, practice, monkeypatch):
    proxy = proxy_for(rb"UID FETCH 1 \(BODY\.PEEK\[\]", marker=MARKER)
    mailbox = _mailbox(proxy, practice, monkeypatch)
    _append(dovecot, _poison(), make_mail(sender="b@example.com", subject="Behind the poison"))
    stop = threading.Event()
    runner = threading.Thread(target=MailboxRunner(mailbox.pk, max_backoff=0.2).run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_for(lambda: InboundMessage.objects.filter(result="opened").exists(), 30, "the mail behind it")
        wait_for(lambda: Mailbox.objects.get().last_error == "", 10, "the mailbox to be well again")
    finally:
        stop.set()
        runner.join(timeout=10)
    assert InboundMessage.objects.get(result="opened").subject == "Behind the poison"
    assert quarantine_count() == 1
