from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from closeloop.cases.models import Staff
from closeloop.cases.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for a staff member and print it once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="integration")

    def handle(self, *args: Any, **options: Any) -> None:
        staff = Staff.objects.filter(user__username=options["username"]).first()
        if staff is None:
            raise CommandError(f"no staff member {options['username']!r}")
        self.stdout.write(create_token(staff, options["name"]))
