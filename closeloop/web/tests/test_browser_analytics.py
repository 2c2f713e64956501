"""The analytics dashboard in Chromium: reached from the header, figures and charts, and the what-if
panel that htmx loads after the page (the simulation is too slow to hold the page for)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from closeloop.testing.histories import answered_referrals

from .test_browser import assert_accessible, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def answered(transactional_db: None, practice: Any) -> int:
    """Sixty referrals over the last two weeks, all answered (see closeloop.testing.histories)."""
    answered_referrals(practice.coordinator, practice.types["referral"], timezone.now() - timedelta(days=15))
    return 60


def test_the_dashboard_answers_what_one_more_coordinator_would_change(answered: int, live_server: Any,
                                                                       page: Page) -> None:
    sign_in(page, live_server.url, "supervisor")
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Where the time goes")).to_be_visible()
    expect(page.locator("section[aria-label=charts] svg")).to_have_count(4)
    panel = page.locator("#what-if")
    expect(panel.get_by_text(f"replays the {answered} requests")).to_be_visible(timeout=30_000)
    expect(panel.get_by_role("cell", name="one more coordinator", exact=True)).to_be_visible()
    expect(panel.locator("svg > title")).to_have_text("Time to first answer by scenario (p50 / p90 h)")
    assert_accessible(page)
    panel.get_by_role("link", name="Other scenarios").click()
    page.get_by_label("More coordinators").fill("3")
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("cell", name="3 more coordinators", exact=True)).to_be_visible(timeout=30_000)
    assert_accessible(page)
