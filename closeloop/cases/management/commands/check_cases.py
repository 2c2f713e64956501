"""`closeloop check`: list open cases that break the invariant; exit 1 if any."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from closeloop.cases.invariant import violations


class Command(BaseCommand):
    help = "Check that every open case has an owner, a next action, a due time and a waiting-on party."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="print violations as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        found = violations()
        if options["json"]:
            self.stdout.write(json.dumps([{"case": ref, "problems": p} for ref, p in found]))
        else:
            for ref, problems in found:
                self.stdout.write(f"{ref}: {'; '.join(problems)}")
        if found:
            raise CommandError(f"{len(found)} open case(s) break the invariant", returncode=1)
        if not options["json"]:
            self.stdout.write(self.style.SUCCESS("every open case has an owner, a next action, "
                                                 "a due time and a waiting-on party"))
