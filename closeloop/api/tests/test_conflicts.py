"""A 409 carries the case as it is now (the GET schema) and its version, so a client recovers in one step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from closeloop.cases.models import AuditEntry

from .conftest import api
from .test_cases_api import REFERRAL

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)


def test_a_stale_version_409_carries_the_current_case_and_version(client, token):
    with time_machine.travel(T0, tick=False):
        case = api(client, token, "post", "/cases/", REFERRAL).json()
        ref, loaded = case["reference"], case["version"]
        api(client, token, "post", f"/cases/{ref}/assign", {"owner": "coordinator", "version": loaded})
        r = api(client, token, "post", f"/cases/{ref}/snooze", {"until": str(T0 + timedelta(days=1)),
                                                                "reason": "x", "version": loaded})
        now = api(client, token, "get", f"/cases/{ref}").json()
    assert r.status_code == 409
    body = r.json()
    assert "changed by someone else" in body["detail"] and body["field"] is None
    assert body["version"] == now["version"] == loaded + 1
    assert body["case"] == now and body["case"]["owner"] == "coordinator"
    # and with the version from the 409 the same request goes through
    with time_machine.travel(T0, tick=False):
        r = api(client, token, "post", f"/cases/{ref}/snooze", {"until": str(T0 + timedelta(days=1)),
                                                                "reason": "x", "version": body["version"]})
    assert r.status_code == 200 and r.json()["version"] == body["version"] + 1 and r.json()["next_action"] == "wake"


def test_an_impossible_move_409_carries_the_case_too_and_the_read_is_audited(client, token):
    ref = api(client, token, "post", "/cases/", REFERRAL).json()["reference"]
    r = api(client, token, "post", f"/cases/{ref}/wake", {})
    assert r.status_code == 409
    assert r.json()["case"]["reference"] == ref and r.json()["version"] == r.json()["case"]["version"]
    assert AuditEntry.objects.filter(action="api_view", case__isnull=False, detail="conflict").count() == 1


def test_the_openapi_document_describes_the_409_body(client, token):
    doc = client.get("/api/openapi.json").json()
    conflict = doc["paths"]["/api/cases/{ref}/assign"]["post"]["responses"]["409"]
    schema = conflict["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    props = doc["components"]["schemas"][schema]["properties"]
    assert {"detail", "version", "case"} <= set(props)
