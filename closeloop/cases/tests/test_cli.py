from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from closeloop.cases.demo import seed
from closeloop.cases.models import Case
from closeloop.cli import ALIASES

pytestmark = pytest.mark.django_db


def test_check_passes_on_the_demo_practice():
    seed(cases=30)
    out = StringIO()
    call_command("check_cases", stdout=out)
    assert "every open case has an owner" in out.getvalue()
    assert Case.objects.exclude(stage="closed").count() > 10


def test_check_lists_cases_in_limbo_and_exits_1():
    seed(cases=5)
    broken = Case.objects.exclude(stage="closed").first()
    # Simulate a write that bypassed actions.py (a bad migration, a manual SQL fix).
    Case.objects.filter(pk=broken.pk).update(next_due_at=None, owner=None, team=None)
    out = StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("check_cases", "--json", stdout=out)
    assert exc.value.returncode == 1
    report = json.loads(out.getvalue())
    assert report == [{"case": broken.reference, "problems": ["no owner and no team queue", "no due time"]}]


def test_the_cli_maps_friendly_names():
    assert ALIASES["check"] == "check_cases"
