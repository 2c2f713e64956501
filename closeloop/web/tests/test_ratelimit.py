"""The public pages' rate limiter counts in the database, atomically, across threads and processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connection

from closeloop.intake.models import ApiRateWindow
from closeloop.web.ratelimit import allow


@pytest.mark.django_db
def test_the_limit_holds_within_a_window_and_each_key_counts_apart() -> None:
    assert [allow("login:POST:10.0.0.1", 3, 60) for _ in range(5)] == [True, True, True, False, False]
    assert allow("login:POST:10.0.0.2", 3, 60)
    assert ApiRateWindow.objects.filter(key__startswith="page:").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_hits_are_each_counted_once() -> None:
    """Twenty requests at the same instant against a limit of eight: exactly eight get through.

    With Django's database cache (read the count, write it back) several threads read the same
    count and more than eight got through.
    """
    threads, limit = 20, 8
    barrier = Barrier(threads)

    def one(_: int) -> bool:
        barrier.wait()
        try:
            return allow("reset:POST:192.0.2.7", limit, 3600)
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        allowed = list(pool.map(one, range(threads)))
    assert allowed.count(True) == limit
    assert ApiRateWindow.objects.get(key__startswith="page:").count == threads
