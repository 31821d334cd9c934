"""The docs cannot go stale: every sample, table and image README.md and docs/ show is produced
by ``docs/generate.py``, and this file re-runs it.

- Each generated region is rendered again and compared with the page (timings masked): a
  command whose output changed fails here until ``python docs/generate.py`` is run.
- No command output is typed by hand: a code block that starts with ``$ perfcost`` sits in a
  generated region, and every image a page shows is drawn by a region's command.
- Every ``perfcost`` command a page shows in code (README's question table included) runs
  without error -- with its ``--plot``/``-o`` files redirected to a temporary folder.
- README's Python example runs as written.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import generate  # noqa: E402


#: Regions another test checks with the results it computes anyway: every ``perfcost
#: validate`` region (README's table and each suite's printed table) is rendered from the rows
#: tests/test_validation.py evaluates (every validation case, which takes minutes; running
#: the suites again here would double that).
def _checked_elsewhere(region: generate.Region) -> bool:
    return (region.command.split()[:2] == ["perfcost", "validate"]
            or region.command in CHECKED_ELSEWHERE)


#: Regions whose command another test runs anyway, and that test checks the region from its
#: own result.
CHECKED_ELSEWHERE = {
    "perfcost evaluate deepseek-v3-pretrain-h800":
        "tests/test_validation.py::test_deepseek_v3_layout_fits_as_counted_by_hand",
    "serving_studies": "each row by the test it names (tests/test_serving_features.py, "
                       "tests/test_serving_wide_ep.py)",
}


ALL_REGIONS = [r for page in generate.PAGES for r in generate.regions(page)
               if not _checked_elsewhere(r)]
#: Tables made from the measured kernel databases (pip install "perfcost[kernels]").
NEEDS_KERNELS_EXTRA = {"heldout", "floor"}
#: Inline or fenced text that describes a command's syntax rather than running one.
PLACEHOLDER = re.compile(r"\b[A-Z]{3,}\b|\[|\]|\.\.\.|<|>|\bNAME\b")
#: Options whose value is a file the command writes: redirected to a temporary folder.
WRITES = ("--plot", "--csv", "-o", "--output", "--write-lp")


def _region_id(region: generate.Region) -> str:
    return f"{region.page}:{region.command[:60]}"


@pytest.mark.parametrize("region", ALL_REGIONS, ids=_region_id)
def test_generated_region_is_current(region: generate.Region, tmp_path: Path) -> None:
    """What the region's command prints today is what the page shows."""
    if region.kind == "table" and region.argv[0] in NEEDS_KERNELS_EXTRA:
        # Not an install of the test extras: the measured tables are an optional extra that
        # CI does not install (tests/data holds extracts for the fitting tests).
        pytest.importorskip("aiconfigurator_core", reason="the held-out and floor tables run "
                            "perfcost calibrate --database, which needs the kernels extra")
    argv = None
    if region.kind == "command" and any(w in region.argv for w in WRITES):
        # Draw the image into tmp_path: the test must not touch the committed one.
        argv = _redirected(region.argv, tmp_path)
    expected = generate.render(region, argv)
    assert generate.normalise(expected) == generate.normalise(region.body), (
        f"{region.page} is stale for '{region.command}': run python docs/generate.py")


def _redirected(argv: list[str], folder: Path) -> list[str]:
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word in WRITES:
            out[i + 1] = str(folder / Path(out[i + 1]).name)
    return out


def test_no_sample_is_typed_by_hand() -> None:
    """Every ``$ perfcost`` block lies in a generated region, and every image is drawn by the
    command of one."""
    for page in generate.PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        spans = [(r.start, r.end) for r in generate.regions(page)]
        for match in re.finditer(r"```[a-z]*\n\$ perfcost", text):
            assert any(a <= match.start() < b for a, b in spans), (
                f"{page}: a hand-typed sample at offset {match.start()}")
        drawn = {Path(word).name for r in ALL_REGIONS if r.kind == "command"
                 for word in r.argv}
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert Path(image).name in drawn, (
                f"{page}: image {image} is drawn by no generated region's command")


#: Commands a page shows that cannot run here, and why.
NOT_HERE = {
    # Run and checked by their own tests (CI minutes, not coverage):
    "perfcost plan llm-org-2025": "tests/test_fleet.py solves the built-in fleet",
    "perfcost plan llm-org-2025 --plot gantt.png": "tests/test_fleet.py draws the schedule",
    "perfcost plan llm-org-2025 --json --write-lp fleet.lp":
        "tests/test_fleet.py checks the JSON and the LP file",
    "perfcost export llama3-70b-h100 --format latex":
        "tests/test_export_latex.py exports and checks the LaTeX",
    "perfcost validate trtllm-ttft": "tests/test_serving_validation.py runs the suite",
    "perfcost evaluate cases/validation/deepseek-v3-pretrain-h800.toml":
        "tests/test_validation.py evaluates this case (suite deepseek-v3) and "
        "tests/test_validation.py checks its memory breakdown; the report of a "
        "DeepSeek-V3 configuration is drawn in tests/test_solve.py (deepseek-v3-2048-h800)",
    "perfcost calibrate k.json --hardware h100-sxm":
        "k.json is what benchmarks/kernels.py measures on a GPU; tests/test_calibrate.py fits "
        "the shipped H100 measurements (test_h100_file_with_steadier_timing_fits_closer)",
    "perfcost calibrate benchmarks/data/h100-sxm-kernels.json --hardware h100-sxm -o "
    "my-h100.toml": "tests/test_calibrate.py fits this file and runs the command with -o on "
                    "the H200 file (test_cli_writes_a_loadable_entry_and_prints_every_row)",
}


#: Pages whose every command another test runs and checks the output of.
RUN_ELSEWHERE_PAGES = {"docs/walkthrough.md": "tests/test_walkthrough.py"}


def _run_elsewhere(argv: list[str]) -> bool:
    """``perfcost solve STUDY`` of a built-in study as is: tests/test_solve.py solves every
    built-in study (test_study_cases, test_serving_study_cases), the largest in tens of
    seconds, so this file does not solve them again."""
    from perfcost.solver.case import catalog

    return len(argv) == 2 and argv[0] == "solve" and argv[1] in catalog.entries("studies")


def _mention(argv: list[str]) -> bool:
    """True for a command named without the arguments it requires (``perfcost evaluate`` in
    prose): a reference to the command, not an invocation."""
    import typer
    from perfcost.solver.cli.main import app

    group = typer.main.get_command(app)
    words = [w for w in argv if not w.startswith("-")]
    if not words:
        return False
    command = group.commands.get(words[0])  # type: ignore[attr-defined]
    if command is None:
        return False
    if len(argv) == 1 and any(p.param_type_name == "argument" for p in command.params):
        return True  # `perfcost calibrate` in prose: the command, named
    required = [p for p in command.params if p.required]
    return len(words) - 1 < sum(1 for p in required if p.param_type_name == "argument") or any(
        p.param_type_name == "option" and not any(o in argv for o in p.opts) for p in required)


def _shown_commands() -> list[tuple[str, str]]:
    """(page, command) for every runnable ``perfcost`` command in code on a page."""
    found: dict[str, str] = {}
    for page in generate.PAGES:
        if page in RUN_ELSEWHERE_PAGES:
            continue
        text = (ROOT / page).read_text(encoding="utf-8")
        text = generate.REGION.sub("", text)  # regions are run by the test above
        candidates = re.findall(r"`(perfcost [^`]+)`", text)
        for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.DOTALL):
            joined = block.replace("\\\n", " ")
            candidates += [line.split("#")[0].strip() for line in joined.split("\n")
                           if line.strip().startswith("perfcost ")]
        for command in candidates:
            command = " ".join(command.split())
            if PLACEHOLDER.search(command) or "|" in command or command in NOT_HERE:
                continue
            if _mention(shlex.split(command)[1:]) or _run_elsewhere(shlex.split(command)[1:]):
                continue
            found.setdefault(command, page)
    return sorted((page, command) for command, page in found.items())


SHOWN = _shown_commands()


@pytest.mark.parametrize(("page", "command"), SHOWN, ids=[c[:70] for _p, c in SHOWN])
def test_every_shown_command_runs(page: str, command: str, tmp_path: Path) -> None:
    argv = _redirected(shlex.split(command)[1:], tmp_path)
    code, output = generate.run(argv)
    # 0: done; 1: an infeasible search or a validation miss is still an answer. 2 is bad input.
    assert code in (0, 1), f"{page}: '{command}' exited {code}: {output[-500:]}"


def test_readme_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, "README shows a Python example"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], "README.md", "exec"), {})  # the README's own example
    lines = printed.getvalue().strip().split("\n")
    assert len(lines) == 3
    assert re.fullmatch(r"\d+ \d+ [\d.]+ s", lines[0])
    assert lines[1].startswith("MFU ")


def test_generator_finds_what_it_should() -> None:
    """The region grammar: kinds, options, and an unknown option is an error."""
    assert {r.kind for r in ALL_REGIONS} >= {"output", "command", "tree"}
    assert all(r.table in (None, *generate.TABLES) for r in ALL_REGIONS)
    assert generate.normalise("solve 6.59 s") == generate.normalise("solve 0.19 s")
    assert generate.normalise("6.59 s") != generate.normalise("0.19 s")
