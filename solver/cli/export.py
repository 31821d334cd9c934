"""``perfcost export``: the closed forms of a case's quantities, or of a cost case's
(``perfcost cost``) -- see solver/export/closed_form.py."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import CaseArg, app, guarded, print_json


def command_line(case: str, fmt: str, quantities: list[str], fixes: list[str],
                 sets: list[str], output: str | None) -> str:
    """The canonical command that regenerates an export (written into its header)."""
    words = ["perfcost", "export", case, "--format", fmt]
    for q in quantities:
        words += ["--quantity", q]
    for f in fixes:
        words += ["--fix", f]
    for s in sets:
        words += ["--set", s]
    if output:
        words += ["-o", output]
    return shlex.join(words)


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
) -> None:
    """Closed forms of named quantities: simplified, common subexpressions named, symbols
    documented with units. Functions take the decisions (tp, pp, dp, ...) and the parameters
    with the case's values as defaults, so they reproduce 'perfcost evaluate'. For a cost case
    (a design of cases/designs/, or a file with a [design] table) the formulation 'perfcost
    cost' prices, with the design knobs and cluster size as the arguments."""
    from perfcost.solver.case import schema as case_mod
    from perfcost.solver.export import closed_form as ex

    if fmt not in ex.FORMATS:
        raise CaseError("--format", fmt, f"expected one of {', '.join(ex.FORMATS)}")
    quantities = quantity or []
    command = command_line(case, fmt, quantities, fix or [], set_ or [], output)
    if ex.is_cost_case(case):
        _export_cost(case, fmt, quantities, fix or [], set_ or [], output, prefix, command)
        return
    loaded = case_mod.load(case, set_ or [])
    for section in ("hardware", "network"):
        entries = getattr(loaded, section)
        if isinstance(entries, list) and len(entries) > 1:
            raise CaseError(section, [e.name for e in entries],
                            f"export needs one entry; pick one with --set {section}=NAME")
    formulation = ex.case_formulation(loaded)
    document = fmt in ("latex", "markdown")
    built = ex.build_export(formulation, quantities, ex.parse_fix(fix or []),
                            loaded.name or Path(case).stem, document=document)
    if fmt == "json":
        from perfcost.solver.problem.search import systems_of

        compiled = ex.compiled_forms(systems_of(loaded)[0][0], [f.name for f in built.forms])
    else:
        compiled = None
    _emit(built, fmt, output, prefix, command, compiled)


def _export_cost(case: str, fmt: str, quantities: list[str], fixes: list[str],
                 sets: list[str], output: str | None, prefix: str | None,
                 command: str) -> None:
    """A cost case (cases/designs/, or a file with a [design] table): the formulation that
    ``perfcost cost`` evaluates for it, the design knobs as the functions' arguments."""
    from perfcost.solver.export import closed_form as ex

    target = ex.cost_target(ex.load_cost_case(case, sets))
    built = ex.cost_export(target, quantities, ex.parse_fix(fixes),
                           document=fmt in ("latex", "markdown"))
    if not target.case.name:
        built = replace(built, case=Path(case).stem)
    compiled = None
    if fmt == "json":
        compiled = {f.name: {"compiled": None, "not_compiled": ex.COST_NOT_COMPILED}
                    for f in built.forms}
    _emit(built, fmt, output, prefix, command, compiled)


def _emit(built: Any, fmt: str, output: str | None, prefix: str | None, command: str,
          compiled: dict[str, Any] | None) -> None:
    """Write ``built`` in format ``fmt`` to ``output`` (C: a header and a source), or print
    it."""
    from perfcost.solver.export import closed_form as ex

    if fmt == "json":
        data = ex.to_json(built, compiled)
        data["command"] = command
        if output:
            import json

            _write(Path(output), json.dumps(data, indent=2) + "\n")
        else:
            print_json(data)
        return
    if fmt == "c":
        pre = prefix or ex.c_prefix(built.case)
        if not pre.isidentifier():
            raise CaseError("--prefix", pre, "expected a C identifier prefix, like 'gpt3_'")
        if output:
            stem = Path(output)
            stem = stem.with_suffix("") if stem.suffix in (".c", ".h") else stem
            header, source = ex.to_c(built, pre, stem.name + ".h", command)
            _write(stem.with_name(stem.name + ".h"), header)
            _write(stem.with_name(stem.name + ".c"), source)
        else:
            header, source = ex.to_c(built, pre, "perfcost.h", command)
            sys.stdout.write(f"/* ==== perfcost.h ==== */\n{header}\n"
                             f"/* ==== perfcost.c ==== */\n{source}")
        return
    render = {"python": ex.to_python, "latex": ex.to_latex, "markdown": ex.to_markdown}[fmt]
    text = render(built, command)
    if output:
        _write(Path(output), text)
    else:
        sys.stdout.write(text)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CaseError("-o", str(path), f"cannot be written ({exc.strerror or exc})") from None
