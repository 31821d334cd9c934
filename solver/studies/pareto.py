"""The capex-budget Pareto front of a co-design case: the exact optimum at each of a series
of budgets, each search seeded with the previous budget's optimum (``perfcost pareto``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from perfcost.solver.cost.codesign import Codesign, DesignedSystem


@dataclass(frozen=True)
class ParetoPoint:
    budget: float
    system: DesignedSystem | None
    value: float
    config: dict[str, Any]


def system_minima(problem: Any) -> tuple[np.ndarray, np.ndarray]:
    """The exact optimum of ``problem``'s objective on each of its systems (inf where none is
    feasible), and the index of the configuration that reaches it (by enumeration)."""
    from perfcost.solver.engines.enumerate import evaluate_all

    cands = problem.valid()
    names = [problem.quantity] + [c.quantity for c in problem.constraints]
    values = evaluate_all(problem, cands, sorted(set(names)))
    ok = np.isfinite(values[problem.quantity])
    for c in problem.constraints:
        ok &= values[c.quantity] <= np.asarray(c.limits)[cands.system] * (1 + 1e-12)
    objective = np.where(ok, values[problem.quantity], np.inf)
    count = len(problem.space.systems)
    best = np.full(count, np.inf)
    np.minimum.at(best, cands.system, objective)
    where = np.full(count, -1)
    hit = np.isfinite(objective) & (objective == best[cands.system])
    idx = np.flatnonzero(hit)
    where[cands.system[idx[::-1]]] = idx[::-1]  # the first configuration reaching each minimum
    return best, where


def capex_of(cd: Codesign, problem: Any) -> np.ndarray:
    """Capex of each system of ``problem`` (its systems are ``cd``'s, in the same order)."""
    return np.array([s.values["capex"] for s in cd.systems])


def budget_grid(capex: np.ndarray, count: int) -> np.ndarray:
    """``count`` budgets log-spaced from the cheapest to the dearest system's capex."""
    lo, hi = float(capex.min()), float(capex.max())
    if count < 2 or math.isclose(lo, hi):
        return np.array([hi])
    return np.geomspace(lo, hi, count)


def pareto(problem: Any, budgets: int,
           progress: Callable[[int], None] | None = None) -> list[ParetoPoint]:
    """Exact optimum at each of ``budgets`` capex budgets (log-spaced over the systems'
    capex): a bound search over the systems within each budget (cheapest first among
    equivalent ones), or, where the bound engine declines the problem, per-system optima by
    enumeration. ``progress(n)`` is called as n more budgets are solved."""
    from perfcost.solver.engines.bound import BoundEngine, best_within
    from perfcost.solver.engines.enumerate import config_at, user_config

    capex = capex_of(problem.codesign, problem)
    done = progress or (lambda n: None)
    out: list[ParetoPoint] = []
    if BoundEngine().accepts(problem) is None:
        for budget in budget_grid(capex, budgets):
            if out:  # the previous budget is solved (the body below has several exits)
                done(1)
            within = np.flatnonzero(capex <= budget * (1 + 1e-12))
            # The previous (smaller) budget's optimum is still within this one: the search
            # looks only for configurations at least as good.
            previous = out[-1] if out and out[-1].system is not None else None
            found = best_within(problem, sorted(within, key=lambda i: (capex[i], i)),
                                previous.value if previous else math.inf)
            if found is None and previous is not None:  # nothing better: the same optimum
                out.append(dataclasses.replace(previous, budget=float(budget)))
                continue
            if found is None:
                out.append(ParetoPoint(float(budget), None, math.inf, {}))
                continue
            value, system, codes = found
            out.append(ParetoPoint(float(budget), problem.codesign.systems[system], value,
                                   user_config(problem, codes)))
        done(1)
        return out
    best, where = system_minima(problem)  # every budget's optimum is among these
    done(len(budget_grid(capex, budgets)))
    cands = problem.valid()
    for budget in budget_grid(capex, budgets):
        within = np.where(capex <= budget * (1 + 1e-12), best, np.inf)
        i = int(np.argmin(within))
        if not np.isfinite(within[i]):
            out.append(ParetoPoint(float(budget), None, math.inf, {}))
            continue
        config = user_config(problem, config_at(cands, int(where[i])))
        out.append(ParetoPoint(float(budget), problem.codesign.systems[i], float(within[i]),
                               config))
    return out
