from __future__ import annotations

import getpass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from closeloop.cases.models import Staff
from closeloop.cases.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for a staff member and print it once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="integration")
        parser.add_argument("--days", type=int, default=None,
                            help=f"days it is valid, 1-3650 (default CLOSELOOP_API_TOKEN_DAYS, "
                                 f"now {settings.CLOSELOOP_API_TOKEN_DAYS})")

    def handle(self, *args: Any, **options: Any) -> None:
        staff = Staff.objects.filter(user__username=options["username"]).first()
        if staff is None:
            raise CommandError(f"no staff member {options['username']!r}")
        try:
            key = create_token(staff, options["name"], days=options["days"], by=by_whom())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(key)


def by_whom() -> str:
    """Who ran the command, for the audit entry: the operating-system account."""
    try:
        return f"the command line (OS user {getpass.getuser()})"
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "the command line"
