"""``perfcost pareto``: time-to-train (or cost) against capital budget for a co-design case."""

from __future__ import annotations

from typing import Annotated

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import CaseArg, JsonOpt, QuietOpt, app, guarded, print_json


@app.command()
@guarded
def pareto(
    case: CaseArg,
    budgets: Annotated[int, typer.Option(min=2, max=200,
                                         help="number of capex budgets (log-spaced)")] = 8,
    objective: Annotated[str | None, typer.Option(
        help="time_to_train | iteration_time | cost | tokens_per_dollar")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field, e.g. --set cluster.gpus=[1024,2048]")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The exact optimum of a co-design case at each capital budget: design, GPU count, split.

    The case's own capex budget is ignored; budgets run log-spaced from the cheapest to the
    dearest buildable system.
    """
    from perfcost.solver.case import schema as case_mod
    from perfcost.solver.cost.codesign import build_problem
    from perfcost.solver.studies.pareto import pareto as pareto_points

    loaded = case_mod.load(case, set_ or [])
    if loaded.codesign is None:
        raise CaseError("codesign", None, "expected a co-design case (a [codesign] section)")
    unbounded = loaded.model_copy(update={"codesign": loaded.codesign.model_copy(
        update={"capex_budget": None})})
    from perfcost.solver.report.progress import spinner

    with spinner(f"{loaded.name}: building the co-design problem", quiet or as_json) as stage:
        problem = build_problem(unbounded, objective)
        solved = [0]

        def advance(n: int) -> None:
            solved[0] += n
            stage(f"{loaded.name}: {solved[0]} of {budgets} budgets solved")

        stage(f"{loaded.name}: solving {budgets} budgets")
        points = pareto_points(problem, budgets, advance)
    unit = problem.numeric().units.get(problem.quantity, "1")
    if as_json:
        print_json({"objective": problem.objective, "unit": unit, "points": [
            {"budget_usd": p.budget, "value": p.value if p.system else None,
             "design": p.system.design if p.system else None,
             "gpus": p.system.gpus if p.system else None,
             "network": p.system.network if p.system else None,
             "capex_usd": p.system.values["capex"] if p.system else None,
             "config": p.config} for p in points]})
        return
    from perfcost.solver.report import tables as report
    from rich.table import Table

    table = Table(title=f"{loaded.name}: {problem.objective} against capex budget "
                  "(exact; each row the optimum within its budget)", title_justify="left")
    for col in ("budget", problem.objective, "capex used", "design", "GPUs", "network",
                "configuration"):
        table.add_column(col)
    for p in points:
        if p.system is None:
            table.add_row(report.format_quantity(p.budget, "USD"), "infeasible", "", "", "",
                          "", "")
            continue
        table.add_row(report.format_quantity(p.budget, "USD"),
                      report.format_quantity(p.value, unit),
                      report.format_quantity(p.system.values["capex"], "USD"),
                      p.system.system.hardware, str(p.system.gpus), p.system.network,
                      " ".join(f"{k}={v}" for k, v in p.config.items()))
    report.console().print(table)
