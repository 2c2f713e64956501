"""`closeloop.bulk.update_rows`: many rows, different values, one statement per set of columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from closeloop.analytics.models import Interval
from closeloop.bulk import SQLITE_PARAMETERS, update_rows
from closeloop.cases import actions
from closeloop.cases.models import Event, Party

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 15, tzinfo=UTC)


def _cases(practice, n):
    requester = Party.objects.create(name="R", email="r@example.com")
    for i in range(n):
        actions.open_case(actor=actions.Actor.system(), subject=f"Referral {i}", body="Please see.",
                          request_type=practice.types["referral"], requester=requester, now=T0)
    return {row.event_id: row for row in Interval.objects.all()}


def test_each_row_gets_its_own_values_and_only_the_columns_named(practice):
    rows = _cases(practice, 3)
    first, second, third = sorted(rows)
    with CaptureQueriesContext(connection) as queries:
        updated = update_rows(Interval, "event_id", [
            (first, {"end": T0 + timedelta(hours=1), "seconds": 3600.0}),
            (second, {"end": T0 + timedelta(hours=2), "seconds": 7200.0}),
            (third, {"kind": "renamed"}),
        ])
    assert updated == 3 and len(queries) == 2  # one statement per distinct set of columns
    after = Interval.objects.in_bulk()
    assert (after[first].end, after[first].seconds) == (T0 + timedelta(hours=1), 3600.0)
    assert (after[second].end, after[second].seconds) == (T0 + timedelta(hours=2), 7200.0)
    assert (after[third].kind, after[third].end, after[third].seconds) == ("renamed", None, None)
    assert after[first].kind == rows[first].kind  # untouched columns stay


def test_more_rows_than_sqlite_takes_parameters_for_are_all_written(practice):
    rows = _cases(practice, SQLITE_PARAMETERS // 3 + 5)  # key + 2 columns: over the limit in one statement
    update_rows(Interval, "event_id", [(pk, {"seconds": float(pk), "end": T0}) for pk in rows])
    assert dict(Interval.objects.values_list("event_id", "seconds")) == {pk: float(pk) for pk in rows}
    assert Event.objects.count() >= len(rows)


def test_rows_without_changes_write_nothing(practice):
    rows = _cases(practice, 1)
    with CaptureQueriesContext(connection) as queries:
        assert update_rows(Interval, "event_id", [(pk, {}) for pk in rows]) == 0
    assert len(queries) == 0
