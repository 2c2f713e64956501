"""What-if: a SimPy discrete-event model of a team's capacity and policies.

Each simulated case takes the profile of a recorded answered case (bootstrap): how long
the team, the requester and the specialist held it before the first answer. It arrives →
(human triage, with the triage share) → a coordinator works it → waits on the requester
and the specialist as its profile says → a coordinator works it again and answers.
Coordinators are a shared resource: a coordinator holds the case for `work_share` of the
profile's team time, split over the two turns (and for `work_share` of a recorded triage
span); the rest of the recorded team time is waiting for a coordinator, which the model
produces by queueing. `work_share` is calibrated so the model reproduces the recorded
median time to first answer; the model is trusted only if it then also reproduces p50 and
p90 within the stated tolerance.
Times are wall-clock: the model has no business hours, so it compares scenarios, it does
not schedule shifts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import simpy

from .stats import percentile

HOUR = 3600.0
TRIAGE_DEFAULT = 15 * 60.0  # seconds of triage work when history has none to go by


@dataclass(frozen=True)
class Inputs:
    """What the model needs, measured from the event log (or made up for a synthetic run)."""

    arrivals: Sequence[float]  # seconds from the start of the horizon
    horizon: float  # seconds
    coordinators: int
    profiles: Sequence[tuple[float, float, float]]  # (team, requester, specialist) seconds before the answer
    triage_spans: Sequence[float]
    p_triage: float
    measured_p50: float | None = None  # time to first answer, seconds
    measured_p90: float | None = None


@dataclass(frozen=True)
class Policy:
    extra_coordinators: int = 0
    chasing: bool = True
    chase_factor: float = 1.6  # requester replies take this much longer without automatic chasers
    triage_share: float | None = None  # None: as recorded
    work_share: float = 1.0


@dataclass
class Outcome:
    answers: list[float] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)  # sampled every hour

    @property
    def p50(self) -> float | None:
        return percentile(self.answers, 0.5)

    @property
    def p90(self) -> float | None:
        return percentile(self.answers, 0.9)


def run(inputs: Inputs, policy: Policy, seed: int = 1) -> Outcome:
    rng, env, out = random.Random(seed), simpy.Environment(), Outcome()
    staff = simpy.Resource(env, capacity=max(1, inputs.coordinators + policy.extra_coordinators))
    in_system = [0]
    p_triage = inputs.p_triage if policy.triage_share is None else policy.triage_share

    def turn(seconds: float):  # type: ignore[no-untyped-def]
        with staff.request() as claim:
            yield claim
            yield env.timeout(seconds)

    def case(arrived: float):  # type: ignore[no-untyped-def]
        in_system[0] += 1
        team, requester, specialist = rng.choice(inputs.profiles)
        if rng.random() < p_triage:  # a recorded triage span is mostly waiting in the queue, like team time
            yield from turn(rng.choice(inputs.triage_spans) * policy.work_share if inputs.triage_spans
                            else TRIAGE_DEFAULT)
        yield from turn(team * policy.work_share / 2)
        yield env.timeout(requester * (1.0 if policy.chasing else policy.chase_factor) + specialist)
        yield from turn(team * policy.work_share / 2)
        out.answers.append(env.now - arrived)
        in_system[0] -= 1

    def source():  # type: ignore[no-untyped-def]
        last = 0.0
        for t in inputs.arrivals:
            yield env.timeout(t - last)
            last = t
            env.process(case(t))

    def sampler():  # type: ignore[no-untyped-def]
        while True:
            out.backlog.append(in_system[0])
            yield env.timeout(HOUR)

    env.process(source())
    env.process(sampler())
    env.run(until=inputs.horizon)
    return out


@dataclass(frozen=True)
class Result:
    name: str
    p50: float | None
    p90: float | None
    answered: float
    mean_backlog: float
    final_backlog: float


def replicate(inputs: Inputs, policy: Policy, name: str, runs: int = 5) -> Result:
    outcomes = [run(inputs, policy, seed) for seed in range(1, runs + 1)]

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    return Result(name, mean([o.p50 for o in outcomes]), mean([o.p90 for o in outcomes]),
                  sum(len(o.answers) for o in outcomes) / runs,
                  sum(sum(o.backlog) / max(1, len(o.backlog)) for o in outcomes) / runs,
                  sum(o.backlog[-1] if o.backlog else 0 for o in outcomes) / runs)


def error(simulated: float | None, measured: float | None) -> float | None:
    if simulated is None or not measured:
        return None
    return abs(simulated - measured) / measured


def calibrate(inputs: Inputs, base: Policy, runs: int = 3) -> Policy:
    """The work share (0.05…1) whose simulated median time to first answer is closest to the recorded one."""
    best, best_error = base, float("inf")
    for share in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        candidate = replace(base, work_share=share)
        e = error(replicate(inputs, candidate, "calibration", runs).p50, inputs.measured_p50)
        if e is not None and e < best_error:
            best, best_error = candidate, e
    return best


def offsets(times: Sequence[datetime], start: datetime) -> list[float]:
    return sorted((t - start).total_seconds() for t in times)
