from __future__ import annotations

from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "closeloop.web"
    label = "web"
    demo_seed = "closeloop.web.replies.seed_demo"  # default reply templates for the demo's request types

    def ready(self) -> None:
        from . import signals

        signals.connect()
