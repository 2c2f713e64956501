from __future__ import annotations

from django.apps import AppConfig


class OutboundConfig(AppConfig):
    name = "closeloop.outbound"
    label = "outbound"
    verbose_name = "Outbound mail"
    worker_jobs = ["closeloop.outbound.outbox.deliver_due"]
