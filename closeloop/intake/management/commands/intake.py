"""`closeloop intake <subcommand>`: import-eml, retry, stats."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closeloop.intake.channels.eml.adapter import import_messages
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import retry


class Command(BaseCommand):
    help = "Intake tools: import raw messages, retry quarantined ones."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        imp = sub.add_parser("import-eml", help="feed .eml files, directories of them, or mbox files")
        imp.add_argument("paths", nargs="+")
        imp.add_argument("--request-type", default="", help="request type slug for new cases")
        imp.add_argument("--team", default="", help="team slug for new cases")
        rt = sub.add_parser("retry", help="send quarantined messages through the pipeline again")
        rt.add_argument("ids", nargs="*", type=int, help="inbound ids (default: every quarantined one)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "import-eml":
            meta = {k: options[k] for k in ("request_type", "team") if options[k]}
            summary = import_messages(options["paths"], meta=meta)
            self.stdout.write(json.dumps(summary.as_dict()))
            if summary.lost:
                raise CommandError(f"{summary.lost} message(s) unaccounted for")
            return
        rows = InboundMessage.objects.filter(status=InboundMessage.Status.QUARANTINED)
        if options["ids"]:
            rows = rows.filter(pk__in=options["ids"])
        outcome: dict[str, int] = {}
        for row in rows.order_by("id"):
            status = retry(row).status
            outcome[status] = outcome.get(status, 0) + 1
        self.stdout.write(json.dumps(outcome))
