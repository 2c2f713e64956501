"""A message to several people that the server takes for some and refuses for others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import deliver_due, enqueue

pytestmark = pytest.mark.django_db


def refusing(smtp_server, refused: dict[str, str]) -> None:
    async def handle_rcpt(server, session, envelope, address, rcpt_options):
        if address in refused:
            return refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp_server.handler.handle_RCPT = handle_rcpt


def message_ids(smtp_server, address: str) -> list[str]:
    return [str(m.message["Message-ID"]).strip() for m in smtp_server.to(address)]


@pytest.mark.parametrize("connections", [1, 2])
def test_a_recipient_refused_for_good_beside_an_accepted_one_shows_on_the_case(case, smtp_server, settings,
                                                                               connections):
    """Django's SMTP backend drops the refused list of a partly accepted message: the refused recipient was
    never told and the row read 'sent'. The refusal is now recorded on the row and the case."""
    settings.CLOSELOOP_OUTBOX_CONNECTIONS = connections
    refusing(smtp_server, {"left@example.com": "550 5.1.1 no such user"})
    row = enqueue(case=case, purpose="reassigned", to=["left@example.com", "new@example.com"], subject="s", body="b")
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    assert deliver_due() == 2
    assert message_ids(smtp_server, "new@example.com") == [row.message_id]
    row.refresh_from_db()
    assert row.status == "sent" and "left@example.com" in row.last_error and "550" in row.last_error
    [failed] = case.events.filter(kind="mail_failed")
    assert failed.data["to"] == ["left@example.com"] and failed.data["partial"] is True
    assert failed.data["outbox"] == row.pk and "550" in failed.data["error"]
    assert OutboxMessage.objects.count() == 2  # refused for good: nothing queued again


def test_a_recipient_refused_for_now_beside_an_accepted_one_gets_the_message_later_alone(case, smtp_server):
    refused = {"busy@example.com": "450 4.2.0 greylisted, try again later"}
    refusing(smtp_server, refused)
    row = enqueue(case=case, purpose="reassigned", to=["busy@example.com", "new@example.com"], subject="s", body="b")
    assert deliver_due() == 1
    again = OutboxMessage.objects.exclude(pk=row.pk).get()
    assert again.to == ["busy@example.com"] and again.status == "pending" and again.body == row.body
    assert again.in_reply_to == row.in_reply_to and again.headers == row.headers
    assert not case.events.filter(kind="mail_failed").exists()  # it will go: nothing to tell anyone yet
    refused.clear()
    assert deliver_due(now=again.due_at + timedelta(seconds=1)) == 1
    assert message_ids(smtp_server, "busy@example.com") == [again.message_id]
    assert message_ids(smtp_server, "new@example.com") == [row.message_id]  # not sent twice
