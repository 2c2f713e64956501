from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_suite_runs_on_the_database_it_names(db_engine):
    from django.db import connection

    assert connection.vendor == ("postgresql" if db_engine == "postgres" else "sqlite")
