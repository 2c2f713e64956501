from __future__ import annotations

from io import StringIO

import pypdfium2
import pytest
from django.core.management import call_command

from closeloop.analytics.replay import pdf
from closeloop.cases.models import Case, Event

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_replay_opens_cases_through_the_api_and_works_them(practice, live_server):
    out = StringIO()
    call_command("demo_replay", "--url", live_server.url, "--days", "1", "--speed", "200000", "--per-day", "30",
                 "--capacity", "8", stdout=out)
    assert Case.objects.filter(channel="api").count() >= 15
    kinds = set(Event.objects.values_list("kind", flat=True))
    assert {"opened", "assigned", "reply_sent"} <= kinds
    assert Event.objects.filter(actor_kind="staff").exists()
    assert "sent: {'api':" in out.getvalue()


def test_a_replay_mails_the_smtp_listener_and_fills_the_watched_folder(practice, live_server, smtp_server, tmp_path):
    call_command("demo_replay", "--url", live_server.url, "--days", "1", "--speed", "200000", "--per-day", "40",
                 "--capacity", "1", "--no-api", "--smtp", f"127.0.0.1:{smtp_server.port}", "--folder", str(tmp_path),
                 stdout=StringIO())
    files = list(tmp_path.glob("*.pdf"))
    assert smtp_server.messages and files
    assert not list(tmp_path.glob(".*.part"))
    assert len(smtp_server.messages) + len(files) >= 5


def test_the_dropped_pdf_is_a_real_pdf_with_the_text():
    document = pypdfium2.PdfDocument(pdf("Refill (meloxicam)\nPatient: Maria"))
    text = document[0].get_textpage().get_text_range()
    assert "Refill (meloxicam)" in text and "Patient: Maria" in text
