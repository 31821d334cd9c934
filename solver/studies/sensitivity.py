"""Sensitivities: how the objective moves with each parameter, and how far a parameter can move
before the optimal configuration changes.

* **Elasticity** ``∂ln f / ∂ln θ = (θ / f) ∂f/∂θ`` of a quantity ``f`` at one configuration,
  for every parameter ``θ`` with a non-zero value (GPkit reports the same figure for geometric
  programs: a 1 % change of ``θ`` moves ``f`` by about ``e`` %). The derivative is exact: the
  chain rule applied node by node to the formulation's own sympy expression (forward-mode
  differentiation of the expression tree, in floating point), not a finite difference. Where
  the model has a kink exactly at the configuration -- tile and wave quantisation (``ceil``)
  at a jump, a ``max`` or ``min`` at a tie -- no derivative exists. There a tie takes the
  derivative from below, and ``ceil`` counts as constant (derivative 0, the one-sided
  derivative on the side where it does not jump); the tests check both conventions against
  one-sided differences and, just beside the kink, against central ones.
* **Stability range**: the interval of a parameter's value over which the optimum found by
  ``perfcost solve`` stays the same configuration, found by re-solving with the parameter
  scaled (geometric steps, then bisection on the logarithm). Only parameters with a physical
  unit or a fractional value (efficiencies) are ranged: integer counts (layers, batch, domain
  sizes) also shape the search space's structural rules, which a scaled value alone would
  leave inconsistent.
* **Serving cases** (``[serving]``): the elasticities of the objective's quantity (cost per
  million tokens by default), then of TTFT and TPOT -- whole replicas make the cost piecewise
  constant in most parameters, so the latencies show what a faster part would change. Their
  stability ranges re-run the serving search (exhaustive) with the parameter scaled in every
  deployment kind whose formulation has it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp
from perfcost.formulations.core import Formulation

#: Widest factor a stability range looks for, each way (the range is open beyond it).
RANGE_FACTOR = 16.0
#: Relative precision of a range's ends (bisection on the logarithm stops there).
RANGE_TOLERANCE = 0.01
#: Parameters ranged by re-solving in ``perfcost solve --sensitivities`` (the most sensitive).
RANGED = 5
#: Seconds of re-solving after which no further parameter is ranged (each range takes about
#: twenty solves; a large co-design space solves in seconds).
RANGE_BUDGET_S = 30.0


@dataclass(frozen=True)
class Sensitivity:
    """The elasticity of one quantity to one parameter, and where the optimum holds."""

    parameter: str
    unit: str
    doc: str
    value: float
    elasticity: float
    low: float | None = None  # optimum unchanged for values in [low, high] (None: not ranged)
    high: float | None = None
    low_open: bool = False  # the optimum never changed down to value / RANGE_FACTOR
    high_open: bool = False
    quantity: str = ""  # the quantity differentiated

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parameter": self.parameter, "quantity": self.quantity,
                               "unit": self.unit,
                               "value": self.value, "elasticity": self.elasticity,
                               "doc": self.doc}
        if self.low is not None and self.high is not None:
            out["optimum_unchanged"] = {"low": self.low, "high": self.high,
                                        "low_is_search_limit": self.low_open,
                                        "high_is_search_limit": self.high_open}
        return out


class _Forward:
    """Value and gradient of an expression at one point, node by node (forward mode).

    Each node's derivative is the textbook rule of its head (sum, product, power, log, exp);
    the heads where a derivative may not exist get a one-sided convention so that ties agree
    with the model on at least one side: ``max``/``min`` at a tie take the left derivative
    (the smallest/largest of the tied arguments' derivatives), a case split differentiates the
    branch that applies, and ``ceil``/``floor`` are constant between their jumps. Subtrees
    shared by several quantities are computed once (memoised on the node).
    """

    def __init__(self, env: dict[sp.Basic, float], seeds: dict[sp.Basic, np.ndarray],
                 width: int) -> None:
        self.values: dict[sp.Basic, float] = dict(env)
        self.grads: dict[sp.Basic, np.ndarray] = dict(seeds)
        self.zero = np.zeros(width)

    def value(self, e: sp.Basic) -> float:
        found = self.values.get(e)
        if found is None:
            found = self.values[e] = self._value(e)
        return found

    def _value(self, e: sp.Basic) -> float:
        if e.is_Number:
            return float(e)
        if isinstance(e, sp.Add):
            return math.fsum(self.value(a) for a in e.args)
        if isinstance(e, sp.Mul):
            return math.prod(self.value(a) for a in e.args)
        if isinstance(e, sp.Pow):
            base, exp = self.value(e.base), self.value(e.exp)
            try:
                return base ** exp
            except ZeroDivisionError:
                return math.inf
        if isinstance(e, sp.Max):
            return max(self.value(a) for a in e.args)
        if isinstance(e, sp.Min):
            return min(self.value(a) for a in e.args)
        if isinstance(e, sp.ceiling):
            return float(math.ceil(self.value(e.args[0])))
        if isinstance(e, sp.floor):
            return float(math.floor(self.value(e.args[0])))
        if isinstance(e, sp.Piecewise):
            return self.value(self._branch(e))
        if isinstance(e, sp.log):
            x = self.value(e.args[0])
            return math.log(x) if x > 0 else -math.inf
        if isinstance(e, sp.exp):
            return math.exp(self.value(e.args[0]))
        if e.is_Symbol:
            raise KeyError(f"no value for symbol {e}")
        # Any other function: sympy evaluates it at the arguments' values.
        return float(e.func(*[sp.Float(self.value(a)) for a in e.args]))

    def truth(self, c: sp.Basic) -> bool:
        if c in (sp.true, sp.false):
            return bool(c == sp.true)
        if isinstance(c, sp.And):
            return all(self.truth(a) for a in c.args)
        if isinstance(c, sp.Or):
            return any(self.truth(a) for a in c.args)
        if isinstance(c, sp.Not):
            return not self.truth(c.args[0])
        lhs, rhs = self.value(c.lhs), self.value(c.rhs)
        compare = {sp.Eq: lhs == rhs, sp.Ne: lhs != rhs, sp.Lt: lhs < rhs, sp.Le: lhs <= rhs,
                   sp.Gt: lhs > rhs, sp.Ge: lhs >= rhs}
        return compare[type(c)]

    def _branch(self, e: sp.Piecewise) -> sp.Basic:
        for expr, cond in e.args:
            if self.truth(cond):
                return expr
        return sp.nan

    def grad(self, e: sp.Basic) -> np.ndarray:
        found = self.grads.get(e)
        if found is None:
            found = self.grads[e] = self._grad(e)
        return found

    def _grad(self, e: sp.Basic) -> np.ndarray:
        if e.is_Number or e.is_Symbol or not e.args:
            return self.zero
        if isinstance(e, sp.Add):
            return sum((self.grad(a) for a in e.args), self.zero)
        if isinstance(e, sp.Mul):
            values = [self.value(a) for a in e.args]
            total = self.zero
            for i, a in enumerate(e.args):
                g = self.grad(a)
                if g.any():
                    total = total + g * math.prod(values[:i] + values[i + 1:])
            return total
        if isinstance(e, sp.Pow):
            base, exp = self.value(e.base), self.value(e.exp)
            g = self.grad(e.base) * (exp * base ** (exp - 1)) if self.grad(e.base).any() \
                else self.zero
            if self.grad(e.exp).any():
                g = g + self.grad(e.exp) * (self.value(e) * math.log(base))
            return g
        if isinstance(e, sp.Max | sp.Min):
            values = [self.value(a) for a in e.args]
            best = max(values) if isinstance(e, sp.Max) else min(values)
            tied = [self.grad(a) for a, v in zip(e.args, values, strict=True) if v == best]
            pick = np.minimum if isinstance(e, sp.Max) else np.maximum
            out = tied[0]
            for g in tied[1:]:
                out = pick(out, g)
            return out
        if isinstance(e, sp.ceiling | sp.floor):
            return self.zero
        if isinstance(e, sp.Piecewise):
            return self.grad(self._branch(e))
        if isinstance(e, sp.log):
            return self.grad(e.args[0]) / self.value(e.args[0])
        if isinstance(e, sp.exp):
            return self.grad(e.args[0]) * self.value(e)
        # Any other function of its arguments: sympy's derivative of the head, at the values.
        total = self.zero
        at = {a: sp.Float(self.value(a)) for a in e.args}
        for i, a in enumerate(e.args, start=1):
            g = self.grad(a)
            if g.any():
                total = total + g * float(e.fdiff(i).xreplace(at))
        return total


def _forward(formulation: Formulation, decisions: Mapping[str, float],
             values: Mapping[str, float], names: Sequence[str]) -> _Forward:
    """Forward-mode differentiation of ``formulation``'s expressions at one configuration, to
    the parameters ``names``: the exact chain rule (:class:`_Forward`), in floating point.
    One instance serves every quantity of that configuration (shared subtrees once)."""
    env: dict[sp.Basic, float] = {}
    for k, v in decisions.items():
        if k in formulation.decisions:
            env[formulation.decisions[k].symbol] = float(v)
    seeds: dict[sp.Basic, np.ndarray] = {}
    for i, n in enumerate(names):
        seed = np.zeros(len(names))
        seed[i] = 1.0
        seeds[formulation.parameters[n].symbol] = seed
    for n, p in formulation.parameters.items():
        env[p.symbol] = float(values[n])
    return _Forward(env, seeds, len(names))


def elasticities(formulation: Formulation, quantity: str, decisions: Mapping[str, float],
                 parameters: Mapping[str, float] | None = None) -> list[Sensitivity]:
    """Elasticity of ``quantity`` to every non-zero parameter at one configuration, largest
    magnitude first; parameters it does not depend on are left out. ``parameters`` overrides
    the formulation's values (a search system's)."""
    return _elasticities(formulation, (quantity,), decisions, parameters)


def _elasticities(formulation: Formulation, quantities: Sequence[str],
                  decisions: Mapping[str, float],
                  parameters: Mapping[str, float] | None = None) -> list[Sensitivity]:
    """:func:`elasticities` of each of ``quantities`` in turn, one block each, from one
    :class:`_Forward` (the subtrees the quantities share are differentiated once)."""
    values = {name: float(p.value) for name, p in formulation.parameters.items()}
    values.update(parameters or {})
    names = [n for n in formulation.parameters if values[n] != 0]
    forward = _forward(formulation, decisions, values, names)
    out: list[Sensitivity] = []
    for quantity in quantities:
        expr = formulation.expressions[quantity]
        f0, grad = forward.value(expr), forward.grad(expr)
        rows = []
        for n, d in zip(names, grad, strict=True):
            if d == 0.0:
                continue
            p = formulation.parameters[n]
            e = values[n] * float(d) / f0 if f0 else math.nan
            rows.append(Sensitivity(n, p.unit, p.doc, values[n], e, quantity=quantity))
        rows.sort(key=lambda r: (-abs(r.elasticity) if math.isfinite(r.elasticity) else 0.0,
                                 r.parameter))
        out += rows
    return out


def evaluation_sensitivities(evaluation: Any, quantity: str | None = None) -> list[Sensitivity]:
    """Elasticities of ``perfcost evaluate``'s configuration (objective of the case's search
    section unless ``quantity`` names another)."""
    from perfcost.solver.problem.search import OBJECTIVES
    from perfcost.solver.problem.specs import decision_codes

    if getattr(evaluation.case, "serving", None) is not None:
        # A serving deployment: ``quantity`` would name a training objective.
        return serving_sensitivities(evaluation)
    quantity = quantity or OBJECTIVES.get(evaluation.case.search.objective,
                                          ("iteration_time",))[0]
    return elasticities(evaluation.formulation, quantity, decision_codes(evaluation.config))


#: Quantities of a serving deployment whose elasticities are reported after its objective's:
#: cost per million tokens is piecewise constant in most parameters (whole replicas), so the
#: latencies show what a faster or cheaper part would change.
SERVING_QUANTITIES: tuple[str, ...] = ("cost_per_million_tokens", "ttft", "tpot")


def serving_sensitivities(evaluation: Any, objective: str | None = None) -> list[Sensitivity]:
    """Elasticities of a serving deployment (``perfcost evaluate`` or the optimum of
    ``perfcost solve``): of the quantity of its objective (the case's ``serving.objective``
    unless ``objective`` names another, as ``solve --objective`` does), then of
    :data:`SERVING_QUANTITIES`, each block largest magnitude first."""
    from perfcost.solver.export.closed_form import serving_codes
    from perfcost.solver.serving.search import OBJECTIVES

    quantity = OBJECTIVES[objective or evaluation.case.serving.objective][0]
    formulation = evaluation.formulation
    codes = serving_codes(formulation, evaluation.config)
    return _elasticities(formulation, tuple(dict.fromkeys((quantity, *SERVING_QUANTITIES))),
                         codes)


def solution_sensitivities(solution: Any, ranged: int = RANGED) -> list[Sensitivity]:
    """Elasticities of the optimum's objective, and the stability range of the ``ranged``
    most sensitive parameters with a physical unit (by re-solving)."""
    from perfcost.solver.problem.specs import decision_codes

    problem, result = solution.problem, solution.result
    if result.status != "optimal":
        return []
    params = problem.system_parameters[result.system_index]
    rows = elasticities(problem.formulation, problem.quantity, decision_codes(result.config),
                        params)
    out = []
    budget = ranged
    start = time.perf_counter()
    for row in rows:
        if (budget > 0 and rangeable(row) and math.isfinite(row.elasticity)
                and time.perf_counter() - start < RANGE_BUDGET_S):
            budget -= 1
            low, high, low_open, high_open = stability_range(solution, row.parameter)
            row = replace(row, low=low, high=high, low_open=low_open, high_open=high_open)
        out.append(row)
    return out


def rangeable(row: Sensitivity) -> bool:
    """A parameter with a physical unit or a fractional value (an efficiency): not a count
    such as layers or batch, which also shapes the search space's structural rules."""
    return row.unit != "1" or not float(row.value).is_integer()


def _same_optimum(solution: Any, name: str, factor: float) -> bool:
    """Re-solve with parameter ``name`` scaled by ``factor`` on every system."""
    from perfcost.solver.engines.pick import pick

    problem, result = solution.problem, solution.result
    systems = [dict(p, **{name: p[name] * factor}) for p in problem.system_parameters]
    # The compiled forms hold the old parameter values: the copy compiles its own.
    scaled = replace(problem, system_parameters=systems, compiled=None, factored=None,
                     bound_solver=None)
    again = pick(scaled)[0].solve(scaled, top=1, explain=False)
    return (again.status == "optimal" and again.config == result.config
            and again.system_index == result.system_index)


def stability_range(solution: Any, name: str) -> tuple[float, float, bool, bool]:
    """Values of parameter ``name`` between which the optimal configuration stays the same:
    ``(low, high, low_is_search_limit, high_is_search_limit)``."""
    value = solution.problem.system_parameters[solution.result.system_index][name]
    return _scaled_range(value, lambda factor: _same_optimum(solution, name, factor))


def _scaled_range(value: float, same: Any) -> tuple[float, float, bool, bool]:
    """The range of ``value`` over which ``same(factor)`` holds for the value scaled by
    ``factor``: geometric steps out to :data:`RANGE_FACTOR`, then bisection on the log."""
    ends = []
    for direction in (-1.0, 1.0):
        inside, outside = 1.0, None
        factor = 2.0 ** direction
        while abs(math.log(factor)) <= math.log(RANGE_FACTOR) + 1e-12:
            if same(factor):
                inside, factor = factor, factor * 2.0 ** direction
            else:
                outside = factor
                break
        if outside is None:
            ends.append((value * inside, True))
            continue
        while abs(math.log(outside / inside)) > math.log1p(RANGE_TOLERANCE):
            middle = math.sqrt(inside * outside)
            if same(middle):
                inside = middle
            else:
                outside = middle
        ends.append((value * inside, False))
    (low, low_open), (high, high_open) = ends
    return low, high, low_open, high_open


def serving_stability_range(solution: Any, name: str) -> tuple[float, float, bool, bool]:
    """:func:`stability_range` for the optimum of a serving search (solver/serving/search.py):
    parameter ``name`` scaled in every deployment kind whose formulation has it, the search
    re-run over the same domains, the optimum compared deployment for deployment."""
    from perfcost.solver.serving.evaluate import ServingModel
    from perfcost.solver.serving.search import _ranked, evaluate_blocks

    best = solution.best
    model = ServingModel(best.case)  # its lambdified functions are shared (by structure)

    def same(factor: float) -> bool:
        blocks = evaluate_blocks(model, solution.domains, {name: factor})
        ranked = _ranked(blocks, solution.objective)
        if not ranked:
            return False
        *_, b, i = ranked[0]
        return blocks[b].config(i) == best.config

    return _scaled_range(best.formulation.parameters[name].value, same)


def serving_solution_sensitivities(solution: Any, ranged: int = RANGED) -> list[Sensitivity]:
    """:func:`serving_sensitivities` of a serving optimum, and the stability range of the
    ``ranged`` most sensitive parameters (first by the objective's elasticities, then by
    TTFT's and TPOT's) with a physical unit or a fractional value, by re-solving."""
    if solution.best is None:
        return []
    rows = serving_sensitivities(solution.best, solution.objective)
    ranges: dict[str, tuple[float, float, bool, bool]] = {}
    start = time.perf_counter()
    for row in rows:
        if len(ranges) >= ranged or time.perf_counter() - start >= RANGE_BUDGET_S:
            break
        if row.parameter not in ranges and rangeable(row) and math.isfinite(row.elasticity):
            ranges[row.parameter] = serving_stability_range(solution, row.parameter)
    return [replace(r, low=found[0], high=found[1], low_open=found[2], high_open=found[3])
            if (found := ranges.get(r.parameter)) else r for r in rows]


def finite_difference(evaluate: Any, parameters: Mapping[str, float], name: str,
                      step: float = 1e-6) -> tuple[float, float, float]:
    """Central, backward and forward (second-order) finite-difference elasticities of the
    number ``evaluate(parameters)`` to parameter ``name`` -- the check on the symbolic ones."""
    def at(k: float) -> float:
        return float(evaluate({**parameters, name: parameters[name] * (1.0 + k * step)}))

    f0, fp, fm, fp2, fm2 = at(0), at(1), at(-1), at(2), at(-2)
    central = (fp - fm) / (2 * step * f0)
    forward = (-3 * f0 + 4 * fp - fp2) / (2 * step * f0)
    backward = (3 * f0 - 4 * fm + fm2) / (2 * step * f0)
    return central, backward, forward
