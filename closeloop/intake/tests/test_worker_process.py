"""A real `closeloop worker` process runs the SMTP listener: mail sent to it with smtplib opens
cases, acknowledgements reach a real SMTP server, and SIGTERM stops it without losing mail."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from closeloop.intake.models import InboundMessage, SmtpRoute
from closeloop.intake.tests.conftest import make_mail
from closeloop.outbound.models import OutboxMessage
from closeloop.testing.postgres import free_port
from closeloop.testing.waiting import wait_for

pytestmark = [pytest.mark.heavy, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(listen_port: int, smtp_port: int, raw_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "closeloop.settings_test",
           "CLOSELOOP_SMTP_LISTEN": f"127.0.0.1:{listen_port}", "CLOSELOOP_INTAKE_FOLDER": "",
           "CLOSELOOP_INTAKE_RAW_DIR": str(raw_dir), "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port)}
    command = [str(Path(sys.executable).with_name("closeloop")), "worker", "--idle", "0.2"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def send(port: int, sender: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, ["requests@intake.local"], make_mail(sender=sender, subject=subject,
                                                                    to="requests@intake.local"))


def test_a_worker_process_takes_mail_acknowledges_it_and_stops_cleanly(practice, smtp_server, raw_store):
    SmtpRoute.objects.create(address="requests@intake.local", request_type=practice.types["referral"])
    port = free_port()
    worker = start_worker(port, smtp_server.port, raw_store)
    try:
        wait_for(lambda: listening(port) or worker.poll() is not None, 60.0, what="the SMTP listener")
        assert worker.poll() is None, worker.communicate()[0]
        senders = [f"patient{i}@example.com" for i in range(5)]
        for i, sender in enumerate(senders):
            send(port, sender, f"Referral number {i}")
        wait_for(lambda: all(smtp_server.to(s) for s in senders), 60.0, what="the acknowledgements")
        # Three more arrive just before the stop: each was answered 250, so each must survive.
        late = [f"late{i}@example.com" for i in range(3)]
        for sender in late:
            send(port, sender, "Referral sent at closing time")
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, output

    rows = list(InboundMessage.objects.order_by("id"))
    assert sorted(r.sender for r in rows) == sorted(senders + late)
    assert {(r.status, r.result) for r in rows} == {("processed", "opened")}, [(r.status, r.error) for r in rows]
    assert all(r.case_id for r in rows)
    ack = smtp_server.to(senders[0])[0].message
    assert ack["Subject"].startswith("We received your request [CL-")
    assert ack["Reply-To"].startswith("requests+c")
    # Every acknowledgement was sent or is still queued for the next worker: none lost.
    assert OutboxMessage.objects.filter(purpose="ack").count() == 8
    assert OutboxMessage.objects.filter(purpose="ack", status="sent").count() >= 5
