from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closeloop.followups.calendar import (
    ALWAYS_OPEN,
    Calendar,
    CalendarError,
    add_business_hours,
    business_seconds_between,
    calendar_for_team,
    is_open_at,
)

NY = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


@pytest.fixture
def office() -> Calendar:
    return Calendar.build(time_zone="America/New_York")  # Mon-Fri 09:00-17:00


def test_it_adds_hours_within_one_working_day(office):
    assert add_business_hours(office, ny(2026, 3, 2, 10), 3) == ny(2026, 3, 2, 13)


def test_it_carries_the_remainder_into_the_next_morning(office):
    assert add_business_hours(office, ny(2026, 3, 2, 15), 4) == ny(2026, 3, 3, 11)


def test_an_arrival_at_night_starts_counting_at_opening(office):
    assert add_business_hours(office, ny(2026, 3, 3, 2, 30), 1) == ny(2026, 3, 3, 10)
    assert add_business_hours(office, ny(2026, 3, 3, 22), 1) == ny(2026, 3, 4, 10)


def test_an_arrival_at_the_weekend_starts_counting_on_monday(office):
    assert add_business_hours(office, ny(2026, 3, 7, 12), 2) == ny(2026, 3, 9, 11)  # Saturday
    assert add_business_hours(office, ny(2026, 3, 6, 16), 2) == ny(2026, 3, 9, 10)  # Friday 16:00


def test_a_target_spanning_several_days_skips_the_weekend(office):
    # 40 business hours from Wednesday 09:00 is the next Wednesday 09:00 ... minus nothing: ends Tue 17:00.
    assert add_business_hours(office, ny(2026, 3, 4, 9), 40) == ny(2026, 3, 10, 17)


def test_ending_exactly_at_closing_time_stays_on_that_day(office):
    assert add_business_hours(office, ny(2026, 3, 2, 9), 8) == ny(2026, 3, 2, 17)


def test_zero_hours_is_the_start_itself(office):
    start = ny(2026, 3, 7, 3)
    assert add_business_hours(office, start, 0) == start


def test_negative_hours_and_naive_datetimes_are_refused(office):
    with pytest.raises(CalendarError):
        office.add_hours(ny(2026, 3, 2, 9), -1)
    with pytest.raises(CalendarError, match="naive"):
        office.add_hours(datetime(2026, 3, 2, 9), 1)


def test_the_spring_dst_change_keeps_a_9_to_5_day_eight_real_hours(office):
    # 8 March 2026: clocks go 02:00 EST → 03:00 EDT (a Sunday). Friday 16:00 + 2h = Monday 10:00 EDT.
    due = add_business_hours(office, ny(2026, 3, 6, 16), 2)
    assert due == ny(2026, 3, 9, 10) and due.astimezone(NY).utcoffset() == timedelta(hours=-4)
    assert business_seconds_between(office, ny(2026, 3, 6, 9), ny(2026, 3, 9, 17)) == 16 * 3600


def test_the_autumn_dst_change_keeps_a_9_to_5_day_eight_real_hours(office):
    # 1 November 2026: 02:00 EDT → 01:00 EST.
    due = add_business_hours(office, ny(2026, 10, 30, 13), 8)
    assert due == ny(2026, 11, 2, 13) and due.astimezone(NY).utcoffset() == timedelta(hours=-5)


def test_a_24_hour_calendar_has_23_hours_on_the_spring_change_day_and_25_in_autumn():
    always = Calendar.build(time_zone="America/New_York", hours={d: [["00:00", "24:00"]] for d in
                                                               ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    assert always.seconds_between(ny(2026, 3, 8, 0), ny(2026, 3, 9, 0)) == 23 * 3600
    assert always.seconds_between(ny(2026, 11, 1, 0), ny(2026, 11, 2, 0)) == 25 * 3600
    # 24 business hours from midnight before the spring change lands at 01:00 on the 9th, wall clock.
    assert always.add_hours(ny(2026, 3, 8, 0), 24) == ny(2026, 3, 9, 1)


def test_opening_hours_inside_the_skipped_hour_map_forward():
    early = Calendar.build(time_zone="America/New_York", hours={"sun": [["02:30", "04:00"]]})
    # 02:30 does not exist on 8 March 2026; the opening starts at 03:30 EDT (= 02:30 EST).
    assert early.next_open(ny(2026, 3, 8, 0)) == ny(2026, 3, 8, 3, 30)
    assert early.seconds_between(ny(2026, 3, 8, 0), ny(2026, 3, 8, 5)) == 30 * 60


def test_explicit_holidays_are_closed(office):
    closed = Calendar.build(time_zone="America/New_York", holidays=["2026-03-03"])
    assert add_business_hours(closed, ny(2026, 3, 2, 16), 2) == ny(2026, 3, 4, 10)
    assert not is_open_at(closed, ny(2026, 3, 3, 12))
    assert is_open_at(office, ny(2026, 3, 3, 12))


def test_country_holidays_close_the_office_across_the_year_end():
    us = Calendar.build(time_zone="America/New_York", country="US", holidays=[date(2026, 12, 24)])
    # Wed 23 Dec 16:00 + 4h: 1h on the 23rd, 24th (own holiday) and 25th (Christmas) closed, weekend,
    # Mon 28th 09:00 + 3h = 12:00.
    assert us.add_hours(ny(2026, 12, 23, 16), 4) == ny(2026, 12, 28, 12)
    # Thu 31 Dec 16:00 + 2h: New Year's Day is closed; next opening Mon 4 Jan 2027.
    assert us.add_hours(ny(2026, 12, 31, 16), 2) == ny(2027, 1, 4, 10)
    assert not us.is_open_at(ny(2027, 1, 1, 12))


def test_split_shifts_skip_the_lunch_break():
    lunch = Calendar.build(time_zone="America/New_York", hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]]})
    assert lunch.add_hours(ny(2026, 3, 2, 11), 2) == ny(2026, 3, 2, 14)
    assert not lunch.is_open_at(ny(2026, 3, 2, 12, 30))
    assert lunch.next_open(ny(2026, 3, 2, 12, 30)) == ny(2026, 3, 2, 13)


def test_business_seconds_between_counts_only_opening_hours(office):
    assert business_seconds_between(office, ny(2026, 3, 6, 16), ny(2026, 3, 9, 10)) == 2 * 3600
    assert business_seconds_between(office, ny(2026, 3, 9, 10), ny(2026, 3, 6, 16)) == 0
    assert business_seconds_between(office, ny(2026, 3, 7, 1), ny(2026, 3, 8, 23)) == 0


def test_is_open_at_respects_the_local_zone(office):
    assert is_open_at(office, datetime(2026, 3, 2, 14, tzinfo=UTC))  # 09:00 EST
    assert not is_open_at(office, datetime(2026, 3, 2, 13, 59, tzinfo=UTC))
    assert is_open_at(office, datetime(2026, 3, 9, 13, tzinfo=UTC))  # 09:00 EDT


@pytest.mark.parametrize("hours, message", [
    ({"mon": [["17:00", "09:00"]]}, "ends before"),
    ({"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}, "overlap"),
    ({"funday": [["09:00", "10:00"]]}, "unknown day"),
    ({"mon": [["9am", "10:00"]]}, "09:00"),
    ({}, "no opening hours"),
])
def test_bad_opening_hours_are_refused_with_a_reason(hours, message):
    with pytest.raises(CalendarError, match=message):
        Calendar.build(hours=hours)


def test_unknown_zones_countries_and_dates_are_refused():
    with pytest.raises(CalendarError, match="time zone"):
        Calendar.build(time_zone="Mars/Olympus")
    with pytest.raises(CalendarError, match="country"):
        Calendar.build(country="XX")
    with pytest.raises(CalendarError, match="ISO"):
        Calendar.build(holidays=["25/12/2026"])


def test_a_calendar_closed_for_years_is_an_error_not_a_hang():
    closed = Calendar.build(hours={"mon": [["09:00", "10:00"]]},
                            holidays=[date(2026, 1, 5) + timedelta(weeks=w) for w in range(52 * 4)])
    with pytest.raises(CalendarError, match="closed for"):
        closed.add_hours(ny(2026, 1, 1, 9), 1)


def test_always_open_is_wall_clock():
    start = datetime(2026, 3, 8, 1, tzinfo=UTC)
    assert ALWAYS_OPEN.add_hours(start, 30) == start + timedelta(hours=30)


starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                      timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(start=starts, hours=st.floats(min_value=0.01, max_value=200))
def test_adding_then_measuring_gives_back_the_hours(start, hours):
    us = Calendar.build(time_zone="America/New_York", country="US")
    due = us.add_hours(start, hours)
    assert due > start
    assert us.seconds_between(start, due) == pytest.approx(hours * 3600, abs=1e-3)
    assert us.is_open_at(due - timedelta(microseconds=1))


@settings(max_examples=100, deadline=None)
@given(start=starts, a=st.floats(min_value=0, max_value=50), b=st.floats(min_value=0, max_value=50))
def test_adding_is_additive(start, a, b):
    office = Calendar.build(time_zone="America/New_York")
    once = office.add(start, timedelta(hours=a + b))
    twice = office.add(office.add(start, timedelta(hours=a)), timedelta(hours=b))
    assert abs((once - twice).total_seconds()) < 1e-3 or office.seconds_between(min(once, twice), max(once, twice)) == 0


@pytest.mark.django_db
def test_teams_get_their_configured_calendar_from_a_cache(practice, django_assert_num_queries):
    from closeloop.followups.models import BusinessCalendar, TeamCalendar

    intake = practice.teams["intake"]
    office = BusinessCalendar.objects.create(name="Boston office", time_zone="America/New_York", country="US")
    TeamCalendar.objects.create(team=intake, calendar=office)
    calendar_for_team(intake.pk)
    with django_assert_num_queries(0):
        for _ in range(100):
            assert calendar_for_team(intake.pk).country == "US"
            assert calendar_for_team(practice.teams["billing"].pk) is ALWAYS_OPEN
    BusinessCalendar.objects.create(name="Fallback", is_default=True, hours={"sat": [["10:00", "12:00"]]})
    assert calendar_for_team(practice.teams["billing"].pk).week[5] == ((600, 720),)


@pytest.mark.django_db
def test_an_invalid_calendar_row_is_refused_before_it_reaches_the_worker():
    from django.core.exceptions import ValidationError

    from closeloop.followups.models import BusinessCalendar

    with pytest.raises(ValidationError, match="time zone"):
        BusinessCalendar.objects.create(name="Broken", time_zone="Nowhere/Nothing")
    assert not BusinessCalendar.objects.exists()
