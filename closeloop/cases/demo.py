"""The demo practice: Lakeside Orthopaedics, its teams, policies, people and a few dozen cases."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import actions
from .models import Party, RequestType, Role, Staff, Team
from .stages import Stage

TEAMS = [("Intake", "intake"), ("Scheduling", "scheduling"), ("Records", "records"), ("Billing", "billing")]

# slug, name, team, required fields, first response h, resolution h, cadence, description
REQUEST_TYPES = [
    ("referral", "New patient referral", "intake",
     ["patient_name", "date_of_birth", "phone", "referring_provider", "reason", "insurance_payer"], 8, 40, [1, 3, 7],
     "A provider refers a patient for an orthopaedic consultation."),
    ("appointment", "Appointment request", "scheduling", ["patient_name", "date_of_birth", "phone"], 4, 16, [1, 2, 5],
     "Book, move or cancel an appointment."),
    ("records", "Medical records request", "records",
     ["patient_name", "date_of_birth", "records_release"], 8, 80, [2, 5, 10],
     "Copies of records for a patient, a provider, an insurer or a lawyer."),
    ("refill", "Prescription refill", "intake", ["patient_name", "date_of_birth", "medication", "pharmacy"], 4, 16,
     [1, 2], "A patient or pharmacy asks to renew a prescription."),
    ("billing", "Billing question", "billing", ["patient_name", "date_of_birth"], 16, 80, [2, 5, 10],
     "Statements, payments, insurance claims."),
    ("results", "Test results question", "intake", ["patient_name", "date_of_birth"], 8, 24, [1, 3],
     "Questions about imaging or lab results."),
    ("other", "Other", "intake", [], 8, 40, [2, 5], "Anything that fits no other type."),
]

PEOPLE = [
    # username, first, last, role, teams, title
    ("coordinator", "Casey", "Morgan", Role.COORDINATOR, ["intake", "scheduling"], "Intake coordinator"),
    ("jordan", "Jordan", "Lee", Role.COORDINATOR, ["intake", "records"], "Records coordinator"),
    ("riley", "Riley", "Patel", Role.COORDINATOR, ["scheduling", "billing"], "Scheduling coordinator"),
    ("specialist", "Dana", "Okafor", Role.SPECIALIST, ["intake"], "Orthopaedic surgeon"),
    ("drkim", "Min", "Kim", Role.SPECIALIST, ["intake"], "Sports medicine physician"),
    ("supervisor", "Sam", "Alvarez", Role.SUPERVISOR, ["intake", "scheduling", "records", "billing"],
     "Practice manager"),
    ("admin", "Alex", "Admin", Role.ADMIN, ["intake", "scheduling", "records", "billing"], "Administrator"),
]

PATIENTS = [
    ("Maria Gonzalez", "1961-03-14", "+1 617 555 0142"), ("James O'Connor", "1978-11-02", "+1 617 555 0199"),
    ("Aisha Rahman", "1990-07-23", "+1 508 555 0123"), ("Robert Chen", "1955-01-30", "+1 781 555 0110"),
    ("Linda Brooks", "1968-09-09", "+1 617 555 0175"), ("Tomasz Nowak", "1983-05-17", "+1 857 555 0133"),
    ("Grace Mensah", "1972-12-01", "+1 617 555 0166"), ("Peter Lindqvist", "1949-04-25", "+1 978 555 0104"),
    ("Sofia Rossi", "2001-08-11", "+1 617 555 0188"), ("David Cohen", "1964-02-28", "+1 781 555 0151"),
]

SUBJECTS = {
    "referral": ["Referral: right knee pain, suspected meniscal tear", "Referral for shoulder impingement",
                 "Ortho referral - lumbar radiculopathy", "Referral: hip osteoarthritis, consider THA"],
    "appointment": ["Need to reschedule my appointment", "Appointment for follow-up after knee scope",
                    "Can I get an earlier slot?"],
    "records": ["Records request for disability claim", "Please send MRI report to Dr. Shah",
                "Request for complete chart copy"],
    "refill": ["Refill meloxicam please", "Pharmacy refill request: tramadol 50 mg"],
    "billing": ["Question about my statement", "Insurance denied claim for PT visits"],
    "results": ["Question about my MRI results", "When will my X-ray results be ready?"],
    "other": ["Parking validation for visits", "Do you accept new patients from out of state?"],
}


def seed(*, seed_value: int = 7, cases: int = 40, calendars: bool = True) -> None:
    """Create the practice. `calendars=False` leaves every team always open (tests that
    reason in wall-clock hours use that)."""
    rng = random.Random(seed_value)
    with transaction.atomic():
        teams = {slug: Team.objects.create(name=name, slug=slug, email=f"{slug}@lakeside-ortho.example")
                 for name, slug in TEAMS}
        if calendars:
            _calendars(teams)
        staff = _people(teams)
        teams["intake"].lead = staff["jordan"]
        teams["intake"].save(update_fields=["lead"])
        types = {}
        for slug, name, team, required, first, resolution, cadence, description in REQUEST_TYPES:
            types[slug] = RequestType.objects.create(
                slug=slug, name=name, routing_team=teams[team], required_fields=required,
                first_response_hours=first, resolution_hours=resolution, followup_cadence_days=cadence,
                description=description, auto_send=["ack", "missing_info", "chase"],
                confidence_threshold=0.8, policy={"autoclose_days": 5, "specialist_reminder_hours": 16},
            )
        _routes(types, teams)
        _app_hooks(types)
        _cases(rng, types, staff, cases)


def _app_hooks(types: dict[str, RequestType]) -> None:
    """Each app's demo data: an AppConfig may name `demo_seed = "dotted.path"`, called with the types."""
    from django.apps import apps
    from django.utils.module_loading import import_string

    for config in apps.get_app_configs():
        hook = getattr(config, "demo_seed", None)
        if hook:
            import_string(hook)(types=types)


def _routes(types: dict[str, RequestType], teams: dict[str, Team]) -> None:
    """Addresses the built-in SMTP listener accepts (an office forwards these into closeloop)."""
    from closeloop.intake.models import SmtpRoute

    SmtpRoute.objects.create(address="frontdesk@lakeside-ortho.example", team=teams["intake"])
    SmtpRoute.objects.create(address="referrals@lakeside-ortho.example", request_type=types["referral"])
    SmtpRoute.objects.create(address="records@lakeside-ortho.example", request_type=types["records"])
    SmtpRoute.objects.create(address="billing@lakeside-ortho.example", request_type=types["billing"])


def _calendars(teams: dict[str, Team]) -> None:
    from closeloop.followups.models import BusinessCalendar, TeamCalendar

    office = BusinessCalendar.objects.create(name="Lakeside office hours", time_zone="America/New_York",
                                             country="US", subdivision="MA", is_default=True)
    for team in teams.values():
        TeamCalendar.objects.create(team=team, calendar=office)


def _people(teams: dict[str, Team]) -> dict[str, Staff]:
    user_model = get_user_model()
    out = {}
    for username, first, last, role, team_slugs, title in PEOPLE:
        user = user_model.objects.create_user(
            username=username, password="demo", first_name=first, last_name=last,  # noqa: S106 - demo only
            email=f"{username}@lakeside-ortho.example", is_staff=role == Role.ADMIN, is_superuser=role == Role.ADMIN,
        )
        member = Staff.objects.create(user=user, role=role, title=title)
        member.teams.set([teams[t] for t in team_slugs])
        out[username] = member
    return out


def _cases(rng: random.Random, types: dict[str, RequestType], staff: dict[str, Staff], count: int) -> None:
    now = timezone.now()
    coordinators = [staff["coordinator"], staff["jordan"], staff["riley"]]
    for i in range(count):
        slug = rng.choice(list(SUBJECTS))
        rt = types[slug]
        name, dob, phone = PATIENTS[i % len(PATIENTS)]
        email = name.lower().replace(" ", ".").replace("'", "") + "@example.com"
        party, _ = Party.objects.get_or_create(email=email, defaults={"name": name, "phone": phone})
        t = now - timedelta(hours=rng.uniform(2, 24 * 12))
        fields = {"patient_name": {"value": name, "confidence": 0.98, "source": {"kind": "body"}},
                  "date_of_birth": {"value": dob, "confidence": 0.95, "source": {"kind": "body"}}}
        if rng.random() < 0.6:
            fields["phone"] = {"value": phone, "confidence": 0.97, "source": {"kind": "body"}}
        system = actions.Actor.system("intake")
        triage = slug == "other" and rng.random() < 0.5 or rng.random() < 0.1
        case = actions.open_case(
            actor=system, subject=rng.choice(SUBJECTS[slug]), body=_body(slug, name, dob), channel=rng.choice(
                ["email", "email", "webform", "fax", "api"]), request_type=None if triage else rt,
            requester=party, fields=fields, now=t,
        )
        if triage:
            actions.send_to_triage(case, actions.Actor.model("classifier"), reason="low confidence",
                                   suggestions=[{"type": slug, "confidence": 0.55}], now=t)
            continue
        _history(rng, case, rt, coordinators, staff, t, now)


def _history(rng: random.Random, case: actions.Case, rt: RequestType, coordinators: list[Staff],
             staff: dict[str, Staff], t: datetime, now: datetime) -> None:
    owners = [c for c in coordinators if c.teams.filter(id=rt.routing_team_id or 0).exists()] or coordinators
    owner = rng.choice(owners)
    actor = actions.Actor.of(owner)
    step = lambda: t + timedelta(hours=rng.uniform(0.2, 6))  # noqa: E731
    t = step()
    if t >= now:
        return
    actions.assign(case, actor, owner=owner, team=rt.routing_team, now=t)
    roll = rng.random()
    if case.missing_fields and roll < 0.35:
        t = min(step(), now)
        actions.request_missing_info(case, actor, now=t)
        return
    if rt.slug in ("referral", "results", "refill") and roll < 0.7:
        t = min(step(), now)
        specialist = rng.choice([staff["specialist"], staff["drkim"]])
        actions.hand_to_specialist(case, actor, specialist=specialist,
                                   question="Please review and say whether to book a consultation, and how soon.",
                                   now=t)
        if rng.random() < 0.5:
            return
        t = min(step(), now)
        actions.record_specialist_answer(case, actions.Actor.of(specialist),
                                         answer="Book a new-patient consult within two weeks; X-rays on arrival.",
                                         now=t)
        if rng.random() < 0.4:
            return
    if roll < 0.85:
        t = min(step(), now)
        actions.approve_and_send(case, actor, body="Thank you for your request. We have booked you in and will "
                                 "send the details separately.", now=t)
        if rng.random() < 0.5 or case.stage != Stage.ANSWERED:
            return
        t = min(step(), now)
        actions.close(case, actor, outcome="completed", now=t)


def _body(slug: str, name: str, dob: str) -> str:
    return {
        "referral": f"Dear colleague,\nI am referring {name} (DOB {dob}) for evaluation of persistent knee pain "
                    "after a twisting injury. Conservative treatment has failed.\nDr. Helen Shah, Cambridge "
                    "Family Medicine, NPI 1234567893",
        "appointment": f"Hello, this is {name}, born {dob}. I need to move my appointment next week.",
        "records": f"Please send the records of {name} (DOB {dob}) for the period 2024-2026.",
        "refill": f"{name}, DOB {dob}, requests a refill of meloxicam 15 mg.",
        "billing": f"My name is {name} (DOB {dob}). I received a statement I do not understand.",
        "results": f"Hi, {name} here (DOB {dob}). Are my MRI results back?",
        "other": f"Hello, {name} asking a general question.",
    }[slug]
