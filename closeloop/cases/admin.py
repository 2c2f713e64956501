from __future__ import annotations

from django.contrib import admin

from closeloop.followups.models import TeamCalendar
from closeloop.followups.policy import RequestTypeForm

from .models import ApiToken, AuditEntry, Organisation, Party, RequestType, Staff, Team


class TeamCalendarInline(admin.StackedInline):  # type: ignore[type-arg]
    """The team's clock: working hours, zone and holidays all come from its business calendar."""

    model = TeamCalendar
    extra = 1
    max_num = 1
    verbose_name = "business calendar (working hours, time zone, holidays)"


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "lead", "calendar"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["business_calendar__calendar"]
    inlines = [TeamCalendarInline]

    @admin.display(description="business calendar")
    def calendar(self, team: Team) -> str:
        link = getattr(team, "business_calendar", None)
        return str(link.calendar) if link is not None else "the default calendar"


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "capacity", "auto_assign", "is_active"]
    list_filter = ["role", "teams", "is_active"]
    filter_horizontal = ["teams"]


@admin.register(RequestType)
class RequestTypeAdmin(admin.ModelAdmin):
    form = RequestTypeForm  # a malformed follow-up policy is refused with the reason (followups/policy.py)
    list_display = ["name", "slug", "routing_team", "first_response_hours", "resolution_hours",
                    "confidence_threshold", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "is_active"]}),
        ("Routing and completeness", {"fields": ["routing_team", "default_priority", "required_fields",
                                                 "confidence_threshold"]}),
        ("Service levels and follow-up", {"fields": ["first_response_hours", "resolution_hours",
                                                     "followup_cadence_days"]}),
        ("Messages", {"fields": ["auto_send", "templates", "policy"]}),
    ]


admin.site.register(Organisation)
admin.site.register(Party)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "staff", "created_at", "expires_at", "last_used_at", "revoked"]
    readonly_fields = ["key_hash", "prefix", "created_at", "last_used_at"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "user", "action", "case", "detail", "ip"]
    list_filter = ["action"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
