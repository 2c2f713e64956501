"""`closeloop intake import-eml` over thousands of real-world messages and damaged variants
of them (data/mail-corpus/, corpus.py): every file ends as a case, a threaded message, a
duplicate, something kept without a case, or a quarantined row with its error. None lost."""

from __future__ import annotations

import io
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command

from closeloop.intake.channels.eml.corpus import build, seeds
from closeloop.intake.models import InboundMessage

FILES = 2000


def _import(folder: Path) -> dict[str, int]:
    out = io.StringIO()
    call_command("intake", "import-eml", str(folder), stdout=out)
    return json.loads(out.getvalue())


def _check_every_row_accounted_for(summary: dict[str, int]) -> Counter[str]:
    rows = list(InboundMessage.objects.all())
    assert len(rows) == summary["stored_raw"]
    outcomes = Counter(f"{r.status}:{r.result}" for r in rows)
    assert not [r for r in rows if r.status == InboundMessage.Status.RECEIVED]
    assert all(r.error for r in rows if r.status == InboundMessage.Status.QUARANTINED)
    assert all(r.case_id for r in rows if r.result in ("opened", "threaded"))
    return outcomes


@pytest.mark.django_db
def test_every_seed_message_is_imported_without_loss(practice):
    folder = Path(tempfile.mkdtemp(prefix="corpus-"))
    build(folder, len(seeds()))
    summary = _import(folder)
    assert summary["files"] == len(seeds()) and summary["lost"] == 0
    outcomes = _check_every_row_accounted_for(summary)
    assert outcomes["processed:opened"] >= 30, outcomes  # real mail opens cases; it is not quarantined wholesale
    assert outcomes["processed:bounce"] >= 1 and outcomes["processed:auto_reply"] >= 1


@pytest.mark.heavy
@pytest.mark.django_db
def test_thousands_of_real_and_damaged_messages_import_with_nothing_lost(practice, settings):
    folder = Path(tempfile.mkdtemp(prefix="corpus-"))
    build(folder, FILES)
    summary = _import(folder)
    assert summary["files"] == FILES and summary["lost"] == 0, summary
    outcomes = _check_every_row_accounted_for(summary)
    assert outcomes["quarantined:"] > 0 and outcomes["processed:opened"] > 100, outcomes
    # Importing the same folder again stores nothing new and loses nothing.
    again = _import(folder)
    assert again["stored_raw"] == 0 and again["duplicates"] == FILES and again["lost"] == 0
