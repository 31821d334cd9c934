"""``perfcost export``: the closed forms of a case's quantities, or of a cost case's
(``perfcost cost``) -- see solver/export/closed_form.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import CaseArg, app, guarded, print_json


@app.command()
@guarded
def export(
    case: CaseArg,
    fmt: Annotated[str, typer.Option(
        "--format", help="latex | markdown | python | c | json")] = "markdown",
    quantity: Annotated[list[str] | None, typer.Option(
        "--quantity", help="a quantity to export (repeat; default: every quantity)")] = None,
    fix: Annotated[list[str] | None, typer.Option(
        "--fix", help="substitute a parameter or decision: NAME=VALUE (SI units or a label), "
        "NAME (the case's value), or 'parameters' (every parameter)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a case field first, e.g. --set hardware.hbm_bandwidth='4 TB/s'"
    )] = None,
    output: Annotated[str | None, typer.Option(
        "-o", "--output", help="write to FILE (C: FILE.h and FILE.c)")] = None,
    prefix: Annotated[str | None, typer.Option(
        help="C identifier prefix (default: from the case name)")] = None,
    standalone: Annotated[bool, typer.Option(
        "--standalone", help="LaTeX: a complete document (preamble with the packages it "
        "needs), ready for pdflatex")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress on stderr")] = False,
) -> None:
    """Closed forms of named quantities: simplified, common subexpressions named, symbols
    documented with units. Functions take the decisions (tp, pp, dp, ...) and the parameters
    with the case's values as defaults, so they reproduce 'perfcost evaluate'. For a cost case
    (a design of cases/designs/, or a file with a \\[design] table) the formulation 'perfcost
    cost' prices, with the design knobs and cluster size as the arguments."""
    from perfcost.solver.export.render import render
    from perfcost.solver.report.progress import spinner

    # Simplifying and printing a whole formulation takes seconds (LaTeX the longest).
    with spinner(f"exporting {case} as {fmt}", quiet or fmt == "json"):
        rendered = render(case, fmt, quantity or [], fix or [], set_ or [], output, prefix,
                          standalone)
    if output is None:
        if rendered.data is not None:
            print_json(rendered.data)
        else:
            sys.stdout.write(rendered.text)
        return
    for name, text in rendered.files.items():
        _write(Path(name), text)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CaseError("-o", str(path), f"cannot be written ({exc.strerror or exc})") from None
