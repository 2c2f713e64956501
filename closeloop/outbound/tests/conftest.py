from __future__ import annotations

from typing import Any

import pytest

from closeloop.cases import actions
from closeloop.cases.models import Party


@pytest.fixture
def case(practice: Any) -> Any:
    """An open referral from Maria (maria@example.com), for the outbox to write to."""
    requester = Party.objects.create(name="Maria", email="maria@example.com")
    return actions.open_case(actor=actions.Actor.system(), subject="Knee", body="hi",
                             request_type=practice.types["referral"], requester=requester)
