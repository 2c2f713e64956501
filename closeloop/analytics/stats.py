"""Percentiles and small summaries, the same definition everywhere (and in the tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont, NumPy's default)."""
    return _interpolate(sorted(values), q) if values else None


def _interpolate(ordered: Sequence[float], q: float) -> float:
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Count, p50 and p90 of the values that exist, in hours."""
    present = sorted(v for v in values if v is not None)  # sorted once for both percentiles
    if not present:
        return {"n": 0, "p50": None, "p90": None}
    return {"n": len(present), "p50": hours(_interpolate(present, 0.5)), "p90": hours(_interpolate(present, 0.9))}


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)
