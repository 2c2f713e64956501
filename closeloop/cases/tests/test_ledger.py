from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from closeloop.cases import actions, ledger
from closeloop.cases.models import Party

pytestmark = pytest.mark.django_db


def test_the_ledger_splits_time_between_owner_requester_and_specialist(practice):
    t0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    requester = Party.objects.create(name="A", email="a@example.com")
    case = actions.open_case(actor=actions.Actor.system(), subject="s", request_type=practice.types["referral"],
                             requester=requester, now=t0)
    coordinator = actions.Actor.of(practice.coordinator)
    actions.request_missing_info(case, coordinator, now=t0 + timedelta(hours=1))
    actions.record_inbound_message(case, actions.Actor.requester(), sender="a@example.com", subject="",
                                   body="here", now=t0 + timedelta(hours=5))
    actions.hand_to_specialist(case, coordinator, specialist=practice.specialist, question="q?",
                               now=t0 + timedelta(hours=6))
    actions.record_specialist_answer(case, actions.Actor.of(practice.specialist), answer="a",
                                     now=t0 + timedelta(hours=9))
    actions.close(case, coordinator, outcome="done", now=t0 + timedelta(hours=10))
    spans = ledger.for_case(case.pk, until=t0 + timedelta(days=3))
    held = ledger.held_seconds(spans)
    assert held == {"owner": 3 * 3600, "requester": 4 * 3600, "specialist": 3 * 3600}
    assert spans[-1].end == t0 + timedelta(hours=10)
