from __future__ import annotations

import io
import json
import mailbox

import pytest
from django.core.management import call_command

from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import process_due, receive
from closeloop.intake.tests.conftest import make_mail

pytestmark = pytest.mark.django_db


def _run(*paths):
    out = io.StringIO()
    call_command("intake", "import-eml", *map(str, paths), stdout=out)
    return json.loads(out.getvalue())


def test_it_imports_a_directory_and_an_mbox_and_accounts_for_every_message(tmp_path, practice):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    first = make_mail(subject="First request", message_id="<first@example.com>")
    (folder / "a.eml").write_bytes(first)
    (folder / "sub" / "b.eml").write_bytes(make_mail(sender="b@example.com", subject="Second"))
    (folder / "broken.eml").write_bytes(b"\x00\x01\x02")
    box = mailbox.mbox(tmp_path / "old.mbox")
    box.add(make_mail(subject="Re: First request", message_id="<reply@example.com>",
                      headers={"In-Reply-To": "<first@example.com>"}))
    box.add(make_mail(sender="c@example.com", subject="From the mbox"))
    box.flush()
    summary = _run(folder, tmp_path / "old.mbox")
    assert summary == {"files": 5, "stored_raw": 5, "cases_opened": 3, "threaded": 1, "duplicates": 0,
                       "quarantined": 1, "lost": 0}
    assert list(summary) == ["files", "stored_raw", "cases_opened", "threaded", "duplicates", "quarantined", "lost"]
    again = _run(folder, tmp_path / "old.mbox")
    assert again == {"files": 5, "stored_raw": 0, "cases_opened": 0, "threaded": 0, "duplicates": 5,
                     "quarantined": 0, "lost": 0}


def test_retry_subcommand_reprocesses_quarantined_rows(tmp_path, practice, settings):
    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 100
    (tmp_path / "a.eml").write_bytes(make_mail())
    assert _run(tmp_path)["quarantined"] == 1
    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 10_000_000
    out = io.StringIO()
    call_command("intake", "retry", stdout=out)
    assert json.loads(out.getvalue()) == {"processed": 1}


def test_the_worker_job_processes_rows_a_channel_only_stored(practice):
    row, _ = receive(Inbound(channel="smtp", raw=make_mail()))
    assert row.status == "received"
    assert process_due(10) == 1
    row.refresh_from_db()
    assert row.status == "processed" and row.case is not None
    assert process_due(10) == 0
    assert InboundMessage.objects.count() == 1
