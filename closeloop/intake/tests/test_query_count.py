"""The per-message cost of the pipeline, pinned (STYLE.md point 12): a new query in the hot
path must be a decision, not an accident. bench/intake.py measures what these cost."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from closeloop.intake.inbound import Inbound
from closeloop.intake.pipeline import receive_and_process
from closeloop.intake.tests.conftest import make_mail

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|BEGIN|COMMIT)", re.I)

# A new request by email with an attachment: 1 stores the raw row (born claimed), 2
# thread and dedupe (Message-ID, content key), 1 reads the parties with the sender's
# address (reused for the same-requester match, which needs no query when there are none,
# and for the requester), 1 counts the sender's cases (flood guard), 1 creates the
# requester, 2 store the document, 4 open the case (case, message, documents, event),
# 1 the analytics ledger's first interval, 2 queue the acknowledgement (outbox row,
# inserted first: a fresh key needs no SELECT; outbound message), 1 hands it to
# understanding (a case opened in this transaction has no pending job to look for),
# 1 finishes, 1 the case's analytics facts row. Request types and teams come from the lookup
# cache. Before the cuts: 25, then 20.
NEW_MAIL_QUERIES = 18
# A reply quoting its reference: 1 raw row, 1 Message-ID, 1 the referenced case, 3 record
# the message (message, case, event), 1 understanding (a job is already pending), 1 finish,
# 2 the analytics facts row (read, write) beside the ledger's interval.
REPLY_QUERIES = 13


def _queries(raw: bytes, external_id: str) -> tuple[list[str], str]:
    with CaptureQueriesContext(connection) as captured:
        row, _ = receive_and_process(Inbound(channel="import", raw=raw, external_id=external_id))
    return [q["sql"] for q in captured.captured_queries if not TRANSACTION_CONTROL.match(q["sql"])], row.result


def _mail(i: int, subject: str = "Referral for knee pain") -> bytes:
    return make_mail(sender=f"patient{i}@example.com", subject=subject,
                     attachments=[("letter.pdf", "application/pdf", PDF + str(i).encode())])


def test_a_new_request_by_email_costs_a_fixed_number_of_queries(practice):
    receive_and_process(Inbound(channel="import", raw=_mail(0), external_id="warm"))  # fills the lookup cache
    queries, result = _queries(_mail(1), "one")
    assert result == "opened"
    assert len(queries) == NEW_MAIL_QUERIES, "\n".join(queries)


def test_a_reply_costs_a_fixed_number_of_queries(practice):
    first, _ = receive_and_process(Inbound(channel="import", raw=_mail(0), external_id="first"))
    reference = first.case.reference
    queries, result = _queries(make_mail(sender="patient0@example.com", subject=f"Re: [{reference}] more"), "reply")
    assert result == "threaded"
    assert len(queries) == REPLY_QUERIES, "\n".join(queries)
