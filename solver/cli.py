"""The ``perfcost`` command line.

Every bad input ends as one line on stderr -- ``error: field = value: expected ...`` -- and
exit code 2, never a traceback. Heavy modules (sympy, pint, the formulations) are imported
inside the commands, and pyomo/highspy never for evaluation.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from .errors import CaseError, one_line

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Performance, memory and cost of LLM training on accelerator clusters.")

F = TypeVar("F", bound=Callable[..., Any])


#: Set this environment variable to see the traceback of an unexpected error.
TRACEBACK_ENV = "PERFCOST_TRACEBACK"


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {one_line(message, 2000)}\n")
    raise typer.Exit(2)


def guarded(fn: F) -> F:
    """Turn bad input into a one-line error with exit code 2.

    A :class:`CaseError` is the normal path. Anything else that escapes the loaders is a bug,
    but the user still gets one line (and exit code 2) instead of a traceback, unless
    ``PERFCOST_TRACEBACK`` is set.
    """

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CaseError as exc:
            _fail(str(exc))
        except RecursionError:
            _fail("case is too deeply nested")
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                from .case import _case_error

                _fail(str(_case_error(exc)))
            if os.environ.get(TRACEBACK_ENV):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (this is a bug in perfcost; "
                  f"set {TRACEBACK_ENV}=1 for the traceback)")

    return run  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


CaseArg = Annotated[str, typer.Argument(help="a case file, or the name of a built-in case")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output (SI units)")]
SensitivitiesOpt = Annotated[bool, typer.Option(
    "--sensitivities", help="elasticity of the objective to every parameter; with solve, also "
    "how far the most sensitive ones can move before the optimum changes (re-solves)")]


@app.command()
@guarded
def evaluate(
    case: CaseArg,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field, e.g. --set parallelism.tp=4")] = None,
    sensitivities: SensitivitiesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One fixed configuration: time, throughput, utilisation, memory, cost and breakdowns."""
    from . import case as case_mod
    from .evaluate import evaluate_case

    loaded = case_mod.load(case, set_ or [])
    if loaded.serving is not None:
        from . import serving_commands

        serving_commands.evaluate(loaded, as_json, sensitivities)
        return
    result = evaluate_case(loaded)
    rows = None
    if sensitivities:
        from .sensitivity import evaluation_sensitivities

        rows = evaluation_sensitivities(result)
    if as_json:
        data = result.to_json()
        if rows is not None:
            data["sensitivities"] = [r.to_json() for r in rows]
        _print_json(data)
        return
    from . import report

    report.console().print(report.evaluation(result))
    if rows is not None:
        report.console().print(report.sensitivities(rows))


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
) -> None:
    """The best configuration (parallel split, hardware, GPU count) under the constraints.

    Exit code 1 when no configuration is feasible (the reason is printed), 3 when the engine
    stopped without proving an optimum.
    """
    from . import case as case_mod

    if engine not in (None, "auto", "enumerate", "bound", "milp"):
        raise CaseError("--engine", engine, "expected auto, enumerate, bound or milp")
    loaded = case_mod.load(case, set_ or [])
    if loaded.serving is not None:
        from . import serving_commands

        if show_compiled:
            raise CaseError("--show-compiled", True, "expected a training case (a serving "
                            "search enumerates its deployments; there is no compiled form)")
        serving_commands.solve(loaded, engine, objective, top, as_json, sensitivities)
        return
    if show_compiled:
        from .compile import NotCompilable, compile_problem
        from .problem_search import build_problem

        try:
            _print_json(compile_problem(build_problem(loaded, objective)).to_json())
        except NotCompilable as exc:
            _fail(f"the compiled form does not apply: {exc}")
        return
    from .solve import solve_case

    solution = solve_case(loaded, engine, objective, top)
    result = solution.result
    from .compare import compare

    # The case's [[compare]] configurations (published layouts), beside the optimum.
    comparisons = compare(solution.problem, result) if loaded.compare else []
    rows = None
    if sensitivities:
        from .sensitivity import solution_sensitivities

        rows = solution_sensitivities(solution)
    if as_json:
        data = result.to_json()
        data["engine_reason"] = solution.engine_reason
        if solution.problem.codesign is not None and result.ok:
            from .codesign import summary

            data["codesign"] = summary(solution.problem, result.system_index)
        if comparisons:
            terms = solution.problem.formulation.groups["iteration_time"]
            data["compare"] = [c.to_json(terms) for c in comparisons]
        if rows is not None:
            data["sensitivities"] = [r.to_json() for r in rows]
        _print_json(data)
    else:
        from . import report

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
    network: Annotated[str, typer.Option(help="a built-in network, e.g. dgx-h100")],
    ranks: Annotated[int, typer.Option(help="ranks (GPUs) in the group")] = 8,
    size: Annotated[str | None, typer.Option(
        "--bytes", help="buffer size per rank, nccl-tests style, e.g. '256 MiB'")] = None,
    sweep: Annotated[str | None, typer.Option(
        help="sizes doubling from..to, e.g. 1MiB..16GiB")] = None,
    algorithm: Annotated[str | None, typer.Option(
        help="one algorithm (default: every one; the fastest NCCL algorithm first)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """One collective on a built-in network: time, algbw and busbw as nccl-tests reports."""
    from . import catalog
    from . import collective as coll
    from .case import NetworkSection

    if (size is None) == (sweep is None):
        raise CaseError("--bytes", size, "expected exactly one of --bytes SIZE or --sweep A..B")
    table = catalog.load_entry("networks", network, "--network")
    try:
        net = NetworkSection.model_validate(table)
    except Exception as exc:  # a broken built-in file, not user input
        raise CaseError("--network", network, f"built-in entry does not validate ({exc})") from None
    sizes = [coll.parse_size(size)] if size is not None else coll.parse_sweep(sweep or "")
    rows = [coll.predict(op, s, ranks, net, algorithm) for s in sizes]
    if as_json:
        _print_json([[p.to_json() for p in per_size] for per_size in rows])
        return
    from . import report

    report.console().print(report.collectives(op, net.name, ranks, rows))


@app.command()
@guarded
def validate(
    suite: Annotated[str | None, typer.Argument(help="one suite (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Predictions against published measurements; exit code 1 if a tolerance is exceeded."""
    from . import validate as val

    rows = val.run(suite)
    summaries = val.summarise(rows)
    if as_json:
        _print_json([r.to_json() for r in rows])
    else:
        from . import report

        report.console().print(report.validation(rows, summaries))
    if not all(s.ok for s in summaries):
        raise typer.Exit(1)


@app.command()
@guarded
def cases(as_json: JsonOpt = False) -> None:
    """The built-in models, hardware, networks, studies and validation cases."""
    from . import catalog

    entries = catalog.listing()
    if as_json:
        _print_json([{"kind": e.kind, "name": e.name, "description": e.description}
                     for e in entries])
        return
    from . import report

    report.console().print(report.cases(entries))


def _register_command_modules() -> None:
    """Import every ``cli_*`` module beside this one: each adds its commands to :data:`app`.

    Commands of one topic (cost, export, sweep, calibrate, serving) live in a module of their
    own, so this file stays small and the topics never edit each other's code.
    """
    import importlib
    import pkgutil

    here = os.path.dirname(__file__)
    for info in sorted(pkgutil.iter_modules([here]), key=lambda m: m.name):
        if info.name.startswith("cli_"):
            importlib.import_module(f"{__package__}.{info.name}")


_register_command_modules()


def main() -> None:
    """Console-script entry point."""
    app()
