"""The case domain: who asks, who answers, what was asked, and everything that happened.

Nobody calls `.save()` on a Case outside `actions.py`; see docs/decisions.md.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from .stages import NextAction, Stage, WaitingOn

REFERENCE_RE = re.compile(r"\bCL-(\d{6,})\b", re.IGNORECASE)


def format_reference(pk: int) -> str:
    return f"CL-{pk:06d}"


def parse_reference(text: str) -> int | None:
    """The case id named by the first `CL-000123` in text, if any."""
    match = REFERENCE_RE.search(text or "")
    return int(match.group(1)) if match else None


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    email = models.EmailField(blank=True)
    lead = models.ForeignKey(
        "Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads_teams"
    )
    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    COORDINATOR = "coordinator", "Coordinator"
    SPECIALIST = "specialist", "Specialist"
    SUPERVISOR = "supervisor", "Supervisor"
    ADMIN = "admin", "Administrator"


class Staff(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.COORDINATOR)
    teams = models.ManyToManyField(Team, blank=True, related_name="members")
    title = models.CharField(max_length=100, blank=True, help_text="e.g. Orthopaedic surgeon")
    capacity = models.PositiveIntegerField(default=20, help_text="Open cases this person can carry.")
    auto_assign = models.BooleanField(default=True, help_text="Include in automatic assignment.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["user__username"]
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.user.get_full_name() or self.user.get_username()

    @property
    def can_own_cases(self) -> bool:
        """Active and not a specialist: specialists are briefed on cases but may not assign, ask, reply or
        close them, so a case they owned would stall."""
        return self.is_active and self.role != Role.SPECIALIST


class Organisation(models.Model):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=50, blank=True, help_text="practice, insurer, lab, hospital…")
    phone = models.CharField(max_length=40, blank=True)
    fax = models.CharField(max_length=40, blank=True)
    email = models.EmailField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Party(models.Model):
    """Someone outside the team: a patient, a referring provider, an insurer's agent."""

    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        PROVIDER = "provider", "Provider"
        ORGANISATION = "organisation", "Organisation contact"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PERSON)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    phone = models.CharField(max_length=40, blank=True)
    organisation = models.ForeignKey(Organisation, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "parties"

    def __str__(self) -> str:
        return self.name or self.email or f"party {self.pk}"


class RequestType(models.Model):
    """Policy as data: what a complete request holds, where it goes, how fast, who may send what."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    required_fields = models.JSONField(default=list, blank=True, help_text="Field names a complete request must have.")
    routing_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
    default_priority = models.CharField(max_length=10, default="normal")
    first_response_hours = models.FloatField(default=8, help_text="Business hours to the first response.")
    resolution_hours = models.FloatField(default=40, help_text="Business hours to resolution.")
    followup_cadence_days = models.JSONField(
        default=list, blank=True, help_text="Business days between chasers, e.g. [1, 3, 7]."
    )
    auto_send = models.JSONField(
        default=list, blank=True, help_text="Message purposes that may be sent without approval."
    )
    templates = models.JSONField(default=dict, blank=True, help_text="purpose → {subject, body}.")
    confidence_threshold = models.FloatField(
        default=0.8, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="From 0 to 1 (0.8 is 80 %): a prediction at least this sure routes the case; "
                  "below it, or below 0.5 whatever this says, a person decides.")
    policy = models.JSONField(default=dict, blank=True, help_text="Further policy knobs, documented per key.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Priority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Case(models.Model):
    request_type = models.ForeignKey(RequestType, null=True, blank=True, on_delete=models.PROTECT)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    stage = models.CharField(max_length=24, choices=Stage.choices, default=Stage.NEW)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT)
    owner = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_cases")
    specialist = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.PROTECT, related_name="specialist_cases"
    )
    requester = models.ForeignKey(Party, null=True, blank=True, on_delete=models.PROTECT, related_name="cases")
    waiting_on = models.CharField(max_length=12, choices=WaitingOn.choices, default=WaitingOn.OWNER)
    next_action = models.CharField(max_length=24, choices=NextAction.choices, default=NextAction.TRIAGE)
    next_due_at = models.DateTimeField(null=True, blank=True)
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    summary = models.TextField(blank=True)
    channel = models.CharField(max_length=20, default="api")
    fields = models.JSONField(default=dict, blank=True, help_text="name → {value, confidence, source}")
    missing_fields = models.JSONField(default=list, blank=True)
    specialist_question = models.TextField(blank=True)
    specialist_answer = models.TextField(blank=True)
    outcome = models.CharField(max_length=40, blank=True)
    outcome_note = models.TextField(blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snooze_reason = models.CharField(max_length=200, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    followup_step = models.PositiveSmallIntegerField(default=0, help_text="Chasers sent in the current wait.")
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged")
    link_epoch = models.PositiveIntegerField(default=0, help_text="Bump to revoke every requester link.")
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [
            # The follow-up worker claims the earliest due open case (STYLE.md point 4).
            models.Index(fields=["next_due_at"], name="case_due_open", condition=~Q(stage="closed")),
            models.Index(fields=["team", "stage"]),
            models.Index(fields=["owner", "stage"]),
            models.Index(fields=["stage", "waiting_on"]),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return format_reference(self.pk) if self.pk else "CL-unsaved"

    @property
    def is_open(self) -> bool:
        return self.stage != Stage.CLOSED

    def field_value(self, name: str) -> Any:
        entry = self.fields.get(name)
        return entry.get("value") if isinstance(entry, dict) else None


class ActorKind(models.TextChoices):
    STAFF = "staff", "Staff"
    REQUESTER = "requester", "Requester"
    SYSTEM = "system", "System"
    MODEL = "model", "Model"


# Sent with `events=[...]` after `Event.objects.append_many` wrote several events at once
# (bulk inserts send no post_save); whatever derives rows from events listens to both.
events_appended = Signal()


class EventQuerySet(models.QuerySet["Event"]):
    def append_many(self, events: list[Event]) -> list[Event]:
        """Insert several events in one statement and tell the listeners."""
        written: list[Event] = models.QuerySet.bulk_create(self, events)  # type: ignore[arg-type]
        if written:
            events_appended.send(sender=Event, events=written)
        return written

    def update(self, **kwargs: Any) -> int:
        raise TypeError("events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("events are append-only")


class Event(models.Model):
    """One change to a case. Append-only: the timeline, audit trail and analytics read these."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=40, db_index=True)
    from_stage = models.CharField(max_length=24, blank=True)
    to_stage = models.CharField(max_length=24, blank=True)
    waiting_on = models.CharField(max_length=12, blank=True)
    owner = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    data = models.JSONField(default=dict, blank=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["case", "at"])]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("events are append-only")
        super().save(*args, **kwargs)


class Message(models.Model):
    """A message in a case's conversation, inbound or outbound (drafts included)."""

    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"
        INTERNAL = "note", "Internal note"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        DRAFT = "draft", "Draft awaiting approval"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        DISCARDED = "discarded", "Discarded"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=4, choices=Direction.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    purpose = models.CharField(max_length=40, blank=True, help_text="ack, missing_info, chase, reply, outcome…")
    channel = models.CharField(max_length=20, blank=True)
    sender = models.CharField(max_length=300, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    message_id = models.CharField(max_length=300, blank=True, db_index=True)
    in_reply_to = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    approved_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]


def document_path(instance: Document, filename: str) -> str:
    return f"documents/{instance.sha256[:2]}/{instance.sha256}"


class Document(models.Model):
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="documents")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    file = models.FileField(upload_to=document_path, max_length=300)
    source = models.CharField(max_length=20, blank=True, help_text="email, upload, fax, api…")
    page_count = models.PositiveIntegerField(null=True, blank=True)
    text = models.TextField(blank=True)
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at", "id"]

    def __str__(self) -> str:
        return self.filename


def token_expiry() -> datetime:
    """A new token's end: `CLOSELOOP_API_TOKEN_DAYS` from now (tokens that predate expiry got theirs
    from the migration's date, this same default)."""
    return timezone.now() + timedelta(days=settings.CLOSELOOP_API_TOKEN_DAYS)


class ApiToken(models.Model):
    """A token another system uses to call the API as a staff account. Only the hash is kept."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=token_expiry, help_text="Refused (401) from this instant on.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEntry(models.Model):
    """Who saw what: reads of case data (changes are Events)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=40)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL)
    detail = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "audit entries"
