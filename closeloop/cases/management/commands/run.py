"""`closeloop run`: the embedded product in one process: migrate, seed the demo, web + worker."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from closeloop.cases.models import Staff
from closeloop.worker import run_forever

from .web import serve


class Command(BaseCommand):
    help = "Run everything in one process group (web, API, worker, channels) on the configured database."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="do not seed demo data into an empty database")

    def handle(self, *args: Any, **options: Any) -> None:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        if not options["no_demo"] and not Staff.objects.exists():
            self.stdout.write("Seeding the demo practice…")
            call_command("demo_seed")
            dev_set = settings.BASE_DIR / "data" / "dev" / "requests_train.csv"
            if dev_set.exists():
                self.stdout.write("Training the request classifier on the dev set (once, about a minute)…")
                call_command("train", file=dev_set)
        stop = threading.Event()
        if settings.CLOSELOOP_DEMO_MAIL_SINK:
            from closeloop.outbound.devsink import serve as mail_sink

            threading.Thread(target=mail_sink, args=(stop,), name="mail-sink", daemon=True).start()
            self.stdout.write(f"Outbound mail is kept in {settings.DATA_DIR / 'sent-mail'} (demo mail sink)")
        worker = threading.Thread(target=run_forever, args=(stop,), name="worker", daemon=True)
        worker.start()
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"closeloop is running at {url}"))
        self.stdout.write("Demo logins (password `demo`): coordinator, specialist, supervisor, admin")
        self.stdout.write(f"API docs: {url}api/docs   Admin: {url}admin/   Stop with Ctrl-C")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            serve(options["host"], options["port"], threads=8)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
