"""Demo replay: a realistic request stream sent into the running product through its real
channels, with staff work simulated at a configured capacity through the API.

Simulated time runs `speed` times faster than the wall clock; the product records real
times, so figures after a replay at speed 60 read in minutes what a real day reads in hours.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from closeloop.cases.demo import PATIENTS, SUBJECTS

from . import patterns

HOUR = 3600.0
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FORM_FIELD = re.compile(r'name="(f_[a-z0-9_]+)"')


@dataclass
class Channels:
    api: bool = True
    smtp: tuple[str, int] | None = None  # the intake SMTP listener
    smtp_to: str = "frontdesk@closeloop.local"
    folder: Path | None = None  # the watched intake folder
    webform: bool = False  # the public request form at /forms/<type>/


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, bucket: dict[str, int], key: str) -> None:
        bucket[key] = bucket.get(key, 0) + 1


class Replay:
    def __init__(self, *, staff: httpx.Client, staff_name: str, specialist: httpx.Client, specialist_name: str,
                 channels: Channels,
                 per_day: float, capacity_per_hour: float, speed: float, seed: int = 7,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.staff, self.specialist, self.specialist_name = staff, specialist, specialist_name
        self.staff_name, self.now = staff_name, 0.0
        self._stuck: set[str] = set()  # cases the API refused an action on: left to the humans
        self.channels, self.per_day, self.capacity, self.speed = channels, per_day, capacity_per_hour, speed
        self.rng, self.sleep, self.clock, self.tally = random.Random(seed), sleep, clock, Tally()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._asked: set[str] = set()
        self._briefed: set[str] = set()

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (t, next(self._seq), action))

    def run(self, days: float, start: datetime | None = None) -> Tally:
        start = start or datetime.now(UTC)
        for arrival in patterns.arrivals(self.rng, start, days, self.per_day):
            self.at((arrival - start).total_seconds(), self._arrive)
        step = HOUR / self.capacity
        for k in range(int(days * 86400 / step)):
            self.at(k * step, self._work)
        began = self.clock()
        while self._queue:
            t, _, action = heapq.heappop(self._queue)
            if t > days * 86400:
                break
            self.sleep(max(0.0, t / self.speed - (self.clock() - began)))
            self.now = t
            try:
                action()
            except (httpx.HTTPError, smtplib.SMTPException, OSError) as exc:
                self.tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        return self.tally

    # ---------------------------------------------------------------- requests arriving

    def _arrive(self) -> None:
        kind = patterns.request_type(self.rng)
        name, dob, phone = self.rng.choice(PATIENTS)
        email = name.lower().replace(" ", ".").replace("'", "") + "@example.com"
        subject, missing = self.rng.choice(SUBJECTS[kind]), self.rng.random() < patterns.MISSING_INFO_RATE[kind]
        body = f"{subject}\nPatient: {name}" + ("" if missing else f", born {dob}, phone {phone}")
        options = [c for c, on in (("api", self.channels.api), ("smtp", self.channels.smtp),
                                   ("folder", self.channels.folder), ("webform", self.channels.webform)) if on]
        channel = self.rng.choice(options)
        if channel == "webform" and not self._fill_form(kind, name, email, dob, phone, body, missing):
            channel = "api"  # the form's rate limit said no: the request still arrives, through the API
            self.tally.count(self.tally.sent, "webform_rate_limited")
        if channel == "smtp":
            self._send_mail(email, name, subject, body)
        elif channel == "folder":
            self._drop_file(subject, body)
        elif channel == "api":
            fields = {"patient_name": {"value": name}}
            if not missing:
                fields.update({"date_of_birth": {"value": dob}, "phone": {"value": phone}})
            self._ok(self.staff.post("/api/cases/", json={
                "subject": subject, "body": body, "channel": "api",
                "request_type": None if self.rng.random() < 0.1 else kind,
                "requester": {"name": name, "email": email}, "fields": fields}))
        self.tally.count(self.tally.sent, channel)

    def _send_mail(self, sender: str, name: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = f"{name} <{sender}>", self.channels.smtp_to, subject
        message.set_content(body)
        host, port = self.channels.smtp  # type: ignore[misc]
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(message)

    def _fill_form(self, kind: str, name: str, email: str, dob: str, phone: str, body: str, missing: bool) -> bool:
        """A requester at the public form: fetch the page (session and CSRF cookie), fill in the
        type's fields, leave the honeypot empty, post. False when the form's rate limit refuses."""
        with httpx.Client(base_url=str(self.staff.base_url), timeout=30) as browser:
            page = browser.get(f"/forms/{kind}/")
            page.raise_for_status()
            token = CSRF_INPUT.search(page.text)
            if token is None:
                raise httpx.HTTPError(f"no CSRF token on /forms/{kind}/")
            values = {"date_of_birth": "" if missing else dob, "patient_name": name}
            fields = {f: values.get(f[2:], "" if missing else "supplied") for f in FORM_FIELD.findall(page.text)}
            response = browser.post(f"/forms/{kind}/", data={
                "csrfmiddlewaretoken": token.group(1), "name": name, "email": email, "phone": phone,
                "message": body, "consent": "on", "website": "", **fields,
            }, headers={"Referer": str(page.url)})
        if response.status_code == 429:
            return False
        if response.status_code != 302 or "/forms/done/" not in response.headers.get("location", ""):
            raise httpx.HTTPError(f"web form answered {response.status_code}: {response.text[:200]}")
        return True

    def _drop_file(self, subject: str, body: str) -> None:
        folder = self.channels.folder
        assert folder is not None
        name = f"replay-{int(self.now)}-{next(self._seq)}.pdf"
        (folder / f".{name}.part").write_bytes(pdf(f"{subject}\n{body}"))
        (folder / f".{name}.part").rename(folder / name)  # appear whole, never half-written

    # ---------------------------------------------------------------- staff at work

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def _act(self, ref: str, verb: str, payload: dict[str, Any], client: httpx.Client | None = None) -> None:
        response = (client or self.staff).post(f"/api/cases/{ref}/{verb}", json=payload)
        if response.status_code == 409:  # someone else moved it first: next tick sees the new state
            return
        self._ok(response)
        self.tally.count(self.tally.actions, verb)

    def _work(self) -> None:
        """One unit of staff work: the most urgent case waiting on the team gets its next step."""
        page = self._ok(self.staff.get("/api/cases/", params={"open": "true", "waiting_on": "owner", "limit": 50}))
        case = next((c for c in page["items"] if c["reference"] not in self._stuck), None)
        if case is None:
            return
        ref, version, stage = case["reference"], {"version": case["version"]}, case["stage"]
        try:
            self._next_step(case, ref, version, stage)
        except httpx.HTTPStatusError:
            self._stuck.add(ref)
            raise

    def _next_step(self, case: dict[str, Any], ref: str, version: dict[str, int], stage: str) -> None:
        if stage in ("triage", "new"):
            kind = patterns.request_type(self.rng)
            self._act(ref, "classify", {**version, "request_type": kind, "confidence": 1.0})
        elif case["owner"] is None:
            self._act(ref, "assign", {**version, "owner": self.staff_name})
        elif case["missing_fields"] and ref not in self._asked:
            self._asked.add(ref)
            self._act(ref, "request-info", version)
            delay = patterns.delay_hours(self.rng, patterns.REQUESTER_DELAY_HOURS) * HOUR
            self.at(self.now + delay, lambda: self._requester_replies(ref))
        elif case["missing_fields"]:
            self._act(ref, "fields", {**version, "fields": {f: {"value": "supplied"} for f in case["missing_fields"]}})
        elif stage == "in_progress" and ref not in self._briefed and \
                self.rng.random() < patterns.SPECIALIST_RATE.get(case["request_type"] or "", 0.0):
            self._briefed.add(ref)
            self._act(ref, "hand-to-specialist", {**version, "specialist": self.specialist_name,
                                                  "question": "Please review and say how soon to book."})
            delay = patterns.delay_hours(self.rng, patterns.SPECIALIST_DELAY_HOURS) * HOUR
            self.at(self.now + delay, lambda: self._act(ref, "specialist-answer", {
                "answer": "Book a consult within two weeks."}, self.specialist))
        else:
            self._act(ref, "send", {**version, "body": "Thank you: we have booked you in."})
            self.at(self.now + self.rng.uniform(1, 24) * HOUR, lambda: self._close(ref))

    def _requester_replies(self, ref: str) -> None:
        self._act(ref, "messages", {"body": "Here is the information you asked for.", "from_requester": True})

    def _close(self, ref: str) -> None:
        case = self._ok(self.staff.get(f"/api/cases/{ref}"))
        if case["stage"] == "answered":
            self._act(ref, "close", {"version": case["version"], "outcome": "completed"})


class PatientTransport(httpx.HTTPTransport):
    """Waits out the API's rate limit: a 429 is retried after its `Retry-After` (at most `tries` times, each
    wait at most `longest` seconds), so a fast replay slows down instead of leaving cases unworked."""

    def __init__(self, tries: int = 10, longest: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.tries, self.longest, self.sleep = tries, longest, sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.tries - 1):
            response = super().handle_request(request)
            if response.status_code != 429:
                return response
            try:
                wait = float(response.headers.get("Retry-After", "1"))
            except ValueError:  # an HTTP date instead of seconds: wait a second and ask again
                wait = 1.0
            response.close()
            self.sleep(min(self.longest, max(0.0, wait)))
        return super().handle_request(request)


def pdf(text: str) -> bytes:
    """A minimal one-page PDF showing `text` (what a scanner drops into the watched folder)."""
    lines = [ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for ln in text.splitlines()]
    stream = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({ln}) '" for ln in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream.encode('latin-1', 'replace'))} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1", "replace")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)

