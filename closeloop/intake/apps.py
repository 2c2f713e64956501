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
