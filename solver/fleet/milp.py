"""The fleet MILP (pyomo + HiGHS through pyomo's persistent ``appsi`` interface).

Decisions (periods numbered from 0):

* ``buy[s]`` integer GPUs of SKU ``s`` bought at the start (at most ``available``);
* ``rent[s, t]`` GPUs rented in period ``t`` (at most ``rentable``; continuous, see below);
* ``x[k, o, t]`` binary: training run ``k`` runs on option ``o`` starting in period ``t``;
* ``y[w, o, t]`` binary: service ``w`` runs on option ``o`` in period ``t``, with the fewest
  whole replicas of that shape that cover the period's traffic;
* ``rack[s]`` integer racks of SKU ``s`` (only with a rack limit).

Constraints: one (option, start) per run -- at most one under the ``value`` objective --;
``cover[s, t]``: the GPUs the runs and replicas hold <= owned (after the lead time) + rented;
``serve[w, t]``: one option per service and period with traffic; and the limits on capex,
opex, facility power and racks, each a named constraint whose right-hand side is a mutable
parameter. A deadline is the upper bound of the start variables, so moving it changes bounds
only. The solver instance is kept and re-solved after each change, without rebuilding.

``value`` and ``completion`` are solved lexicographically: first the objective, then the least
cost with the objective held at its optimum.

Every plan is re-checked in plain arithmetic (:func:`perfcost.solver.fleet.instance.violations`)
before it is reported. Shadow prices (re-solves with one limit moved) and the explanation of an
infeasible fleet are in :mod:`perfcost.solver.fleet.analysis`.
"""

from __future__ import annotations

import time
from typing import Any

from perfcost.solver.fleet.instance import (
    LIMIT_UNITS,
    Fleet,
    Plan,
    demand,
    objective_of,
    owned,
    owned_periods,
    violations,
)

#: HiGHS's time limit per solve, seconds.
TIME_LIMIT_S = 120.0
#: Feasibility tolerance handed to HiGHS (rows are scaled to order one by :attr:`_Model.scale`).
FEASIBILITY_TOL = 1e-9
#: Relative slack of the lexicographic bound on the first objective (rounding only: the first
#: objective is a sum of integers or of the runs' values).
LEX_TOL = 1e-9


class FleetModel:
    """The pyomo model of one fleet with its persistent HiGHS solver."""

    def __init__(self, fleet: Fleet) -> None:
        import pyomo.environ as pe

        self.pe = pe
        self.fleet = fleet
        self.scale = _cost_scale(fleet)
        m = self.m = pe.ConcreteModel(name=fleet.name or "fleet")
        S = range(len(fleet.skus))
        T = range(fleet.periods)
        m.buy = pe.Var(S, domain=pe.NonNegativeIntegers,
                       bounds=lambda _m, s: (0, fleet.skus[s].available))
        # Rentals are whole GPUs, but a continuous variable loses nothing: the GPUs held and
        # owned are integers, so the least rental that covers them is one too, and
        # :meth:`plan` takes that least rental.
        m.rent = pe.Var(S, T, domain=pe.NonNegativeReals,
                        bounds=lambda _m, s, t: (0, fleet.skus[s].rentable))
        self.x_index = [(k, o, t) for k, run in enumerate(fleet.trainings)
                        for o, opt in enumerate(run.options)
                        for t in range(run.earliest, fleet.periods - opt.periods + 1)]
        m.x = pe.Var(self.x_index, domain=pe.Binary)
        self.set_deadlines()
        self.y_index = [(w, o, t) for w, sv in enumerate(fleet.services)
                        for o in range(len(sv.options)) for t in T if sv.traffic[t] > 0]
        m.y = pe.Var(self.y_index, domain=pe.Binary)
        m.one = pe.ConstraintList()
        for k in range(len(fleet.trainings)):
            chosen = sum(m.x[i] for i in self.x_index if i[0] == k)
            if isinstance(chosen, int):  # no option fits between its earliest start and the end
                if fleet.objective != "value":
                    m.one.add(pe.Constraint.Infeasible)
                continue
            m.one.add(chosen <= 1 if fleet.objective == "value" else chosen == 1)
        self._cover(S, T)
        m.serve = pe.ConstraintList()
        for w, sv in enumerate(fleet.services):
            for t in T:
                if sv.traffic[t] > 0:
                    m.serve.add(sum(m.y[w, o, t] for o in range(len(sv.options))) == 1)
        self.capex = sum(sku.purchase * m.buy[s] for s, sku in enumerate(fleet.skus))
        self.opex = (sum(sku.operating * owned_periods(fleet, s) * m.buy[s]
                         for s, sku in enumerate(fleet.skus))
                     + sum(sku.rental * m.rent[s, t] for s, sku in enumerate(fleet.skus)
                           for t in T))
        self.power = sum(sku.power * m.buy[s] for s, sku in enumerate(fleet.skus))
        used: dict[str, Any] = {"capex": self.capex / self.scale, "opex": self.opex / self.scale,
                                "power": self.power / power_scale(fleet)}
        if "racks" in fleet.limits:
            m.rack = pe.Var(S, domain=pe.NonNegativeIntegers)
            m.rack_fill = pe.Constraint(S, rule=lambda _m, s: fleet.skus[s].gpus_per_rack
                                        * m.rack[s] >= m.buy[s])
            used["racks"] = sum(m.rack[s] for s in S)
        self.used = used
        names = [n for n in LIMIT_UNITS if n in fleet.limits]
        m.limit_value = pe.Param(names, mutable=True, initialize={
            n: self._scaled_limit(n, fleet.limits[n]) for n in names})
        m.limit = pe.Constraint(names, rule=lambda _m, n: used[n] <= m.limit_value[n])
        self.total_cost = (self.capex + self.opex) / self.scale
        self.first = self._first_objective()
        m.obj = pe.Objective(expr=self.first if self.first is not None else self.total_cost,
                             sense=pe.maximize if fleet.objective == "value" else pe.minimize)
        m.lex_bound = pe.Param(mutable=True, initialize=0.0)
        if self.first is not None:
            # The second stage of a lexicographic solve: the first objective held at its optimum.
            m.lex = pe.Constraint(expr=self.first >= m.lex_bound if fleet.objective == "value"
                                  else self.first <= m.lex_bound)
            m.lex.deactivate()
        self.solver = _highs()

    # -- building ---------------------------------------------------------------------------

    def _cover(self, S: range, T: range) -> None:
        pe, m, fleet = self.pe, self.m, self.fleet
        m.cover = pe.ConstraintList()
        self.cover_rows: dict[tuple[int, int], Any] = {}
        for s in S:
            lead = fleet.skus[s].lead_time
            for t in T:
                held = sum(fleet.trainings[k].options[o].gpus * m.x[k, o, t0]
                           for (k, o, t0) in self.x_index
                           if fleet.trainings[k].options[o].sku == s
                           and t0 <= t < t0 + fleet.trainings[k].options[o].periods)
                held += sum(fleet.services[w].gpus(o, t1) * m.y[w, o, t1]
                            for (w, o, t1) in self.y_index
                            if t1 == t and fleet.services[w].options[o].sku == s)
                if isinstance(held, int | float):
                    continue
                supply = m.rent[s, t] + (m.buy[s] if t >= lead else 0)
                self.cover_rows[s, t] = m.cover.add(held <= supply)

    def _first_objective(self) -> Any:
        fleet, m = self.fleet, self.m
        if fleet.objective == "value":
            return sum(fleet.trainings[k].value * m.x[k, o, t] for (k, o, t) in self.x_index)
        if fleet.objective == "completion":
            return sum((t + fleet.trainings[k].options[o].periods) * m.x[k, o, t]
                       for (k, o, t) in self.x_index)
        return None

    def _scaled_limit(self, name: str, value: float) -> float:
        if name in ("capex", "opex"):
            return value / self.scale
        if name == "power":
            return value / power_scale(self.fleet)
        return value

    def set_deadlines(self, fleet: Fleet | None = None) -> None:
        """Bound the start variables by each run's window (a deadline move changes bounds)."""
        fleet = fleet or self.fleet
        for k, o, t in self.x_index:
            run = fleet.trainings[k]
            self.m.x[k, o, t].setub(1 if t in run.starts(run.options[o]) else 0)

    def move(self, fleet: Fleet) -> None:
        """Solve ``fleet`` from now on: the same fleet with other limit values or deadlines
        (the limits it sets must be those of the fleet the model was built for)."""
        self.fleet = fleet
        self.set_deadlines()
        for name in self.m.limit:
            self.set_limit(name, fleet.limits.get(name))

    def set_limit(self, name: str, value: float | None) -> None:
        """Move a limit (``None`` drops it)."""
        row = self.m.limit[name]
        if value is None:
            row.deactivate()
            return
        row.activate()
        self.m.limit_value[name] = self._scaled_limit(name, value)

    # -- solving ------------------------------------------------------------------------------

    def run_once(self) -> tuple[str, dict[str, Any]]:
        from pyomo.contrib.appsi.base import TerminationCondition

        t0, c0 = time.perf_counter(), time.process_time()
        res = self.solver.solve(self.m)
        stats = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                 "nodes": _nodes(self.solver)}
        tc = res.termination_condition
        if tc == TerminationCondition.optimal:
            res.solution_loader.load_vars()
            stats["bound"] = res.best_objective_bound
            return "optimal", stats
        if tc in (TerminationCondition.infeasible,
                  TerminationCondition.infeasibleOrUnbounded):
            return "infeasible", stats
        if tc == TerminationCondition.maxTimeLimit:
            return "time_limit", stats
        return "error", {**stats, "message": f"HiGHS stopped: {tc.name}"}

    def feasible(self) -> bool:
        """Whether any plan meets the rules and limits (no objective: the first plan found
        answers)."""
        pe, m = self.pe, self.m
        objective, sense = m.obj.expr, m.obj.sense
        lex_active = self.first is not None and m.lex.active
        if lex_active:
            m.lex.deactivate()
        m.obj.set_value(pe.quicksum([0 * m.buy[0]]))
        m.obj.sense = pe.minimize
        status, _stats = self.run_once()
        m.obj.set_value(objective)
        m.obj.sense = sense
        if lex_active:
            m.lex.activate()
        return status == "optimal"

    def solve(self) -> Plan:
        """The optimum (lexicographic for ``value`` and ``completion``), re-checked."""
        pe, m = self.pe, self.m
        stats: dict[str, Any] = {"wall_s": 0.0, "cpu_s": 0.0, "nodes": 0, "solves": 0}

        def run() -> str:
            status, s = self.run_once()
            for key in ("wall_s", "cpu_s", "nodes"):
                stats[key] += s[key] or 0
            stats["solves"] += 1
            return status

        if self.first is not None:
            m.lex.deactivate()
            m.obj.set_value(self.first)
            m.obj.sense = pe.maximize if self.fleet.objective == "value" else pe.minimize
        status = run()
        if status != "optimal":
            return Plan(status, stats=stats)
        first_value = pe.value(self.first) if self.first is not None else None
        if self.first is not None:
            slack = LEX_TOL * max(1.0, abs(first_value))
            m.lex_bound = first_value - slack if self.fleet.objective == "value" else (
                first_value + slack)
            m.lex.activate()
            m.obj.set_value(self.total_cost)
            m.obj.sense = pe.minimize
            status = run()
            if status != "optimal":  # pragma: no cover - the first stage's optimum is feasible
                return Plan("error", explanation=["the least-cost stage lost the optimum"],
                            stats=stats)
        plan = self.plan()
        plan.stats = stats
        problems = violations(self.fleet, plan)
        if problems:
            return Plan("error", explanation=["the MILP's plan fails the re-check: "
                                              + "; ".join(problems)], stats=stats)
        plan.objective_value = objective_of(self.fleet, plan)
        return plan

    def plan(self) -> Plan:
        fleet, m = self.fleet, self.m

        def val(v: Any) -> int:
            return round(v.value or 0.0)

        S, T = range(len(fleet.skus)), range(fleet.periods)
        runs: list[tuple[int, int] | None] = [None] * len(fleet.trainings)
        for k, o, t in self.x_index:
            if val(m.x[k, o, t]):
                runs[k] = (o, t)
        replicas = [[[0] * fleet.periods for _ in sv.options] for sv in fleet.services]
        for w, o, t in self.y_index:
            if val(m.y[w, o, t]):
                replicas[w][o][t] = fleet.services[w].most_replicas(
                    fleet.services[w].options[o], t)
        buy = [val(m.buy[s]) for s in S]
        plan = Plan("optimal", 0.0, buy, [[0] * fleet.periods for _ in S], runs, replicas)
        need = demand(fleet, plan)
        plan.rent = [[max(0, need[s][t] - owned(fleet, s, buy[s], t)) for t in T] for s in S]
        return plan

    def write(self, path: str) -> None:
        """The model as an LP (or MPS, by the file's suffix) file, with readable names."""
        from pyomo.opt import ProblemFormat

        fmt = ProblemFormat.mps if path.lower().endswith(".mps") else ProblemFormat.cpxlp
        self.m.write(path, format=fmt, io_options={"symbolic_solver_labels": True})

    def size(self) -> dict[str, int]:
        from pyomo.core.base.constraint import Constraint
        from pyomo.core.base.var import Var

        variables = list(self.m.component_data_objects(Var))
        integer = sum(1 for v in variables if v.is_integer() or v.is_binary())
        rows = sum(1 for _ in self.m.component_data_objects(Constraint, active=True))
        return {"variables": len(variables), "integer_variables": integer, "constraints": rows}


def _cost_scale(fleet: Fleet) -> float:
    """Money is written in units of the largest price per GPU (rows of order one for HiGHS)."""
    prices = [max(s.purchase, s.rental, s.operating) for s in fleet.skus]
    return max([1.0, *prices])


def power_scale(fleet: Fleet) -> float:
    return max([1.0, *(s.power for s in fleet.skus)])


def _highs() -> Any:
    from pyomo.contrib.appsi.solvers.highs import Highs

    solver = Highs()
    solver.config.time_limit = TIME_LIMIT_S
    solver.config.mip_gap = 0.0
    solver.config.load_solution = False
    solver.highs_options = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0,
                            "mip_feasibility_tolerance": FEASIBILITY_TOL,
                            "primal_feasibility_tolerance": FEASIBILITY_TOL}
    # No "threads" option: HiGHS keeps one thread pool per process, and a run that asks for
    # another size after any earlier HiGHS run in the process (the MILP engine's) stops with
    # an error instead of solving.
    return solver


def _nodes(solver: Any) -> int:
    try:
        return int(solver._solver_model.getInfo().mip_node_count)
    except Exception:  # pragma: no cover - an interface without the count
        return 0
