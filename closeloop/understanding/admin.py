from __future__ import annotations

from django.contrib import admin

from .models import ModelVersion, Prediction, Rule


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "request_type", "priority", "sender_domain", "recipient", "is_active"]
    list_filter = ["request_type", "is_active"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["pk", "created_at", "is_active"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["case", "source", "label", "confidence", "routed"]
    list_filter = ["source", "routed"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
