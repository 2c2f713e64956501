from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the web app and API with waitress (run several behind a proxy on PostgreSQL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        serve(options["host"], options["port"], options["threads"])


def serve(host: str, port: int, threads: int) -> None:
    from waitress import serve as waitress_serve

    from closeloop.wsgi import application

    waitress_serve(application, host=host, port=port, threads=threads, ident="closeloop",
                   max_request_body_size=64 * 1024 * 1024)
