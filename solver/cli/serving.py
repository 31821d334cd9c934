"""What ``perfcost evaluate`` and ``perfcost solve`` do with a serving case (solver/cli/main.py
hands a case with a ``[serving]`` section to these)."""

from __future__ import annotations

from typing import Any

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case


def evaluate(case: Case, as_json: bool, sensitivities: bool = False) -> None:
    """One fixed deployment: TTFT, TPOT, throughput, cost, memory and the breakdowns."""
    from perfcost.solver.cli.app import print_json
    from perfcost.solver.serving.evaluate import evaluate_serving

    result = evaluate_serving(case)
    rows = None
    if sensitivities:
        # Elasticities of the objective, TTFT and TPOT (solver/studies/sensitivity.py).
        from perfcost.solver.studies.sensitivity import serving_sensitivities

        rows = serving_sensitivities(result)
    if as_json:
        from perfcost.solver.report import data

        print_json(data.evaluation(result, rows))
        return
    from perfcost.solver.report import serving as serving_report
    from perfcost.solver.report import tables as report

    report.console().print(serving_report.evaluation(result))
    _print_sensitivities(rows)


def _print_sensitivities(rows: list[Any] | None) -> None:
    """One 'most sensitive parameters' table per quantity differentiated."""
    if not rows:
        return
    from perfcost.solver.report import tables as report

    for quantity in dict.fromkeys(r.quantity for r in rows):
        report.console().print(report.sensitivities([r for r in rows
                                                     if r.quantity == quantity]))


def solve(case: Case, engine: str | None, objective: str | None, top: int,
          as_json: bool, sensitivities: bool = False, emit: str | None = None) -> None:
    """The cheapest deployment meeting the SLOs; exit code 1 when none does. ``emit``: the
    launch commands of the chosen deployment for that serving engine, instead of the tables."""
    from perfcost.solver.cli.app import print_json
    from perfcost.solver.serving.search import solve_serving

    if engine not in (None, "auto", "enumerate"):
        raise CaseError("--engine", engine, "expected auto or enumerate for a serving case "
                        "(the search is exhaustive)")
    if emit is not None:
        from perfcost.solver.serving.emit import EMIT_ENGINES

        if emit not in EMIT_ENGINES:
            raise CaseError("--emit", emit, f"expected one of {', '.join(EMIT_ENGINES)}")
    solution = solve_serving(case, objective, top)
    if emit is not None and solution.best is not None:
        from perfcost.solver.serving.emit import emit as launch_commands
        from perfcost.solver.serving.emit import render

        launches = launch_commands(solution.best, emit)
        if as_json:
            print_json({"engine": emit, "config": solution.best.config, "pools": launches})
        else:
            print(render(launches, emit))
        return
    rows = None
    if sensitivities:
        from perfcost.solver.studies.sensitivity import serving_solution_sensitivities

        rows = serving_solution_sensitivities(solution)
    if as_json:
        from perfcost.solver.report import data

        print_json(data.serving_solution(solution, rows))
    else:
        from perfcost.solver.report import serving as serving_report
        from perfcost.solver.report import tables as report

        report.console().print(serving_report.solution(solution))
        _print_sensitivities(rows)
    if solution.status != "optimal":
        raise typer.Exit(1)
