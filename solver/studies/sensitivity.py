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
* **Quantised parameters** (integer counts such as the SM count, GEMM tile sizes, a
  scale-up domain, bytes per element): a derivative at a fixed wave count means nothing
  there (with the peak held, more SMs make each SM slower and the derivative says "more SMs,
  slower"). Their figure is a finite elasticity ``ln(f(x+)/f(x-)) / ln(x+/x-)`` from
  re-evaluating the configuration at the neighbouring legal values ``x-`` and ``x+``: half
  and double for sizes that are powers of two, else 10 % either way (at least 1). The SM
  count moves the peak FLOP rate with it (the rate per SM is the part's, so a part with
  more SMs is a faster part). On/off switches keep their derivative.
* **Planner controls first**: parameters fixed by the model being trained (layers, hidden
  size, heads, vocabulary, experts) and by the training recipe (optimizer-state bytes) come
  after those a planner chooses (hardware, network, batch, tokens, prices, efficiencies of
  the software stack), whatever their magnitude.
* **Physical limits**: a stability range never runs past what the parameter can be:
  efficiencies and other fractions at most 1, factors that are at least 1 (load imbalance,
  capacity factor) not below 1; an end cut there is marked clipped.
* **Serving cases** (``[serving]``): the elasticities of the objective's quantity (cost per
  million tokens by default), then of TTFT and TPOT -- whole replicas make the cost piecewise
  constant in most parameters, so the latencies show what a faster part would change. Their
  stability ranges re-run the serving search (exhaustive) with the parameter scaled in every
  deployment kind whose formulation has it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp
from perfcost.formulations.core import Formulation, Parameter
from perfcost.formulations.specs import ModelSpec
from perfcost.solver.problem.expressions import free_symbols

#: Widest factor a stability range looks for, each way (the range is open beyond it).
RANGE_FACTOR = 16.0
#: Relative precision of a range's ends (bisection on the logarithm stops there).
RANGE_TOLERANCE = 0.01
#: Parameters ranged by re-solving in ``perfcost solve --sensitivities`` (the most sensitive).
RANGED = 5
#: Seconds of re-solving after which no further parameter is ranged (each range takes about
#: twenty solves; a large co-design space solves in seconds).
RANGE_BUDGET_S = 30.0
#: Relative step to the neighbouring values of a quantised count (rounded, at least 1).
QUANTISED_STEP = 0.10
#: Quantised parameters whose legal values are powers of two (tile sizes, granules, domain
#: sizes): their neighbours are half and double. Sizes in bytes are too (number formats).
POWERS_OF_TWO = frozenset({"gemm_tile_m", "gemm_tile_n", "gemm_row_granule", "split_k_granule",
                           "scale_up_size"})
#: Parameters that move with the SM count: the peak is the part's rate per SM times its SMs.
PER_MULTIPROCESSOR = ("peak_flops",)
#: Parameters of the training recipe rather than the plan (bytes of optimizer states, ...).
RECIPE = frozenset({"dropout_mask_bytes", "grad_bytes", "optimizer_state_bytes",
                    "optimizer_step_bytes"})
#: Model fields a planner chooses when training a given model (the rest fix the model).
MODEL_FIELDS_PLANNED = frozenset({"seq_len"})
#: Parameters that are at least 1 by definition (lower physical limit of a range).
AT_LEAST_ONE = frozenset({"load_imbalance", "capacity_factor", "pue", "oversubscription"})


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
    #: "derivative" (exact, local) or "finite" (re-evaluated at the neighbouring legal values)
    method: str = "derivative"
    #: For a finite figure: the neighbouring values and the quantity there.
    neighbours: tuple[float, float] | None = None
    neighbour_values: tuple[float, float] | None = None
    #: False for parameters fixed by the model or the training recipe (not a planner's choice).
    planner: bool = True
    low_clipped: bool = False  # the range's end is the parameter's physical limit
    high_clipped: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parameter": self.parameter, "quantity": self.quantity,
                               "unit": self.unit,
                               "value": self.value, "elasticity": self.elasticity,
                               "method": self.method, "planner_controls": self.planner,
                               "doc": self.doc}
        if self.neighbours is not None and self.neighbour_values is not None:
            out["neighbours"] = {"values": list(self.neighbours),
                                 "quantity_values": list(self.neighbour_values)}
        if self.low is not None and self.high is not None:
            out["optimum_unchanged"] = {"low": self.low, "high": self.high,
                                        "low_is_search_limit": self.low_open,
                                        "high_is_search_limit": self.high_open,
                                        "low_is_physical_limit": self.low_clipped,
                                        "high_is_physical_limit": self.high_clipped}
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
        depends = free_symbols(expr)
        rows = []
        for n, d in zip(names, grad, strict=True):
            p = formulation.parameters[n]
            if is_quantised(n, p, values[n]):
                if p.symbol not in depends:
                    continue
                # Kept at 0 too: "one SM more or less changes nothing here" is a finding
                # (the local derivative, with the peak held, said otherwise).
                row = _finite_row(formulation, decisions, values, n, quantity, f0)
                if row is None:
                    continue
                rows.append(row)
                continue
            if d == 0.0:
                continue
            e = values[n] * float(d) / f0 if f0 else math.nan
            rows.append(Sensitivity(n, p.unit, p.doc, values[n], e, quantity=quantity,
                                    planner=planner_controls(n)))
        rows.sort(key=lambda r: (not r.planner,
                                 -abs(r.elasticity) if math.isfinite(r.elasticity) else 0.0,
                                 r.parameter))
        out += rows
    return out


def is_switch(p: Parameter) -> bool:
    """An on/off parameter (1 when a feature is there, else 0): not a count; its figure stays
    the local derivative (the model is linear in it where it multiplies a term)."""
    return p.doc.startswith("1 when")


def is_quantised(name: str, p: Parameter, value: float) -> bool:
    """A count or size that only takes whole values: a dimensionless or byte-sized parameter
    whose value is a whole number (the SM count, a tile size, a domain size, bytes per
    element; model sizes too)."""
    return (p.unit in ("1", "B") and float(value).is_integer() and value >= 1
            and not is_switch(p))


def planner_controls(name: str) -> bool:
    """Whether a planner chooses this parameter: not a field of the model being trained
    (except those a run chooses, like the sequence length) nor of the training recipe."""
    model_fields = {f.name for f in dataclasses.fields(ModelSpec)}
    return name in MODEL_FIELDS_PLANNED or (name not in model_fields and name not in RECIPE)


def neighbours(name: str, unit: str, value: float) -> tuple[float, float]:
    """The legal values next to ``value`` of a quantised parameter: half and double for
    powers of two (tile and domain sizes, bytes), else 10 % either way, rounded, at least 1
    away and never below 1."""
    power_of_two = value >= 2 and math.log2(value).is_integer()
    if power_of_two and (name in POWERS_OF_TWO or unit == "B"):
        return value / 2, value * 2
    step = max(1.0, round(value * QUANTISED_STEP))
    return max(1.0, value - step), value + step


def _finite_row(formulation: Formulation, decisions: Mapping[str, float],
                values: Mapping[str, float], name: str, quantity: str,
                f0: float) -> Sensitivity | None:
    """The finite elasticity of ``quantity`` to a quantised parameter, from the quantity
    re-evaluated at the neighbouring legal values (the SM count moves the peak along)."""
    p = formulation.parameters[name]
    value = values[name]
    low, high = neighbours(name, p.unit, value)
    # At 1 the only neighbour is above (``low`` is the value): a one-sided figure.
    at = [_value_at(formulation, decisions, values, name, x, quantity) for x in (low, high)]
    if not all(math.isfinite(f) and f > 0 for f in (*at, f0)) or high == low:
        return None
    e = math.log(at[1] / at[0]) / math.log(high / low)
    moved = " (peak FLOP rate scaled with it)" if name == "multiprocessors" else ""
    doc = f"{p.doc}; finite: {_g(low)} and {_g(high)}{moved}"
    return Sensitivity(name, p.unit, doc, value, e, quantity=quantity, method="finite",
                       neighbours=(low, high), neighbour_values=(at[0], at[1]),
                       planner=planner_controls(name))


def _g(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def _value_at(formulation: Formulation, decisions: Mapping[str, float],
              values: Mapping[str, float], name: str, x: float, quantity: str) -> float:
    """``quantity`` with parameter ``name`` at ``x`` (and, for the SM count, the peak FLOP
    rates scaled by the same ratio), the same tree walk as the derivatives."""
    moved = {**values, name: x}
    if name == "multiprocessors":
        ratio = x / values[name]
        for other in values:
            if other.startswith(PER_MULTIPROCESSOR):
                moved[other] = values[other] * ratio
    return _forward(formulation, decisions, moved, ()).value(formulation.expressions[quantity])


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
            row = _with_range(row, stability_range(solution, row.parameter))
        out.append(row)
    return out


#: A stability range: (low, high, low_is_search_limit, high_is_search_limit,
#: low_is_physical_limit, high_is_physical_limit).
Range = tuple[float, float, bool, bool, bool, bool]


def _with_range(row: Sensitivity, found: Range) -> Sensitivity:
    low, high, low_open, high_open, low_clipped, high_clipped = found
    return replace(row, low=low, high=high, low_open=low_open, high_open=high_open,
                   low_clipped=low_clipped, high_clipped=high_clipped)


def rangeable(row: Sensitivity) -> bool:
    """A parameter with a physical unit or a fractional value (an efficiency), differentiated
    (not quantised): not a count such as layers or batch, which also shapes the search
    space's structural rules."""
    return row.method == "derivative" and (row.unit != "1"
                                           or not float(row.value).is_integer())


def physical_limits(name: str, unit: str, doc: str, value: float) -> tuple[float, float]:
    """The values parameter ``name`` can physically take, as (lowest, highest): fractions
    (efficiencies, tapers, utilisations) in (0, 1]; factors at least 1 from 1 up; anything
    else (bandwidths, latencies, prices, rates) above 0. A value already beyond a limit
    (a fitted efficiency above 1) keeps its own value as the limit."""
    words = f"{name} {doc}".lower()
    if unit == "1" and any(w in words for w in ("efficiency", "fraction", "utilisation",
                                                  "taper")):
        return 0.0, max(1.0, value)
    if name in AT_LEAST_ONE:
        return min(1.0, value), math.inf
    return 0.0, math.inf


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


def stability_range(solution: Any, name: str) -> Range:
    """Values of parameter ``name`` between which the optimal configuration stays the same,
    within its physical limits: ``(low, high, low_is_search_limit, high_is_search_limit,
    low_is_physical_limit, high_is_physical_limit)``."""
    value = solution.problem.system_parameters[solution.result.system_index][name]
    p = solution.problem.formulation.parameters[name]
    return _scaled_range(value, lambda factor: _same_optimum(solution, name, factor),
                         physical_limits(name, p.unit, p.doc, value))


def _scaled_range(value: float, same: Any,
                  limits: tuple[float, float] = (0.0, math.inf)) -> Range:
    """The range of ``value`` over which ``same(factor)`` holds for the value scaled by
    ``factor``: geometric steps out to :data:`RANGE_FACTOR` or to the physical ``limits``,
    whichever is nearer (that end is then clipped), then bisection on the log."""
    ends = []
    for direction, limit in ((-1.0, limits[0]), (1.0, limits[1])):
        search_end = RANGE_FACTOR ** direction
        limit_factor = limit / value if value > 0 else search_end
        # The physical limit binds when it is nearer than the search limit.
        clipped = limit_factor * direction <= search_end * direction
        end = limit_factor if clipped else search_end
        inside, outside = 1.0, None
        factor = 2.0 ** direction
        while inside != end:
            factor = min(factor, end) if direction > 0 else max(factor, end)
            if same(factor):
                inside, factor = factor, factor * 2.0 ** direction
            else:
                outside = factor
                break
        if outside is None:
            ends.append((value * inside, not clipped, clipped))
            continue
        while abs(math.log(outside / inside)) > math.log1p(RANGE_TOLERANCE):
            middle = math.sqrt(inside * outside)
            if same(middle):
                inside = middle
            else:
                outside = middle
        ends.append((value * inside, False, False))
    (low, low_open, low_clipped), (high, high_open, high_clipped) = ends
    return low, high, low_open, high_open, low_clipped, high_clipped


def serving_stability_range(solution: Any, name: str) -> Range:
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

    p = best.formulation.parameters[name]
    return _scaled_range(p.value, same, physical_limits(name, p.unit, p.doc, p.value))


def serving_solution_sensitivities(solution: Any, ranged: int = RANGED) -> list[Sensitivity]:
    """:func:`serving_sensitivities` of a serving optimum, and the stability range of the
    ``ranged`` most sensitive parameters (first by the objective's elasticities, then by
    TTFT's and TPOT's) with a physical unit or a fractional value, by re-solving."""
    if solution.best is None:
        return []
    rows = serving_sensitivities(solution.best, solution.objective)
    ranges: dict[str, Range] = {}
    start = time.perf_counter()
    for row in rows:
        if len(ranges) >= ranged or time.perf_counter() - start >= RANGE_BUDGET_S:
            break
        if row.parameter not in ranges and rangeable(row) and math.isfinite(row.elasticity):
            ranges[row.parameter] = serving_stability_range(solution, row.parameter)
    return [_with_range(r, found) if (found := ranges.get(r.parameter)) else r for r in rows]


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
