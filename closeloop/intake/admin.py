from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import InboundMessage, Mailbox, SmtpRoute
from .pipeline import retry


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "status", "result", "sender", "subject", "received_at", "case", "attempts"]
    list_filter = ["status", "channel", "result"]
    search_fields = ["sender", "subject", "message_id", "external_id", "sha256"]
    readonly_fields = [f.name for f in InboundMessage._meta.fields]
    actions = ["retry_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected quarantined messages")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[InboundMessage]) -> None:
        done = 0
        for row in queryset.filter(status=InboundMessage.Status.QUARANTINED):
            done += retry(row).status != InboundMessage.Status.QUARANTINED
        messages.info(request, f"{done} message(s) processed on retry")


@admin.register(SmtpRoute)
class SmtpRouteAdmin(admin.ModelAdmin):
    list_display = ["address", "request_type", "team", "is_active"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "username", "folder", "request_type", "is_active", "last_checked_at",
                    "last_error"]
    readonly_fields = ["uidvalidity", "last_uid", "last_error", "last_checked_at"]
