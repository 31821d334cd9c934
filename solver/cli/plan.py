"""``perfcost plan FLEET``: buy, rent and schedule a fleet for several training runs and
serving services at once, exactly (the fleet MILP of solver/fleet/milp.py;
shadow prices and infeasibility in solver/fleet/analysis.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from perfcost.solver.cli.app import JsonOpt, QuietOpt, app, guarded, print_json

FleetArg = Annotated[str, typer.Argument(help="a fleet file, or the name of a built-in fleet "
                                         "(cases/fleets)")]


@app.command()
@guarded
def plan(
    fleet: FleetArg,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a fleet field, e.g. --set limits.capex='300e6 USD'")] = None,
    sweep: Annotated[str | None, typer.Option(
        help="re-solve at each value of one limit: budget=V1,V2,... (also capex, opex, power, "
             "racks); bare numbers in USD or W")] = None,
    plot: Annotated[str | None, typer.Option(help="write a Gantt chart of the plan (PNG, "
                                             "SVG or PDF by suffix)")] = None,
    write_lp: Annotated[str | None, typer.Option(
        "--write-lp", help="write the MILP as an LP file (.mps for MPS)")] = None,
    shadow: Annotated[bool, typer.Option(
        help="shadow prices: re-solve with each limit and deadline moved")] = True,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Buy, rent and schedule GPUs for a fleet of training runs and serving services (MILP).

    Options per workload and SKU come from the exact engines (training: least time to train per
    GPU count; serving: best replica per shape within the SLOs). Exit code 1 when no plan
    meets the limits; the explanation names the limit that blocks it.
    """
    from perfcost.solver.fleet import analysis, options
    from perfcost.solver.fleet import case as fleet_case
    from perfcost.solver.fleet import report as fleet_report
    from perfcost.solver.fleet import sweep as fleet_sweep
    from perfcost.solver.report.progress import spinner

    sweep_spec = fleet_sweep.parse_sweep(sweep) if sweep is not None else None
    loaded = fleet_case.load(fleet, set_ or [])
    with spinner(f"{fleet}: the options of every workload (exact engines)",
                 quiet or as_json) as stage:
        instance = options.build_fleet(loaded)
        stage(f"{fleet}: solving the fleet MILP")
        if sweep_spec is not None:
            rows = fleet_sweep.sweep(instance, *sweep_spec)
        else:
            model, result = analysis.solve(instance)
            if write_lp:  # the model as solved, before the shadow prices move its limits
                model.write(write_lp)
            stage(f"{fleet}: shadow prices (re-solves)")
            shadows = (analysis.shadow_prices(model, result)
                       if shadow and result.status == "optimal" else None)
    from perfcost.solver.report.tables import console as report_console

    console = report_console()  # wide when piped, like every other command
    if sweep_spec is not None:
        if as_json:
            print_json({"fleet": instance.name, "limit": sweep_spec[0], "points": rows})
        else:
            console.print(fleet_report.sweep_table(sweep_spec[0], rows))
        return
    if as_json:
        print_json(fleet_report.to_json(instance, result, shadows, model.size()))
    else:
        for table in fleet_report.tables(instance, result, shadows):
            console.print(table)
        stats = result.stats
        console.print(f"MILP: {model.size()}; {stats.get('solves', 0)} solve(s), "
                      f"{stats.get('nodes', 0)} nodes, {stats.get('wall_s', 0):.3f} s")
    if plot and result.status == "optimal":
        fleet_report.gantt(instance, result, plot)
    if result.status != "optimal":
        raise typer.Exit(1)
