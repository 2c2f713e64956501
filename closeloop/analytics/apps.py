from __future__ import annotations

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "closeloop.analytics"
    label = "analytics"
    worker_jobs = ["closeloop.analytics.ledger.remeasure", "closeloop.analytics.cache.sweep"]

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from closeloop.cases.models import Event, events_appended

        from .ledger import on_event_saved, on_events_appended

        post_save.connect(on_event_saved, sender=Event, dispatch_uid="analytics-ledger")
        events_appended.connect(on_events_appended, sender=Event, dispatch_uid="analytics-ledger-many")
