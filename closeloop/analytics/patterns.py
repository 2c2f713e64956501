"""The shape of a realistic request stream: arrivals by hour and weekday, type mix, how often
information is missing, and how long requesters and specialists take to reply. Shared by
`closeloop simulate` (synthetic arrivals) and `closeloop demo-replay`."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# Relative arrival weight per hour of day (UTC) and per weekday (Monday first).
HOURLY = [0.1, 0.05, 0.05, 0.05, 0.1, 0.2, 0.5, 1.2, 2.2, 2.6, 2.4, 2.0, 1.6, 2.0, 2.3, 2.1, 1.7, 1.1, 0.6,
          0.4, 0.3, 0.25, 0.2, 0.15]
WEEKDAY = [1.3, 1.1, 1.0, 1.0, 0.9, 0.25, 0.15]
TYPE_MIX = {"referral": 0.3, "appointment": 0.25, "records": 0.15, "refill": 0.12, "billing": 0.08,
            "results": 0.07, "other": 0.03}
MISSING_INFO_RATE = {"referral": 0.35, "appointment": 0.15, "records": 0.3, "refill": 0.2, "billing": 0.1,
                     "results": 0.1, "other": 0.2}
SPECIALIST_RATE = {"referral": 0.6, "results": 0.5, "refill": 0.4}
REQUESTER_DELAY_HOURS = (2.0, 30.0)  # lognormal-ish: median, 90th percentile
SPECIALIST_DELAY_HOURS = (4.0, 24.0)


def _weight(at: datetime) -> float:
    return HOURLY[at.hour] * WEEKDAY[at.weekday()]


PEAK = max(HOURLY) * max(WEEKDAY)


def arrivals(rng: random.Random, start: datetime, days: float, per_day: float) -> list[datetime]:
    """Arrival times over `days` days averaging `per_day` a day, shaped by hour and weekday
    (a thinned Poisson process)."""
    mean_weight = sum(HOURLY) / 24 * sum(WEEKDAY) / 7
    peak_rate = per_day / 86400 * PEAK / mean_weight  # arrivals per second at the busiest hour
    out: list[datetime] = []
    t, end = start, start + timedelta(days=days)
    while True:
        t += timedelta(seconds=rng.expovariate(peak_rate))
        if t >= end:
            return out
        if rng.random() < _weight(t) / PEAK:
            out.append(t)


def request_type(rng: random.Random) -> str:
    return rng.choices(list(TYPE_MIX), weights=list(TYPE_MIX.values()))[0]


def delay_hours(rng: random.Random, median_p90: tuple[float, float]) -> float:
    """A lognormal delay with the given median and 90th percentile, in hours."""
    import math

    median, p90 = median_p90
    sigma = math.log(p90 / median) / 1.2816
    return rng.lognormvariate(math.log(median), sigma)
