"""``perfcost solve``: build the search problem of a case, pick an engine, solve, explain."""

from __future__ import annotations

import time
from dataclasses import dataclass

from perfcost.solver.case.schema import Case
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.pick import pick
from perfcost.solver.problem.result import Result
from perfcost.solver.problem.search import SearchProblem


@dataclass
class Solution:
    problem: SearchProblem
    result: Result
    engine_reason: str
    build_s: float


def solve_case(case: Case, engine: str | None = None, objective: str | None = None,
               top: int = 1) -> Solution:
    start = time.perf_counter()
    problem = build_problem(case, objective)
    build_s = time.perf_counter() - start
    picked = time.perf_counter()
    chosen, reason = pick(problem, engine or case.search.engine, top)
    result = chosen.solve(problem, top)
    # Picking may already compile (the engines cache it on the problem): count it as solving.
    result.stats["solve_s"] = time.perf_counter() - picked
    result.stats["build_s"] = build_s
    return Solution(problem, result, reason, build_s)
