"""Brute-force enumeration of a fleet's plans: the oracle the MILP is tested against.

Every combination of (option, start) per training run is enumerated, and every purchase
vector up to the SKUs' availability. Given both, the periods are independent: in each, every
combination of one option per service is tried (with the fewest replicas that cover the
traffic), and the cheapest rental that supplies the demand is taken. Least rental per
period is least opex, so the opex limit is checked on the least opex.
Exponential in everything: for small fleets only.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from perfcost.solver.fleet.instance import Fleet, owned_periods

#: Relative tolerance of the limit checks (the MILP's feasibility tolerance is tighter).
TOL = 1e-9


def _run_choices(fleet: Fleet) -> list[list[tuple[int, int] | None]]:
    out = []
    for run in fleet.trainings:
        choices: list[tuple[int, int] | None] = [(o, t) for o, opt in enumerate(run.options)
                                                 for t in run.starts(opt)]
        if fleet.objective == "value":
            choices.append(None)
        out.append(choices)
    return out


def _serving_demands(fleet: Fleet, t: int) -> np.ndarray:
    """The distinct per-SKU GPU demands of the replica combinations that cover period ``t``."""
    per_service = []
    for service in fleet.services:
        found = set()
        for o, opt in enumerate(service.options):
            need = [0] * len(fleet.skus)
            need[opt.sku] = service.gpus(o, t)
            found.add(tuple(need))
        per_service.append(found)
    totals = {tuple([0] * len(fleet.skus))}
    for found in per_service:
        totals = {tuple(a + b for a, b in zip(x, y, strict=True)) for x in totals for y in found}
    if not totals:
        return np.zeros((0, len(fleet.skus)))
    return np.array(sorted(totals), dtype=float)


def solve(fleet: Fleet) -> tuple[float, float] | None:
    """The optimum as (first objective, total cost); None when no plan is feasible.

    The first objective is the cost (``cost``), the value of the runs finished (``value``,
    maximised) or the sum of the runs' finishing periods (``completion``); the second, least
    cost, breaks ties.
    """
    S, T = len(fleet.skus), fleet.periods
    grid = np.array(list(itertools.product(*(range(s.available + 1) for s in fleet.skus))),
                    dtype=float).reshape(-1, S)
    purchase = np.array([s.purchase for s in fleet.skus])
    operating = np.array([s.operating * owned_periods(fleet, i)
                          for i, s in enumerate(fleet.skus)])
    rental = np.array([s.rental for s in fleet.skus])
    rentable = np.array([s.rentable for s in fleet.skus], dtype=float)
    lead = np.array([s.lead_time for s in fleet.skus])
    capex = grid @ purchase
    fixed_opex = grid @ operating
    ok = np.ones(len(grid), dtype=bool)
    limits = fleet.limits
    if "capex" in limits:
        ok &= capex <= limits["capex"] * (1 + TOL)
    if "power" in limits:
        ok &= grid @ np.array([s.power for s in fleet.skus]) <= limits["power"] * (1 + TOL)
    if "racks" in limits:
        per_rack = np.array([s.gpus_per_rack for s in fleet.skus])
        ok &= np.ceil(grid / per_rack).sum(axis=1) <= limits["racks"] + TOL
    grid, capex, fixed_opex = grid[ok], capex[ok], fixed_opex[ok]
    serving = [_serving_demands(fleet, t) for t in range(T)]
    if not len(grid) or any(len(d) == 0 for d in serving):
        return None
    best: tuple[float, float] | None = None
    sign = -1.0 if fleet.objective == "value" else 1.0
    for choice in itertools.product(*_run_choices(fleet)):
        first = _first(fleet, choice)
        if best is not None and sign * first > sign * best[0] + 1e-9 * max(1.0, abs(best[0])):
            continue
        held = np.zeros((S, T))
        for run, c in zip(fleet.trainings, choice, strict=True):
            if c is not None:
                opt = run.options[c[0]]
                held[opt.sku, c[1]:c[1] + opt.periods] += opt.gpus
        rent_cost = np.zeros(len(grid))
        for t in range(T):
            need = held[:, t][None, :] + serving[t]  # (combinations, S)
            avail = grid * (t >= lead)[None, :]  # (purchases, S)
            rent = np.maximum(0.0, need[None, :, :] - avail[:, None, :])
            cost = rent @ rental
            cost[(rent > rentable).any(axis=2)] = np.inf
            rent_cost += cost.min(axis=1)
        opex = fixed_opex + rent_cost
        total = capex + opex
        feasible = np.isfinite(total)
        if "opex" in limits:
            feasible &= opex <= limits["opex"] * (1 + TOL)
        if not feasible.any():
            continue
        cheapest = float(total[feasible].min())
        value = first if fleet.objective != "cost" else cheapest
        if best is None or _better(sign * value, cheapest, sign * best[0], best[1]):
            best = (value, cheapest)
    return best


def _better(first: float, cost: float, best_first: float, best_cost: float) -> bool:
    tol = 1e-9 * max(1.0, abs(best_first))
    if first < best_first - tol:
        return True
    return first <= best_first + tol and cost < best_cost


def _first(fleet: Fleet, choice: tuple[tuple[int, int] | None, ...]) -> float:
    if fleet.objective == "value":
        return sum(run.value for run, c in zip(fleet.trainings, choice, strict=True)
                   if c is not None)
    if fleet.objective == "completion":
        return float(sum(c[1] + run.options[c[0]].periods
                         for run, c in zip(fleet.trainings, choice, strict=True)
                         if c is not None))
    return math.nan  # cost: known once the purchases are chosen
