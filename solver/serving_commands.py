"""What ``perfcost evaluate`` and ``perfcost solve`` do with a serving case (solver/cli.py
hands a case with a ``[serving]`` section to these)."""

from __future__ import annotations

import typer

from .case import Case
from .errors import CaseError


def evaluate(case: Case, as_json: bool) -> None:
    """One fixed deployment: TTFT, TPOT, throughput, cost, memory and the breakdowns."""
    from .cli import _print_json
    from .serving_evaluate import evaluate_serving

    result = evaluate_serving(case)
    if as_json:
        _print_json(result.to_json())
        return
    from . import report, serving_report

    report.console().print(serving_report.evaluation(result))


def solve(case: Case, engine: str | None, objective: str | None, top: int,
          as_json: bool) -> None:
    """The cheapest deployment meeting the SLOs; exit code 1 when none does."""
    from .cli import _print_json
    from .serving_search import solve_serving

    if engine not in (None, "auto", "enumerate"):
        raise CaseError("--engine", engine, "expected auto or enumerate for a serving case "
                        "(the search is exhaustive)")
    solution = solve_serving(case, objective, top)
    if as_json:
        _print_json(solution.to_json())
    else:
        from . import report, serving_report

        report.console().print(serving_report.solution(solution))
    if solution.status != "optimal":
        raise typer.Exit(1)
