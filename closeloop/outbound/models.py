from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxMessage(models.Model):
    """One message to send. Claimed by compare-and-set, sent, marked; never lost.

    `idempotency_key` is `case:purpose:sequence`, so an action that runs twice
    queues one message, and `message_id` is fixed at enqueue so a resend after a
    crash carries the same Message-ID.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed permanently"

    class Failure(models.TextChoices):
        """Why a message is late or failed: "delayed" while it is still retried; the rest once failed."""

        DELAYED = "delayed", "Delayed: still retrying"
        REFUSED = "refused", "Refused (5xx) or an address SMTP cannot take"
        DEFERRED = "deferred", "Refused for now (4xx) until the retry time ran out"
        UNREACHABLE = "unreachable", "Our SMTP server did not answer until the retry time ran out"

    case = models.ForeignKey(
        "cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="outbox"
    )
    case_message = models.ForeignKey(
        "cases.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=200, unique=True)
    message_id = models.CharField(max_length=300, unique=True)
    in_reply_to = models.CharField(max_length=300, blank=True)
    references = models.TextField(blank=True)
    from_email = models.CharField(max_length=300)
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First of the transient failures since the last try by hand or re-queue.")
    failure = models.CharField(max_length=12, choices=Failure.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["due_at"], name="outbox_due_pending",
                         condition=Q(status__in=["pending", "sending"])),
            # failed while our own server was down: re-queued when it answers again
            models.Index(fields=["due_at"], name="outbox_failed_unreachable",
                         condition=Q(status="failed", failure="unreachable")),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} to {', '.join(self.to)}"
