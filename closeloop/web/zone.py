"""Pages show times on the office's clock.

Due-time arithmetic already runs in each team's business calendar; this middleware makes the
pages read the same way. Where every calendar shares one zone (one office), that zone;
otherwise, for a signed-in staff member, their first team's calendar's, and for anyone else
(the requester's status page, the sign-in page) the default calendar's. A view that knows its
case (the status page) narrows it with `use_case_zone`. With no business calendar configured,
`CLOSELOOP_TIME_ZONE` stands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from closeloop.cases.models import Case, Staff
from closeloop.followups.calendar import ALWAYS_OPEN, calendar_for_team, zones
from closeloop.outbound.templates import zone as case_zone


def zone_for(request: HttpRequest) -> tzinfo | None:
    """The zone to show this request's pages in; None: the display zone (`CLOSELOOP_TIME_ZONE`)."""
    configured = zones()
    if len(configured) <= 1:  # one office (or no calendar): no need to ask who is looking
        return next(iter(configured), None)
    team_id = None
    if request.user.is_authenticated:
        team_id = (Staff.objects.filter(user_id=request.user.pk).exclude(teams=None)
                   .values_list("teams", flat=True).order_by("teams").first())
    calendar = calendar_for_team(team_id)
    return None if calendar is ALWAYS_OPEN else calendar.tz


def use_case_zone(case: Case) -> None:
    """Show this request's times on its own team's clock (for the rest of the request)."""
    timezone.activate(case_zone(case))


class ZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_for(request)
        if zone is not None:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
