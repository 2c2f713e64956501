"""Fixtures for the web tests: cases to look at, signed-in clients, Chromium for Playwright."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import Party

# WhiteNoise warns on every request when STATIC_ROOT is missing; tests serve from the finders.
Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "headless": True,
            "args": CHROMIUM_ARGS}


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


@pytest.fixture
def referral(practice: Any) -> Any:
    """A referral missing its insurer and referring provider, owned by the coordinator."""
    party = Party.objects.create(name="Maria Gonzalez", email="maria@example.com", phone="+1 617 555 0142")
    case = actions.open_case(
        actor=actions.Actor.system("intake"), subject="Referral: right knee pain", body="Please see Maria.",
        request_type=practice.types["referral"], requester=party, channel="email",
        fields={"patient_name": {"value": "Maria Gonzalez", "confidence": 0.97, "source": {"kind": "body"}},
                "date_of_birth": {"value": "1961-03-14", "confidence": 0.95},
                "phone": {"value": "+1 617 555 0142"}, "reason": {"value": "knee pain"}},
    )
    actions.assign(case, actions.Actor.of(practice.coordinator), owner=practice.coordinator)
    return case


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password="demo")
    return client


@pytest.fixture
def coordinator_client(practice: Any) -> Client:
    return signed_in("coordinator")
