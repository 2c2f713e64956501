from __future__ import annotations

import csv
import io

import pytest
import time_machine
from django.test import Client

from closeloop.cases.models import AuditEntry

from .conftest import at

pytestmark = pytest.mark.django_db


def _client(practice, username):
    client = Client()
    client.force_login(practice.staff[username].user)
    return client


def test_the_dashboard_shows_figures_charts_and_the_missed_follow_up_prominently(history):
    with time_machine.travel(history.now, tick=False):
        page = _client(history.practice, "supervisor").get("/analytics/?days=7")
    assert page.status_code == 200
    html = page.content.decode()
    assert "1 missed follow-up" in html and "<svg" in html
    assert f"/analytics/cases/missed/{history.d.pk}/?days=7" in html
    assert "Casey Morgan" in html


def test_it_drills_down_from_a_figure_to_the_cases_behind_it(history):
    with time_machine.travel(history.now, tick=False):
        page = _client(history.practice, "supervisor").get("/analytics/cases/latency_type/referral/?days=7")
    assert page.status_code == 200
    assert history.a.reference in page.content.decode() and history.d.reference in page.content.decode()
    assert history.b.reference not in page.content.decode()


def test_a_coordinator_cannot_drill_into_another_teams_cases(history):
    with time_machine.travel(history.now, tick=False):
        page = _client(history.practice, "riley").get("/analytics/cases/latency_type/referral/?days=7")
    assert page.status_code == 404


def test_every_table_exports_as_csv_and_the_export_is_audited(history):
    client = _client(history.practice, "supervisor")
    with time_machine.travel(history.now, tick=False):
        response = client.get("/analytics/tables/held.csv?days=7")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["Party", "Cases", "Total h"]
    assert ["Owner", "3", "79.0"] == rows[1][:3]
    assert AuditEntry.objects.filter(action="analytics_export", detail="held").count() == 1


def test_bad_scope_gets_a_clear_error(history):
    client = _client(history.practice, "supervisor")
    assert client.get("/analytics/?days=0").status_code == 400
    assert client.get("/analytics/?team=nope").status_code == 400
    assert client.get("/analytics/tables/nope.csv").status_code == 404


def test_anonymous_users_are_sent_to_log_in(db):
    response = Client().get("/analytics/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_metrics_speak_prometheus_text_to_localhost(history):
    with time_machine.travel(at(72), tick=False):
        response = Client(REMOTE_ADDR="127.0.0.1").get("/analytics/metrics")
    body = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert "closeloop_backlog_cases 1\n" in body
    assert "closeloop_followups_due 1\n" in body
    assert 'closeloop_cases{stage="closed"} 3\n' in body
    assert "closeloop_quarantine_size 0\n" in body and "closeloop_mailboxes_failing 0\n" in body
    lag = float(next(line for line in body.splitlines() if line.startswith("closeloop_worker_lag_seconds")).split()[1])
    assert lag == (at(72) - history.d.next_due_at).total_seconds()


def test_metrics_count_a_mailbox_that_cannot_connect(history):
    from closeloop.intake.models import Mailbox

    Mailbox.objects.create(name="Referrals", host="mail.example", username="referrals",
                           last_error="LoginError: [AUTHENTICATIONFAILED] Authentication failed.")
    Mailbox.objects.create(name="Old", host="mail.example", username="old", is_active=False, last_error="down")
    body = Client(REMOTE_ADDR="127.0.0.1").get("/analytics/metrics").content.decode()
    assert "closeloop_mailboxes_failing 1\n" in body


def test_metrics_refuse_strangers_and_want_the_token_when_one_is_set(history, settings):
    assert Client(REMOTE_ADDR="10.0.0.9").get("/analytics/metrics").status_code == 403
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):  # a proxy on this host
        assert Client(REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"}).get("/analytics/metrics").status_code == 403
    settings.CLOSELOOP_METRICS_TOKEN = "s3cret"
    assert Client(REMOTE_ADDR="127.0.0.1").get("/analytics/metrics").status_code == 401
    ok = Client(REMOTE_ADDR="10.0.0.9").get("/analytics/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_a_repeated_view_reuses_the_report_until_the_log_changes(history, django_assert_max_num_queries):
    from closeloop.cases import actions

    client = _client(history.practice, "supervisor")
    with time_machine.travel(history.now, tick=False):
        first = client.get("/analytics/?days=7").content.decode()
        with django_assert_max_num_queries(12):  # session, user, staff, the key's lookups, teams: no figures
            again = client.get("/analytics/?days=7").content.decode()
        assert _figures(again) == _figures(first) and "1 missed follow-up" in first
        actions.close(history.d, actions.Actor.of(history.practice.coordinator), outcome="done", notify=False,
                      now=history.now)
        after = client.get("/analytics/?days=7").content.decode()
    assert "1 missed follow-up" not in after and "Missed follow-ups: <strong>0</strong>" in after


def test_the_report_is_not_kept_when_the_cache_is_off(history, settings, django_assert_max_num_queries):
    settings.CLOSELOOP_ANALYTICS_CACHE_SECONDS = 0
    client = _client(history.practice, "supervisor")
    with time_machine.travel(history.now, tick=False):
        client.get("/analytics/?days=7")
        response = client.get("/analytics/?days=7")
    assert response.status_code == 200 and "1 missed follow-up" in response.content.decode()


def _figures(html):
    return html[html.index("<h1>Where"):]
