"""Real Chromium, several people at once: a reply from a template approved by a second person and
received over SMTP; one person's change appearing on another's queue and case page without a
reload; the conflict message when someone else changed the case first."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from closeloop.cases import actions
from closeloop.cases.models import Case, Message, Party
from closeloop.outbound.outbox import deliver_due

from .test_browser import assert_accessible, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def fast_polls(settings: Any) -> None:
    settings.CLOSELOOP_WEB_POLL_SECONDS = 1


@pytest.fixture
def referral(transactional_db: None, practice: Any) -> Case:
    party = Party.objects.create(name="Grace Mensah", email="grace@example.com", phone="+1 617 555 0166")
    case = actions.open_case(
        actor=actions.Actor.system("intake"), subject="Referral: shoulder impingement", channel="email",
        body="Please see Grace.", request_type=practice.types["referral"], requester=party,
        fields={"patient_name": {"value": "Grace Mensah"}, "date_of_birth": {"value": "1972-12-01"},
                "phone": {"value": "+1 617 555 0166"}, "reason": {"value": "shoulder pain"}},
    )
    actions.assign(case, actions.Actor.of(practice.coordinator), owner=practice.coordinator)
    return case


def new_person(browser: Any, base: str, username: str) -> Page:
    page: Page = browser.new_context().new_page()
    sign_in(page, base, username)
    return page


def test_a_reply_from_a_template_is_edited_drafted_approved_and_received(
        referral: Case, live_server: Any, page: Page, browser: Any, smtp_server: Any, practice: Any) -> None:
    rt = practice.types["referral"]
    rt.policy = {**rt.policy, "reply_approval": "second_person"}
    rt.save()
    base = live_server.url
    sign_in(page, base, "coordinator")
    page.goto(f"{base}/c/{referral.pk}/")
    page.keyboard.press("r")
    page.get_by_label("Template").select_option(label="Need more information")
    body = page.get_by_label("Body")
    expect(body).to_have_value(re.compile(r"^Hello Grace Mensah,\n"))  # filled by the server via htmx
    expect(page.get_by_label("Subject")).to_have_value(f"We need a little more for {referral.reference}")
    expect(page.get_by_text("This reply needs approval before it goes out")).to_be_visible()
    expect(page.locator("#act-reply").get_by_role("button", name="Send now")).to_have_count(0)
    assert_accessible(page)
    body.fill(body.input_value().replace("Hello Grace Mensah,", "Dear Ms Mensah,"))
    page.get_by_role("button", name="Save draft for approval").click()
    expect(page.get_by_text("Draft saved; it waits for approval.")).to_be_visible()
    expect(page.get_by_text("Someone other than its author approves this draft.")).to_be_visible()

    supervisor = new_person(browser, base, "supervisor")
    supervisor.goto(f"{base}/c/{referral.pk}/")
    draft = Message.objects.get(case=referral, status=Message.Status.DRAFT)
    edit = supervisor.locator(f"#draft-{draft.pk}-body")
    expect(edit).to_have_value(re.compile("Dear Ms Mensah,"))
    assert_accessible(supervisor)
    edit.fill(edit.input_value() + "\nPS: a photo of the insurance card is fine.")
    supervisor.get_by_role("button", name="Approve and send").click()
    expect(supervisor.get_by_text("Reply edited, approved and sent.")).to_be_visible()

    deliver_due()
    [mail] = smtp_server.to("grace@example.com")
    text = mail.message.get_content()
    assert "Dear Ms Mensah," in text and "a photo of the insurance card is fine" in text
    assert "the referring provider's name" in text and "Casey Morgan" in text
    assert mail.message["Subject"] == f"We need a little more for {referral.reference}"


def test_people_see_each_others_changes_without_reloading(referral: Case, live_server: Any, page: Page,
                                                          browser: Any, fast_polls: None) -> None:
    base = live_server.url
    sign_in(page, base, "coordinator")
    page.goto(f"{base}/q/team/")
    row = page.locator("tr[data-row]", has_text=referral.reference)
    expect(row).to_contain_text("Casey Morgan")
    jordan = new_person(browser, base, "jordan")
    jordan.goto(f"{base}/c/{referral.pk}/")
    casey_case = browser.new_context()  # Casey again, in a second window on the case page
    case_page = casey_case.new_page()
    sign_in(case_page, base, "coordinator")
    case_page.goto(f"{base}/c/{referral.pk}/")
    expect(case_page.locator("#casehead")).to_contain_text("Casey Morgan")

    # Jordan takes the case: Casey's queue row and case header follow, no reload.
    jordan.keyboard.press("a")
    jordan.locator("#act-assign").get_by_label("Owner").select_option(label="Jordan Lee")
    jordan.locator("#act-assign").get_by_role("button", name="Assign").click()
    expect(jordan.get_by_text("Assigned to Jordan Lee.")).to_be_visible()
    expect(row).to_contain_text("Jordan Lee")
    expect(case_page.locator("#casehead")).to_contain_text("Jordan Lee")
    expect(case_page.get_by_text("This case changed: Jordan Lee — assigned.")).to_be_visible()

    # Jordan snoozes it: the row is tagged and the header says until when.
    jordan.keyboard.press("s")
    jordan.get_by_label("Snooze until").fill("2099-01-05T09:00")
    jordan.locator("#act-snooze").get_by_label("Reason").fill("waiting for the MRI disc")
    jordan.locator("#act-snooze").get_by_role("button", name="Snooze").click()
    expect(jordan.get_by_text("Snoozed.", exact=True)).to_be_visible()
    expect(row).to_contain_text("snoozed")
    expect(case_page.locator("#casehead")).to_contain_text("waiting for the MRI disc")

    # Casey acts on the page as first loaded: the conflict message, and what Casey typed is kept.
    case_page.keyboard.press("e")
    case_page.locator("#act-escalate").get_by_label("Reason").fill("patient called twice")
    case_page.locator("#act-escalate").get_by_role("button", name="Escalate").click()
    expect(case_page.get_by_text("Someone else changed this case first.")).to_be_visible()
    expect(case_page.locator("#act-escalate").get_by_label("Reason")).to_have_value("patient called twice")
    assert_accessible(case_page)
    assert Case.objects.get(pk=referral.pk).escalation_level == 0
    case_page.locator("#act-escalate").get_by_role("button", name="Escalate").click()
    expect(case_page.get_by_text("Escalated to Sam Alvarez.")).to_be_visible()
