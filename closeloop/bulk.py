"""Many rows in one statement: the hot writes of the follow-up worker (the analytics ledger's
updates, the outbox's inserts).

Django's `bulk_update` writes `SET col = CASE WHEN key = 1 THEN … WHEN key = 2 THEN … END`
for every column named, so a batch of 200 rows costs 200 `When` expressions per column to
build in Python and a long CASE for PostgreSQL to plan; it was a quarter of the follow-up
worker's time. `update_rows` joins the table to the new values instead:
`UPDATE t SET col = v.col FROM (…) AS v WHERE t.key = v.key`, the values as one array per
column on PostgreSQL (UNNEST: a handful of parameters whatever the row count) and as a
VALUES list on SQLite (3.33+ has UPDATE … FROM). Rows are grouped by the set of columns
they change, so a row writes only what changed. `array_types` and `sqlite_chunks` serve any
statement built the same way (the outbox's `INSERT … SELECT FROM UNNEST … ON CONFLICT`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models

SQLITE_PARAMETERS = 999  # the most parameters SQLite takes in one statement (older builds)


def update_rows(model: type[models.Model], key: str, rows: Sequence[tuple[Any, Mapping[str, Any]]]) -> int:
    """For each (key value, {attname: new value}) set those columns on the row whose `key` has that
    value; returns how many rows were updated. Every value is a parameter."""
    groups: dict[tuple[str, ...], list[tuple[Any, Mapping[str, Any]]]] = {}
    for pk, values in rows:
        if values:
            groups.setdefault(tuple(sorted(values)), []).append((pk, values))
    fields = {f.attname: f for f in model._meta.concrete_fields}
    updated = 0
    for names, group in groups.items():
        columns = [fields[key], *(fields[n] for n in names)]
        if connection.vendor == "postgresql":
            updated += _update_unnest(model, columns, group)
        else:
            for chunk in sqlite_chunks(group, len(columns)):
                updated += _update_values(model, columns, chunk)
    return updated


def array_types(fields: Sequence[models.Field[Any, Any]]) -> list[str]:
    """Each field's PostgreSQL type for an UNNEST array cast, without the length, as Django's own UNNEST
    insert does: varchar[] rather than varchar(40)[]; a foreign key takes its target's type."""
    return [(f.target_field if f.is_relation else f).db_type(connection).split("(")[0]  # type: ignore[attr-defined,union-attr]
            for f in fields]


def sqlite_chunks(rows: Sequence[Any], width: int) -> list[Sequence[Any]]:
    """`rows` of `width` parameters each, in chunks that keep one statement under SQLite's parameter limit."""
    size = max(1, SQLITE_PARAMETERS // width)
    return [rows[start:start + size] for start in range(0, len(rows), size)]


def _prepared(columns: list[models.Field[Any, Any]], group: Sequence[tuple[Any, Mapping[str, Any]]]) -> list[list[Any]]:
    key, rest = columns[0], columns[1:]
    return [[key.get_db_prep_save(pk, connection), *(f.get_db_prep_save(values[f.attname], connection) for f in rest)]
            for pk, values in group]


def _sql(model: type[models.Model], columns: list[models.Field[Any, Any]], source: str) -> str:
    qn, table = connection.ops.quote_name, connection.ops.quote_name(model._meta.db_table)
    names = [f"c{i}" for i in range(len(columns))]
    sets = ", ".join(f"{qn(str(f.column))} = v.{n}" for f, n in zip(columns[1:], names[1:], strict=True))
    # Identifiers come from the model, every value is a parameter.
    return (f"UPDATE {table} SET {sets} FROM {source.format(names=', '.join(names))} "  # noqa: S608
            f"WHERE {table}.{qn(str(columns[0].column))} = v.c0")


def _update_unnest(model: type[models.Model], columns: list[models.Field[Any, Any]],
                   group: Sequence[tuple[Any, Mapping[str, Any]]]) -> int:
    types = array_types(columns)
    arrays = [list(column) for column in zip(*_prepared(columns, group), strict=True)]
    source = "UNNEST(" + ", ".join(f"%s::{t}[]" for t in types) + ") AS v({names})"
    with connection.cursor() as cursor:
        cursor.execute(_sql(model, columns, source), arrays)
        return int(cursor.rowcount)


def _update_values(model: type[models.Model], columns: list[models.Field[Any, Any]],
                   group: Sequence[tuple[Any, Mapping[str, Any]]]) -> int:
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # SQLite names VALUES columns column1, column2…; rename them so both databases share _sql.
    renamed = ", ".join(f"column{i + 1} AS c{i}" for i in range(len(columns)))
    source = f"(SELECT {renamed} FROM (VALUES {', '.join([row] * len(group))})) AS v"  # noqa: S608 - placeholders only
    params = [value for values in _prepared(columns, group) for value in values]
    with connection.cursor() as cursor:
        cursor.execute(_sql(model, columns, source), params)
        return int(cursor.rowcount)
