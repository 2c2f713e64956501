from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from closeloop.intake.models import InboundMessage

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def visitor(practice):
    return Client(enforce_csrf_checks=True)


def _post(visitor, slug="referral", ip="203.0.113.5", **overrides):
    page = visitor.get(f"/forms/{slug}/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    data = {"csrfmiddlewaretoken": token, "name": "Maria Gonzalez", "email": "maria@example.com",
            "message": "I need a knee consultation <script>alert(1)</script>", "consent": "on",
            "f_patient_name": "Maria Gonzalez", "f_date_of_birth": "1961-03-14", **overrides}
    return visitor.post(f"/forms/{slug}/", data, REMOTE_ADDR=ip)


def test_the_form_shows_the_types_fields_and_consent(visitor):
    page = visitor.get("/forms/referral/").content.decode()
    assert "New patient referral" in page and "the patient&#x27;s date of birth".capitalize()[:10] in page
    assert "I agree" in page and 'name="website"' in page


def test_a_submission_opens_a_case_and_shows_the_reference(visitor):
    response = _post(visitor, attachments=SimpleUploadedFile("letter.pdf", PDF, content_type="application/pdf"))
    assert response.status_code == 302, re.findall(r'role="alert">([^<]*)', response.content.decode())
    done = visitor.get(response["Location"]).content.decode()
    row = InboundMessage.objects.get(channel="webform")
    case = row.case
    assert case.reference in done and "/s/" in done
    assert case.request_type.slug == "referral" and case.channel == "web"
    assert case.field_value("date_of_birth") == "1961-03-14"
    assert case.documents.get().filename == "letter.pdf"
    assert case.outbox.filter(purpose="ack").exists()


def test_it_refuses_without_the_csrf_token(visitor):
    assert visitor.post("/forms/referral/", {"name": "x"}).status_code == 403


def test_it_needs_consent_and_refuses_executables(visitor):
    exe = SimpleUploadedFile("setup.exe", b"MZ\x90\x00", "application/x-msdos")
    response = _post(visitor, consent="", attachments=exe)
    assert response.status_code == 200
    body = response.content.decode()
    assert "This field is required" in body and "not accepted" in body
    assert not InboundMessage.objects.exists()


def test_the_honeypot_drops_bots_quietly(visitor):
    response = _post(visitor, website="http://spam.example")
    assert response.status_code == 200 and not InboundMessage.objects.exists()


def test_one_address_is_rate_limited(visitor, settings):
    settings.CLOSELOOP_FORM_RATE_LIMIT = 2
    codes = [_post(visitor, message=f"request {i}").status_code for i in range(3)]
    assert codes == [302, 302, 429]
    assert _post(visitor, ip="198.51.100.7", message="other").status_code == 302


def test_an_unknown_type_is_not_found(visitor):
    assert visitor.get("/forms/no-such-type/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_simultaneous_submissions_from_one_address_cannot_pass_the_limit_together(practice, settings):
    """Ten posts at the same instant against a limit of two: counting stored rows let them all through."""
    settings.CLOSELOOP_FORM_RATE_LIMIT = 2
    threads = 10
    barrier = Barrier(threads)

    def one(i: int) -> int:
        data = {"name": "Bot", "email": f"bot{i}@example.com", "message": f"request {i}", "consent": "on"}
        barrier.wait()
        try:
            return Client().post("/forms/referral/", data, REMOTE_ADDR="192.0.2.66").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        codes = list(pool.map(one, range(threads)))
    assert sorted(codes) == [302] * 2 + [429] * 8
    assert InboundMessage.objects.filter(channel="webform").count() == 2


def test_a_worker_looking_at_the_same_instant_cannot_take_the_submission_from_the_form(visitor):
    """The form processes its submission itself so it can show the reference. If a worker claimed the
    new row in the instant between storing and processing, the form would say "we will be in touch"
    without one. The row is born claimed by the form, so the worker's compare-and-set finds nothing."""
    from django.db.models.signals import post_save
    from django.utils import timezone

    from closeloop.intake.pipeline import claim

    taken = []

    def worker_looks(sender, instance, created, **kwargs):  # as process_due sees a row, stopped mid-work
        if created:
            row, now = InboundMessage.objects.get(pk=instance.pk), timezone.now()
            taken.append(not (row.claimed_until and row.claimed_until > now) and claim(row, now))

    post_save.connect(worker_looks, sender=InboundMessage)
    try:
        response = _post(visitor)
    finally:
        post_save.disconnect(worker_looks, sender=InboundMessage)
    assert taken == [False]
    done = visitor.get(response["Location"]).content.decode()
    assert InboundMessage.objects.get(channel="webform").case.reference in done


def test_the_upload_limit_is_stated_as_a_human_size_on_the_form_and_in_its_error(visitor, settings):
    settings.CLOSELOOP_MAX_UPLOAD_BYTES = 300 * 1024
    assert "up to 300 KB each" in visitor.get("/forms/referral/").content.decode()
    scan = SimpleUploadedFile("scan.pdf", PDF + b"0" * (400 * 1024), content_type="application/pdf")
    body = _post(visitor, attachments=scan).content.decode()
    assert "scan.pdf is 400 KB; the limit is 300 KB" in body and "0 MB" not in body
    assert not InboundMessage.objects.exists()
