"""The shape every figure takes: a titled table whose rows each know the cases behind them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    name: str
    title: str
    columns: list[tuple[str, str]]  # (key, heading); the first column is the row's label
    rows: list[dict[str, Any]] = field(default_factory=list)
    cases: dict[str, list[int]] = field(default_factory=dict)  # row key → case ids behind the row

    def add(self, key: str, case_ids: list[int], **values: Any) -> None:
        self.rows.append({"key": key, **values})
        self.cases[key] = case_ids

    def cells(self) -> list[tuple[str, list[Any], bool]]:
        """(row key, values in column order, whether cases lie behind it) for templates."""
        return [(row["key"], [row.get(k) for k, _ in self.columns], bool(self.cases.get(row["key"])))
                for row in self.rows]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([heading for _, heading in self.columns] + ["cases"])
        for row in self.rows:
            writer.writerow([_safe(row.get(k)) for k, _ in self.columns] + [len(self.cases.get(row["key"], []))])
        return out.getvalue()


def _safe(value: Any) -> Any:
    """Defuse spreadsheet formulas in exported text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
