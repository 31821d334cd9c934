"""``perfcost compare``: several cases, or one case and variants of it, side by side."""

from __future__ import annotations

from typing import Annotated

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import JsonOpt, app, guarded, print_json

#: Most columns one comparison shows.
MAX_CASES = 12


@app.command()
@guarded
def compare(
    cases: Annotated[list[str], typer.Argument(
        help="cases (files or built-in names); the first is the baseline")],
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="a variant of the first case: --set overrides, several joined "
        "with ';' (repeat for more variants)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override a field of every case")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cases side by side, with each one's change against the first (the baseline).

    A case with one configuration is evaluated, one with an open split solved.

    Examples: perfcost compare gpt3-175b-a100 --variant "network.scale_up.bandwidth='600 GB/s'"
    --variant "parallelism.micro_batch=2;parallelism.tp=4"; perfcost compare
    serve-llama3-70b-8xh100 serve-llama3-70b-disagg-wins
    """
    from perfcost.solver.case import schema
    from perfcost.solver.report import side_by_side

    sets = list(set_ or [])
    named: list[tuple[str, list[str], str]] = [(c, sets, c) for c in cases]
    for text in variant or []:
        overrides = [part.strip() for part in text.split(";") if part.strip()]
        if not overrides:
            raise CaseError("--variant", text, "expected one or more KEY=VALUE overrides")
        named.append((cases[0], sets + overrides, f"{cases[0]} with {'; '.join(overrides)}"))
    if len(named) < 2:
        raise CaseError("compare", cases, "expected two or more cases, or a case and "
                        "--variant options")
    if len(named) > MAX_CASES:
        raise CaseError("compare", f"{len(named)} cases", f"expected at most {MAX_CASES}")
    columns = [side_by_side.column(label, schema.load(source, overrides))
               for source, overrides, label in named]
    if as_json:
        print_json(side_by_side.to_json(columns))
        return
    from perfcost.solver.report import tables as report

    report.console().print(side_by_side.table(columns))
