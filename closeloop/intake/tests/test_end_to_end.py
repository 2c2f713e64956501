"""Mail in, through the worker, to a routed case with fields and an acknowledgement out."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from closeloop.intake.inbound import Inbound
from closeloop.intake.pipeline import receive_and_process
from closeloop.understanding.training import train
from closeloop.worker import run_once

pytestmark = pytest.mark.django_db
DEV = Path(__file__).resolve().parents[3] / "data" / "dev" / "requests_train.csv"


@pytest.fixture(params=[False, True], ids=["tfidf", "embeddings"])
def trained(request, practice, settings):
    settings.CLOSELOOP_EMBEDDINGS = request.param  # the product's default is on; off is the fast path
    with DEV.open() as f:
        rows = [r for r in csv.DictReader(f) if r["label"] != "oos"]
    assert train([r["text"] for r in rows], [r["label"] for r in rows], force=True).version is not None


def test_a_refill_email_is_acknowledged_understood_routed_and_its_fields_recorded(trained, practice, mail,
                                                                                   smtp_server):
    raw = mail(subject="Refill request", body=(
        "Hello, this is Maria Gonzalez, date of birth 03/14/1961. I am almost out of my meloxicam 15 mg "
        "and need a refill sent to the CVS pharmacy on Main Street. My phone is (617) 555-0142. Thank you."))
    row, _ = receive_and_process(Inbound(channel="import", raw=raw))
    row.refresh_from_db()
    case = row.case
    assert case.stage == "new"
    for _ in range(3):
        run_once()
    case.refresh_from_db()
    assert case.request_type.slug == "refill" and case.stage == "in_progress", case.stage
    assert case.team.slug == "intake"
    assert case.field_value("date_of_birth") == "1961-03-14"
    assert case.fields["date_of_birth"]["source"]
    ack = smtp_server.to("maria@example.com")[0].message
    assert case.reference in ack["Subject"]


def test_a_reply_that_supplies_missing_information_updates_the_checklist(trained, practice, mail, smtp_server):
    from closeloop.cases import actions

    row, _ = receive_and_process(Inbound(channel="import", raw=mail(
        subject="Refill please", body="Please refill my meloxicam 15 mg at the CVS pharmacy. Maria Gonzalez.",
        message_id="<first@example.com>")))
    run_once()
    case = row.case
    case.refresh_from_db()
    assert "date_of_birth" in case.missing_fields
    actions.request_missing_info(case, actions.Actor.system("test"))
    run_once()
    reply = mail(subject=f"Re: [{case.reference}] more information", body="My date of birth is 1961-03-14.",
                 message_id="<second@example.com>", headers={"In-Reply-To": "<first@example.com>"})
    second, _ = receive_and_process(Inbound(channel="import", raw=reply))
    second.refresh_from_db()
    assert second.result == "threaded" and second.case_id == case.pk, (second.result, second.error)
    run_once()
    case.refresh_from_db()
    assert case.field_value("date_of_birth") == "1961-03-14"
    assert case.missing_fields == ["patient_name"]
    assert case.stage == "in_progress" and case.waiting_on == "owner"  # the reply handed the ball back


def test_a_specialist_answers_by_replying_to_the_brief(practice, mail, smtp_server):
    from closeloop.cases import actions
    from closeloop.cases.models import Party
    from closeloop.outbound.outbox import deliver_due

    case = actions.open_case(actor=actions.Actor.system(), subject="Knee referral", body="Please see Maria.",
                             request_type=practice.types["referral"],
                             requester=Party.objects.create(name="Dr Shah", email="shah@clinic.example"))
    actions.hand_to_specialist(case, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Surgical consult or physio first?")
    deliver_due()
    brief = smtp_server.to(practice.specialist.user.email)[0].message
    reply = mail(sender=practice.specialist.user.email, subject=f"Re: {brief['Subject']}",
                 body="Physio first, review in six weeks.\n\nOn Mon, closeloop wrote:\n> Surgical consult or physio?",
                 headers={"In-Reply-To": brief["Message-ID"].strip()})
    row, _ = receive_and_process(Inbound(channel="import", raw=reply))
    row.refresh_from_db()
    case.refresh_from_db()
    assert row.result == "specialist_answered", (row.result, row.error)
    assert case.stage == "ready_to_reply" and case.specialist_answer == "Physio first, review in six weeks."
    event = case.events.get(kind="specialist_answered")
    assert event.actor_staff == practice.specialist


def test_a_forged_specialist_answer_from_the_requester_is_not_taken_as_the_answer(practice, mail, smtp_server):
    """The requester holds the ack (its Message-ID, the signed Reply-To); only the brief's Message-ID
    proves the specialist's own mailbox: a From header alone is anyone's to write."""
    from closeloop.cases import actions
    from closeloop.outbound.models import OutboxMessage

    row, _ = receive_and_process(Inbound(channel="smtp", raw=mail(sender="shah@clinic.example")))
    case = row.case
    ack = OutboxMessage.objects.get(case=case, purpose="ack")
    actions.hand_to_specialist(case, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Surgical consult or physio first?")
    forged = mail(sender=practice.specialist.user.email, subject="Re: your request", body="Surgery at once.",
                  to=ack.headers["Reply-To"], headers={"In-Reply-To": ack.message_id})
    row, _ = receive_and_process(Inbound(channel="smtp", raw=forged))
    row.refresh_from_db()
    case.refresh_from_db()
    assert row.result == "threaded" and row.case == case  # kept on the case for a person to read
    assert case.stage == "awaiting_specialist" and not case.specialist_answer
    assert not case.events.filter(kind="specialist_answered").exists()
