"""The specialist's brief through the Django test client: answers kept on a conflict, bad input refused."""

from __future__ import annotations

from typing import Any

from closeloop.cases import actions
from closeloop.cases.models import Case
from closeloop.cases.stages import Stage

from .conftest import signed_in


def _briefed(practice: Any, case: Case) -> Case:
    actions.hand_to_specialist(case, actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Consult within two weeks, or routine?")
    return case


def test_a_written_answer_survives_a_conflict(practice: Any, referral: Case) -> None:
    case = _briefed(practice, referral)
    stale = case.version
    actions.record_fields(case, actions.Actor.of(practice.coordinator),
                          {"insurance_payer": {"value": "Aetna", "confidence": 1.0}})
    response = signed_in("specialist").post(f"/specialist/{case.pk}/", {
        "version": stale, "answer": "Routine; MRI first, then clinic in 4-6 weeks."})
    page = response.content.decode()
    assert response.status_code == 409
    assert "Someone else changed this case first" in page
    assert "Routine; MRI first, then clinic in 4-6 weeks.</textarea>" in page
    assert f'name="version" value="{Case.objects.get(pk=case.pk).version}"' in page
    assert Case.objects.get(pk=case.pk).stage == Stage.AWAITING_SPECIALIST


def test_a_malformed_version_gets_a_clear_error(practice: Any, referral: Case) -> None:
    case = _briefed(practice, referral)
    response = signed_in("specialist").post(f"/specialist/{case.pk}/", {"version": "abc", "answer": "Routine."})
    assert response.status_code == 400
    assert "Routine.</textarea>" in response.content.decode()
    assert Case.objects.get(pk=case.pk).specialist_answer == ""


def test_an_empty_answer_is_refused_with_the_reason(practice: Any, referral: Case) -> None:
    case = _briefed(practice, referral)
    response = signed_in("specialist").post(f"/specialist/{case.pk}/", {"version": case.version, "answer": "  "})
    assert response.status_code == 400
    assert "the answer is empty" in response.content.decode()


def test_a_one_click_answer_is_recorded(practice: Any, referral: Case) -> None:
    case = _briefed(practice, referral)
    response = signed_in("specialist").post(f"/specialist/{case.pk}/", {
        "version": case.version, "quick": "Yes: routine appointment is fine."})
    assert response.status_code == 302
    assert Case.objects.get(pk=case.pk).specialist_answer == "Yes: routine appointment is fine."


def test_a_clicked_answer_wins_and_the_typed_text_is_kept_as_its_note(practice: Any, referral: Case) -> None:
    case = _briefed(practice, referral)
    response = signed_in("specialist").post(f"/specialist/{case.pk}/", {
        "version": case.version, "quick": "Yes: routine appointment is fine.", "answer": "  MRI of the knee first. "},
        follow=True)
    recorded = Case.objects.get(pk=case.pk).specialist_answer
    assert recorded == "Yes: routine appointment is fine.\nNote: MRI of the knee first."
    page = response.content.decode()
    assert "Yes: routine appointment is fine." in page and "with your note" in page


def test_a_typed_answer_alone_is_recorded_as_typed(practice: Any, referral: Case) -> None:
    case = _briefed(practice, referral)
    signed_in("specialist").post(f"/specialist/{case.pk}/", {"version": case.version, "answer": "Routine; MRI first."})
    assert Case.objects.get(pk=case.pk).specialist_answer == "Routine; MRI first."
