from __future__ import annotations

from django.apps import AppConfig


class UnderstandingConfig(AppConfig):
    name = "closeloop.understanding"
    label = "understanding"
