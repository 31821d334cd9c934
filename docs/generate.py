"""Regenerate every command sample, table and image that README.md and docs/ show.

    python docs/generate.py            # rewrite the generated regions (and images) in place
    python docs/generate.py --check    # exit 1 and show the difference where a page is stale
    python docs/generate.py --cheap    # only the regions marked cheap (what the tests re-run)
    python docs/generate.py --page README.md   # one page (repeatable)

A generated region sits between two HTML comments (invisible on a rendered page):

    <!-- output: perfcost evaluate gpt3-175b-a100 | lines 32 -->
    ...replaced by "$ COMMAND", then what it prints (cut after 32 lines with "...")...
    <!-- end -->

    <!-- command: perfcost sweep CASE --vary ... --plot docs/images/x.png | table hbm -->
    ...replaced by the command in a code block and, with ``table NAME``, a Markdown table
    that :data:`TABLES` makes from the command's ``--json`` rows; running it also draws the
    image the command names...
    <!-- end -->

Options after ``|``: ``lines N`` (cut the output), ``cheap`` (re-run and compared by the
tests; everything else is run by the tests too, but only this script rewrites it), ``table
NAME``. Commands run in this process through the command line's own entry point with the
working directory at the repository root, so paths in them are the repository's. The pages of
docs/formulations/ are regenerated from the command written at their top.

Timings a command prints (solve and build seconds) differ from run to run: :func:`normalise`
masks them before pages are compared.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The pages with generated regions.
PAGES = ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))
REGION = re.compile(r"<!-- (?P<kind>output|command|tree|table): (?P<spec>.*?) -->\n"
                    r"(?P<body>.*?)"
                    r"<!-- end -->", re.DOTALL)
#: Run-to-run timings in command output, masked before comparing.
VOLATILE = (re.compile(r"\d[\d,.]* ?(?:s|ms|us|µs)(?= CPU| wall|,? solve| \(bound\))"),
            re.compile(r"(build|solve|compile) [\d.]+ s"),
            re.compile(r"in [\d.]+ s\b"))


@dataclass(frozen=True)
class Region:
    """One generated region of a page."""

    page: str
    kind: str
    command: str
    lines: int | None
    cheap: bool
    table: str | None
    start: int
    end: int
    body: str

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.command)
        if self.kind in ("tree", "table"):
            return words
        if not words or words[0] != "perfcost":
            raise ValueError(f"{self.page}: a generated region runs perfcost, not {words[:1]}")
        return words[1:]


def regions(page: str) -> Iterator[Region]:
    text = (ROOT / page).read_text(encoding="utf-8")
    for match in REGION.finditer(text):
        command, *options = [part.strip() for part in match["spec"].split("|")]
        lines = table = None
        cheap = False
        for option in options:
            words = option.split()
            if words[0] == "lines":
                lines = int(words[1])
            elif words[0] == "cheap":
                cheap = True
            elif words[0] == "table":
                table = words[1]
            else:
                raise ValueError(f"{page}: unknown option {option!r} in {match['spec']!r}")
        yield Region(page, match["kind"], command, lines, cheap, table, match.start("body"),
                     match.end("body"), match["body"])


def run(argv: list[str]) -> tuple[int, str]:
    """Exit code and output (stdout, then stderr) of ``perfcost ARGV``, run in this process at
    the repository root."""
    from perfcost.solver.cli.main import app
    from typer.testing import CliRunner

    here = Path.cwd()
    os.chdir(ROOT)
    try:
        result = CliRunner().invoke(app, argv, env={"COLUMNS": "150", "NO_COLOR": "1"})
    finally:
        os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"perfcost {shlex.join(argv)} failed: {result.exception!r}")
    return result.exit_code, result.output


def _cut(text: str, lines: int | None) -> str:
    rows = [row.rstrip() for row in text.rstrip("\n").split("\n")]
    if lines is not None and len(rows) > lines:
        rows = [*rows[:lines], "..."]
    return "\n".join(rows)


def render(region: Region, argv: list[str] | None = None) -> str:
    """The body the region should have now, running its command (or ``argv`` instead: the
    tests run it with the files it writes redirected, and show the page's command)."""
    if region.kind == "tree":
        return f"```\n{tree(region.argv)}\n```\n"
    if region.kind == "table":
        name, *args = region.argv
        return MULTI_TABLES[name](args) + "\n"
    if region.kind == "output":
        _code, output = run(argv or region.argv)
        return f"```\n$ {region.command}\n{_cut(output, region.lines)}\n```\n"
    argv = argv or region.argv
    body = f"```\n{_wrapped(region.command)}\n```\n"
    if region.table is None:
        code, output = run(argv)
        if code not in (0, 1):
            raise RuntimeError(f"{region.command} exited {code}: {output}")
        return body
    code, output = run([*argv, "--json"])
    if code not in (0, 1):
        raise RuntimeError(f"{region.command} exited {code}: {output}")
    return body + "\n" + TABLES[region.table](json.loads(output)) + "\n"


def _wrapped(command: str, width: int = 96) -> str:
    """A long command broken before options, shell-style, to fit a page."""
    words = shlex.split(command)
    lines: list[str] = []
    current = ""
    for i, word in enumerate(words):
        token = shlex.quote(word)
        starts_option = word.startswith("--") and i > 0
        if current and (len(current) + 1 + len(token) > width or
                        (starts_option and len(current) > width // 2)):
            lines.append(current + " \\")
            current = "  " + token
        else:
            current = f"{current} {token}" if current else token
    lines.append(current)
    return "\n".join(lines)


def _summary(path: Path, width: int) -> str:
    """The first sentence of a module's or package's docstring, cut to ``width``."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    first = first.split(". ")[0].rstrip(".")
    return first if len(first) <= width else first[:width - 3].rstrip() + "..."


def tree(folders: list[str]) -> str:
    """The source folders, their subpackages and modules, each with its docstring's first
    sentence: the layout as the code states it."""
    lines = []
    for folder in folders:
        root = ROOT / folder
        lines.append(f"{folder + '/':<22}{_summary(root / '__init__.py', 74)}")
        packages = sorted(p for p in root.iterdir() if (p / "__init__.py").exists())
        modules = sorted(p for p in root.glob("*.py") if p.name != "__init__.py")
        for package in packages:
            lines.append(f"  {package.name + '/':<20}{_summary(package / '__init__.py', 74)}")
            for module in sorted(package.glob("*.py")):
                if module.name != "__init__.py":
                    lines.append(f"    {module.stem:<18}{_summary(module, 74)}")
        for module in modules:
            lines.append(f"  {module.stem:<20}{_summary(module, 74)}")
    return "\n".join(lines)


# -- tables made from a command's --json rows ---------------------------------------------------

def _quantity(value: float, unit: str) -> str:
    from perfcost.solver.case.units import format_quantity

    return format_quantity(value, unit)


def _changes(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The first row and every row whose ``keys`` differ from the row before."""
    out = []
    for row in rows:
        if not out or any(row.get(k) != out[-1].get(k) for k in keys):
            out.append(row)
    return out


def hbm_table(rows: list[dict[str, Any]]) -> str:
    """The HBM-bandwidth sweep: the optimum at every point."""
    out = ["| HBM bandwidth | iteration time | tp | pp | dp | cp | micro-batch | v | "
           "recompute | ZeRO | memory/GPU |",
           "| ---: | ---: | --- | --- | --- | --- | --- | --- | --- | --- | ---: |"]
    for r in rows:
        out.append(f"| {_quantity(r['hardware.hbm_bandwidth'], 'B/s')} | "
                   f"{_quantity(r['value'], 's')} | {r['tp']} | {r['pp']} | {r['dp']} | "
                   f"{r['cp']} | {r['micro_batch']} | {r['virtual_stages']} | {r['recompute']} | "
                   f"{r['zero']} | {_quantity(r['memory_per_gpu'], 'B')} |")
    return "\n".join(out)


def budget_table(rows: list[dict[str, Any]]) -> str:
    """The budget sweep: the optimum at each budget where it moves."""
    keys = ("system", "gpus", "tp", "pp", "dp", "cp", "virtual_stages", "zero", "placement")
    shown = [r for r in _changes(rows, keys) if r.get("status") == "optimal"]
    out = ["| budget | cost of the optimum | time to train | system | GPUs | tp | pp | dp | cp | "
           "v | ZeRO | placement |",
           "| ---: | ---: | ---: | --- | ---: | --- | --- | --- | --- | --- | --- | --- |"]
    for r in shown:
        out.append(f"| {_quantity(r['constraints.budget'], 'USD')} | "
                   f"{_quantity(r['cost'], 'USD')} | {r['time_to_train'] / 86400:.3g} days | "
                   f"{r['system']} | {r['gpus']:,.0f} | {r['tp']} | {r['pp']} | {r['dp']} | "
                   f"{r['cp']} | {r['virtual_stages']} | {r['zero']} | {r['placement']} |")
    return "\n".join(out)


def validation_table(rows: list[dict[str, Any]]) -> str:
    """``perfcost validate``: per suite, what it measures (cases/suites.toml), the mean and
    worst absolute error and the suite's tolerance on the mean."""
    import tomllib

    from perfcost.solver.case import catalog

    about = tomllib.loads((catalog.root() / "suites.toml").read_text(encoding="utf-8"))
    suites: dict[str, list[float]] = {}
    for r in rows:
        suites.setdefault(r["suite"], []).append(abs(r["error_pct"]))
    out = ["| suite | what | rows | mean abs error | worst | tolerance (mean) |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for suite, errors in sorted(suites.items()):
        info = about.get(suite, {})
        out.append(f"| `{suite}` | {info.get('description', '')} | {len(errors)} | "
                   f"{sum(errors) / len(errors):.1f} % | {max(errors):.1f} % | "
                   f"{info.get('mean_tolerance_pct', '')} % |")
    return "\n".join(out)


@functools.cache
def _solved_text(argv: tuple[str, ...]) -> str:
    # Cached: several tables read one command's answer (the held-out and floor tables one
    # calibration per GPU, minutes each).
    code, output = run([*argv, "--json"])
    if code not in (0, 1):
        raise RuntimeError(f"perfcost {shlex.join(argv)} exited {code}: {output}")
    return output


def _solved(argv: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_solved_text(tuple(argv)))
    return data


def splits_table(args: list[str]) -> str:
    """``splits CASE NETWORK...``: the optimum of a training case on each network."""
    case, *networks = args
    out = ["| network | best split | iteration time | MFU |", "| --- | --- | ---: | ---: |"]
    for network in networks:
        data = _solved(["solve", case, "--set", f"network={network}"])
        c = data["config"]
        split = (f"tp {c['tp']}, pp {c['pp']}, dp {c['dp']}, cp {c['cp']}, "
                 f"placement {c['placement']}")
        out.append(f"| `{network}` | {split} | {_quantity(data['iteration_time_s'], 's')} | "
                   f"{data['mfu']:.1%} |")
    return "\n".join(out)


def serving_table(args: list[str]) -> str:
    """``serving CASE...``: the best deployment of each serving study."""
    out = ["| study | best deployment | TTFT | TPOT | GPUs | USD / M tokens |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for case in args:
        data = _solved(["solve", case])
        best = data.get("best") or data
        describe = best.get("deployment") or best.get("label") or json.dumps(best.get("config"))
        out.append(f"| {case} | {describe} | {_quantity(best['ttft_s'], 's')} | "
                   f"{_quantity(best['tpot_s'], 's')} | {best.get('gpus', '')} | "
                   f"{best['cost_per_million_tokens_usd']:.3f} |")
    return "\n".join(out)


#: The serving studies docs/inference.md sets beside their sources: the test that checks each
#: row, what changes, and what the source reports.
SERVING_STUDIES: dict[str, tuple[str, str, str]] = {
    "serve-llama3.1-70b-eagle-h200": (
        "tests/test_serving_features.py",
        "TPOT at batch 1, EAGLE heads (k = 5, a = 0.8) against none",
        "2.7x-3.5x on LLaMA2-Chat 70B (EAGLE, ICML 2024, abstract)"),
    "serve-llama3-8b-prefix-cache-h100": (
        "tests/test_serving_features.py",
        "requests/s of a replica, hit rate 0.9 against none; cost per token",
        "up to 6.4x throughput on shared-prefix workloads (SGLang, NeurIPS 2024)"),
    "serve-deepseek-v3-wide-ep-h100": (
        "tests/test_serving_wide_ep.py",
        "peak decode output tokens/s per H100 node",
        "22.3k per node, up to 5x vanilla TP (LMSYS blog, 2025-05-05)"),
}
#: SGLang's decode output tokens/s per H100 node (LMSYS blog, 2025-05-05).
SGLANG_TOKENS_PER_NODE = 22.3e3
GPUS_PER_NODE = 8


def study_row(study: str, ours: str) -> str:
    """One row of the ``serving_studies`` table."""
    test, change, reported = SERVING_STUDIES[study]
    return f"| `{study}` (`{test}`) | {change} | {ours} | {reported} |"


def eagle_cell(plain_tpot: float, heads_tpot: float) -> str:
    return (f"{plain_tpot * 1e3:.2f} ms -> {heads_tpot * 1e3:.2f} ms, "
            f"{plain_tpot / heads_tpot:.2f}x")


def prefix_cell(uncached: dict[str, float], cached: dict[str, float]) -> str:
    rate = "requests_per_s_per_replica"
    return (f"{uncached[rate]:.2f} -> {cached[rate]:.2f}, {cached[rate] / uncached[rate]:.1f}x; "
            f"{uncached['gpus']:.0f} GPUs -> {cached['gpus']:.0f}")


def wide_ep_cell(wide: float, narrow: float) -> str:
    return (f"{wide / 1e3:.1f}k ({(wide / SGLANG_TOKENS_PER_NODE - 1) * 100:+.0f} %); "
            f"{wide / narrow:.1f}x attention TP only")


def serving_studies_table(args: list[str]) -> str:
    """``serving_studies``: each study of :data:`SERVING_STUDIES` with and without what it adds
    (the tests named in each row compute the same and check the row)."""
    from perfcost.solver.case.schema import load
    from perfcost.solver.serving.search import peak_throughput_per_node, solve_serving

    eagle, prefix, wide_ep = SERVING_STUDIES

    def best(study: str, *overrides: str) -> dict[str, float]:
        found = solve_serving(load(study, list(overrides))).best
        if found is None:
            raise RuntimeError(f"{study} {overrides}: no feasible deployment")
        return dict(found.values)

    wide = peak_throughput_per_node(load(wide_ep), GPUS_PER_NODE)[0]
    narrow = peak_throughput_per_node(load(wide_ep, ["serving.dp_attention=1"]),
                                      GPUS_PER_NODE)[0]
    rows = [
        study_row(eagle, eagle_cell(best(eagle, "serving.speculative=none")["tpot"],
                                    best(eagle)["tpot"])),
        study_row(prefix, prefix_cell(best(prefix, "serving.prefix_hit_rate=0"),
                                      best(prefix))),
        study_row(wide_ep, wide_ep_cell(wide, narrow)),
    ]
    return "\n".join(["| study (test) | change | ours | reported |", "| --- | --- | --- | --- |",
                      *rows])


def shows_row(page: str, table: str, row: str) -> bool:
    """Whether ``page``'s generated ``table`` region holds ``row`` (for the tests that compute
    a row themselves)."""
    (region,) = [r for r in regions(page) if r.kind == "table" and r.argv[:1] == [table]]
    return row in region.body.splitlines()


#: The columns of the ``heldout`` table: (heading, kind, precision, subset) of a
#: ``perfcost calibrate --database`` residual row.
HELD_OUT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("GEMM bf16 >= 1 GFLOP", "gemm", "bf16", ">= 1 GFLOP"),
    ("fp8", "gemm", "fp8", ">= 1 GFLOP"),
    ("fp8 block", "gemm", "fp8_block", ">= 1 GFLOP"),
    ("fp4", "gemm", "fp4", ">= 1 GFLOP"),
    ("decode attn bf16", "generation attention", "bf16", "all"),
    ("decode fp8", "generation attention", "fp8", "all"),
    ("prefill attn bf16", "context attention", "bf16", "all"),
    ("prefill fp8", "context attention", "fp8", "all"),
    ("MLA decode bf16", "generation mla", "bf16", "all"),
    ("MLA decode fp8", "generation mla", "fp8", "all"),
    ("NCCL >= 1 MiB", "nccl (all)", "pooled", ">= 1 MiB"),
    ("NCCL < 1 MiB", "nccl (all)", "pooled", "< 1 MiB"),
)


def held_out_table(databases: list[str]) -> str:
    """``heldout DATABASE...``: median / 90th percentile of the held-out errors that
    ``perfcost calibrate --database`` prints for each GPU (needs the kernels extra)."""
    out = ["| GPU | " + " | ".join(c[0] for c in HELD_OUT_COLUMNS) + " |",
           "| --- |" + " --- |" * len(HELD_OUT_COLUMNS)]
    for database in databases:
        data = _solved(_calibration(database))
        found = {(r["kind"], r["precision"], r["subset"]): r for r in data["residuals"]}
        cells = [_cell(found.get(tuple(key))) for _heading, *key in HELD_OUT_COLUMNS]
        out.append(f"| {database} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _cell(row: dict[str, Any] | None) -> str:
    """A residual row as "median / 90th percentile" in %, "--" where there is none."""
    return "--" if row is None else f"{row['median_pct']:.1f} / {row['p90_pct']:.1f}"


def _calibration(database: str) -> list[str]:
    """The command behind the held-out and floor tables of one GPU (one run serves both)."""
    return ["calibrate", "--database", database, "--floor"]


#: The GEMM precisions of the ``floor`` table.
FLOOR_PRECISIONS = ("bf16", "fp8", "fp8_block", "fp4")


#: The other frameworks whose collectors timed the same bf16 GEMMs (the ``floor`` table's
#: last columns: solver/studies/database_floor.py, ``remeasured``).
REMEASURED_BY = ("vllm", "sglang")


#: The ``floor`` table's columns judged against the other frameworks' measurements
#: (``against_others``): its heading, and the row's label (None: the fitted table's own
#: framework).
AGAINST_OTHERS_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("bf16 model vs the others", "model"), ("bf16 measured vs the others", None))


def floor_table(databases: list[str]) -> str:
    """``floor DATABASE...``: the GEMM model's held-out median / 90th percentile beside the
    interpolation floor's on the same rows, then the same bf16 rows as the other frameworks'
    collectors measured them, then the model and the fitted table each against those
    (solver/studies/database_floor.py; needs the kernels extra)."""
    head = " | ".join(f"{p} model | {p} interpolated" for p in FLOOR_PRECISIONS)
    head += "".join(f" | bf16 remeasured ({f})" for f in REMEASURED_BY)
    head += "".join(f" | {heading}" for heading, _ in AGAINST_OTHERS_COLUMNS)
    columns = 2 * len(FLOOR_PRECISIONS) + len(REMEASURED_BY) + len(AGAINST_OTHERS_COLUMNS)
    out = [f"| GPU | {head} |", "| --- |" + " --- |" * columns]
    for database in databases:
        data = _solved(_calibration(database))
        model = {r["precision"]: r for r in data["residuals"]
                 if r["kind"] == "gemm" and r["subset"] == ">= 1 GFLOP"}
        floor = {r["precision"]: r for r in data["floor"]}
        cells = []
        for precision in FLOOR_PRECISIONS:
            cells.extend(_cell(rows.get(precision)) for rows in (model, floor))
        again = {r["framework"]: r for r in data.get("remeasured") or []
                 if r["precision"] == "bf16"}
        cells.extend(_cell(again.get(framework)) for framework in REMEASURED_BY)
        against = {r["judged"]: r for r in data.get("against_others") or []
                   if r["precision"] == "bf16"}
        cells.extend(_cell(against.get(label or data["framework"]))
                     for _heading, label in AGAINST_OTHERS_COLUMNS)
        out.append(f"| {database} | " + " | ".join(cells) + " |")
    return "\n".join(out)


#: Tables of several commands' answers (``<!-- table: NAME ARGS -->``).
MULTI_TABLES: dict[str, Callable[[list[str]], str]] = {
    "splits": splits_table, "serving": serving_table, "serving_studies": serving_studies_table,
    "heldout": held_out_table, "floor": floor_table}

TABLES: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "hbm": hbm_table, "budget": budget_table, "validation": validation_table}


# -- pages ----------------------------------------------------------------------------------

def formulation_pages() -> list[tuple[str, list[str]]]:
    """docs/formulations/*.md and the export command written at the top of each."""
    out = []
    for path in sorted((ROOT / "docs" / "formulations").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        match = re.search(r"```\n(perfcost export .*?)\n```", text)
        if match is None:
            raise ValueError(f"{path.name}: no 'perfcost export' command at its top")
        out.append((str(path.relative_to(ROOT)), shlex.split(match[1])[1:]))
    return out


def regenerate(page: str, cheap_only: bool = False) -> str:
    """The page's text with every generated region (or every cheap one) rendered now."""
    text = (ROOT / page).read_text(encoding="utf-8")
    for region in reversed(list(regions(page))):
        if cheap_only and not region.cheap:
            continue
        text = text[:region.start] + render(region) + text[region.end:]
    return text


def normalise(text: str) -> str:
    for pattern in VOLATILE:
        text = pattern.sub("<time>", text)
    return "\n".join(line.rstrip() for line in text.split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--cheap", action="store_true", help="only the regions marked cheap")
    parser.add_argument("--page", action="append", choices=PAGES, metavar="PAGE",
                        help="only this page (repeatable); its formulation pages are left")
    options = parser.parse_args(argv)
    stale = 0
    for page in options.page or PAGES:
        old = (ROOT / page).read_text(encoding="utf-8")
        new = regenerate(page, options.cheap)
        if normalise(new) == normalise(old):
            continue
        if options.check:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), page, page))
        else:
            (ROOT / page).write_text(new, encoding="utf-8")
            print(f"rewrote {page}")
    if not options.cheap and not options.page:
        for page, export_argv in formulation_pages():
            if options.check:
                continue  # tests/test_export.py compares these pages with the command's output
            code, output = run(export_argv)
            if code != 0:
                raise RuntimeError(f"perfcost {shlex.join(export_argv)}: {output}")
            print(f"regenerated {page}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
