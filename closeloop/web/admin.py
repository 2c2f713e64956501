from __future__ import annotations

from django.contrib import admin

from .models import ReplyTemplate


@admin.register(ReplyTemplate)
class ReplyTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "purpose", "request_type", "position", "is_active"]
    list_filter = ["purpose", "request_type", "is_active"]
    list_editable = ["position", "is_active"]
    search_fields = ["name", "subject", "body"]
    fields = ["name", "purpose", "request_type", "subject", "body", "position", "is_active"]
