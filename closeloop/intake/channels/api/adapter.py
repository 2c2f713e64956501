"""REST API intake for other systems (a referral portal, an EHR): one JSON submission, one case.

The request body is the raw input, stored as received. An `Idempotency-Key` header makes
a retried call return the first answer: the key is the external id, scoped to the
calling account; the same key with a different body is refused.
"""

from __future__ import annotations

import hashlib

from closeloop.cases.models import Staff
from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process

CHANNEL = "api"


class KeyReused(ValueError):
    """The Idempotency-Key was used before with a different body."""


def submit(body: bytes, staff: Staff, key: str = "") -> tuple[InboundMessage, bool]:
    """(row, created): a repeat with the same key answers with the first row."""
    digest = hashlib.sha256(body).hexdigest()
    external_id = f"key:{staff.pk}:{key}" if key else f"sha256:{digest}"
    # Born claimed by this request, so the answer carries the case a worker could otherwise take first.
    row, created = receive_and_process(Inbound(channel=CHANNEL, raw=body, external_id=external_id, format="json",
                                               meta={"client": staff.pk}))
    if not created and row.sha256 != digest:
        raise KeyReused("this Idempotency-Key was already used with a different request body")
    return row, created
