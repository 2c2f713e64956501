"""What would help: validate the model against the recorded history, then compare scenarios.

Shared by `closeloop simulate` and the dashboard's what-if panel. The model (`simulate.py`) is
trusted only when, after calibrating its one free parameter to the recorded median time to
first answer, it also reproduces the recorded p50 and p90 within the tolerance; otherwise no
scenario is shown (a model that cannot replay the past should not be asked about the future).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import measure
from .data import Scope
from .simulate import Inputs, Policy, Result, calibrate, error, replicate


class NothingToModel(ValueError):
    """The period has no arrivals, or no answered case to validate against."""


@dataclass(frozen=True)
class Options:
    extra_coordinators: int = 1
    triage_share: float = 0.5
    chase_factor: float = 1.6
    runs: int = 5
    tolerance: float = 0.25
    synthetic_per_day: float | None = None
    force: bool = False


@dataclass(frozen=True)
class Validation:
    arrivals: int
    coordinators: int
    work_share: float
    measured_p50: float | None
    measured_p90: float | None
    model: Result
    errors: tuple[float | None, float | None]
    tolerance: float

    @property
    def trusted(self) -> bool:
        return all(e is not None and e <= self.tolerance for e in self.errors)


@dataclass(frozen=True)
class WhatIf:
    options: Options
    arrivals: int
    coordinators: int
    validation: Validation | None  # None for a synthetic stream: there is no history to check against
    results: list[Result] = field(default_factory=list)  # empty when the model is not trusted

    @property
    def withheld(self) -> bool:
        return not self.results

    def unit(self) -> tuple[str, float]:
        """The unit its times read best in: hours, or minutes and seconds after a compressed demo replay
        (where a simulated day passes in minutes)."""
        times = [t for r in self.results for t in (r.p50, r.p90)]
        if self.validation is not None:
            v = self.validation
            times += [v.measured_p50, v.measured_p90, v.model.p50, v.model.p90]
        longest = max((t for t in times if t is not None), default=0.0)
        return ("h", 3600.0) if longest >= 2 * 3600 else ("min", 60.0) if longest >= 120 else ("s", 1.0)


def inputs_for(scope: Scope, options: Options) -> Inputs:
    inputs = (measure.synthetic(scope, options.synthetic_per_day) if options.synthetic_per_day
              else measure.recorded(scope))
    if not inputs.cases:
        raise NothingToModel("no arrivals to replay in that period; choose a longer period or a synthetic stream")
    return inputs


def validate(inputs: Inputs, base: Policy, options: Options) -> Validation:
    if inputs.measured_p50 is None:
        raise NothingToModel("no case was answered in that period, so there is nothing to validate the model against")
    policy = calibrate(inputs, base)
    result = replicate(inputs, policy, "model of the recorded history", options.runs)
    return Validation(len(inputs.cases), inputs.coordinators, policy.work_share, inputs.measured_p50,
                      inputs.measured_p90, result, (error(result.p50, inputs.measured_p50),
                                                    error(result.p90, inputs.measured_p90)), options.tolerance)


def scenarios(base: Policy, options: Options) -> list[tuple[str, Policy]]:
    extra = options.extra_coordinators
    return [("as today", base),
            (f"{'one' if extra == 1 else extra} more coordinator{'s' if extra != 1 else ''}",
             replace(base, extra_coordinators=extra)),
            ("automatic chasing off", replace(base, chasing=False)),
            (f"triage share {options.triage_share:.0%}", replace(base, triage_share=options.triage_share))]


def what_if(scope: Scope, options: Options) -> WhatIf:
    """Validate (for recorded history), then run every scenario unless the model is not trusted."""
    inputs = inputs_for(scope, options)
    base = Policy(chase_factor=options.chase_factor)
    validation = None
    if not options.synthetic_per_day:
        validation = validate(inputs, base, options)
        base = replace(base, work_share=validation.work_share)
        if not validation.trusted and not options.force:
            return WhatIf(options, len(inputs.cases), inputs.coordinators, validation)
    results = [replicate(inputs, policy, name, options.runs) for name, policy in scenarios(base, options)]
    return WhatIf(options, len(inputs.cases), inputs.coordinators, validation, results)
