"""What-if: a SimPy discrete-event model of a team's people and policies.

The model replays the recorded history case by case (a trace): every case arrives when it
arrived, goes to the person who owned it, and keeps its own recorded waits on the requester,
the specialist, triage and the team's unassigned queue. Each person is a queue of one: a case
needs `work` of its owner's time in two turns (before and after the waits), and waits while
its owner works on other cases. The work is measured from the record, not assumed: while an
owner held n cases at once, each received 1/n of their time, so a case's work is the integral
of 1/n over the time its owner held it before the first answer. The waiting that the record
shows on top of that work is what the model must produce by queueing: it is trusted only if,
with one factor on the work calibrated to the recorded median time to first answer (0.5 to
1.5), it also reproduces the recorded p50 and p90 within the stated tolerance.

Replaying each case at its own time with its own owner keeps a history made of different eras
(weeks of ordinary work, then a compressed demo replay by one person) honest. A case not yet
answered is replayed as far as it got: it takes its owner's work so far, at most the median
answered case's, and stays in the backlog. The model runs on past the period until every case
the record answered is answered: each scenario's times are then over the same cases, as the
recorded figures are. Counting only the answers inside the period would let a scenario that
slows cases down read faster, because its slowest cases would leave the sample.

"More coordinators" adds people who each take an even share of the arriving cases. Times are
wall-clock: the model has no business hours, so it compares scenarios, it does not schedule
shifts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property

import simpy

from .stats import percentile

HOUR = 3600.0
TRIAGE_DEFAULT = 15 * 60.0  # seconds of triage when history has none to go by
FACTORS = (1.0, 0.9, 1.1, 0.8, 1.2, 0.7, 1.3, 0.6, 1.4, 0.5, 1.5)  # nearest 1 first: it wins a tie


@dataclass(frozen=True)
class Trace:
    """One recorded (or synthetic) case, in seconds."""

    arrival: float  # from the start of the horizon
    work: float  # of its owner's time before the first answer (or so far)
    owner: int = 0  # index of the person who held it; -1: nobody did
    waiting: float = 0.0  # in the team's queue with no owner
    requester: float = 0.0  # waiting on the requester or an external party
    specialist: float = 0.0
    triage: float = 0.0  # in human triage (0: never sent there)
    answered: bool = True  # False: not answered by the end of the record


@dataclass(frozen=True)
class Inputs:
    """What the model needs, measured from the event log (or made up for a synthetic run)."""

    cases: Sequence[Trace]  # in order of arrival
    horizon: float  # seconds
    coordinators: int  # people; owners are numbered 0 … coordinators - 1
    triage_spans: Sequence[float] = ()  # finished triage spans, for cases a scenario sends to triage
    measured_p50: float | None = None  # time to first answer, seconds
    measured_p90: float | None = None

    @cached_property
    def p_triage(self) -> float:  # read for every simulated case: counted once
        return sum(1 for c in self.cases if c.triage > 0) / len(self.cases) if self.cases else 0.0

    @cached_property
    def typical_work(self) -> float:  # read by every run (calibration runs dozens): computed once
        """The median answered case's work: the most an unanswered case takes in the model."""
        return percentile([c.work for c in self.cases if c.answered], 0.5) or 0.0


@dataclass(frozen=True)
class Policy:
    extra_coordinators: int = 0
    chasing: bool = True
    chase_factor: float = 1.6  # requester replies take this much longer without automatic chasers
    triage_share: float | None = None  # None: as recorded
    work_share: float = 1.0  # the calibrated factor on the measured work


@dataclass
class Outcome:
    answers: list[float] = field(default_factory=list)  # every case the record answered, inside the period or after
    answered: int = 0  # of those, answered inside the period
    backlog: list[int] = field(default_factory=list)  # sampled every hour
    busy: float = 0.0  # share of the people's time spent working cases within the horizon
    busiest_hour: float = 0.0  # the same share in the hour they worked most: a burst the average hides

    @property
    def p50(self) -> float | None:
        return percentile(self.answers, 0.5)

    @property
    def p90(self) -> float | None:
        return percentile(self.answers, 0.9)


def _triage(trace: Trace, inputs: Inputs, policy: Policy, rng: random.Random) -> float:
    """The case's triage time under the policy: as recorded, or re-drawn so that the policy's share of
    cases goes to triage (a case newly sent there takes a recorded triage span)."""
    share, recorded = policy.triage_share, inputs.p_triage
    if share is None or share == recorded:
        return trace.triage
    if trace.triage > 0:
        return trace.triage if share > recorded or rng.random() < share / recorded else 0.0
    if rng.random() < (share - recorded) / (1.0 - recorded):
        return rng.choice(inputs.triage_spans) if inputs.triage_spans else TRIAGE_DEFAULT
    return 0.0


def _owner(trace: Trace, inputs: Inputs, policy: Policy, rng: random.Random) -> int:
    """The recorded owner, or one of the extra people, who take an even share of the cases."""
    people = inputs.coordinators + policy.extra_coordinators
    if trace.owner < 0:
        return rng.randrange(people)
    if policy.extra_coordinators and rng.random() < policy.extra_coordinators / people:
        return inputs.coordinators + rng.randrange(policy.extra_coordinators)
    return trace.owner


def run(inputs: Inputs, policy: Policy, seed: int = 1) -> Outcome:
    rng, env, out = random.Random(seed), simpy.Environment(), Outcome()
    people = [simpy.Resource(env, capacity=1)
              for _ in range(max(1, inputs.coordinators + policy.extra_coordinators))]
    in_system, worked = [0], [0.0]
    by_hour: dict[int, float] = {}  # seconds worked in each hour of the period, all people together
    factor = policy.work_share

    def account(start: float, seconds: float) -> None:
        end = min(start + seconds, inputs.horizon)
        worked[0] += max(0.0, end - start)
        while start < end:
            hour = int(start // HOUR)
            stop = min(end, (hour + 1) * HOUR)
            by_hour[hour] = by_hour.get(hour, 0.0) + stop - start
            start = stop

    def turn(person: simpy.Resource, seconds: float):  # type: ignore[no-untyped-def]
        with person.request() as claim:
            yield claim
            account(env.now, seconds)
            yield env.timeout(seconds)

    def case(trace: Trace, triage: float, person: simpy.Resource):  # type: ignore[no-untyped-def]
        in_system[0] += 1
        yield env.timeout(triage + trace.waiting)
        if not trace.answered:  # replayed as far as it got, with at most a typical case's work: it
            yield from turn(person, min(trace.work, inputs.typical_work) * factor)  # stays in the backlog
            return
        yield from turn(person, trace.work * factor / 2)
        yield env.timeout(trace.requester * (1.0 if policy.chasing else policy.chase_factor) + trace.specialist)
        yield from turn(person, trace.work * factor / 2)
        out.answers.append(env.now - trace.arrival)
        out.answered += env.now <= inputs.horizon
        in_system[0] -= 1

    def source():  # type: ignore[no-untyped-def]
        for trace in inputs.cases:
            yield env.timeout(max(0.0, trace.arrival - env.now))
            owner = people[_owner(trace, inputs, policy, rng)]
            env.process(case(trace, _triage(trace, inputs, policy, rng), owner))

    def sampler():  # type: ignore[no-untyped-def]
        while env.now < inputs.horizon:
            out.backlog.append(in_system[0])
            yield env.timeout(HOUR)

    env.process(source())
    env.process(sampler())
    env.run(until=inputs.horizon)
    env.run()  # on past the period until every case the record answered is answered (see module docstring)
    out.busy = worked[0] / (len(people) * inputs.horizon) if inputs.horizon > 0 else 0.0
    out.busiest_hour = max(by_hour.values(), default=0.0) / (len(people) * min(HOUR, inputs.horizon or HOUR))
    return out


@dataclass(frozen=True)
class Result:
    name: str
    p50: float | None
    p90: float | None
    answered: float
    mean_backlog: float
    final_backlog: float
    busy: float = 0.0  # the coordinators' utilisation in the model
    busiest_hour: float = 0.0  # their utilisation in the hour they worked most


def replicate(inputs: Inputs, policy: Policy, name: str, runs: int = 5) -> Result:
    """The policy's mean outcome over `runs` seeds; one run when nothing in it is drawn at random."""
    if (policy.triage_share is None or policy.triage_share == inputs.p_triage) and not policy.extra_coordinators \
            and all(c.owner >= 0 for c in inputs.cases):
        runs = 1
    outcomes = [run(inputs, policy, seed) for seed in range(1, runs + 1)]

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    return Result(name, mean([o.p50 for o in outcomes]), mean([o.p90 for o in outcomes]),
                  sum(o.answered for o in outcomes) / runs,
                  sum(sum(o.backlog) / max(1, len(o.backlog)) for o in outcomes) / runs,
                  sum(o.backlog[-1] if o.backlog else 0 for o in outcomes) / runs,
                  sum(o.busy for o in outcomes) / runs, sum(o.busiest_hour for o in outcomes) / runs)


def error(simulated: float | None, measured: float | None) -> float | None:
    if simulated is None or not measured:
        return None
    return abs(simulated - measured) / measured


def calibrate(inputs: Inputs, base: Policy, runs: int = 3) -> Policy:
    """The factor on the measured work whose simulated median time to first answer is closest to the
    recorded one."""
    best, best_error = base, float("inf")
    for factor in FACTORS:
        candidate = replace(base, work_share=factor)
        e = error(replicate(inputs, candidate, "calibration", runs).p50, inputs.measured_p50)
        if e is not None and e < best_error - 1e-9:
            best, best_error = candidate, e
    return best


def offsets(times: Sequence[datetime], start: datetime) -> list[float]:
    return sorted((t - start).total_seconds() for t in times)
