"""The ``perfcost`` command line.

Every bad input ends as one line on stderr -- ``error: field = value: expected ...`` -- and
exit code 2, never a traceback. Heavy modules (sympy, pint, the formulations) are imported
inside the commands, and pyomo/highspy never for evaluation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from .errors import CaseError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Performance, memory and cost of LLM training on accelerator clusters.")

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def guarded(fn: F) -> F:
    """Turn bad input into a one-line error with exit code 2."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CaseError as exc:
            _fail(str(exc))
        except RecursionError:
            _fail("case is too deeply nested")

    return run  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


CaseArg = Annotated[str, typer.Argument(help="a case file, or the name of a built-in case")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output (SI units)")]


@app.command()
@guarded
def evaluate(
    case: CaseArg,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field, e.g. --set parallelism.tp=4")] = None,
    as_json: JsonOpt = False,
) -> None:
    """One fixed configuration: time, throughput, utilisation, memory, cost and breakdowns."""
    from . import case as case_mod
    from .evaluate import evaluate_case

    result = evaluate_case(case_mod.load(case, set_ or []))
    if as_json:
        _print_json(result.to_json())
        return
    from . import report

    report.console().print(report.evaluation(result))


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


def main() -> None:
    """Console-script entry point."""
    app()
