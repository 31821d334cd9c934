"""What the fleet MILP's answer means: the front door that solves and explains, shadow prices
by re-solving with one limit moved, and the limit that blocks an infeasible fleet.

Shadow prices are **re-solves with the limit moved** by one step (one million USD, one MW,
one rack, one period of deadline) on the kept persistent model: every decision is integer, so
the duals of the LP with the integer choices fixed would carry no information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfcost.solver.fleet.instance import LIMIT_UNITS, Fleet, Plan, costs, power, racks
from perfcost.solver.fleet.milp import FleetModel, power_scale

#: Default steps of the shadow prices: what one more of each limit is worth.
SHADOW_STEPS: dict[str, float] = {"capex": 1e6, "opex": 1e6, "power": 1e6, "racks": 1.0}


@dataclass(frozen=True)
class Shadow:
    """What moving one limit by ``step`` changes: the objective before and after."""

    name: str
    unit: str
    limit: float
    used: float
    step: float
    before: float
    after: float | None  # None: still infeasible
    #: The objective is maximised (``value``): a gain is a rise.
    sense_max: bool = False

    @property
    def worth(self) -> float | None:
        """Improvement of the objective per unit of the limit (cost saved, value gained or
        periods earlier), over the step."""
        if self.after is None or not math.isfinite(self.before):
            return None
        gain = self.after - self.before if self.sense_max else self.before - self.after
        return gain / self.step

    @property
    def binding(self) -> bool:
        w = self.worth
        return w is not None and w > 1e-9 * max(1.0, abs(self.before)) / self.step


def solve(fleet: Fleet) -> tuple[FleetModel, Plan]:
    """Build and solve; an infeasible plan carries the constraint that blocks it."""
    model = FleetModel(fleet)
    plan = model.solve()
    if plan.status == "infeasible":
        plan.explanation = explain_infeasible(model)
    return model, plan


# -- shadow prices ---------------------------------------------------------------------------

def shadow_prices(model: FleetModel, plan: Plan,
                  steps: dict[str, float] | None = None) -> list[Shadow]:
    """What one more of each limit, and one more period on each run's deadline, is worth:
    re-solve with that one limit moved by its step, then move it back."""
    fleet = model.fleet
    steps = {**SHADOW_STEPS, **(steps or {})}
    before = plan.objective_value
    maximise = fleet.objective == "value"
    c = costs(fleet, plan.buy, plan.rent)
    used = {"capex": c["capex"], "opex": c["opex"], "power": power(fleet, plan.buy),
            "racks": float(racks(fleet, plan.buy))}
    out = []
    for name, limit in fleet.limits.items():
        model.move(fleet.with_limit(name, limit + steps[name]))
        moved = model.solve()
        model.move(fleet)
        out.append(Shadow(name, LIMIT_UNITS[name], limit, used[name], steps[name], before,
                          moved.objective_value if moved.status == "optimal" else None,
                          maximise))
    for k, run in enumerate(fleet.trainings):
        if run.deadline + 1 >= fleet.periods:
            continue
        model.move(fleet.with_deadline(k, run.deadline + 1))
        moved = model.solve()
        model.move(fleet)
        choice = plan.runs[k]
        finish = (choice[1] + run.options[choice[0]].periods) if choice is not None else 0
        out.append(Shadow(f"deadline {run.name}", "periods", run.deadline + 1, finish, 1.0,
                          before, moved.objective_value if moved.status == "optimal" else None,
                          maximise))
    return out


# -- infeasibility ---------------------------------------------------------------------------

def explain_infeasible(model: FleetModel) -> list[str]:
    """Which single limit blocks the plan, and the least it would have to be; else say that
    no single one does."""
    fleet = model.fleet
    lines = []
    for run in fleet.trainings:
        fits = [o for o in run.options if len(run.starts(o))]
        if not fits and fleet.objective != "value":
            shortest = min(o.periods for o in run.options)
            lines.append(f"deadline of training '{run.name}' blocks the plan: its shortest "
                         f"option takes {shortest} periods, its window (periods "
                         f"{run.earliest + 1}-{run.deadline + 1}) has "
                         f"{run.deadline - run.earliest + 1}")
    if lines:
        return lines
    for name, limit in fleet.limits.items():
        least = _least(model, name)
        if least is not None:
            unit = LIMIT_UNITS[name]
            lines.append(f"the {name} limit blocks the plan: {_fmt(limit, unit)} against "
                         f"at least {_fmt(least, unit)} for a plan that meets every other "
                         f"limit")
    for k, run in enumerate(fleet.trainings):
        if fleet.objective == "value":
            continue
        model.move(fleet.with_deadline(k, fleet.periods - 1))
        feasible = model.feasible()
        model.move(fleet)
        if feasible:
            lines.append(f"the deadline of training '{run.name}' (period {run.deadline + 1}) "
                         f"blocks the plan: with the horizon's end instead it is feasible")
    if not lines:
        lines.append("no single limit or deadline blocks the plan alone: the GPUs on offer "
                     "(sku.available, sku.rentable, lead times) cannot hold the workloads "
                     "together with the limits")
    return lines


def _least(model: FleetModel, name: str) -> float | None:
    """The least value of limit ``name`` over the plans meeting every other limit, or None
    when dropping it does not make the fleet feasible."""
    pe, m = model.pe, model.m
    model.set_limit(name, None)
    objective, sense = m.obj.expr, m.obj.sense
    lex_active = m.lex.active if model.first is not None else False
    if model.first is not None:
        m.lex.deactivate()
    m.obj.set_value(model.used[name])
    m.obj.sense = pe.minimize
    status, _stats = model.run_once()
    least = pe.value(model.used[name]) * _unscale(model, name) if status == "optimal" else None
    m.obj.set_value(objective)
    m.obj.sense = sense
    if lex_active:
        m.lex.activate()
    model.set_limit(name, model.fleet.limits[name])
    return least


def _unscale(model: FleetModel, name: str) -> float:
    if name in ("capex", "opex"):
        return model.scale
    if name == "power":
        return power_scale(model.fleet)
    return 1.0


def _fmt(value: float, unit: str) -> str:
    if unit == "USD":
        return f"{value:,.0f} USD"
    if unit == "W":
        return f"{value / 1e6:,.4g} MW"
    return f"{value:g} {unit}"
