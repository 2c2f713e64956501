"""`closeloop screenshots`: regenerate docs/screenshots/ from a seeded temporary database.

1. create a throwaway test database (never the configured one) and seed the demo practice,
   plus one case with a scanned letter whose fields point at boxes on the page;
2. serve the app from a thread, drive Debian's Chromium with Playwright;
3. save one PNG per page, then drop the database.
"""

from __future__ import annotations

import io
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management.base import BaseCommand
from django.db import connection
from django.test.testcases import LiveServerThread
from django.utils import timezone

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


class Command(BaseCommand):
    help = "Regenerate screenshots of each page into docs/screenshots/ (Playwright + Chromium, temporary database)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--out", default=str(settings.BASE_DIR / "docs" / "screenshots"))
        parser.add_argument("--chromium", default="/usr/bin/chromium")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3"):
            db.setdefault("TEST", {})["NAME"] = str(Path(tempfile.mkdtemp(prefix="closeloop-shots-")) / "db.sqlite3")
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            ids = _seed()
            server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
            server.daemon = True
            server.start()
            server.is_ready.wait()
            if server.error:
                raise server.error
            try:
                for name in _shoot(f"http://127.0.0.1:{server.port}", ids, out, options["chromium"]):
                    self.stdout.write(f"wrote {out / name}")
            finally:
                server.terminate()
                server.join()
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)


def _seed() -> dict[str, Any]:
    from closeloop.cases import actions
    from closeloop.cases.demo import seed
    from closeloop.cases.documents import store_document
    from closeloop.cases.links import status_token
    from closeloop.cases.models import Case, Party, RequestType, Staff
    from closeloop.cases.stages import Stage
    from closeloop.followups.worker import run_due
    from closeloop.testing.histories import answered_referrals

    seed(cases=40)
    coordinator = Staff.objects.get(user__username="coordinator")
    answered_referrals(Staff.objects.get(user__username="jordan"), RequestType.objects.get(slug="referral"),
                       timezone.now() - timedelta(days=27), n=120, days=26)  # a history for the what-if model
    specialist = Staff.objects.get(user__username="specialist")
    letter, boxes = _letter()
    party = Party.objects.create(name="Grace Mensah", email="grace.mensah@example.com", phone="+1 617 555 0166")
    case = actions.open_case(actor=actions.Actor.system("intake"), subject="Referral: left shoulder impingement",
                             body="Please find the referral letter attached.", requester=party, channel="fax",
                             request_type=RequestType.objects.get(slug="referral"))
    doc = store_document(letter, "referral-letter.png", "image/png", source="fax", case=case)
    actions.record_fields(case, actions.Actor.model("extractor"), {
        name: {"value": value, "confidence": conf, "source": {"kind": "ocr", "document": doc.pk, "page": 1,
                                                                "boxes": [box]}}
        for name, (value, conf, box) in boxes.items()})
    actions.assign(case, actions.Actor.of(coordinator), owner=coordinator)
    actions.hand_to_specialist(case, actions.Actor.of(coordinator), specialist=specialist,
                               question="Is a surgical consult needed, or should we book physio first?")
    while run_due(200):  # what the worker in `closeloop run` does at once: the demo's overdue follow-ups
        pass
    waiting = Case.objects.filter(stage=Stage.AWAITING_INFO).order_by("id").first() or case
    triage = Case.objects.filter(stage=Stage.TRIAGE).order_by("id").first() or case
    return {"case": case.pk, "triage": triage.pk, "status": status_token(waiting)}


def _letter() -> tuple[bytes, dict[str, tuple[str, float, list[float]]]]:
    """A referral letter image, and the fields on it with boxes as fractions of the page."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = 850, 1100
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 22)
    lines = [("Cambridge Family Medicine", None), ("Dr. Helen Shah, NPI 1234567893", "referring_provider"),
             ("", None), ("Re: Grace Mensah", "patient_name"), ("Date of birth: 1972-12-01", "date_of_birth"),
             ("Phone: +1 617 555 0166", "phone"), ("", None),
             ("Reason: left shoulder pain for four months,", "reason"), ("painful arc, failed NSAIDs.", None),
             ("Insurance: Blue Cross Blue Shield", "insurance_payer")]
    values = {"referring_provider": "Dr. Helen Shah", "patient_name": "Grace Mensah", "date_of_birth": "1972-12-01",
              "phone": "+1 617 555 0166", "reason": "left shoulder pain, painful arc", "insurance_payer":
              "Blue Cross Blue Shield"}
    fields: dict[str, tuple[str, float, list[float]]] = {}
    y = 90
    for text, name in lines:
        draw.text((80, y), text, fill="black", font=font)
        if name:
            x0, y0, x1, y1 = draw.textbbox((80, y), text, font=font)
            box = [(x0 - 4) / width, (y0 - 4) / height, (x1 + 4) / width, (y1 + 4) / height]
            fields[name] = (values[name], 0.91 if name != "reason" else 0.74, box)
        y += 40
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue(), fields


def _shoot(base: str, ids: dict[str, Any], out: Path, chromium: str) -> list[str]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})

        def shot(name: str, full: bool = False) -> None:
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / name), full_page=full)
            written.append(name)

        page.goto(f"{base}/login/")
        shot("login.png")
        page.fill("#id_username", "coordinator")
        page.fill("#id_password", "demo")
        page.click("button[type=submit]")
        for queue in ("mine", "team", "triage", "waiting", "overdue", "quarantine"):
            page.goto(f"{base}/q/{queue}/")
            shot(f"queue-{queue}.png")
        page.goto(f"{base}/c/{ids['triage']}/")
        shot("case-triage.png")
        page.goto(f"{base}/c/{ids['case']}/")
        shot("case.png")
        page.click("button[data-field=referring_provider]")
        page.wait_for_timeout(600)
        shot("case-document-source.png")
        page.keyboard.press("?")
        shot("shortcuts.png")
        page.keyboard.press("Escape")
        page.goto(f"{base}/c/{ids['case']}/")
        page.keyboard.press("r")
        page.select_option("#id_reply-template", label="Need more information")
        page.wait_for_function("document.querySelector('#id_reply-body').value.startsWith('Hello')")
        page.locator("#act-reply").scroll_into_view_if_needed()
        shot("case-reply-template.png")
        page.set_viewport_size({"width": 768, "height": 1024})
        page.goto(f"{base}/c/{ids['case']}/")
        shot("case-tablet.png")
        page.set_viewport_size({"width": 1280, "height": 860})
        page.goto(f"{base}/account/two-step/")
        shot("two-step.png")
        page.goto(f"{base}/analytics/?days=28")
        page.wait_for_selector("#what-if-result", timeout=60_000)
        shot("analytics.png")
        page.goto(f"{base}/analytics/what-if/?days=28&team=intake&extra=1&triage=30")
        shot("analytics-what-if.png", full=True)
        specialist = browser.new_page(viewport={"width": 1280, "height": 860})
        specialist.goto(f"{base}/login/")
        specialist.fill("#id_username", "specialist")
        specialist.fill("#id_password", "demo")
        specialist.click("button[type=submit]")
        specialist.goto(f"{base}/specialist/{ids['case']}/")
        specialist.wait_for_load_state("networkidle")
        specialist.screenshot(path=str(out / "specialist.png"))
        written.append("specialist.png")
        requester = browser.new_page(viewport={"width": 1280, "height": 860})
        requester.goto(f"{base}/s/{ids['status']}/")
        requester.screenshot(path=str(out / "status.png"), full_page=True)
        written.append("status.png")
        browser.close()
    return written
