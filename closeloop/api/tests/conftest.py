"""The API tests' shared token and request helper."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from closeloop.cases.tokens import create_token


@pytest.fixture
def token(practice):
    return create_token(practice.coordinator, "ehr")


def api(client: Client, token: str, method: str, path: str, body: dict | None = None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if body is not None:
        kwargs.update(data=json.dumps(body, default=str), content_type="application/json")
    return getattr(client, method)(f"/api{path}", **kwargs)
