"""A crafted history whose every figure was worked out by hand (see the test docstrings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from closeloop.cases import actions
from closeloop.cases.models import Case, Party

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday, 14:00 UTC


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@dataclass
class History:
    practice: Any
    a: Case  # referral: ack, missing info asked and answered, replied, closed
    b: Case  # appointment: replied, closed, reopened by a message, closed again
    c: Case  # referral duplicate merged into a
    d: Case  # referral passed coordinator → jordan → coordinator, then left alone
    now: datetime


@pytest.fixture
def history(practice: Any) -> History:
    system = actions.Actor.system("intake")
    casey, jordan, riley = (actions.Actor.of(practice.staff[n]) for n in ("coordinator", "jordan", "riley"))
    maria = Party.objects.create(name="Maria", email="maria@example.com")
    a = actions.open_case(actor=system, subject="A", request_type=practice.types["referral"], requester=maria,
                          channel="email", now=at(0))
    actions.record_event(a, system, "ack_sent", now=at(10 / 60))
    actions.assign(a, casey, owner=practice.coordinator, now=at(1))
    actions.request_missing_info(a, casey, now=at(2))
    b = actions.open_case(actor=system, subject="B", request_type=practice.types["appointment"], requester=maria,
                          channel="webform", now=at(0))
    actions.assign(b, riley, owner=practice.staff["riley"], now=at(1))
    c = actions.open_case(actor=system, subject="C", request_type=practice.types["referral"], requester=maria,
                          channel="email", now=at(1))
    d = actions.open_case(actor=system, subject="D", request_type=practice.types["referral"], requester=maria,
                          channel="fax", now=at(2))
    actions.approve_and_send(b, riley, body="Booked.", now=at(3))
    actions.merge(c, a, casey, now=at(3))
    actions.close(b, riley, outcome="completed", now=at(4))
    actions.assign(d, casey, owner=practice.coordinator, now=at(4))
    actions.assign(d, jordan, owner=practice.staff["jordan"], now=at(5))
    actions.assign(d, casey, owner=practice.coordinator, now=at(6))
    actions.record_inbound_message(a, actions.Actor.requester(), sender="maria@example.com", subject="Re",
                                   body="DOB 1961-03-14", now=at(12))
    actions.approve_and_send(a, casey, body="Booked.", now=at(14))
    actions.close(a, casey, outcome="completed", now=at(20))
    actions.record_inbound_message(b, actions.Actor.requester(), sender="maria@example.com", subject="Re",
                                   body="One more thing", now=at(30))
    actions.close(b, riley, outcome="completed", now=at(32))
    for case in (a, b, c, d):
        case.refresh_from_db()
    return History(practice, a, b, c, d, at(72))


@pytest.fixture(autouse=True)
def _fresh_report_cache() -> None:
    """Reports are cached per minute and newest event; each test starts without them."""
    from django.core.cache import cache

    cache.clear()
