from __future__ import annotations

from django.apps import AppConfig


class UnderstandingConfig(AppConfig):
    name = "closeloop.understanding"
    label = "understanding"
    verbose_name = "Understanding"
    worker_jobs = [
        "closeloop.understanding.pipeline.run_jobs",
        "closeloop.understanding.pipeline.schedule_retrain",
    ]
