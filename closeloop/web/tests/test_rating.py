"""The requester's rating: one per request, held by the database even when two arrive at once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier, BrokenBarrierError
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.links import status_token
from closeloop.cases.models import Case, Event
from closeloop.web.models import Rating

ALREADY = "you have already rated this request; thank you"


def _closed(practice: Any, case: Case) -> str:
    actions.close(case, actions.Actor.of(practice.coordinator), outcome="completed")
    return f"/s/{status_token(Case.objects.get(pk=case.pk))}/"


def test_a_second_rating_gets_a_clear_answer_and_changes_nothing(practice: Any, referral: Case) -> None:
    url = _closed(practice, referral)
    client = Client()
    client.post(url, {"form": "rating", "rating": "5"})
    page = client.post(url, {"form": "rating", "rating": "1"}, follow=True).content.decode()
    assert ALREADY in page and "you rated us 5 of 5" in page
    assert Rating.objects.get(case=referral).value == 5
    assert [e.data for e in Event.objects.filter(case=referral, kind="rated")] == [{"rating": 5}]


def test_the_database_holds_one_rating_per_case(practice: Any, referral: Case) -> None:
    Rating.objects.create(case=referral, value=4, at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.create(case=referral, value=2, at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():  # and a rating is 1 to 5
        other = actions.open_case(actor=actions.Actor.system("intake"), subject="Other")
        Rating.objects.create(case=other, value=9, at=timezone.now())


def _held_before_writing(barrier: Barrier) -> Callable[..., Any]:
    """An execute wrapper that makes this thread wait for the other one before its first rating write,
    so both have read "not rated yet" before either writes: the race, every time."""
    waited = False

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal waited
        if not waited and sql.lstrip().upper().startswith("INSERT") and ("web_rating" in sql or "cases_event" in sql):
            waited = True
            try:
                barrier.wait(timeout=5)
            except BrokenBarrierError:
                pass
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.postgres_only
def test_two_ratings_in_the_same_instant_record_one_on_postgres(transactional_db: None, practice: Any) -> None:
    case = actions.open_case(actor=actions.Actor.system("intake"), subject="Refill",
                             request_type=practice.types["refill"])
    url = _closed(practice, case)
    barrier = Barrier(2)

    def rate(value: str) -> str:
        try:
            with connection.execute_wrapper(_held_before_writing(barrier)):
                return Client().post(url, {"form": "rating", "rating": value}, follow=True).content.decode()
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        pages = list(pool.map(rate, ["5", "1"]))
    assert Event.objects.filter(case=case, kind="rated").count() == 1
    [rating] = Rating.objects.filter(case=case)
    assert [ALREADY in page for page in pages].count(True) == 1
    assert all(f"you rated us {rating.value} of 5" in page for page in pages)
    assert all(page.count("Thank you for your rating.") + page.count(ALREADY) == 1 for page in pages)
