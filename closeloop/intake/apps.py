from __future__ import annotations

from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "closeloop.intake"
    label = "intake"
    verbose_name = "Intake"
    # Rows received by a channel but not yet processed (STYLE.md point 4).
    worker_jobs = ["closeloop.intake.pipeline.process_due"]
    # Long-running channel listeners; each returns at once when its channel is not configured.
    worker_services = [
        "closeloop.intake.channels.smtp.adapter.service",
        "closeloop.intake.channels.imap.adapter.service",
        "closeloop.intake.channels.folder.adapter.service",
    ]

    def ready(self) -> None:
        # Cache invalidation only: the per-process lookup cache must never serve a row
        # this process just changed or deleted (no business logic hangs on these signals).
        from django.db.models.signals import post_delete, post_save

        from closeloop.cases.models import RequestType, Team

        from . import lookups
        from .models import SmtpRoute

        for model in (RequestType, Team, SmtpRoute):
            post_save.connect(lookups.clear, sender=model, dispatch_uid=f"intake-lookups-save-{model.__name__}")
            post_delete.connect(lookups.clear, sender=model, dispatch_uid=f"intake-lookups-delete-{model.__name__}")
