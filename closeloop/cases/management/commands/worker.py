from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from closeloop.worker import finish_round, run_forever, run_once, stop_helper


class Command(BaseCommand):
    help = "Run the background worker: outbox, follow-ups, intake channels, document processing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="run every job once and exit")
        parser.add_argument("--no-services", action="store_true", help="do not start channel listeners")
        parser.add_argument("--idle", type=float, default=1.0, help="seconds to sleep when idle")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            try:
                handled = run_once() + finish_round()
            finally:
                stop_helper()
            self.stdout.write(f"handled {handled} item(s)")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        run_forever(stop, idle_seconds=options["idle"], services=not options["no_services"])
