"""``perfcost sweep``: re-solve a case over a grid of changed fields (solver/studies/sweep.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import CaseArg, JsonOpt, QuietOpt, app, guarded, print_json

#: Most rows the sweep prints as a table (more go to --csv or --json).
MAX_TABLE_ROWS = 2_000


@app.command()
@guarded
def sweep(
    case: CaseArg,
    vary: Annotated[list[str] | None, typer.Option(
        "--vary", help="a case field and its values, --set style: "
        "hardware.hbm_bandwidth='3 TB/s','4 TB/s' or a range LO..HI:N[:log] [UNIT], "
        "like hardware.hbm_bandwidth=2..8:13 TB/s (repeat for a grid)")] = None,
    zipped: Annotated[bool, typer.Option(
        "--zip", help="pair the --vary values (equal lengths) instead of their product")] = False,
    objective: Annotated[str | None, typer.Option(
        help="iteration_time | time_to_train | cost | tokens_per_dollar | tokens_per_s; "
        "a serving case: cost_per_token | gpus | goodput")] = None,
    engine: Annotated[str | None, typer.Option(
        help="auto | enumerate | bound | milp (a serving case: auto | enumerate)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field at every point")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="objective vs the first --vary field, configuration changes marked (.png/.svg)")
                    ] = None,
    pareto: Annotated[str | None, typer.Option(
        help="the Pareto front of two quantities (both minimised), like cost,time_to_train: "
        "the table, --csv and --json hold the front's points; --plot draws every point "
        "with the front")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="write the rows as CSV")] = None,
    workers: Annotated[int, typer.Option(
        min=1, max=256, help="start a local Dask cluster of N worker processes (1: this "
        "process; needs pip install 'perfcost\\[distributed]')")] = 1,
    scheduler: Annotated[str | None, typer.Option(
        help="spread the points in chunks over the Dask cluster whose scheduler is at this "
        "address (tcp://host:8786)")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-solve over a grid: one row per point with the optimal configuration, the objective
    and its breakdown; CSV, plots, local processes or a Dask cluster."""
    from perfcost.solver.studies import sweep as sw
    from perfcost.solver.studies import sweep_plot

    if engine not in (None, "auto", "enumerate", "bound", "milp"):
        raise CaseError("--engine", engine, "expected auto, enumerate, bound or milp")
    axes = sw.parse_vary(vary or [])
    pair = None
    if pareto is not None:
        pair = [p.strip() for p in pareto.split(",")]
        if len(pair) != 2 or not all(pair):
            raise CaseError("--pareto", pareto, "expected two quantities, like "
                            "cost,time_to_train")
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CaseError("--plot", str(plot), "expected a .png, .svg or .pdf file name")
    points = sw.grid(axes, zipped)
    if not as_json and csv_path is None and plot is None and len(points) > MAX_TABLE_ROWS:
        # Checked before the points are solved: a terminal table of 10^5 rows takes longer to
        # draw than to compute, and nobody reads it.
        raise CaseError("--vary", f"{len(points):,} points",
                        f"expected at most {MAX_TABLE_ROWS:,} for a table; write the rows with "
                        "--csv FILE or --json")
    study = sw.Study(case, tuple(set_ or []), tuple(a.key for a in axes), objective, engine)
    if workers > 1 and scheduler is None and not sw.has_dask():
        sys.stderr.write("note: --workers needs dask (pip install 'perfcost[distributed]'); "
                         "running in this process\n")
    rows = _run(sw, study, points, workers, scheduler, quiet or as_json)
    front = None
    if pair is not None:
        for name in pair:
            if name not in rows[0]:
                raise CaseError("--pareto", name, "expected a column of the sweep: "
                                + ", ".join(k for k, v in rows[0].items()
                                            if isinstance(v, float)))
        front = [rows[i] for i in sw.pareto_front(rows, pair[0], pair[1])]
    if csv_path is not None:
        sw.write_csv(front if front is not None else rows, csv_path)
    if plot is not None:
        if pair is not None:
            sweep_plot.plot_pareto(rows, pair[0], pair[1], plot, [a.key for a in axes])
        else:
            units = sw.case_keys()
            sweep_plot.plot_objective(rows, axes, plot, units)
    shown = front if front is not None else rows
    if as_json:
        print_json([{k: (None if isinstance(v, float) and math.isnan(v) else v)
                      for k, v in r.items()} for r in shown])
        return
    from perfcost.solver.report import tables as report

    if pair is not None and front is not None:
        report.console().print(_front_table(front, len(rows), pair, axes))
        return
    report.console().print(_table(rows, axes))


def _run(sw: Any, study: Any, points: list[tuple[str, ...]], workers: int,
         scheduler: str | None, quiet: bool) -> list[dict[str, Any]]:
    from perfcost.solver.report.progress import bar

    where = f"Dask at {scheduler}" if scheduler else (
        f"{workers} Dask worker processes" if workers > 1 and sw.has_dask() else "this process")
    with bar(f"sweep ({where})", len(points), quiet) as advance:
        return sw.run(study, points, workers, scheduler, advance)


def _front_table(front: list[dict[str, Any]], total: int, pair: list[str],
                 axes: list[Any]) -> Any:
    """The Pareto front's points, ordered by the first quantity: the point, both quantities
    and the decisions that change along the front."""
    from perfcost.solver.studies.sweep import (
        QUANTITY_UNITS,
        case_keys,
        changed_columns,
        decision_columns,
    )
    from rich.table import Table

    table = Table(title=f"Pareto front of {pair[0]} and {pair[1]} (both minimised): "
                  f"{len(front)} of {total} points", title_justify="left")
    keys = [a.key for a in axes]
    units = case_keys()
    varying = changed_columns(front, decision_columns(front)) if front else []
    for k in (*keys, *pair):
        table.add_column(k, justify="right")
    for k in varying:
        table.add_column(k)
    for r in front:
        table.add_row(*[_cell(r[k], units.get(k) or "1") for k in keys],
                      *[_cell(r[q], QUANTITY_UNITS.get(q, "1")) for q in pair],
                      *[str(r.get(k, "")) for k in varying])
    return table


def _table(rows: list[dict[str, Any]], axes: list[Any]) -> Any:
    """One row per point; decisions the sweep never changes go into the caption."""
    from perfcost.solver.case.units import format_quantity
    from perfcost.solver.studies.sweep import case_keys, changed_columns, decision_columns
    from rich.table import Table

    decisions = decision_columns(rows)
    feasible = [r for r in rows if r["status"] == "optimal"] or rows
    varying = changed_columns(feasible, decisions)
    # A decision no feasible point has (a colocated optimum's prefill pool) is left out.
    steady = [f"{k}={feasible[0].get(k)}" for k in decisions if k not in varying
              and feasible[0].get(k) != ""]
    table = Table(title=f"sweep: {len(rows)} points", title_justify="left",
                  caption=("the same at every feasible point: " + " ".join(steady))
                  if steady else None, caption_justify="left")
    keys = [a.key for a in axes]
    units = case_keys()  # walks the case schema: once, not per cell
    for k in keys:
        table.add_column(k, justify="right")
    for col in ("status", "optimum", *varying, "memory/GPU"):
        table.add_column(col, justify="left" if col in varying else "right")
    previous = None
    for r in rows:
        unit = r.get("unit") or "1"
        value = (format_quantity(r["value"], unit) if isinstance(r["value"], float)
                 and math.isfinite(r["value"]) else "-")
        mem = r.get("memory_per_gpu")
        config = (r["configuration"], r.get("system"))
        style = "bold" if previous is not None and config != previous else ""
        table.add_row(*[_cell(r[k], units.get(k) or "1") for k in keys], r["status"], value,
                      *[str(r.get(k, "")) for k in varying],
                      format_quantity(mem, "B") if isinstance(mem, float)
                      and math.isfinite(mem) else "-", style=style)
        previous = config
    return table


def _cell(value: Any, unit: str) -> str:
    from perfcost.solver.case.units import format_quantity

    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return "-"
        return format_quantity(float(value), unit)
    return str(value)
