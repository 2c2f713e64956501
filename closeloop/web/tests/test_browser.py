"""The whole loop in real Chromium: triage, ask, the requester answers, the specialist answers,
a reply is approved and sent over real SMTP, the case closes; axe-core checks every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from closeloop.cases import actions
from closeloop.cases.links import status_token
from closeloop.cases.models import Case, Event, Party
from closeloop.cases.stages import Stage
from closeloop.outbound.outbox import deliver_due

pytestmark = pytest.mark.browser
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def assert_accessible(page: Page) -> None:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
            .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
    }""")
    assert found == [], f"{page.url}: {found}"


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    assert_accessible(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


@pytest.fixture
def triage_case(transactional_db: None, practice: Any) -> Case:
    party = Party.objects.create(name="Aisha Rahman", email="aisha@example.com", phone="+1 508 555 0123")
    case = actions.open_case(
        actor=actions.Actor.system("intake"), subject="Knee still painful after fall", channel="email",
        body="Dr Shah asked me to get an appointment for my knee.", requester=party,
        fields={"patient_name": {"value": "Aisha Rahman", "confidence": 0.96,
                                 "source": {"kind": "body", "start": 0, "end": 12}},
                "date_of_birth": {"value": "1990-07-23"}, "phone": {"value": "+1 508 555 0123"},
                "reason": {"value": "knee pain after a fall"}},
    )
    actions.send_to_triage(case, actions.Actor.model("classifier"), reason="low confidence",
                           suggestions=[{"type": "referral", "confidence": 0.61}])
    return case


def test_it_works_a_case_through_the_whole_loop(triage_case: Case, live_server: Any, page: Page, browser: Any,
                                                smtp_server: Any) -> None:
    # triage_case comes first: the database must be set up before the session's live server starts.
    base = live_server.url
    sign_in(page, base, "coordinator")
    assert_accessible(page)

    # Triage from the human queue.
    page.get_by_role("link", name="Human triage").click()
    page.get_by_role("link", name=triage_case.reference).click()
    expect(page.get_by_text("Suggestions for triage")).to_be_visible()
    assert_accessible(page)
    page.locator("#act-classify summary").click()
    page.get_by_label("Request type").select_option(label="New patient referral")
    page.locator("#act-classify").get_by_role("button", name="Classify / re-route").click()
    expect(page.get_by_text("Classified as New patient referral")).to_be_visible()

    # Ask for what is missing; the checklist is pre-ticked.
    page.keyboard.press("i")
    expect(page.locator("#act-request_info")).to_have_attribute("open", "")
    page.locator("#act-request_info").get_by_role("button", name="Send the request").click()
    expect(page.get_by_text("Asked the requester")).to_be_visible()
    assert Case.objects.get(pk=triage_case.pk).stage == Stage.AWAITING_INFO

    # The requester fills one field and uploads the insurance card on the status page.
    requester = browser.new_page()
    requester.goto(f"{base}/s/{status_token(Case.objects.get(pk=triage_case.pk))}/")
    expect(requester.get_by_text("We are waiting on you")).to_be_visible()
    assert_accessible(requester)
    requester.get_by_label("The referring provider's name").fill("Dr Helen Shah")
    requester.get_by_role("button", name="Send", exact=True).click()
    expect(requester.get_by_text("we saved what you sent")).to_be_visible()
    requester.get_by_label("File (PDF, image or text").set_input_files(
        files=[{"name": "insurance-card.png", "mimeType": "image/png", "buffer": PNG}])
    requester.get_by_label("This document is").select_option(label="The insurance company")
    requester.get_by_role("button", name="Upload").click()
    expect(requester.get_by_text("we received insurance-card.png")).to_be_visible()
    case = Case.objects.get(pk=triage_case.pk)
    assert case.missing_fields == [] and case.stage == Stage.IN_PROGRESS

    # Hand to the specialist, who answers in one click on the brief.
    page.reload()
    page.locator("#act-specialist summary").click()
    page.get_by_label("Specialist").select_option(label="Dana Okafor")
    page.get_by_label("The one question to answer").fill("Consult within two weeks, or routine?")
    page.locator("#act-specialist").get_by_role("button", name="Hand to specialist").click()
    expect(page.get_by_text("Handed to Dana Okafor")).to_be_visible()
    specialist = browser.new_context().new_page()
    sign_in(specialist, base, "specialist")
    specialist.goto(f"{base}/specialist/{triage_case.pk}/")
    expect(specialist.get_by_text("Consult within two weeks, or routine?")).to_be_visible()
    assert_accessible(specialist)
    specialist.get_by_label("Or write your answer").fill("Bring the MRI report.")  # then clicks a quick answer
    specialist.get_by_role("button", name="Yes: book a new-patient consultation within two weeks.").click()
    expect(specialist.get_by_text("your answer on")).to_contain_text("with your note")
    assert Case.objects.get(pk=triage_case.pk).specialist_answer == (
        "Yes: book a new-patient consultation within two weeks.\nNote: Bring the MRI report.")

    # Draft the reply (pre-filled with the answer), approve it, deliver it over SMTP.
    page.reload()
    expect(page.locator("#act-reply")).to_have_attribute("open", "")
    page.get_by_role("button", name="Save draft for approval").click()
    expect(page.get_by_text("Drafts awaiting approval")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Approve and send").click()
    expect(page.get_by_text("Reply approved and sent")).to_be_visible()
    deliver_due()
    [reply] = [m for m in smtp_server.to("aisha@example.com") if "new-patient consultation" in m.message.get_content()]
    assert triage_case.reference in reply.message["Subject"]

    # Close with an outcome; the requester rates it.
    page.keyboard.press("c")
    page.get_by_label("Outcome").select_option(label="Appointment booked")
    page.get_by_role("button", name="Close the case").click()
    expect(page.get_by_text("Closed.", exact=True)).to_be_visible()
    assert Case.objects.get(pk=triage_case.pk).stage == Stage.CLOSED
    requester.reload()
    requester.get_by_role("button", name="Very good").click()
    expect(requester.get_by_text("you rated us 5 of 5")).to_be_visible()
    assert Event.objects.filter(case=triage_case, kind="rated").exists()


def test_it_shows_shortcuts_and_stays_accessible_at_tablet_width(triage_case: Case, live_server: Any,
                                                                  page: Page) -> None:
    page.set_viewport_size({"width": 820, "height": 1100})
    sign_in(page, live_server.url, "coordinator")
    page.goto(f"{live_server.url}/q/triage/")
    assert_accessible(page)
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/c/{triage_case.pk}/")
    page.get_by_role("button", name="Patient name").click()
    source = page.locator("#src-patient_name")
    expect(source).to_be_visible()
    expect(source).to_contain_text("body")
    expect(page.locator("#src-phone")).to_be_hidden()


def test_it_retries_failed_mail_from_the_timeline(triage_case: Case, live_server: Any, page: Page,
                                                  smtp_server: Any) -> None:
    smtp_server.handler.refuse_with = "550 5.1.1 mailbox unavailable"
    actions.request_missing_info(triage_case, actions.Actor.system(), fields=["insurer"])
    deliver_due()
    smtp_server.handler.refuse_with = None
    sign_in(page, live_server.url, "coordinator")
    page.goto(f"{live_server.url}/c/{triage_case.pk}/")
    failed = page.locator("ol.timeline li", has_text="Mail could not be delivered")
    expect(failed).to_contain_text("550")
    assert_accessible(page)
    failed.get_by_role("button", name="Retry sending this mail").click()
    expect(page.get_by_text("is queued again")).to_be_visible()
    expect(page.get_by_role("button", name="Retry sending this mail")).to_have_count(0)
    assert deliver_due() == 1 and smtp_server.to("aisha@example.com")
