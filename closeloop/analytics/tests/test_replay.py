from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import httpx
import pypdfium2
import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from closeloop.analytics.management.commands.demo_replay import _client
from closeloop.analytics.replay import Channels, Replay, pdf
from closeloop.cases.models import Case, Event
from closeloop.intake.models import InboundMessage

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
    from closeloop.cases.models import ApiToken

    ends = ApiToken.objects.filter(name="demo-replay").values_list("expires_at", flat=True)
    assert len(ends) == 2 and all(end < datetime.now(UTC) + timedelta(days=2) for end in ends)  # not 90 days


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


def test_a_replay_uses_all_four_channels_the_web_form_with_its_csrf_token(practice, live_server, smtp_server,
                                                                          tmp_path, settings):
    settings.CLOSELOOP_FORM_RATE_LIMIT = 1000
    out = StringIO()
    call_command("demo_replay", "--url", live_server.url, "--days", "1", "--speed", "200000", "--per-day", "60",
                 "--capacity", "1", "--webform", "--smtp", f"127.0.0.1:{smtp_server.port}",
                 "--folder", str(tmp_path), stdout=out)
    sent = out.getvalue().splitlines()[1]
    for channel in ("'api'", "'smtp'", "'folder'", "'webform'"):
        assert channel in sent
    webform = InboundMessage.objects.filter(channel="webform")
    assert webform.exists() and not webform.filter(status=InboundMessage.Status.QUARANTINED).exists()
    assert set(webform.values_list("case__channel", flat=True)) == {"web"}  # every submission opened its case
    assert "refused or failed" not in out.getvalue()


def test_the_web_form_turns_away_a_post_without_its_csrf_token(practice, live_server):
    response = httpx.post(f"{live_server.url}/forms/referral/", data={
        "name": "Bot", "email": "bot@example.com", "message": "hi", "consent": "on"})
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()


def test_when_the_form_is_rate_limited_the_request_arrives_through_the_api(practice, live_server, settings):
    settings.CLOSELOOP_FORM_RATE_LIMIT = 2
    out = StringIO()
    call_command("demo_replay", "--url", live_server.url, "--days", "1", "--speed", "200000", "--per-day", "20",
                 "--capacity", "1", "--webform", "--no-api", stdout=out)
    assert InboundMessage.objects.filter(channel="webform").count() == 2
    assert "'webform_rate_limited'" in out.getvalue()
    assert Case.objects.filter(channel="api").count() >= 1


def test_after_a_replay_the_dashboard_says_what_one_more_coordinator_would_change(practice, live_server):
    """The issue's "done when": two days of requests replayed through the real API into the running product,
    then the dashboard's figures and its what-if panel, which must trust its model of the replayed history
    and show the scenarios. The product's clock follows the replay's (time-machine), so the history has real
    hours in it and the run is deterministic instead of racing the wall clock."""
    with time_machine.travel(datetime(2026, 3, 2, 6, 0, tzinfo=UTC), tick=False) as traveller:
        elapsed = [0.0]

        def sleep(seconds: float) -> None:
            elapsed[0] += seconds
            traveller.shift(seconds)

        staff, specialist = _client(live_server.url, "supervisor", 3), _client(live_server.url, "specialist", 3)
        replay = Replay(staff=staff, staff_name="supervisor", specialist=specialist, specialist_name="specialist",
                        channels=Channels(), per_day=40, capacity_per_hour=6, speed=1, sleep=sleep,
                        clock=lambda: elapsed[0])
        tally = replay.run(2)
        assert not tally.errors and tally.actions["send"] >= 20
        client = Client()
        client.force_login(practice.supervisor.user)
        dashboard = client.get("/analytics/?days=3").content.decode()
        panel = client.get("/analytics/what-if/?days=3", headers={"HX-Request": "true"}).content.decode()
    for figure in ("Who holds the ball now", "Stalled", "Response times by", "Missed follow-ups", "<svg"):
        assert figure in dashboard
    assert "the model is trusted" in panel, panel
    assert "one more coordinator" in panel and "Time to first answer by scenario" in panel



def test_the_replays_clients_wait_out_the_apis_rate_limit_instead_of_failing(practice, live_server, settings):
    settings.CLOSELOOP_API_CASES_RATE_LIMIT = 3
    settings.CLOSELOOP_API_RATE_WINDOW_SECONDS = 1
    with _client(live_server.url, "supervisor") as patient:
        assert {patient.get("/api/cases/").status_code for _ in range(7)} == {200}
    with httpx.Client(base_url=live_server.url, headers=dict(patient.headers)) as hasty:
        assert 429 in {hasty.get("/api/cases/").status_code for _ in range(7)}
