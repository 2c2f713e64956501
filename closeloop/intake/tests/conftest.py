"""Fixtures for intake tests: a raw store per test, a mail factory, a real Dovecot."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone


@pytest.fixture(autouse=True)
def raw_store(settings: Any) -> Iterator[Path]:
    from closeloop.intake import lookups

    # Each test's rows vanish with its transaction, without signals: start every test
    # with an empty lookup cache.
    lookups.clear()
    path = Path(tempfile.mkdtemp(prefix="closeloop-raw-"))
    settings.CLOSELOOP_INTAKE_RAW_DIR = path
    settings.CLOSELOOP_INTAKE_FSYNC = False
    yield path
    lookups.clear()


def make_mail(sender: str = "maria@example.com", subject: str = "Referral for knee pain",
              body: str = "Please see Maria Gonzalez, DOB 1961-03-14.", *, to: str = "frontdesk@closeloop.local",
              message_id: str | None = None, headers: dict[str, str] | None = None,
              attachments: list[tuple[str, str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    msg = EmailMessage()
    msg["From"] = f"Maria Gonzalez <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, content in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


@pytest.fixture
def mail() -> Any:
    return make_mail


@pytest.fixture
def dovecot() -> Iterator[Any]:
    """A real Dovecot on a free port; `.stop()` / `.start()` restart it mid-test."""
    from .dovecot import Dovecot

    server = Dovecot().start()
    yield server
    server.cleanup()




@contextmanager
def running_listener(practice: Any, address: str, max_bytes: int) -> Iterator[Any]:
    """The built-in SMTP listener on a free port, routing `address` to referrals."""
    from closeloop.intake.channels.smtp.adapter import ListenerConfig, listener
    from closeloop.intake.models import SmtpRoute
    from closeloop.testing.postgres import free_port

    SmtpRoute.objects.create(address=address, request_type=practice.types["referral"])
    config = ListenerConfig("127.0.0.1", free_port(), max_bytes=max_bytes)
    controller = listener(config)
    controller.start()
    try:
        yield config
    finally:
        controller.stop()
