"""The ``perfcost`` application every command module adds its commands to, and what they share:
one-line errors (:func:`guarded`), strict JSON output and the common options.

Every bad input ends as one line on stderr -- ``error: field = value: expected ...`` -- and
exit code 2, never a traceback. Heavy modules (sympy, the formulations) are imported
inside the commands, and pyomo/highspy never for evaluation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from perfcost.solver.case.errors import CaseError, one_line
from typer.core import TyperCommand, TyperGroup


def _bare_flags(params: list[Any]) -> None:
    """A flag takes no value, so its help shows no type (typer writes ``<bool>``)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _BareFlags:
    """Help without type placeholders on flags, for a click command or group."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _bare_flags(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        _bare_flags([option] if option is not None else [])
        return option


class Command(_BareFlags, TyperCommand):
    """A command whose help shows flags without a type placeholder."""


class Group(_BareFlags, TyperGroup):
    """The ``perfcost`` group: its help shows flags without a type placeholder."""


app = typer.Typer(
    add_completion=False, no_args_is_help=True, cls=Group,
    help="Performance, memory and cost of LLM training and serving on accelerator clusters: "
    "which split, which hardware, how fast, how much money. Training runs (parallel split, "
    "memory, time to train), serving deployments (TTFT, TPOT, goodput, cost per token), cost "
    "(rented and owned GPU-hours, chip manufacturing), hardware co-design (which accelerator "
    "to build) and fleet planning (buy, rent and schedule GPUs for many workloads).",
    epilog="Example: perfcost cases; perfcost solve llama3-70b-h100-split; perfcost solve "
    "serve-llama3-70b-8xh100. 'perfcost COMMAND --help' shows each command's examples.")


def _print_version(value: bool) -> None:
    if value:
        from perfcost import version

        sys.stdout.write(f"perfcost {version()}\n")
        raise typer.Exit(0)


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """Performance, memory and cost of LLM training and serving on accelerator clusters."""

F = TypeVar("F", bound=Callable[..., Any])


#: Set this environment variable to see the traceback of an unexpected error.
TRACEBACK_ENV = "PERFCOST_TRACEBACK"


def finish_help(examples: dict[str, str]) -> None:
    """Give every registered command the help of :class:`Command` and, unless it has one,
    an epilog of examples from ``examples`` (command name -> text)."""
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        if info.cls in (None, TyperCommand):  # not a command class of its own
            info.cls = Command
        if info.epilog is None and name in examples:
            info.epilog = examples[name]


def fail(message: str) -> None:
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
            fail(str(exc))
        except RecursionError:
            fail("case is too deeply nested")
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                from perfcost.solver.case.schema import _case_error

                fail(str(_case_error(exc)))
            if os.environ.get(TRACEBACK_ENV):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (this is a bug in perfcost; "
                  f"set {TRACEBACK_ENV}=1 for the traceback)")

    return run  # type: ignore[return-value]


def run_app(args: list[str] | None = None) -> None:
    """Run the application as the ``perfcost`` command does: a usage error (an unknown
    option, a missing argument, a bad choice) is one line on stderr and exit code 2, like
    every other bad input, instead of click's boxed usage text."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click import exceptions as cli_errors
    except ImportError:
        from click import exceptions as cli_errors

    try:
        code = app(args=args, standalone_mode=False)
    except cli_errors.NoArgsIsHelpError as exc:  # 'perfcost' or a group alone: its help
        sys.stdout.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        raise SystemExit(2) from None
    except cli_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "perfcost"
        sys.stderr.write(f"error: {one_line(exc.format_message(), 2000)} "
                         f"(see '{where} --help')\n")
        raise SystemExit(2) from None
    except cli_errors.ClickException as exc:
        sys.stderr.write(f"error: {one_line(exc.format_message(), 2000)}\n")
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("aborted\n")
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def print_json(data: Any) -> None:
    """Strict JSON on stdout: a non-finite number is ``null``, and its object names it under
    ``"undefined"`` (solver/export/strict_json.py)."""
    from perfcost.solver.export.strict_json import dumps

    sys.stdout.write(dumps(data) + "\n")


CaseArg = Annotated[str, typer.Argument(help="a case file, or the name of a built-in case")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output (SI units)")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", help="no progress on stderr (there is none under --json, or when stderr is not "
    "a terminal)")]
SensitivitiesOpt = Annotated[bool, typer.Option(
    "--sensitivities", help="elasticity of the objective to every parameter; with solve, also "
    "how far the most sensitive ones can move before the optimum changes (re-solves)")]
