from __future__ import annotations

from datetime import UTC, datetime

import pytest

from closeloop.cases import actions
from closeloop.cases.models import Party
from closeloop.understanding.pipeline import enqueue_case, run_jobs
from closeloop.understanding.text import Page
from closeloop.understanding.training import case_text
from closeloop.understanding.urgency import find_cue

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday afternoon


def _cue(text):
    cue = find_cue([(None, Page(1, text, "email"))])
    return cue.text.lower() if cue else None


def test_cues_are_found_and_negated_ones_are_not():
    assert _cue("Please see her within 48 hours, thank you") == "within 48 hours"
    assert _cue("X-ray shows suspected scaphoid fracture") == "suspected scaphoid fracture"
    assert _cue("MRI read STAT please") == "stat"
    assert _cue("Referral for rule out malignancy of the distal femur") == "rule out malignancy"
    assert _cue("This is not urgent, any time next month") is None
    assert _cue("Non-urgent follow-up of knee pain") is None
    assert _cue("Routine follow up of knee pain") is None


@pytest.mark.parametrize("text", ["I was seen at Urgent Care last week and they said to see you",
                                  "Referral from Lakeside Urgent Care Center, knee sprain",
                                  "No need to expedite, any slot next month is fine"])
def test_an_urgent_care_clinic_or_a_declined_rush_is_not_an_urgency_cue(text):
    assert _cue(text) is None


def test_an_urgent_request_from_an_urgent_care_clinic_is_still_urgent():
    assert _cue("Urgent Care referral: please see urgently, suspected fracture") == "urgently"


def _referral(practice, body):
    party = Party.objects.create(name="Dr Lee", email="lee@clinic.example")
    return actions.open_case(actor=actions.Actor.system(), subject="Referral", body=body, requester=party,
                             request_type=practice.types["referral"], now=NOW)


def test_an_urgency_cue_raises_the_priority_with_its_source_and_tighter_due_times(practice):
    case = _referral(practice, "Referring Jane Roe, DOB 01/02/1960, suspected hip fracture, please see ASAP.")
    normal_resolution = case.resolution_due_at
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert case.priority == "urgent"
    event = case.events.get(kind="priority_set")
    assert event.actor_kind == "model" and event.data["from"] == "normal" and event.data["to"] == "urgent"
    cue = event.data["cue"]
    assert cue["text"].lower() == "suspected hip fracture" and cue["document"] is None
    assert case_text(case)[cue["start"]:cue["end"]].lower() == "suspected hip fracture"  # the span it came from
    assert case.resolution_due_at < normal_resolution  # the type's policy for an urgent case
    enqueue_case(case)
    run_jobs()
    assert case.events.filter(kind="priority_set").count() == 1  # raised once


def test_a_priority_a_person_set_is_not_overruled_by_a_cue(practice):
    case = _referral(practice, "Urgent: please see this week")
    actions.set_priority(case, actions.Actor.of(practice.coordinator), "normal", reason="called, not urgent")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert case.priority == "normal"
    assert case.events.filter(kind="priority_set").count() == 1


def test_set_priority_refuses_an_unknown_priority(practice):
    case = _referral(practice, "anything")
    with pytest.raises(actions.ActionError, match="unknown priority"):
        actions.set_priority(case, actions.Actor.of(practice.coordinator), "whenever", reason="x")
