"""Exact MILP over the compiled form (pyomo + HiGHS through pyomo's persistent interface).

Log-space formulation of a sum of products of tables (a posynomial over finite domains):

* one binary per value of each decision (one-hot), and for each table over several variables
  a continuous selector per combination whose marginals equal those binaries (exact: with
  integral marginals only the chosen combination can carry weight);
* ``z_k = ln c_k + sum ln F(x)`` is linear in those selectors for every term ``k``;
* ``w_k >= exp(z_k)`` by outer approximation: tangent cuts ``w >= e^a (1 + z - a)`` are added
  at each MILP solution until the MILP's bound meets the exactly evaluated incumbent
  (relative 1e-9). The cuts under-estimate ``exp``, so the MILP is a relaxation at every step
  and its bound is a valid lower bound; a re-chosen solution has exact cuts, so the loop ends.
* structural rules are linear: the product ``tp*pp*dp*cp = gpus`` and the divisibility rules
  as equations over the prime exponents of the values, the rest as exclusions.

The size grows with the sum of the tables' sizes, not the product of the domains. Every answer
is re-evaluated with the evaluator before it is reported.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from perfcost.solver.engines.compile import (
    SYSTEM,
    Compiled,
    NotCompilable,
    compile_problem,
    domain_codes,
)
from perfcost.solver.engines.enumerate import full_values, user_config
from perfcost.solver.problem.result import ConstraintUse, Ranked, Result
from perfcost.solver.problem.search import SearchProblem
from sympy import factorint

#: Relative optimality tolerance of the outer-approximation loop.
REL_TOL = 1e-9
#: HiGHS's primal and MIP feasibility tolerance (absolute, on rows scaled to order one).
FEASIBILITY_TOL = 1e-9
#: Log of a zero table entry, relative to the table's smallest positive entry.
ZERO_LOG_OFFSET = 60.0
MAX_ITERATIONS = 400
TIME_LIMIT_S = 120.0
#: Tangent cuts with a slope below this are dropped (HiGHS ignores tiny coefficients).
MIN_CUT_SLOPE = 1e-10
#: Spacing (in log space) and largest number of the tangent cuts placed before the first solve.
CUT_SPACING = 0.25
MAX_INITIAL_CUTS = 80
#: A term whose decisions take at most this many valid combinations is written linearly in a
#: joint selector over them (exact, no outer approximation); larger ones stay in log space.
LINEAR_LIMIT = 2_000


def _add(constraints: Any, relation: Any) -> None:
    """Add ``relation`` to a pyomo constraint list unless it is already decided: where every
    variable in it has a single value and was left out, a relation is a plain ``True``, which
    pyomo refuses (``False`` would mean no configuration can be valid, which the candidate
    generation rules out before a model is built)."""
    if relation is True:
        return
    if relation is False:
        raise ValueError("a MILP rule holds for no configuration the space generated")
    constraints.add(relation)


def _exponents(value: float) -> dict[int, int]:
    return {int(p): int(e) for p, e in factorint(round(value)).items()}


class _Model:
    """The pyomo model of one compiled problem, with its outer-approximation state."""

    def __init__(self, problem: SearchProblem, compiled: Compiled,
                 valid_codes: dict[str, np.ndarray] | None = None) -> None:
        import pyomo.environ as pe

        self.pe = pe
        self.problem = problem
        self.c = compiled
        m = self.m = pe.ConcreteModel()
        self.vars = list(compiled.variables)
        self.index = [(v, i) for v in self.vars for i in range(len(compiled.variables[v]))]
        gpus = problem.space.gpus
        if len(gpus) > 1:
            self.index += [("gpus", i) for i in range(len(gpus))]
        m.x = pe.Var(self.index, domain=pe.Binary)
        m.cons = pe.ConstraintList()
        names = self.vars + (["gpus"] if len(gpus) > 1 else [])
        for v in names:
            _add(m.cons, sum(m.x[v, i] for i in range(self._size(v))) == 1)
        self._rules()
        self.selector: dict[int, Any] = {}
        # A model of the same problem with fewer constraints shares the codes of the first.
        self._valid_codes = valid_codes
        self._allowed: dict[tuple[str, ...], np.ndarray] = {}
        self.joint: dict[tuple[str, ...], dict[int, Any]] = {}
        self.logs: dict[int, tuple[dict[int, float], float]] = {}
        self._selectors()
        self.term_z: dict[tuple[str, int], Any] = {}
        self.z_bounds: dict[tuple[str, int], tuple[float, float]] = {}
        self.scale = 1.0
        self._terms()
        m.cuts = pe.ConstraintList()
        m.nogood = pe.ConstraintList()
        self.cut_points: dict[tuple[str, int], set[float]] = {}
        # Tangents every CUT_SPACING in log space from the start: the first relaxation is then
        # within about CUT_SPACING^2/8 of exp, and the loop needs few rounds.
        for key, (lo, hi) in self.z_bounds.items():
            count = min(MAX_INITIAL_CUTS, max(2, math.ceil((hi - lo) / CUT_SPACING) + 1))
            for a in np.linspace(lo, hi, count):
                self.add_cut(key, float(a))

    def _size(self, v: str) -> int:
        if v == "gpus":
            return len(self.problem.space.gpus)
        return len(self.c.variables[v])

    def _value(self, v: str, i: int) -> float:
        if v == "gpus":
            return float(self.problem.space.gpus[i])
        return self.c.variables[v][i]

    def _sum(self, v: str, weight: Any) -> Any:
        return sum(weight(self._value(v, i)) * self.m.x[v, i] for i in range(self._size(v)))

    def _rules(self) -> None:
        m, sp_ = self.m, self.problem.space
        x = m.x
        gb, layers = sp_.global_batch, sp_.layers
        groups = ["tp", "pp", "dp", "cp"]
        values = [self._value(v, i) for v in groups for i in range(self._size(v))]
        values += [float(g) for g in sp_.gpus]
        primes = sorted({p for val in values for p in _exponents(val)})
        for q in primes:
            lhs = sum(self._sum(v, lambda val, q=q: _exponents(val).get(q, 0)) for v in groups)
            if len(sp_.gpus) > 1:
                _add(m.cons, lhs == self._sum("gpus", lambda val, q=q: _exponents(val).get(q, 0)))
            else:
                _add(m.cons, lhs == _exponents(sp_.gpus[0]).get(q, 0))
        divides = [("dp", "micro_batch", gb)]
        if sp_.heads_over_cp is not None:  # Ulysses: tp*cp divides the heads
            divides.append(("tp", "cp", sp_.heads_over_cp))
        if sp_.uneven_stages:
            # Uneven stages: at most one layer per model chunk, pp * v <= layers.
            _add(m.cons, self._sum("pp", math.log) + self._sum("virtual_stages", math.log)
                       <= math.log(layers) + 1e-9)
        else:
            divides.append(("pp", "virtual_stages", layers))
        # ep * expert_tp divides tp * cp * dp (expert data parallelism is an integer); a
        # dense model (ep = expert_tp = 1) meets it trivially.
        stage = ("tp", "cp", "dp")
        vals = [self._value(v, i) for v in ("ep", *stage) for i in range(self._size(v))]
        expert_primes = {p for v in [*self.c.variables["ep"], float(sp_.expert_tp)]
                         for p in _exponents(v)}
        for q in sorted({p for val in vals for p in _exponents(val)} if expert_primes else ()):
            _add(m.cons, self._sum("ep", lambda val, q=q: _exponents(val).get(q, 0))
                       + _exponents(float(sp_.expert_tp)).get(q, 0)
                       <= sum(self._sum(v, lambda val, q=q: _exponents(val).get(q, 0))
                              for v in stage))
        for a, b, total in divides:
            vals = [self._value(v, i) for v in (a, b) for i in range(self._size(v))]
            for q in sorted({p for val in vals for p in _exponents(val)}):
                _add(m.cons, self._sum(a, lambda val, q=q: _exponents(val).get(q, 0))
                           + self._sum(b, lambda val, q=q: _exponents(val).get(q, 0))
                           <= _exponents(total).get(q, 0))
        # At least pp micro-batches: dp * micro_batch * pp <= global_batch.
        _add(m.cons, self._sum("dp", math.log) + self._sum("micro_batch", math.log)
                   + self._sum("pp", math.log) <= math.log(gb) + 1e-9)

        def at(v: str, value: float) -> Any:
            idx = [i for i in range(self._size(v)) if self._value(v, i) == value]
            return x[v, idx[0]] if idx else 0

        _add(m.cons, sum(x["virtual_stages", i] for i in range(self._size("virtual_stages"))
                       if self._value("virtual_stages", i) != 1) + at("pp", 1) <= 1)
        # The framework's rules (space.Space): ZeRO stages it runs with a pipeline, and the
        # interleaved schedule's multiple of pp micro-batches -- dp*micro_batch*pp divides the
        # global batch, prime by prime, relaxed by big-M where virtual_stages = 1.
        with_pipeline = set(sp_.zero_with_pipeline)
        for i in range(self._size("zero")):
            if self._value("zero", i) not in with_pipeline:
                _add(m.cons, x["zero", i] + sum(x["pp", j] for j in range(self._size("pp"))
                                              if self._value("pp", j) != 1) <= 1)
        interleaved = sum(x["virtual_stages", i] for i in range(self._size("virtual_stages"))
                          if self._value("virtual_stages", i) != 1)
        if sp_.interleave_multiple and not isinstance(interleaved, int):
            trio = ("dp", "micro_batch", "pp")
            vals = [self._value(v, i) for v in trio for i in range(self._size(v))]
            for q in sorted({p for val in vals for p in _exponents(val)}):
                terms = [self._sum(v, lambda val, q=q: _exponents(val).get(q, 0)) for v in trio]
                big = sum(max(_exponents(self._value(v, i)).get(q, 0)
                              for i in range(self._size(v))) for v in trio)
                _add(m.cons, sum(terms) <= _exponents(gb).get(q, 0) + big * (1 - interleaved))
        # Equivalent spellings kept once, as space.candidates does.
        if 0.0 in self.c.variables["zero"]:
            _add(m.cons, sum(x["zero", i] for i in range(self._size("zero"))
                           if self._value("zero", i) != 0) + at("dp", 1) <= 1)
        if 0.0 in self.c.variables["sequence_parallel"]:
            _add(m.cons, at("sequence_parallel", 1) + at("tp", 1) <= 1)
        if 0.0 in self.c.variables["placement"]:
            _add(m.cons, at("placement", 1) + at("pp", 1) <= 1)
            _add(m.cons, at("placement", 1) + at("dp", 1) <= 1)
        systems = sp_.systems
        # A system priced for one GPU count (co-design) takes only that count.
        for j, s in enumerate(systems):
            if s.gpus is None:
                continue
            for i, g in enumerate(sp_.gpus):
                if g == s.gpus:
                    continue
                if len(sp_.gpus) > 1 and len(systems) > 1:
                    _add(m.cons, x["gpus", i] + x[SYSTEM, j] <= 1)
                elif len(sp_.gpus) > 1:
                    _add(m.cons, x["gpus", i] == 0)
                elif len(systems) > 1:
                    _add(m.cons, x[SYSTEM, j] == 0)
        for i in range(self._size("tp")):
            t = self._value("tp", i)
            for j, s in enumerate(systems):
                if t > s.scale_up_size:
                    if len(systems) > 1:
                        _add(m.cons, x["tp", i] + x[SYSTEM, j] <= 1)
                    else:
                        _add(m.cons, x["tp", i] == 0)

    def _selectors(self) -> None:
        pe, m = self.pe, self.m
        m.y = pe.VarList(domain=pe.NonNegativeReals, bounds=(0, 1))
        for f in self.c.factors:
            if len(f.variables) == 1:
                v = f.variables[0]
                for i in np.flatnonzero(~np.isfinite(np.asarray(f.values))):
                    _add(m.cons, m.x[v, int(i)] == 0)  # the model cannot evaluate it: excluded

    def factor_selector(self, fi: int) -> dict[int, Any]:
        """Selector of each finite entry of table ``fi``: its variable's one-hot, or the joint
        selector over its variables (one per set of variables, shared by every table and
        linear term over that set), created on first use."""
        if fi in self.selector:
            return self.selector[fi]
        f = self.c.factors[fi]
        values = np.asarray(f.values)
        finite = np.isfinite(values)
        if len(f.variables) == 1:
            v = f.variables[0]
            sel = {int(i): self.m.x[v, int(i)] for i in np.flatnonzero(finite)}
        else:
            shape = [len(self.c.variables[v]) for v in f.variables]
            # Selectors only for the combinations some valid configuration takes: the
            # MILP's feasible set is unchanged and its relaxation much tighter.
            joint = self._joint(f.variables, self.allowed(f.variables, shape))
            for j in np.flatnonzero(~finite):
                if int(j) in joint:
                    joint[int(j)].setub(0)  # the model cannot evaluate it: excluded
            sel = {int(j): joint[int(j)] for j in np.flatnonzero(finite) if int(j) in joint}
        self.selector[fi] = sel
        return sel

    def _log_table(self, fi: int) -> tuple[dict[int, float], float]:
        values = np.asarray(self.c.factors[fi].values)
        positive = values[np.isfinite(values) & (values > 0)]
        floor = math.log(positive.min()) - ZERO_LOG_OFFSET if positive.size else -ZERO_LOG_OFFSET
        return {j: (math.log(values[j]) if values[j] > 0 else floor)
                for j in self.factor_selector(fi)}, floor

    def valid_codes(self) -> dict[str, np.ndarray]:
        """Domain index of every valid configuration, per compiled variable (cached)."""
        if self._valid_codes is None:
            cands = self.problem.valid()
            codes: dict[str, np.ndarray] = {}
            for v, domain in self.c.variables.items():
                column = cands.system if v == SYSTEM else cands.columns[v]
                codes[v] = domain_codes(domain, column, v)
            self._valid_codes = codes
        return self._valid_codes

    def allowed(self, names: tuple[str, ...], shape: list[int]) -> np.ndarray:
        """Flat indices of the combinations of ``names`` that valid configurations take
        (computed once per set of names: tables and terms over one set share it)."""
        if names not in self._allowed:
            codes = self.valid_codes()
            index = np.zeros(len(next(iter(codes.values()))), dtype=np.int64)
            for v, size in zip(names, shape, strict=True):
                index = index * size + codes[v]
            self._allowed[names] = np.unique(index)
        return self._allowed[names]

    def _linear_values(self, term: Any) -> tuple[tuple[str, ...], np.ndarray, np.ndarray] | None:
        """A term's value at every valid combination of the decisions it reads, when there are
        at most :data:`LINEAR_LIMIT` of them: the term is then linear in a joint selector."""
        order = list(self.c.variables)
        names = tuple(sorted({v for fi in term.factors for v in self.c.factors[fi].variables},
                             key=order.index))
        if len(names) < 2:
            return None
        shape = [len(self.c.variables[v]) for v in names]
        allowed = self.allowed(names, shape)
        if allowed.size > LINEAR_LIMIT:
            return None
        coords = dict(zip(names, np.unravel_index(allowed, shape), strict=True))
        values = np.full(allowed.size, term.coefficient)
        for fi in term.factors:
            f = self.c.factors[fi]
            flat = np.zeros(allowed.size, dtype=np.int64)
            for v in f.variables:
                flat = flat * len(self.c.variables[v]) + coords[v]
            values = values * np.asarray(f.values)[flat]
        return names, allowed, values

    def _joint(self, names: tuple[str, ...], allowed: np.ndarray) -> dict[int, Any]:
        """The joint selector over ``names`` (one per set of decisions, shared)."""
        sel = self.joint.get(names)
        if sel is None:
            m = self.m
            shape = [len(self.c.variables[v]) for v in names]
            sel = self.joint[names] = {int(j): m.y.add() for j in allowed}
            coords = np.unravel_index(allowed, shape)
            for axis, v in enumerate(names):
                for i in range(shape[axis]):
                    _add(m.cons, sum(sel[int(j)] for j in allowed[coords[axis] == i])
                               == m.x[v, i])
        return sel

    def _terms(self) -> None:
        pe, m = self.pe, self.m
        blocks = {"objective": self.c.objective, **self.c.constraints}
        mids = []
        logs = self.logs
        self.terms: dict[tuple[str, int], Any] = {}
        raw: dict[tuple[str, int], tuple[Any, float, float]] = {}
        linear: dict[tuple[str, int], tuple[dict[int, Any], np.ndarray, np.ndarray]] = {}
        for block, terms in blocks.items():
            for k, term in enumerate(terms):
                self.terms[(block, k)] = term
                lin = self._linear_values(term)
                if lin is not None:
                    names, allowed, values = lin
                    sel = self._joint(names, allowed)
                    for j in allowed[~np.isfinite(values)]:
                        sel[int(j)].setub(0)  # the model cannot evaluate it: excluded
                    ok = np.isfinite(values)
                    linear[(block, k)] = (sel, allowed[ok], values[ok])
                    live = values[ok & (values > 0)]
                    if block == "objective" and live.size:
                        mids.append(0.5 * (math.log(live.min()) + math.log(live.max())))
                    continue
                expr: Any = math.log(term.coefficient)
                lo = hi = math.log(term.coefficient)
                for fi in term.factors:
                    table, floor = logs.setdefault(fi, self._log_table(fi))
                    sel = self.factor_selector(fi)
                    expr = expr + sum(val * sel[j] for j, val in table.items())
                    # Bounds over the nonzero entries: a zero entry makes the term vanish.
                    live_logs = [val for val in table.values() if val > floor]
                    lo += min(live_logs, default=floor)
                    hi += max(live_logs, default=floor)
                raw[(block, k)] = (expr, lo, hi)
                if block == "objective":
                    mids.append(0.5 * (lo + hi))
        # Normalise the objective to order one (HiGHS drops coefficients below 1e-9).
        self.scale = float(np.exp(np.max(mids))) if mids else 1.0
        m.w = pe.Var(list(raw), domain=pe.NonNegativeReals)
        m.z = pe.Var(list(raw), domain=pe.Reals)
        for key, (expr, lo, hi) in raw.items():
            shift = math.log(self.scale) if key[0] == "objective" else 0.0
            _add(m.cons, m.z[key] == expr - shift)
            self.z_bounds[key] = (lo - shift, hi - shift)

        def value(key: tuple[str, int]) -> Any:
            if key in raw:
                return m.w[key]
            sel, allowed, values = linear[key]
            scale = self.scale if key[0] == "objective" else 1.0
            return sum(float(v / scale) * sel[int(j)] for j, v in zip(allowed, values,
                                                                       strict=True) if v != 0)

        keys = list(self.terms)
        m.obj = pe.Objective(expr=sum(value(k) for k in keys if k[0] == "objective"))
        self.objective_terms = sum(1 for k in keys if k[0] == "objective")
        self.linear_terms = len(linear)
        m.limits = pe.ConstraintList()
        for block in self.c.constraints:
            block_keys = [k for k in keys if k[0] == block]
            if block_keys:
                total = sum(value(k) for k in block_keys)
                if isinstance(total, int | float):  # every term is zero at every valid choice
                    if total > 1.0:
                        m.limits.add(pe.Constraint.Infeasible)
                    continue
                m.limits.add(total <= 1.0)

    def exact_z(self, key: tuple[str, int], config: dict[str, int]) -> float:
        """``z`` of a term at a configuration, from the tables (not the solver's rounding)."""
        term = self.terms[key]
        z = math.log(term.coefficient)
        for fi in term.factors:
            f = self.c.factors[fi]
            flat = 0
            for v in f.variables:
                flat = flat * len(self.c.variables[v]) + config[v]
            table, _floor = self.logs[fi]
            z += table[flat]
        return z - (math.log(self.scale) if key[0] == "objective" else 0.0)

    def add_cut(self, key: tuple[str, int], a: float) -> bool:
        points = self.cut_points.setdefault(key, set())
        a = round(a, 12)
        slope = math.exp(min(a, 700.0))
        if a in points or slope < MIN_CUT_SLOPE:
            return False
        points.add(a)
        self.m.cuts.add(self.m.w[key] >= slope * (1 + self.m.z[key] - a))
        return True

    def decode(self) -> tuple[dict[str, int], int]:
        config = {}
        for v in self.vars:
            vals = [self.m.x[v, i].value or 0.0 for i in range(self._size(v))]
            config[v] = int(np.argmax(vals))
        return config, config.get(SYSTEM, 0)

    def exclude(self, config: dict[str, int]) -> None:
        self.m.nogood.add(sum(self.m.x[v, config[v]] for v in self.vars) <= len(self.vars) - 1)


class MilpEngine:
    name = "milp"

    def compiled(self, problem: SearchProblem) -> Compiled | str:
        """The compiled form of ``problem`` (kept on the problem), or why it has none."""
        if problem.compiled is None:
            try:
                problem.compiled = compile_problem(problem)
            except NotCompilable as exc:
                problem.compiled = str(exc)
        return problem.compiled

    def accepts(self, problem: SearchProblem) -> str | None:
        try:
            from pyomo.contrib.appsi.solvers.highs import Highs

            if not Highs().available():
                return "HiGHS is not available to pyomo"
        except ImportError as exc:  # pragma: no cover - dependency missing
            return f"pyomo's HiGHS interface cannot be imported ({exc})"
        compiled = self.compiled(problem)
        return compiled if isinstance(compiled, str) else None

    def solve(self, problem: SearchProblem, top: int = 1, explain: bool = True) -> Result:
        t0 = time.perf_counter()
        reason = self.accepts(problem)
        result = Result(self.name, "not_accepted", problem.objective, notes=list(problem.notes))
        if reason is not None:
            result.explanation = [reason]
            return result
        compiled = self.compiled(problem)
        if not isinstance(compiled, Compiled):  # pragma: no cover - accepts() checked it
            raise TypeError(compiled)
        t1 = time.perf_counter()
        model = _Model(problem, compiled)
        t2 = time.perf_counter()
        result.stats = {"space_size": problem.space.size, "compile_s": t1 - t0,
                        "build_s": t2 - t1, "columns": len(model.index) + len(model.m.y),
                        "factors": len(compiled.factors),
                        "terms": len(compiled.objective)}
        outcome = self._optimise(model, problem)
        result.stats.update(iterations=outcome["iterations"], cuts=len(model.m.cuts))
        if outcome["status"] != "optimal":
            result.status = outcome["status"]
            result.explanation = [outcome["message"]]
            result.stats["solve_s"] = time.perf_counter() - t0
            return result
        config, system = outcome["config"], outcome["system"]
        self._fill(result, problem, compiled, config, system, outcome["values"])
        result.top = [Ranked(result.config, result.system, result.value or 0.0)]
        for _ in range(top - 1):
            model.exclude(config)
            nxt = self._optimise(model, problem)
            if nxt["status"] != "optimal":
                break
            config = nxt["config"]
            codes = self._codes(compiled, config)
            result.top.append(Ranked(user_config(problem, codes),
                                     problem.space.systems[nxt["system"]].label,
                                     nxt["values"][problem.quantity]))
        # Binding: does dropping the constraint improve the optimum? (one more solve each)
        uses = []
        for c in problem.constraints:
            value = result.values[c.quantity]
            limit = c.limits[system]
            better = (self._relaxed(problem, compiled, c.name, model.valid_codes())
                      if explain else None)
            binding = better is not None and better < (result.value or 0.0) * (1 - REL_TOL)
            uses.append(ConstraintUse(c.name, value, limit, c.unit, binding,
                                      better if binding else None))
        result.constraints = uses
        result.stats["solve_s"] = time.perf_counter() - t0
        return result

    def _relaxed(self, problem: SearchProblem, compiled: Compiled, name: str,
                 valid_codes: dict[str, np.ndarray]) -> float | None:
        reduced = Compiled(compiled.variables, compiled.factors, compiled.objective,
                           {k: v for k, v in compiled.constraints.items() if k != name},
                           compiled.objective_name)
        model = _Model(problem, reduced, valid_codes)
        outcome = self._optimise(model, problem, check={k for k in compiled.constraints
                                                        if k != name})
        return outcome["values"][problem.quantity] if outcome["status"] == "optimal" else None

    @staticmethod
    def _codes(compiled: Compiled, config: dict[str, int]) -> dict[str, float]:
        return {v: compiled.variables[v][i] for v, i in config.items() if v != SYSTEM}

    def _fill(self, result: Result, problem: SearchProblem, compiled: Compiled,
              config: dict[str, int], system: int, values: dict[str, float]) -> None:
        result.status = "optimal"
        result.value = values[problem.quantity]
        result.values = values
        result.config = user_config(problem, self._codes(compiled, config))
        result.system_index = system
        result.system = problem.space.systems[system].label

    def _optimise(self, model: _Model, problem: SearchProblem,
                  check: set[str] | None = None) -> dict[str, Any]:
        from pyomo.contrib.appsi.base import TerminationCondition
        from pyomo.contrib.appsi.solvers.highs import Highs

        solver = Highs()
        solver.config.time_limit = TIME_LIMIT_S
        solver.config.mip_gap = 0.0
        solver.highs_options = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0,
                                "mip_feasibility_tolerance": FEASIBILITY_TOL,
                                "primal_feasibility_tolerance": FEASIBILITY_TOL}
        solver.config.load_solution = False
        check = set(model.c.constraints) if check is None else check
        limits = {c.name: c for c in problem.constraints}
        best: dict[str, Any] | None = None
        deadline = time.perf_counter() + TIME_LIMIT_S
        for iteration in range(1, MAX_ITERATIONS + 1):
            res = solver.solve(model.m)
            tc = res.termination_condition
            if tc == TerminationCondition.infeasible:
                if best is not None:  # the relaxation holds every feasible configuration
                    return {"status": "error", "iterations": iteration,
                            "message": "HiGHS declared the relaxation infeasible after it had "
                                       "a feasible incumbent (numerical trouble)"}
                return {"status": "infeasible", "iterations": iteration,
                        "message": "the MILP relaxation is infeasible: no configuration meets "
                                   "the rules and constraints (run --engine enumerate for the "
                                   "smallest violation of each constraint)"}
            if tc != TerminationCondition.optimal:
                return {"status": "time_limit" if tc == TerminationCondition.maxTimeLimit
                        else "error", "iterations": iteration,
                        "message": f"HiGHS stopped: {tc.name}"}
            res.solution_loader.load_vars()
            bound = res.best_objective_bound * model.scale
            config, system = model.decode()
            codes = self._codes(model.c, config)
            values = full_values(problem, codes, system)
            feasible = all(values[limits[n].quantity] <= limits[n].limits[system] * (1 + 1e-12)
                           for n in check)
            value = values[problem.quantity]
            if feasible and math.isfinite(value) and (best is None or value < best["value"]):
                best = {"value": value, "config": config, "system": system, "values": values}
            # HiGHS satisfies each cut row to FEASIBILITY_TOL, so its bound may sit that much
            # below the exact value per objective term.
            slack = FEASIBILITY_TOL * model.objective_terms * model.scale
            if best is not None and best["value"] <= bound * (1 + REL_TOL) + slack:
                break
            # Tangents at the chosen configuration's exact z make the relaxation exact there.
            added = False
            for key in model.z_bounds:
                added |= model.add_cut(key, model.exact_z(key, config))
                z = model.m.z[key].value
                if z is not None:
                    added |= model.add_cut(key, z)
            if not added or time.perf_counter() > deadline:
                return {"status": "time_limit", "iterations": iteration,
                        "message": "the outer-approximation loop stopped before the bound met "
                                   "the incumbent" + ("" if added else
                                                      " (no new cut: numerical tolerance)")}
        else:
            # The loop ran out of rounds without proving the incumbent optimal.
            return {"status": "time_limit", "iterations": MAX_ITERATIONS,
                    "message": f"{MAX_ITERATIONS} outer-approximation rounds did not close the "
                               "gap; no optimum is claimed"}
        if best is None:  # pragma: no cover - the loop only breaks with an incumbent
            return {"status": "error", "iterations": iteration,
                    "message": "stopped without an incumbent"}
        return {"status": "optimal", "iterations": iteration, **best}

