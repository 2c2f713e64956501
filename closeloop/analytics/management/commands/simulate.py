from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from closeloop.analytics.data import Scope
from closeloop.analytics.simulate import Result
from closeloop.analytics.whatif import NothingToModel, Options, Validation, what_if
from closeloop.cases.models import Team


def _t(seconds: float | None, per: float) -> str:
    return "—" if seconds is None else f"{seconds / per:.1f}"


class Command(BaseCommand):
    help = ("What would help? Replay recorded (or synthetic) arrivals through a model of the team and compare "
            "scenarios on time to first answer and backlog. The model must reproduce the recorded percentiles "
            "within --tolerance before scenarios are shown.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=28, help="history to replay (days before now)")
        parser.add_argument("--team", help="team slug; default every team")
        parser.add_argument("--synthetic", type=float, metavar="PER_DAY",
                            help="replay a synthetic stream of this many requests a day instead")
        parser.add_argument("--tolerance", type=float, default=0.25, help="largest relative error trusted")
        parser.add_argument("--runs", type=int, default=5, help="replications per scenario")
        parser.add_argument("--triage-share", type=float, default=0.5,
                            help="share of cases sent to human triage under the 'different threshold' scenario")
        parser.add_argument("--chase-factor", type=float, default=1.6,
                            help="how much longer requesters take to reply without automatic chasers")
        parser.add_argument("--force", action="store_true", help="show scenarios even if validation fails")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["days"] <= 366 or not 0 <= options["triage_share"] <= 1 or options["runs"] < 1:
            raise CommandError("--days must be 1…366, --triage-share 0…1 and --runs at least 1")
        team_id = None
        if options["team"]:
            team = Team.objects.filter(slug=options["team"]).first()
            if team is None:
                raise CommandError(f"no team {options['team']!r}")
            team_id = team.pk
        scope = _everything(Scope.last_days(None, timezone.now(), options["days"], team_id))
        chosen = Options(triage_share=options["triage_share"], chase_factor=options["chase_factor"],
                         runs=options["runs"], tolerance=options["tolerance"],
                         synthetic_per_day=options["synthetic"], force=options["force"])
        try:
            answer = what_if(scope, chosen)
        except NothingToModel as exc:
            raise CommandError(f"{exc} (--days, --synthetic)") from None
        unit, per = answer.unit()
        if answer.validation is not None:
            self._validation(answer.validation, unit, per)
        if answer.withheld:
            raise CommandError("the model does not reproduce the recorded history; scenarios withheld (--force)")
        self.stdout.write("")
        self.stdout.write(f"{'scenario':28} {'p50 ' + unit:>7} {'p90 ' + unit:>7} {'answered':>9} {'backlog avg':>12} "
                          f"{'backlog end':>12} {'busy':>6} {'busiest hour':>13}")
        for r in answer.results:
            self.stdout.write(_row(r, per))

    def _validation(self, v: Validation, unit: str, per: float) -> None:
        self.stdout.write(f"Validation ({v.arrivals} recorded arrivals, {v.coordinators} "
                          f"coordinator{'s' if v.coordinators != 1 else ''}, factor on the measured work "
                          f"{v.work_share:g}):")
        self.stdout.write(f"  time to first answer p50: recorded {_t(v.measured_p50, per)} {unit}, "
                          f"model {_t(v.model.p50, per)} {unit}, error {_pct(v.errors[0])}")
        self.stdout.write(f"  time to first answer p90: recorded {_t(v.measured_p90, per)} {unit}, "
                          f"model {_t(v.model.p90, per)} {unit}, error {_pct(v.errors[1])}")
        self.stdout.write(f"  within ±{v.tolerance:.0%}: {'yes, the model is trusted' if v.trusted else 'NO'}")


def _row(r: Result, per: float) -> str:
    return (f"{r.name:28} {_t(r.p50, per):>7} {_t(r.p90, per):>7} {r.answered:>9.0f} {r.mean_backlog:>12.1f} "
            f"{r.final_backlog:>12.1f} {r.busy:>6.0%} {r.busiest_hour:>13.0%}")


def _pct(e: float | None) -> str:
    return "—" if e is None else f"{e:.0%}"


def _everything(scope: Scope) -> Scope:
    """The command runs as the operator: every case, not one person's view."""
    from closeloop.cases.models import Role, Staff

    admin = Staff.objects.filter(role__in=[Role.ADMIN, Role.SUPERVISOR], is_active=True).first()
    if admin is None:
        raise CommandError("no active supervisor or administrator to read the history as")
    return replace(scope, staff=admin)
