"""Load generator for crash tests and the benchmark: many open cases waiting on requesters.

Rows are bulk-inserted as `request_missing_info` would leave them (awaiting information,
chaser step 0) without going through the actions one by one: a million cases through
the actions would take hours. Never used by the product itself.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from closeloop.cases.models import Case, Party, RequestType
from closeloop.cases.stages import NextAction, Stage, WaitingOn

CHUNK = 5000


def fill(count: int, due_fraction: float, now: datetime, *, request_type: RequestType, spread_seconds: float = 0.0,
         seed: int = 1) -> dict[int, datetime]:
    """Insert `count` cases; a `due_fraction` of them fall due between now and now + spread.

    Returns {case id: due time} for the due ones.
    """
    rng = random.Random(seed)
    due: dict[int, datetime] = {}
    later = now + timedelta(days=30)
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        parties = Party.objects.bulk_create(
            [Party(name=f"Requester {start + i}", email=f"r{start + i}@bench.example") for i in range(size)])
        rows = []
        for party in parties:
            is_due = rng.random() < due_fraction
            at = now + timedelta(seconds=rng.uniform(0, spread_seconds)) if is_due else later
            rows.append(Case(
                request_type=request_type, team_id=request_type.routing_team_id, requester=party,
                stage=Stage.AWAITING_INFO, waiting_on=WaitingOn.REQUESTER, next_action=NextAction.CHASE_REQUESTER,
                next_due_at=at, subject="Referral", missing_fields=["date_of_birth"], opened_at=now,
                updated_at=now, channel="bench",
            ))
        for case in Case.objects.bulk_create(rows):
            if case.next_due_at is not None and case.next_due_at < later:
                due[case.pk] = case.next_due_at
    return due
