"""The issue's list, one item at a time, in real Chromium as a paying user would try it: tablet width
without sideways scrolling, search by birth date and phone, bulk assign and snooze from the keyboard,
the document viewer lighting up a field's source, the Quarantine queue."""

from __future__ import annotations

import io
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from closeloop.cases import actions
from closeloop.cases.documents import store_document
from closeloop.cases.links import status_token
from closeloop.cases.models import Case, Party
from closeloop.intake.inbound import Inbound
from closeloop.intake.pipeline import receive_and_process

from .test_browser import assert_accessible, sign_in

pytestmark = pytest.mark.browser


def scan_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (850, 1100), "white")
    ImageDraw.Draw(image).text((100, 200), "Patient: Robert Chen   DOB 1955-01-30", fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def cases(transactional_db: None, practice: Any) -> list[Case]:
    out = []
    for name, dob, phone, subject in [("Robert Chen", "1955-01-30", "+1 781 555 0110", "Referral: hip pain"),
                                      ("Sofia Rossi", "2001-08-11", "+1 617 555 0188", "Referral: ankle"),
                                      ("Peter Lindqvist", "1949-04-25", "+1 978 555 0104", "Referral: back")]:
        party = Party.objects.create(name=name, email=f"{name.split()[0].lower()}@example.com", phone=phone)
        out.append(actions.open_case(
            actor=actions.Actor.system("intake"), subject=subject, channel="email", body=f"Please see {name}.",
            request_type=practice.types["referral"], requester=party,
            fields={"patient_name": {"value": name}, "date_of_birth": {"value": dob}}))
    scan = store_document(scan_png(), "referral-letter.png", "image/png", source="email", case=out[0])
    actions.record_fields(out[0], actions.Actor.model("extractor"), {
        "patient_name": {"value": "Robert Chen", "confidence": 0.93,
                         "source": {"kind": "ocr", "document": scan.pk, "page": 1,
                                    "boxes": [[0.11, 0.17, 0.45, 0.2]]}}})
    return out


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at tablet width"


def test_every_page_fits_a_tablet_without_sideways_scrolling(cases: list[Case], live_server: Any, page: Page,
                                                             browser: Any, practice: Any) -> None:
    base = live_server.url
    actions.hand_to_specialist(cases[0], actions.Actor.of(practice.coordinator), specialist=practice.specialist,
                               question="Hip replacement candidate?")
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, base, "coordinator")
    for path in ("/q/mine/", "/q/team/", "/q/triage/", "/q/waiting/", "/q/overdue/", "/q/quarantine/",
                 f"/c/{cases[0].pk}/", f"/specialist/{cases[0].pk}/", "/account/two-step/"):
        page.goto(base + path)
        no_sideways_scroll(page)
        assert_accessible(page)
    requester = browser.new_page(viewport={"width": 768, "height": 1024})
    requester.goto(f"{base}/s/{status_token(cases[1])}/")
    no_sideways_scroll(requester)


def test_it_finds_cases_by_birth_date_and_phone(cases: list[Case], live_server: Any, page: Page) -> None:
    sign_in(page, live_server.url, "coordinator")
    page.goto(f"{live_server.url}/q/team/")
    for query, found in (("08/11/2001", cases[1]), ("978.555.0104", cases[2]), ("1955-01-30", cases[0])):
        page.keyboard.press("/")
        page.keyboard.type(query)
        page.keyboard.press("Enter")
        rows = page.locator("tr[data-row]")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text(found.reference)


def test_it_assigns_and_snoozes_in_bulk_from_the_keyboard(cases: list[Case], live_server: Any, page: Page) -> None:
    sign_in(page, live_server.url, "coordinator")
    page.goto(f"{live_server.url}/q/team/")
    for _ in range(2):
        page.keyboard.press("j")
        page.keyboard.press("x")
    page.get_by_label("Owner").select_option(label="Jordan Lee")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_text("Updated 2 cases.")).to_be_visible()
    assert Case.objects.filter(owner__user__username="jordan").count() == 2
    expect(page.locator("tr[data-row]", has_text="Jordan Lee")).to_have_count(2)

    page.get_by_label(f"Select {cases[2].reference}").check()
    page.get_by_label("Snooze until").fill("2099-02-01T09:00")
    page.get_by_label("Reason").fill("patient abroad until February")
    page.get_by_role("button", name="Snooze").click()
    expect(page.get_by_text("Updated 1 case.")).to_be_visible()
    expect(page.locator("tr[data-row]", has_text=cases[2].reference)).to_contain_text("snoozed")


def test_clicking_a_field_lights_up_where_it_came_from(cases: list[Case], live_server: Any, page: Page) -> None:
    sign_in(page, live_server.url, "coordinator")
    page.goto(f"{live_server.url}/c/{cases[0].pk}/")
    image = page.get_by_role("img", name="referral-letter.png, page 1")
    expect(image).to_be_visible()
    assert page.evaluate("document.querySelector('figure.page img').naturalWidth") == 850  # the real page
    box = page.locator('.box[data-box="patient_name"]')
    expect(box).not_to_have_class("box on")
    page.get_by_role("button", name="Patient name").click()
    expect(box).to_have_class("box on")
    expect(page.locator("#src-patient_name")).to_contain_text("ocr")
    shown = box.bounding_box()
    figure = image.bounding_box()
    assert shown and figure and shown["width"] > 0.3 * figure["width"] and shown["y"] > figure["y"]
    page.get_by_role("button", name="Patient name").click()
    expect(box).to_have_class("box")


def test_the_quarantine_queue_lists_failures_and_retries_them(transactional_db: None, practice: Any,
                                                              live_server: Any, page: Page, settings: Any) -> None:
    settings.CLOSELOOP_INTAKE_SENDER_LIMIT = 0  # the flood guard refuses everything
    raw = (b"From: frontdesk@clinic.example\r\nSubject: Fax <b>batch</b>\r\nMessage-ID: <q1@x>\r\n\r\n"
           + b"please see the attached " * 20)
    row, _ = receive_and_process(Inbound(channel="import", raw=raw))
    sign_in(page, live_server.url, "coordinator")
    expect(page.locator('a[data-goto="quarantine"]')).to_contain_text("1")
    page.keyboard.press("g")
    page.keyboard.press("q")
    expect(page.get_by_role("heading", name="Quarantine", level=1)).to_be_visible()
    expect(page.get_by_role("cell", name="flood: frontdesk@clinic.example opened 0 cases")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Retry").click()  # a person's retry accepts a flood-held message
    row.refresh_from_db()
    expect(page.get_by_text(f"Processed into {row.case.reference}.")).to_be_visible()
    expect(page.get_by_text("Nothing in quarantine.")).to_be_visible()


def test_a_polling_page_goes_to_sign_in_when_the_session_ends(cases: list[Case], live_server: Any, page: Page,
                                                             settings: Any) -> None:
    from django.contrib.sessions.models import Session

    settings.CLOSELOOP_WEB_POLL_SECONDS = 1
    sign_in(page, live_server.url, "coordinator")
    page.goto(f"{live_server.url}/q/team/")
    expect(page.locator("tr[data-row]")).to_have_count(3)
    Session.objects.all().delete()  # as when the session expires or an admin ends it
    expect(page).to_have_url(f"{live_server.url}/login/?next=%2Fq%2Fteam%2F")
    expect(page.get_by_label("Username")).to_be_visible()
