from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from closeloop.cases.demo import seed
from closeloop.cases.models import Team


class Command(BaseCommand):
    help = "Create the demo practice (Lakeside Orthopaedics): teams, staff, request types, cases."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cases", type=int, default=40)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        if Team.objects.exists():
            raise CommandError("the database already has data; demo-seed only fills an empty one")
        seed(seed_value=options["seed"], cases=options["cases"])
        self.stdout.write(self.style.SUCCESS("Demo practice created. Logins (password `demo`): "
                                             "coordinator, specialist, supervisor, admin"))
