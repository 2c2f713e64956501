"""Percentiles and small summaries, the same definition everywhere (and in the tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont, NumPy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Count, p50 and p90 of the values that exist, in hours."""
    present = [v for v in values if v is not None]
    p50, p90 = percentile(present, 0.5), percentile(present, 0.9)
    return {"n": len(present), "p50": hours(p50), "p90": hours(p90)}


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)
