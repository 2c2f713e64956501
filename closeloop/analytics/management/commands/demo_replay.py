from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from closeloop.analytics.replay import Channels, PatientTransport, Replay
from closeloop.cases.models import Staff
from closeloop.cases.tokens import create_token
from closeloop.intake.models import SmtpRoute


class Command(BaseCommand):
    help = ("Send a realistic request stream into the running product through its real channels (API; "
            "SMTP listener, watched folder and public web form with --smtp/--folder/--webform) and work it "
            "as staff at --capacity.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=float, default=1.0, help="simulated days to replay")
        parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
        parser.add_argument("--url", default=getattr(settings, "SITE_URL", "") or "http://127.0.0.1:8000")
        parser.add_argument("--per-day", type=float, default=40.0, help="requests a day on average")
        parser.add_argument("--capacity", type=float, default=6.0, help="staff actions an hour")
        parser.add_argument("--as", dest="staff", default="supervisor", help="staff username doing the work")
        parser.add_argument("--specialist", default="specialist", help="specialist username answering")
        parser.add_argument("--smtp", metavar="HOST:PORT", help="also mail requests to this SMTP listener")
        parser.add_argument("--smtp-to", help="recipient of mailed requests; default the first SMTP route's address")
        parser.add_argument("--folder", type=Path, help="also drop PDF requests into this watched folder")
        parser.add_argument("--webform", action="store_true",
                            help="also fill in the public request form (mind CLOSELOOP_FORM_RATE_LIMIT)")
        parser.add_argument("--no-api", action="store_true", help="do not open cases through the API")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] <= 0 or options["speed"] <= 0 or options["per_day"] <= 0 or options["capacity"] <= 0:
            raise CommandError("--days, --speed, --per-day and --capacity must be positive")
        channels = Channels(api=not options["no_api"], smtp=_hostport(options["smtp"]), smtp_to=_recipient(options),
                            folder=options["folder"], webform=options["webform"])
        if channels.folder is not None and not channels.folder.is_dir():
            raise CommandError(f"--folder {channels.folder} is not a directory")
        if not (channels.api or channels.smtp or channels.folder or channels.webform):
            raise CommandError("no channel left to send requests through")
        lasts = 1 + math.ceil(options["days"] / options["speed"])  # real days the replay runs, and one to spare
        staff = _client(options["url"], options["staff"], lasts)
        specialist = _client(options["url"], options["specialist"], lasts)
        replay = Replay(staff=staff, staff_name=options["staff"], specialist=specialist,
                        specialist_name=options["specialist"], channels=channels, per_day=options["per_day"],
                        capacity_per_hour=options["capacity"], speed=options["speed"], seed=options["seed"])
        self.stdout.write(f"Replaying {options['days']:g} days at {options['speed']:g}× into {options['url']} …")
        try:
            tally = replay.run(options["days"])
        finally:
            staff.close()
            specialist.close()
        self.stdout.write(f"sent: {tally.sent}")
        self.stdout.write(f"staff actions: {tally.actions}")
        if tally.errors:
            self.stdout.write(f"{len(tally.errors)} refused or failed; first: {tally.errors[0]}")


def _recipient(options: dict[str, Any]) -> str:
    """Where mailed requests go: --smtp-to, else an address the SMTP listener accepts (its first route)."""
    if options["smtp_to"]:
        return str(options["smtp_to"])
    route = SmtpRoute.objects.filter(is_active=True).order_by("pk").values_list("address", flat=True).first()
    return route or Channels.smtp_to


def _hostport(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError("--smtp takes HOST:PORT")
    return host, int(port)


def _client(url: str, username: str, days: int = 1) -> httpx.Client:
    """An API client acting as `username`, with a token that expires when the replay is done (not in 90 days)."""
    staff = Staff.objects.filter(user__username=username, is_active=True).first()
    if staff is None:
        raise CommandError(f"no active staff member {username!r}")
    token = create_token(staff, "demo-replay", days=min(days, 3650))
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                        transport=PatientTransport())
