from __future__ import annotations

from django.contrib import admin

from .models import ApiToken, AuditEntry, Organisation, Party, RequestType, Staff, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "lead", "time_zone"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "capacity", "auto_assign", "is_active"]
    list_filter = ["role", "teams", "is_active"]
    filter_horizontal = ["teams"]


@admin.register(RequestType)
class RequestTypeAdmin(admin.ModelAdmin):
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
    list_display = ["name", "prefix", "staff", "created_at", "last_used_at", "revoked"]
    readonly_fields = ["key_hash", "prefix", "created_at", "last_used_at"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "user", "action", "case", "detail", "ip"]
    list_filter = ["action"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
