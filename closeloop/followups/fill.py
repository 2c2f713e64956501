"""Load generator for crash tests and the benchmark: many open cases waiting on requesters.

Rows are written as `request_missing_info` would leave them (awaiting information, chaser
step 0) without going through the actions one by one: a million cases through the
actions, or even through the ORM, would take far too long. On PostgreSQL the rows go in
with COPY, on SQLite with one `executemany`; every column not varied per row is rendered
once from a template model instance, so the defaults are the model's own. Never used by
the product itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Max

from closeloop.cases.models import ActorKind, Case, Event, Message, Party, RequestType
from closeloop.cases.stages import NextAction, Stage, WaitingOn

CHUNK = 50_000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def fill(count: int, due_fraction: float, now: datetime, *, request_type: RequestType, spread_seconds: float = 0.0,
         seed: int = 1) -> dict[int, datetime]:
    """Insert `count` cases; a `due_fraction` of them fall due between now and now + spread.

    Each case has its own requester (`r<party id>@bench.example`) and the history that
    request would have left: its `info_requested` event and the queued missing-information
    message (so a chaser threads under it). The analytics ledger of that history is not
    written here (`analytics.ledger.rebuild_cases` measures it). Returns {case id: due time}
    for the due ones.
    """
    rng = random.Random(seed)
    later = now + timedelta(days=30)
    dues = [now + timedelta(seconds=rng.uniform(0, spread_seconds)) if rng.random() < due_fraction else later
            for _ in range(count)]
    party_base, case_base, event_base, message_base = _next_id(Party), _next_id(Case), _next_id(Event), \
        _next_id(Message)
    template = Case(
        request_type=request_type, team_id=request_type.routing_team_id, stage=Stage.AWAITING_INFO,
        waiting_on=WaitingOn.REQUESTER, next_action=NextAction.CHASE_REQUESTER, subject="Referral",
        missing_fields=["date_of_birth"], opened_at=now, updated_at=now, channel="bench")
    with transaction.atomic():
        insert_rows(Party, Party(created_at=now), ["id", "name", "email"],
                    ((party_base + i, f"Requester {party_base + i}", f"r{party_base + i}@bench.example")
                     for i in range(count)))
        insert_rows(Case, template, ["id", "requester_id", "next_due_at"],
                    ((case_base + i, party_base + i, due) for i, due in enumerate(dues)))
        insert_rows(Event, Event(at=now, actor_kind=ActorKind.STAFF, actor_label="bench", kind="info_requested",
                                 from_stage=Stage.TRIAGE, to_stage=Stage.AWAITING_INFO, waiting_on=WaitingOn.REQUESTER,
                                 team_id=template.team_id, data={"fields": ["date_of_birth"], "message": ""}),
                    ["id", "case_id"], ((event_base + i, case_base + i) for i in range(count)))
        insert_rows(Message, Message(direction=Message.Direction.OUTBOUND, status=Message.Status.SENT,
                                     purpose="missing_info", channel="email", subject="Referral: information needed",
                                     body="Please send your date of birth.", created_at=now),
                    ["id", "case_id", "recipients", "message_id"],
                    ((message_base + i, case_base + i, [f"r{party_base + i}@bench.example"],
                      f"<fill-{case_base + i}@bench.example>") for i in range(count)))
    return {case_base + i: due for i, due in enumerate(dues) if due < later}


def _next_id(model: type[models.Model]) -> int:
    return int(model._default_manager.aggregate(top=Max("id"))["top"] or 0) + 1


def insert_rows(model: type[models.Model], template: models.Model, varying: Sequence[str],
                rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert rows of `model`: the `varying` columns (attnames) from `rows`, all others from `template`."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    fixed = [name for name in fields if name not in varying]
    qn, table = connection.ops.quote_name, connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(qn(str(fields[name].column)) for name in [*varying, *fixed])
    if connection.vendor == "postgresql":
        _copy(model, table, columns, [fields[n] for n in varying], fixed_text="\t".join(
            _copy_text(fields[n], getattr(template, n)) for n in fixed), rows=rows)
        return
    constant = [fields[n].get_db_prep_save(getattr(template, n), connection) for n in fixed]
    prep = [fields[n] for n in varying]
    marks = ", ".join(["%s"] * (len(varying) + len(fixed)))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - identifiers from the model
    with connection.cursor() as cursor:
        batch: list[list[Any]] = []
        for row in rows:
            batch.append([f.get_db_prep_save(v, connection) for f, v in zip(prep, row, strict=True)] + constant)
            if len(batch) >= CHUNK:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def _copy(model: type[models.Model], table: str, columns: str, varying: list[models.Field[Any, Any]],
          fixed_text: str, rows: Iterable[tuple[Any, ...]]) -> None:
    suffix = f"\t{fixed_text}\n" if fixed_text else "\n"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            buffer, lines = StringIO(), 0
            for row in rows:
                buffer.write("\t".join(_copy_text(f, v) for f, v in zip(varying, row, strict=True)) + suffix)
                lines += 1
                if lines >= CHUNK:
                    copy.write(buffer.getvalue())
                    buffer, lines = StringIO(), 0
            copy.write(buffer.getvalue())
        cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT MAX(id) FROM {table}))",  # noqa: S608
                       [model._meta.db_table])


def _copy_text(field: models.Field[Any, Any], value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(field, models.JSONField):
        text = json.dumps(value)
    elif isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return text.translate(_COPY_ESCAPES)
