"""The ``perfcost`` command line: the core commands (evaluate, solve, collective, validate,
cases) and the entry point. Commands of one topic (cost, co-design, export, sweep, calibrate)
live in a module of their own beside this one and add themselves to :data:`app` when imported;
``main`` imports them all.
"""

from __future__ import annotations

from typing import Annotated

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import (
    CaseArg,
    JsonOpt,
    QuietOpt,
    SensitivitiesOpt,
    app,
    fail,
    guarded,
    print_json,
)


@app.command()
@guarded
def evaluate(
    case: CaseArg,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field, e.g. --set parallelism.tp=4")] = None,
    sensitivities: SensitivitiesOpt = False,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="show the case as written beside the one with the --set changes, "
        "with the change of each number")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One fixed configuration: time, throughput, utilisation, memory, cost and breakdowns."""
    from perfcost.solver.case import schema as case_mod
    from perfcost.solver.problem.evaluate import evaluate_case

    if baseline:
        _against_baseline(case, set_ or [], as_json)
        return
    loaded = case_mod.load(case, set_ or [])
    if loaded.serving is not None:
        from perfcost.solver.cli import serving as serving_commands

        serving_commands.evaluate(loaded, as_json, sensitivities)
        return
    result = evaluate_case(loaded)
    rows = None
    if sensitivities:
        from perfcost.solver.studies.sensitivity import evaluation_sensitivities

        rows = evaluation_sensitivities(result)
    if as_json:
        from perfcost.solver.report import data

        print_json(data.evaluation(result, rows))
        return
    from perfcost.solver.report import tables as report

    report.console().print(report.evaluation(result))
    if rows is not None:
        report.console().print(report.sensitivities(rows))


def _against_baseline(case: str, sets: list[str], as_json: bool) -> None:
    """``evaluate --baseline``: the case as written, then with the ``--set`` changes."""
    from perfcost.solver.case import schema as case_mod
    from perfcost.solver.report import side_by_side

    if not sets:
        raise CaseError("--baseline", True, "expected --set changes to compare the case with")
    columns = [side_by_side.column(f"{case} as written", case_mod.load(case)),
               side_by_side.column(f"with {'; '.join(sets)}", case_mod.load(case, sets))]
    if as_json:
        print_json(side_by_side.to_json(columns))
        return
    from perfcost.solver.report import tables as report

    report.console().print(side_by_side.table(columns))


@app.command()
@guarded
def solve(
    case: CaseArg,
    engine: Annotated[str | None, typer.Option(
        help="auto | enumerate | bound | milp (default: the case's search.engine, auto)")
    ] = None,
    objective: Annotated[str | None, typer.Option(
        help="iteration_time | time_to_train | cost | tokens_per_dollar | tokens_per_s")] = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="list the K best configurations")] = 1,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field, e.g. --set cluster.gpus=[512,1024]")] = None,
    show_compiled: Annotated[bool, typer.Option(
        "--show-compiled", help="print the compiled form (JSON) and stop")] = False,
    sensitivities: SensitivitiesOpt = False,
    as_json: JsonOpt = False,
    emit: Annotated[str | None, typer.Option(
        help="serving cases: vllm | sglang | trtllm launch flags of the chosen deployment")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """The best configuration (parallel split, hardware, GPU count) under the constraints.

    Exit code 1 when no configuration is feasible (the reason is printed), 3 when the engine
    stopped without proving an optimum.
    """
    from perfcost.solver.case import schema as case_mod

    if engine not in (None, "auto", "enumerate", "bound", "milp"):
        raise CaseError("--engine", engine, "expected auto, enumerate, bound or milp")
    loaded = case_mod.load(case, set_ or [])
    if loaded.serving is not None:
        from perfcost.solver.cli import serving as serving_commands

        if show_compiled:
            raise CaseError("--show-compiled", True, "expected a training case (a serving "
                            "search enumerates its deployments; there is no compiled form)")
        serving_commands.solve(loaded, engine, objective, top, as_json, sensitivities, emit)
        return
    if emit is not None:
        raise CaseError("--emit", emit, "expected a serving case (launch flags of a serving "
                        "deployment)")
    if show_compiled:
        from perfcost.solver.cost.codesign import build_problem
        from perfcost.solver.engines.compile import NotCompilable, compile_problem

        try:
            print_json(compile_problem(build_problem(loaded, objective)).to_json())
        except NotCompilable as exc:
            fail(f"the compiled form does not apply: {exc}")
        return
    from perfcost.solver.engines.solve import solve_case
    from perfcost.solver.report.progress import spinner

    # The engines take no progress callback: a spinner with the elapsed time shows the wait.
    with spinner(f"solving {loaded.name}", quiet or as_json) as stage:
        solution = solve_case(loaded, engine, objective, top)
        result = solution.result
        from perfcost.solver.studies.compare import compare

        # The case's [[compare]] configurations (published layouts), beside the optimum.
        comparisons = []
        if loaded.compare:
            stage(f"evaluating the configurations {loaded.name} compares with")
            comparisons = compare(solution.problem, result)
        rows = None
        if sensitivities:
            from perfcost.solver.studies.sensitivity import solution_sensitivities

            stage(f"sensitivities of {loaded.name} (re-solves)")
            rows = solution_sensitivities(solution)
    if as_json:
        from perfcost.solver.report import data

        print_json(data.solution(solution, comparisons, rows))
    else:
        from perfcost.solver.report import tables as report

        report.console().print(report.solution(solution, comparisons))
        if rows:
            report.console().print(report.sensitivities(rows))
    if result.status == "infeasible":
        raise typer.Exit(1)
    if result.status != "optimal":
        raise typer.Exit(3)


@app.command()
@guarded
def collective(
    op: Annotated[str, typer.Argument(
        help="all_reduce | reduce_scatter | all_gather | all_to_all | broadcast | p2p")],
    network: Annotated[str, typer.Option(
        help="a built-in network, e.g. dgx-h100, or a network TOML file")],
    ranks: Annotated[int, typer.Option(help="ranks (GPUs) in the group")] = 8,
    size: Annotated[str | None, typer.Option(
        "--bytes", help="buffer size per rank, nccl-tests style, e.g. '256 MiB'")] = None,
    sweep: Annotated[str | None, typer.Option(
        help="sizes doubling from..to, e.g. 1MiB..16GiB")] = None,
    algorithm: Annotated[str | None, typer.Option(
        help="one algorithm (default: every one; the fastest NCCL algorithm first)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """One collective on a network: time, algbw and busbw as nccl-tests reports."""
    from perfcost.solver.case import local_files
    from perfcost.solver.case.sections import NetworkSection
    from perfcost.solver.studies import collective as coll

    if (size is None) == (sweep is None):
        raise CaseError("--bytes", size, "expected exactly one of --bytes SIZE or --sweep A..B")
    table = local_files.load_entry("networks", network, "--network")
    if local_files.is_path(network):
        from perfcost.solver.case.schema import from_dict, resolve

        # A user's file is checked as a case's [network] is (errors name network.<field>),
        # in a case whose other sections are placeholders.
        net = from_dict(resolve({"model": "gpt3-175b", "hardware": "a100-80gb",
                                 "network": table, "training": {"global_batch": 1}})).network
        assert isinstance(net, NetworkSection)
    else:
        try:
            net = NetworkSection.model_validate(table)
        except Exception as exc:  # a broken built-in file, not user input
            raise CaseError("--network", network, f"built-in entry does not validate ({exc})"
                            ) from None
    sizes = [coll.parse_size(size)] if size is not None else coll.parse_sweep(sweep or "")
    rows = [coll.predict(op, s, ranks, net, algorithm) for s in sizes]
    if as_json:
        print_json([[p.to_json() for p in per_size] for per_size in rows])
        return
    from perfcost.solver.report import tables as report

    report.console().print(report.collectives(op, net.name, ranks, rows))


@app.command()
@guarded
def validate(
    suite: Annotated[str | None, typer.Argument(help="one suite (default: all)")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Predictions against published measurements; exit code 1 if a tolerance is exceeded."""
    from perfcost.solver.report.progress import spinner
    from perfcost.solver.studies import validate as val

    with spinner(f"validating {suite or 'every suite'}", quiet or as_json):
        rows = val.run(suite)
    summaries = val.summarise(rows)
    if as_json:
        print_json([r.to_json() for r in rows])
    else:
        from perfcost.solver.report import tables as report

        report.console().print(report.validation(rows, summaries))
    if not all(s.ok for s in summaries):
        raise typer.Exit(1)


@app.command()
@guarded
def cases(as_json: JsonOpt = False) -> None:
    """The built-in models, hardware, networks, studies and validation cases."""
    from perfcost.solver.case import catalog

    entries = catalog.listing()
    if as_json:
        print_json([{"kind": e.kind, "name": e.name, "description": e.description}
                     for e in entries])
        return
    from perfcost.solver.report import tables as report

    report.console().print(report.cases(entries))


def _register_topic_commands() -> None:
    """Import the topic modules beside this one: each adds its commands to :data:`app`, after
    the core commands above (``--help`` lists them in that order)."""
    from perfcost.solver.cli import (  # noqa: F401
        calibrate,
        codesign,
        compare,
        cost,
        export,
        plan,
        sweep,
    )


_register_topic_commands()


def _finish_help() -> None:
    from perfcost.solver.cli.app import finish_help
    from perfcost.solver.cli.examples import EXAMPLES

    finish_help(EXAMPLES)


_finish_help()


def main() -> None:
    """Console-script entry point (usage errors on one line: :func:`run_app`)."""
    from perfcost.solver.cli.app import run_app

    run_app()
