"""``perfcost plan --sweep budget=...``: the optimum at each value of one limit, the
cost-capability front (one persistent model, the limit moved between solves)."""

from __future__ import annotations

from typing import Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.fleet.instance import LIMIT_UNITS, Fleet, costs
from perfcost.solver.fleet.milp import FleetModel

#: Names a sweep may move, and the limit each one is ("budget" is the capital budget).
SWEEP_KEYS: dict[str, str] = {"budget": "capex", **{k: k for k in LIMIT_UNITS}}
#: Most points of one sweep.
MAX_POINTS = 200


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``budget=100e6 USD,200e6 USD`` -> ("capex", [1e8, 2e8]); bare numbers are SI units."""
    from perfcost.solver.case import units

    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or key not in SWEEP_KEYS:
        raise CaseError("--sweep", text, f"expected KEY=V1,V2,... with KEY one of "
                        f"{', '.join(SWEEP_KEYS)}")
    limit = SWEEP_KEYS[key]
    dimension = {"capex": "money", "opex": "money", "power": "power", "racks": "count"}[limit]
    out = []
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not items or len(items) > MAX_POINTS:
        raise CaseError("--sweep", text, f"expected 1 to {MAX_POINTS} values after '='")
    for item in items:
        try:
            x = float(item)
        except ValueError:
            try:
                x = units.parse(item, dimension)
            except units.UnitError as exc:
                raise CaseError("--sweep", item, str(exc)) from None
        if not x >= 0 or x == float("inf"):
            raise CaseError("--sweep", item, "expected a finite value of at least 0")
        out.append(x)
    return limit, out


def sweep(fleet: Fleet, limit: str, values: list[float]) -> list[dict[str, Any]]:
    """The optimum at each value of ``limit`` (the fleet's other limits unchanged)."""
    base = fleet.with_limit(limit, values[0])
    model = FleetModel(base)
    rows = []
    for v in values:
        model.move(fleet.with_limit(limit, v))
        plan = model.solve()
        row: dict[str, Any] = {"limit": v, "status": plan.status}
        if plan.status == "optimal":
            c = costs(model.fleet, plan.buy, plan.rent)
            finishes = [ch[1] + run.options[ch[0]].periods
                        for run, ch in zip(fleet.trainings, plan.runs, strict=True)
                        if ch is not None]
            row.update(objective_value=plan.objective_value, total_cost=c["total"],
                       capex=c["capex"], opex=c["opex"],
                       runs_done=len(finishes), last_finish=max(finishes, default=0))
        rows.append(row)
    return rows
