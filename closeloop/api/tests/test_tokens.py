"""API tokens expire, record their last use, and are listed and revoked from the command line (audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from closeloop.cases.models import ApiToken, AuditEntry
from closeloop.cases.tokens import create_token
from closeloop.cli import main

from .conftest import api

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def _cli(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_token_works_until_its_expiry_then_gets_a_401_that_says_so(client, practice, settings):
    settings.CLOSELOOP_API_TOKEN_DAYS = 30
    with time_machine.travel(T0, tick=False):
        key = create_token(practice.coordinator, "ehr")
    with time_machine.travel(T0 + timedelta(days=30) - timedelta(seconds=1), tick=False):
        assert api(client, key, "get", "/cases/").status_code == 200
    with time_machine.travel(T0 + timedelta(days=30), tick=False):
        r = api(client, key, "get", "/cases/")
    assert r.status_code == 401
    assert "expired at 2026-06-03 09:00 UTC" in r.json()["detail"] and key[:8] in r.json()["detail"]


def test_an_unknown_token_is_still_a_plain_401(client, practice):
    r = api(client, "cl_not-a-token", "get", "/cases/")
    assert r.status_code == 401 and r.json() == {"detail": "Unauthorized"}


def test_it_records_when_a_token_was_last_used_without_a_write_per_call(client, practice):
    key = create_token(practice.coordinator, "ehr")
    assert ApiToken.objects.get().last_used_at is None
    with time_machine.travel(T0, tick=False):
        api(client, key, "get", "/cases/")
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        api(client, key, "get", "/cases/")
    assert ApiToken.objects.get().last_used_at == T0
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        api(client, key, "get", "/cases/")
    assert ApiToken.objects.get().last_used_at == T0 + timedelta(minutes=5)


def test_create_token_takes_days_and_refuses_nonsense(practice):
    with time_machine.travel(T0, tick=False):
        key = _cli("create_token", "coordinator", "--name", "portal", "--days", "7").strip()
    token = ApiToken.objects.get(prefix=key[:8])
    assert token.expires_at == T0 + timedelta(days=7) and token.name == "portal"
    entry = AuditEntry.objects.get(action="token_created")
    assert "'portal'" in entry.detail and "coordinator" in entry.detail and "command line" in entry.detail
    with pytest.raises(CommandError, match="1 to 3650 days"):
        _cli("create_token", "coordinator", "--days", "0")


def test_tokens_list_shows_what_works_and_all_with_all(practice):
    with time_machine.travel(T0, tick=False):
        create_token(practice.coordinator, "ehr")
        create_token(practice.supervisor, "bi", days=1)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        listed = json.loads(_cli("tokens", "list", "--json"))
        everything = json.loads(_cli("tokens", "list", "--all", "--json"))
        table = _cli("tokens", "list", "--all")
    assert [(t["name"], t["user"], t["state"]) for t in listed] == [("ehr", "coordinator", "active")]
    assert [(t["name"], t["state"]) for t in everything] == [("ehr", "active"), ("bi", "expired")]
    assert "last used" in table and "never" in table and "expired" in table


def test_tokens_revoke_ends_a_token_at_once_and_is_audited(client, practice):
    key = create_token(practice.coordinator, "ehr")
    other = create_token(practice.coordinator, "portal")
    assert api(client, key, "get", "/cases/").status_code == 200
    out = _cli("tokens", "revoke", key[:8])
    assert out.startswith("revoked: token 'ehr'")
    r = api(client, key, "get", "/cases/")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert api(client, other, "get", "/cases/").status_code == 200
    entry = AuditEntry.objects.get(action="token_revoked")
    assert "'ehr'" in entry.detail and key[:8] in entry.detail and "command line" in entry.detail
    assert _cli("tokens", "revoke", str(ApiToken.objects.get(name="ehr").pk)).startswith("already revoked")


def test_tokens_revoke_by_key_and_every_token_of_a_user(client, practice):
    leaked = create_token(practice.coordinator, "leaked")
    create_token(practice.coordinator, "second")
    supervisor = create_token(practice.supervisor, "bi")
    _cli("tokens", "revoke", leaked)
    assert api(client, leaked, "get", "/cases/").status_code == 401
    out = _cli("tokens", "revoke", "--user", "coordinator")
    assert "'second'" in out and ApiToken.objects.filter(staff=practice.coordinator, revoked=False).count() == 0
    assert api(client, supervisor, "get", "/cases/").status_code == 200
    assert AuditEntry.objects.filter(action="token_revoked").count() == 2


def test_tokens_revoke_names_what_it_cannot_find_and_revokes_nothing(practice):
    key = create_token(practice.coordinator, "ehr")
    with pytest.raises(CommandError, match="no token 'cl_nope'"):
        _cli("tokens", "revoke", key[:8], "cl_nope")
    assert not ApiToken.objects.filter(revoked=True).exists()
    with pytest.raises(CommandError, match="name the tokens"):
        _cli("tokens", "revoke")
    with pytest.raises(CommandError, match="no token to revoke"):
        _cli("tokens", "revoke", "--user", "drkim")


def test_an_ambiguous_prefix_asks_for_the_id(practice):
    first = ApiToken.objects.create(staff=practice.coordinator, name="a", key_hash="a" * 64, prefix="cl_abcde")
    ApiToken.objects.create(staff=practice.coordinator, name="b", key_hash="b" * 64, prefix="cl_abcde")
    with pytest.raises(CommandError, match=f"names 2 tokens \\(ids {first.pk}, "):
        _cli("tokens", "revoke", "cl_abcde")


def test_the_closeloop_cli_runs_tokens_list(practice, capsys):
    create_token(practice.coordinator, "ehr")
    main(["closeloop", "tokens", "list"])
    assert "ehr" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_tokens_made_before_expiry_keep_working_and_expire_from_the_migration_date(practice, settings):
    settings.CLOSELOOP_API_TOKEN_DAYS = 90
    executor = MigrationExecutor(connection)
    executor.migrate([("cases", "0003_requesttype_threshold_range")])
    old = executor.loader.project_state([("cases", "0003_requesttype_threshold_range")]).apps
    key = "cl_made-before-expiry-existed"
    from closeloop.cases.tokens import hash_key

    old.get_model("cases", "ApiToken").objects.create(staff_id=practice.coordinator.pk, name="old",
                                                      key_hash=hash_key(key), prefix=key[:8])
    migrated_at = datetime.now(UTC)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    token = ApiToken.objects.get(name="old")
    assert abs(token.expires_at - (migrated_at + timedelta(days=90))) < timedelta(minutes=1)
    assert api(Client(), key, "get", "/cases/").status_code == 200


def test_create_token_refuses_a_name_it_cannot_store(practice):
    with pytest.raises(CommandError, match="name of 1 to 100 characters"):
        _cli("create_token", "coordinator", "--name", "x" * 101)
    with pytest.raises(CommandError, match="name of 1 to 100 characters"):
        _cli("create_token", "coordinator", "--name", "  ")
    assert not ApiToken.objects.exists()
