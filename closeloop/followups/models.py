"""Follow-up engine data: business calendars, staff availability, the noise ledger and
the reminders that staff digests are made of. Per-case timers stay on `cases.Case`
(`next_due_at`); nothing here duplicates case state."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .calendar import WEEKDAYS_9_TO_5, Calendar, CalendarError


def _default_hours() -> dict[str, list[list[str]]]:
    return {day: [list(span) for span in spans] for day, spans in WEEKDAYS_9_TO_5.items()}


class BusinessCalendar(models.Model):
    """Working hours in a time zone, minus holidays. Linked to teams through TeamCalendar."""

    name = models.CharField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="America/New_York")
    hours = models.JSONField(default=_default_hours, help_text='{"mon": [["09:00", "17:00"]], …}; absent days closed.')
    holidays = models.JSONField(default=list, blank=True, help_text='Extra closed dates: ["2026-12-24", …].')
    country = models.CharField(max_length=8, blank=True, help_text="Public holidays of this country (e.g. US).")
    subdivision = models.CharField(max_length=8, blank=True, help_text="State or province (e.g. MA).")
    is_default = models.BooleanField(default=False, help_text="Used by teams without a calendar of their own.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True),
                                               name="one_default_calendar")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.full_clean()
        super().save(*args, **kwargs)
        from .calendar import invalidate_cache

        invalidate_cache()

    def clean(self) -> None:
        try:
            self.to_calendar()
        except CalendarError as exc:
            raise ValidationError(str(exc)) from exc

    def to_calendar(self) -> Calendar:
        return Calendar.build(time_zone=self.time_zone, hours=self.hours, holidays=self.holidays,
                              country=self.country, subdivision=self.subdivision)


class TeamCalendar(models.Model):
    team = models.OneToOneField("cases.Team", on_delete=models.CASCADE, related_name="business_calendar")
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="team_links")

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        from .calendar import invalidate_cache

        invalidate_cache()


class Availability(models.Model):
    """When a person works (their shift), in their team calendar's zone. None means always."""

    staff = models.OneToOneField("cases.Staff", on_delete=models.CASCADE, related_name="availability")
    time_zone = models.CharField(max_length=64, default="America/New_York")
    hours = models.JSONField(default=_default_hours)

    def to_calendar(self) -> Calendar:
        return Calendar.build(time_zone=self.time_zone, hours=self.hours)


class Leave(models.Model):
    """A person is away (holiday, sick) from `starts_at` to `ends_at`: no assignment, no reminders."""

    staff = models.ForeignKey("cases.Staff", on_delete=models.CASCADE, related_name="leaves")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=100, blank=True)

    class Meta:
        indexes = [models.Index(fields=["staff", "ends_at"])]

    def clean(self) -> None:
        if self.ends_at <= self.starts_at:
            raise ValidationError("a leave ends after it starts")


class Sent(models.Model):
    """One follow-up message to one person, for the noise budget (caps, gaps)."""

    recipient = models.CharField(max_length=300)
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=40)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["recipient", "at"]), models.Index(fields=["recipient", "case", "at"])]


class Reminder(models.Model):
    """Something a staff member owes, waiting for their next digest."""

    staff = models.ForeignKey("cases.Staff", on_delete=models.CASCADE, related_name="followup_reminders")
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="followup_reminders")
    kind = models.CharField(max_length=40, help_text="owner_reminder, specialist_reminder, sla_warning…")
    text = models.CharField(max_length=300)
    urgency_at = models.DateTimeField(help_text="When it breaches or fell due: the digest sorts by it.")
    created_at = models.DateTimeField(default=timezone.now)
    digest_key = models.CharField(max_length=120, blank=True, help_text="The digest that carried it; empty = pending.")

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="reminder_pending", condition=Q(digest_key=""))]
