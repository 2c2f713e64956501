from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from closeloop.analytics.ledger import rebuild_all


class Command(BaseCommand):
    help = "Measure every case's ball-holder intervals again from its events (after a bulk load or calendar edit)."

    def handle(self, *args: Any, **options: Any) -> None:
        written = rebuild_all()
        self.stdout.write(f"{written} intervals written")
