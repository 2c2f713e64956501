"""Data only the staff web app keeps: each person's optional second factor."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TotpDevice(models.Model):
    """A TOTP secret for one person. Unconfirmed until they type a valid code once."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device")
    secret = models.CharField(max_length=64)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The last 30-second step accepted: a code is good once, so a shoulder-surfed code cannot be replayed.
    last_step = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"TOTP for {self.user}"


class ReplyTemplate(models.Model):
    """Wording a coordinator starts a reply from. Django template syntax over a small, plain context
    (see closeloop/web/replies.py); a template without a request type is offered on every case."""

    class Purpose(models.TextChoices):
        REPLY = "reply", "General reply"
        NEED_INFO = "need_info", "Need more information"
        RECORDS_SENT = "records_sent", "Records sent"
        APPOINTMENT_OFFERED = "appointment_offered", "Appointment offered"
        REFERRAL_ACCEPTED = "referral_accepted", "Referral accepted"
        CLOSING = "closing", "Closing notice"

    name = models.CharField(max_length=100)
    purpose = models.CharField(
        max_length=40, choices=Purpose.choices, default=Purpose.REPLY,
        help_text="What the reply does. A purpose listed in the request type's “auto send” goes out without "
                  "approval; every other reply waits as a draft unless an approver writes it.")
    request_type = models.ForeignKey(
        "cases.RequestType", null=True, blank=True, on_delete=models.CASCADE, related_name="reply_templates",
        help_text="Offer it only on cases of this type. Leave empty to offer it on every case.")
    subject = models.CharField(max_length=300, help_text="E.g. “Your records [{{ reference }}]”.")
    body = models.TextField(help_text="Placeholders: {{ requester_name }}, {{ patient_name }}, {{ reference }}, "
                                      "{{ subject }}, {{ request_type }}, {{ missing }} (a list), {{ status_url }}, "
                                      "{{ specialist_answer }}, {{ sender_name }}, {{ team }}.")
    position = models.PositiveSmallIntegerField(default=100, help_text="Lower comes first in the picker.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [models.UniqueConstraint(fields=["name", "request_type"], name="web_replytemplate_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.request_type})" if self.request_type_id else self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .replies import check_syntax

        errors = {name: error for name in ("subject", "body") if (error := check_syntax(getattr(self, name)))}
        if errors:
            raise ValidationError(errors)


class Rating(models.Model):
    """The requester's rating of a closed request (1-5). One per case, and the database holds that:
    two ratings sent in the same instant cannot both be recorded. The `rated` event is the timeline's copy."""

    case = models.OneToOneField("cases.Case", on_delete=models.CASCADE, related_name="rating")
    value = models.PositiveSmallIntegerField()
    at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(value__gte=1, value__lte=5),
                                              name="web_rating_value_1_to_5")]

    def __str__(self) -> str:
        return f"{self.value} of 5 for case {self.case_id}"
