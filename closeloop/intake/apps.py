from __future__ import annotations

from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "closeloop.intake"
    label = "intake"
