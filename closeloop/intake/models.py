"""Intake records: every inbound item kept raw first, then processed; channel configuration.

An `InboundMessage` row exists before anything is parsed, so a crash or a parse error
never loses an input: the row stays `received` (a worker claims it again) or becomes
`quarantined` with its error, and `retry` sends it through the pipeline once more.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class InboundMessage(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received, not yet processed"
        PROCESSED = "processed", "Processed"
        DUPLICATE = "duplicate", "Duplicate of an earlier message"
        QUARANTINED = "quarantined", "Quarantined"
        DISMISSED = "dismissed", "Dismissed by staff: seen, nothing to do"

    class Format(models.TextChoices):
        MIME = "mime", "Internet message (RFC 5322)"
        JSON = "json", "JSON payload (web form, API)"
        FILE = "file", "A bare file (scan, fax)"

    channel = models.CharField(max_length=20, help_text="imap, smtp, import, webform, api, folder")
    external_id = models.CharField(max_length=300, help_text="Message-ID, UIDVALIDITY+UID, file hash…")
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.MIME)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField(default=0)
    raw_path = models.CharField(max_length=300, help_text="Path of the raw bytes inside the raw store.")
    message_id = models.CharField(max_length=300, blank=True, db_index=True)
    sender = models.CharField(max_length=300, blank=True, db_index=True)
    sender_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    result = models.CharField(max_length=24, blank=True, help_text="opened, threaded, linked, bounce, auto_reply…")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    content_key = models.CharField(max_length=64, blank=True, db_index=True,
                                   help_text="Hash of sender + normalised content, for near-duplicate detection.")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound")
    meta = models.JSONField(default=dict, blank=True, help_text="Channel context: route, mailbox, client IP…")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "external_id"], name="inbound_unique_external_id"),
        ]
        indexes = [
            # The intake worker claims the oldest unprocessed row (STYLE.md point 4).
            models.Index(fields=["received_at"], name="inbound_received", condition=Q(status="received")),
            models.Index(fields=["status", "received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.external_id[:60]} ({self.status})"


class SmtpRoute(models.Model):
    """A recipient address the built-in SMTP listener accepts, and where its mail goes."""

    address = models.CharField(max_length=254, unique=True, help_text="Lower-case recipient address.")
    request_type = models.ForeignKey("cases.RequestType", null=True, blank=True, on_delete=models.SET_NULL)
    team = models.ForeignKey("cases.Team", null=True, blank=True, on_delete=models.SET_NULL)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.address

    def save(self, *args: object, **kwargs: object) -> None:
        self.address = self.address.strip().lower()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Mailbox(models.Model):
    """An IMAP mailbox an admin connects. The password is never stored here: only where to read it."""

    class Security(models.TextChoices):
        TLS = "tls", "TLS (IMAPS)"
        STARTTLS = "starttls", "STARTTLS"
        NONE = "none", "None (local servers only)"

    class AfterProcessing(models.TextChoices):
        FLAG = "flag", "Mark as seen"
        MOVE = "move", "Move to a folder"

    name = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=200)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.TLS)
    username = models.CharField(max_length=200)
    password_env = models.CharField(max_length=100, blank=True, help_text="Environment variable holding the password.")
    password_file = models.CharField(max_length=300, blank=True, help_text="File holding the password.")
    folder = models.CharField(max_length=200, default="INBOX")
    request_type = models.ForeignKey("cases.RequestType", null=True, blank=True, on_delete=models.SET_NULL)
    team = models.ForeignKey("cases.Team", null=True, blank=True, on_delete=models.SET_NULL)
    after_processing = models.CharField(max_length=8, choices=AfterProcessing.choices,
                                        default=AfterProcessing.FLAG)
    move_to = models.CharField(max_length=200, blank=True, default="Processed")
    poll_seconds = models.PositiveIntegerField(default=30, help_text="Polling interval when IDLE is not offered.")
    is_active = models.BooleanField(default=True)
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    lost_at = models.CharField(max_length=40, blank=True,
                               help_text="<uidvalidity>:<uid> of the message over which the connection was last lost.")
    lost_count = models.PositiveSmallIntegerField(default=0, help_text="Connections lost in a row over that message.")

    class Meta:
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return self.name


class ApiRateWindow(models.Model):
    """How many intake API calls one token (or staff session) made in one fixed window."""

    key = models.CharField(max_length=80, help_text="token:<sha256 of the token> or staff:<id>")
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="intake_rate_window_unique")]

    def __str__(self) -> str:
        return f"{self.key[:20]} {self.window_start:%H:%M:%S} {self.count}"
