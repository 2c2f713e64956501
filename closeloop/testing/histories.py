"""Recorded histories for the what-if model: tests, the browser test and the screenshots share them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from closeloop.cases import actions
from closeloop.cases.models import Party, RequestType, Staff


def answered_referrals(coordinator: Staff, request_type: RequestType, start: datetime, *, n: int = 60,
                       days: float = 14, seed: int = 3) -> None:
    """n requests over `days` from `start`: the coordinator picks each up within hours, a third wait on the
    requester for missing information, and every one is answered."""
    rng = random.Random(seed)
    party, _ = Party.objects.get_or_create(email="r@example.com", defaults={"name": "R"})
    casey = actions.Actor.of(coordinator)
    for i in range(n):
        t = start + timedelta(hours=i * days * 24 / n)
        case = actions.open_case(actor=actions.Actor.system(), subject=f"{request_type.name} {i}", requester=party,
                                 request_type=request_type, now=t)
        t += timedelta(hours=rng.uniform(0.5, 3))
        actions.assign(case, casey, owner=coordinator, now=t)
        if rng.random() < 0.33:
            actions.request_missing_info(case, casey, now=t + timedelta(minutes=10))
            t += timedelta(hours=rng.uniform(4, 30))
            actions.record_inbound_message(case, actions.Actor.requester(), sender="r@example.com", subject="",
                                           body="here", now=t)
        actions.approve_and_send(case, casey, body="Booked.", now=t + timedelta(hours=rng.uniform(0.5, 4)))


def answered_in_lockstep(coordinator: Staff, request_type: RequestType, start: datetime, *, n: int = 60,
                         hours: float = 1.0) -> None:
    """n requests arriving at once, every one answered exactly `hours` later: a history no queue of
    coordinators produces (whoever works the first cases answers them sooner), for a model to reject."""
    party, _ = Party.objects.get_or_create(email="r@example.com", defaults={"name": "R"})
    casey = actions.Actor.of(coordinator)
    for i in range(n):
        case = actions.open_case(actor=actions.Actor.system(), subject=f"{request_type.name} {i}", requester=party,
                                 request_type=request_type, now=start)
        actions.assign(case, casey, owner=coordinator, now=start)
        actions.approve_and_send(case, casey, body="Booked.", now=start + timedelta(hours=hours))
