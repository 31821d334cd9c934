"""Evaluate a formulation at one configuration by lambdifying its sympy expressions.

Nothing is re-implemented numerically: every number comes from ``sympy.lambdify`` of the
expressions in :mod:`perfcost.formulations` (DESIGN.md, invariant 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from perfcost.solver.case.schema import Case
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.expressions import lambdify
from perfcost.solver.problem.numeric import NumericFormulation, numeric_formulation

if TYPE_CHECKING:
    # sympy is imported only when a formulation is built (a cached evaluation needs none).
    from perfcost.formulations.core import Formulation


def build(name: str, *args: Any) -> Formulation:
    """The formulation registered under ``name`` (imports sympy and every model)."""
    from perfcost.formulations.registry import build as build_registered

    return build_registered(name, *args)


@dataclass
class Evaluator:
    """Compiled numeric functions of a formulation's expressions (built once, reused)."""

    formulation: Formulation
    names: Sequence[str] = ()
    _fn: Callable[..., Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.names = tuple(self.names or self.formulation.expressions)

    @cached_property
    def argument_symbols(self) -> list[Any]:
        f = self.formulation
        return [p.symbol for p in f.parameters.values()] + [
            d.symbol for d in f.decisions.values()]

    @property
    def function(self) -> Callable[..., Any]:
        if self._fn is None:
            exprs = [self.formulation.expressions[n] for n in self.names]
            self._fn = lambdify(self.argument_symbols, exprs, cse=True)
        return self._fn

    def __call__(self, decisions: Mapping[str, Any],
                 parameters: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Values of every named quantity; decisions may be numpy arrays (vectorised)."""
        f = self.formulation
        overrides = parameters or {}
        args = [overrides.get(name, p.value) for name, p in f.parameters.items()]
        args += [np.asarray(decisions[name], dtype=float) for name in f.decisions]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = self.function(*args)
        return {n: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float))
                for n, v in zip(self.names, values, strict=True)}


_EVALUATORS: dict[tuple[int, tuple[str, ...]], Evaluator] = {}


def evaluator_for(formulation: Formulation, names: Sequence[str] = ()) -> Evaluator:
    """A cached :class:`Evaluator` (lambdify is the slow part; formulations are shared)."""
    key = (id(formulation), tuple(names))
    found = _EVALUATORS.get(key)
    if found is None or found.formulation is not formulation:
        found = _EVALUATORS[key] = Evaluator(formulation, names)
    return found


def training_formulation(case: Case) -> Formulation:
    s = problem.specs(case)
    return build("training", s.model, s.hardware, s.network, s.training)


#: Numeric training formulations by model structure (solver.problem.search.structure_key):
#: cases that differ only in sizes, rates and prices share one lambdified function.
_BY_STRUCTURE: dict[str, NumericFormulation] = {}


def training_numeric(case: Case) -> NumericFormulation:
    """The training formulation of a one-system case as numeric functions with this case's
    parameter values. The function is built once per model structure (sizes, rates and prices
    are its arguments, as in a search over systems) and kept in the disk cache, so a second
    case of a structure -- another model size, another GPU -- builds nothing (no sympy)."""
    from perfcost.solver.problem.search import structure_key, training_parameters

    s = problem.specs(case)
    inputs = (s.model, s.hardware, s.network, s.training)
    key = repr(structure_key(s))
    shared = _BY_STRUCTURE.get(key)
    if shared is None:
        shared = _BY_STRUCTURE[key] = numeric_formulation(
            "training-structure", (key,), lambda: build("training", *inputs))
    (values,) = training_parameters([s])  # disk-cached: computing them imports sympy
    if values.keys() != shared.parameters.keys():
        # Not the structure the key promised (a parameter only some entries have): this
        # case's own formulation, keyed by its specs in full.
        return numeric_formulation("training", inputs, lambda: build("training", *inputs))
    parameters = {name: replace(info, value=values[name])
                  for name, info in shared.parameters.items()}
    # One compiled function for every case of the structure (the list is its cache).
    return replace(shared, parameters=parameters, _compiled=shared._compiled)


@dataclass(frozen=True)
class Evaluation:
    """One configuration of one case, fully evaluated.

    ``numbers`` is what the values come from: the numeric face of the formulation (from the
    disk cache) or the sympy formulation itself -- both carry the units, groups and docs the
    reports read. :attr:`formulation` is always the sympy formulation, built on first use for
    what differentiates or prints the expressions."""

    case: Case
    config: dict[str, Any]
    values: dict[str, float]
    numbers: Formulation | NumericFormulation

    @cached_property
    def formulation(self) -> Formulation:
        if not isinstance(self.numbers, NumericFormulation):
            return self.numbers
        return training_formulation(self.case)

    def unit(self, name: str) -> str:
        return self.numbers.units.get(name, "")

    @cached_property
    def framework(self) -> dict[str, Any]:
        """The framework profile assumed, and the rules of it this configuration breaks."""
        problems = problem.framework_problems(self.case, self.config)
        return {"name": self.case.training.framework, "runs": not problems,
                "problems": problems}

    def breakdown(self) -> dict[str, float]:
        return {k: self.values[k] for k in self.numbers.groups["iteration_time"]}

    def memory_breakdown(self) -> dict[str, float]:
        return {k: self.values[k] for k in self.numbers.groups["memory_per_gpu"]}

    @property
    def memory_capacity(self) -> float:
        return self.case.hardware.hbm_capacity

    def tp_all_reduce(self) -> dict[str, Any]:
        """The algorithm each tensor-parallel all-reduce uses (the fastest) and the others."""
        prefix = "tp_all_reduce_"
        times = {k[len(prefix):]: self.values[k] for k in self.numbers.units
                 if k.startswith(prefix)}
        if not self.values.get("scale_up_reduction_available", 0.0):
            times.pop("in_network", None)
        fixed = self.case.training.tp_algorithm
        # ties keep the listed order: ring first
        best = min(times, key=lambda k: times[k]) if fixed == "auto" else fixed
        return {"algorithm": best, "chosen_by": "fastest" if fixed == "auto" else "case",
                "time_s": times[best], "alternatives_s": times}

    def to_json(self) -> dict[str, Any]:
        v = self.values
        return {
            "case": self.case.name,
            "config": self.config,
            "gpus": round(v["gpus"]),
            "micro_batches": v["micro_batches"],
            "iteration_time_s": v["iteration_time"],
            "tokens_per_s": v["tokens_per_s"],
            "mfu": v["mfu"],
            "hfu": v["hfu"],
            "model_tflops_per_gpu": v["model_tflops_per_gpu"],
            "hardware_tflops_per_gpu": v["hardware_tflops_per_gpu"],
            "memory_per_gpu_bytes": v["memory_per_gpu"],
            "memory_capacity_bytes": self.memory_capacity,
            "memory_fits": v["memory_per_gpu"] <= self.memory_capacity,
            "memory_margin_bytes": self.memory_capacity - v["memory_per_gpu"],
            "framework": self.framework,
            "time_to_train_s": v["time_to_train"],
            "cost_usd": v["cost"],
            "parameters": v["parameters"],
            "breakdown": self.breakdown(),
            "memory_breakdown": self.memory_breakdown(),
            "per_layer": {"forward_s": v["per_layer_forward_time"],
                          "backward_s": v["per_layer_backward_time"]},
            "collectives": {"tp_all_reduce": self.tp_all_reduce(),
                            "dp_all_reduce": {"algorithm": "hierarchical ring",
                                              "time_s": v["dp_communication"]}},
        }


def evaluate_case(case: Case) -> Evaluation:
    """Evaluate the one configuration a case fixes."""
    case = problem.single(case)
    config = problem.fixed_config(case)
    numeric = training_numeric(case)
    values = numeric(problem.decision_codes(config))
    return Evaluation(case, config, values, numeric)
