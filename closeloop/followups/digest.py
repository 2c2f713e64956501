"""Staff digests: one message per person per period listing what they owe, most urgent first.

`send_digests(limit)` (a worker job):
1. find people with pending reminders (no digest yet), a page at a time in staff order;
2. pass over anyone who already got this period's digest (its outbox key exists), without
   counting them against `limit`, and go on to the next page until `limit` digests are queued;
3. in one transaction, mark their pending reminders with the digest key (a conditional
   UPDATE, so two workers never put one reminder in two digests) and queue the digest
   through the outbox with the key `digest:<staff>:<period>`.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from closeloop.cases.models import Staff
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import enqueue

from .assignment import chain_target
from .calendar import calendar_for_team
from .models import Reminder


def period_key(staff_id: int, now: datetime) -> str:
    minutes = max(1, settings.CLOSELOOP_DIGEST_MINUTES)
    return f"digest:{staff_id}:{int(now.timestamp() // (minutes * 60))}"


def send_digests(limit: int = 100, now: datetime | None = None) -> int:
    """Queue up to `limit` digests; people already digested this period are passed over, not counted, so
    however many of them have new reminders, everyone due is reached in the round."""
    now = now or timezone.now()
    sent, after = 0, 0
    while sent < limit:
        staff_ids = list(Reminder.objects.filter(digest_key="", staff_id__gt=after).values_list("staff_id", flat=True)
                         .order_by("staff_id").distinct()[:limit])
        if not staff_ids:
            break
        after = staff_ids[-1]
        keys = {staff_id: period_key(staff_id, now) for staff_id in staff_ids}
        done = set(OutboxMessage.objects.filter(idempotency_key__in=keys.values())
                   .values_list("idempotency_key", flat=True))
        for staff_id in staff_ids:
            if keys[staff_id] not in done and sent < limit:
                sent += _send_one(staff_id, keys[staff_id], now)
    return sent


def _send_one(staff_id: int, key: str, now: datetime) -> int:
    staff = Staff.objects.select_related("user").get(pk=staff_id)
    with transaction.atomic():
        if not Reminder.objects.filter(staff_id=staff_id, digest_key="").update(digest_key=key):
            return 0
        items = list(Reminder.objects.filter(digest_key=key).select_related("case").order_by("urgency_at", "id"))
        if not staff.user.email:
            _pass_on(staff, items, now)
            return 0
        lines = [f"- {r.text} (due {_local(r):%a %d %b %H:%M %Z})" for r in items]
        enqueue(case=None, purpose="digest", to=[staff.user.email], key=key, now=now,
                subject=f"closeloop: {len(items)} case(s) need you",
                body=f"Hello {staff.display_name},\n\nWhat you owe, most urgent first:\n" + "\n".join(lines)
                + f"\n\nOpen your queue: {settings.SITE_URL}/\n")
    return 1


def _pass_on(staff: Staff, items: list[Reminder], now: datetime) -> None:
    """Nobody can be mailed at a blank address: say so on each case, and remind the next who can act (the
    team lead, then a supervisor, as for someone on leave) in their own digest."""
    from closeloop.cases.actions import Actor, record_event

    from .worker import reminder_passed_on

    for reminder in items:
        instead = chain_target(reminder.case, "team_lead", now, by_email=True)
        if instead is not None:
            Reminder.objects.create(staff=instead, case=reminder.case, kind=reminder.kind, text=reminder.text,
                                    urgency_at=reminder.urgency_at, created_at=now)
        record_event(reminder.case, Actor.system("follow-ups"), "reminder_undelivered", {
            "to": staff.pk, "instead": instead.pk if instead else None, "text": reminder.text,
            "message": reminder_passed_on(staff, instead)}, now=now)


def _local(reminder: Reminder) -> datetime:
    """The due time in the case's team's zone: the office reads its own clock, not UTC."""
    return reminder.urgency_at.astimezone(calendar_for_team(reminder.case.team_id).tz)
