from __future__ import annotations

from django.apps import AppConfig


class FollowupsConfig(AppConfig):
    name = "closeloop.followups"
    label = "followups"
    verbose_name = "Follow-ups"
    worker_jobs = ["closeloop.followups.worker.run_due", "closeloop.followups.digest.send_digests"]
