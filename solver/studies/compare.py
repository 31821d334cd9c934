"""Fixed configurations evaluated beside the optimum of ``perfcost solve``.

A case's ``[[compare]]`` tables name configurations to hold against the optimum -- a published
layout, a team's current setup. Each is checked against the same structural rules, evaluated
with the search's own formulation and parameter values (on the optimum's hardware and network,
and its GPU count when the case offers several), and reported with the objective, its distance
from the optimum and whether it fits the constraints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case
from perfcost.solver.case.sections import CompareSection
from perfcost.solver.problem import specs as fixed
from perfcost.solver.problem.result import Result
from perfcost.solver.problem.search import SearchProblem, system_case


@dataclass(frozen=True)
class Comparison:
    """One compared configuration: its values, or why it is not a valid configuration."""

    name: str
    source: str
    config: dict[str, Any]
    values: dict[str, float] = field(default_factory=dict)
    objective: float | None = None
    vs_best: float | None = None  # objective / optimum - 1
    fits: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    @property
    def feasible(self) -> bool:
        return self.error is None and all(self.fits.values())

    def to_json(self, breakdown: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source,
                               "config": self.config, "error": self.error,
                               "value": self.objective, "vs_best": self.vs_best,
                               "constraints_met": self.fits, "feasible": self.feasible}
        v = self.values
        if v:
            out.update({
                "iteration_time_s": v["iteration_time"],
                "tokens_per_s": v["tokens_per_s"],
                "mfu": v["mfu"],
                "memory_per_gpu_bytes": v["memory_per_gpu"],
                "breakdown": {k: v[k] for k in breakdown},
            })
        return out


def _case_for(problem: SearchProblem, entry: CompareSection, system: int,
              gpus: int | None) -> Case:
    """``case`` on one system with ``entry``'s parallelism (the case's settings that are not
    decisions, such as expert_tp, carried over)."""
    case = problem.case
    single = system_case(problem, system)
    given = entry.parallelism.model_dump(exclude_unset=True)
    kept = {k: v for k, v in case.parallelism.model_dump().items()
            if k not in fixed.DEFAULTS and k != "dp"}
    parallelism = type(case.parallelism).model_validate({**kept, **given})
    update: dict[str, Any] = {"parallelism": parallelism}
    if isinstance(case.cluster.gpus, list):
        update["cluster"] = case.cluster.model_copy(update={"gpus": gpus})
    return single.model_copy(update=update)


def compare(problem: SearchProblem, result: Result) -> list[Comparison]:
    """Every ``[[compare]]`` configuration of the problem's case, evaluated."""
    from perfcost.solver.engines.enumerate import full_values

    case = problem.case
    system = result.system_index if result.ok else 0
    gpus = round(result.values["gpus"]) if result.ok else None
    out = []
    for i, entry in enumerate(case.compare):
        try:
            single = _case_for(problem, entry, system, gpus)
            config = fixed.fixed_config(single)
        except CaseError as exc:
            out.append(Comparison(entry.name, entry.source, {}, error=f"compare[{i}]: {exc}"))
            continue
        micro = case.training.global_batch // (config["dp"] * config["micro_batch"])
        if micro < config["pp"]:
            out.append(Comparison(entry.name, entry.source, config, error=(
                f"compare[{i}]: {micro} micro-batches for {config['pp']} pipeline stages; "
                "the search model needs at least as many")))
            continue
        codes = fixed.decision_codes(config)
        values = full_values(problem, codes, system)
        objective = float(values[problem.quantity])
        fits = {c.name: bool(values[c.quantity] <= c.limits[system])
                for c in problem.constraints}
        vs_best = objective / result.value - 1 if result.ok and result.value else None
        out.append(Comparison(entry.name, entry.source, config, values, objective, vs_best,
                              fits))
    return out
