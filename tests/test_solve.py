"""``perfcost solve``: the best configuration of a case, through the command line.

Runs the command through typer's ``CliRunner`` on the built-in studies and on small case files
written to ``tmp_path``: the output (table and ``--json``), the exit codes (0 optimal,
1 infeasible with the smallest violation explained, 2 bad input, 3 the engine stopped without
proving an optimum), ``--top``, ``--engine``, ``--show-compiled`` and the notes of pruned
values. The acceptance case (GPT-3 175B on 4096 A100s with the whole parallel space open) is
checked against a brute-force evaluation of every candidate that does not go through any
engine's ranking code. Speed lives in ``benchmarks/``; nothing here asserts a wall time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.cli.main import app
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines import milp as engine_milp
from perfcost.solver.engines.enumerate import EnumerateEngine
from perfcost.solver.engines.milp import MilpEngine
from perfcost.solver.problem.evaluate import Evaluator
from perfcost.solver.problem.space import candidates
from typer.testing import CliRunner

runner = CliRunner()
GIB = 2.0**30

#: GPT-3 175B on 4096 A100-80GB, global batch 1536, no [parallelism] section: tp, pp, dp,
#: micro_batch, recompute, sequence_parallel, zero and virtual_stages are all searched.
ACCEPTANCE = """\
model = "gpt3-175b"
hardware = "a100-80gb"
network = "dgx-a100"
[cluster]
gpus = 4096
[training]
global_batch = 1536
"""

#: A small co-design case (two GPU types, two GPU counts, memory tight enough to bind) that
#: both engines solve in about a second.
SMALL = """\
hardware = ["a100-80gb", "h100-sxm"]
network = "dgx-a100"
[model]
base = "gpt-1.7b"
layers = 8
hidden = 1024
heads = 16
ffn = 4096
[cluster]
gpus = [8, 16]
[training]
global_batch = 32
[parallelism]
micro_batch = [1, 2]
cp = 1
virtual_stages = [1, 2]
zero = [0, 1]
[constraints]
# A few GiB beyond the framework's 3 GiB reserve: memory binds.
memory_headroom = 0.065
"""


#: The --json key that reports each objective's value.
REPORTED = {"iteration_time": "iteration_time_s", "tokens_per_s": "iteration_time_s",
            "time_to_train": "time_to_train_s", "cost": "cost_usd", "tokens_per_dollar": "cost_usd"}


def write(tmp_path: Path, text: str, name: str = "case.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def solve(*args: str) -> Any:
    return runner.invoke(app, ["solve", *args])


def solve_json(*args: str, code: int = 0) -> dict[str, Any]:
    result = solve(*args, "--json")
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_one_line_error(result: Any, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, one ``error: ...`` line on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    err = result.stderr
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# -- the built-in studies ------------------------------------------------------------------

def _is_serving(name: str) -> bool:
    return case_mod.load(name).serving is not None


STUDIES = sorted(catalog.entries("studies"))
TRAINING_STUDIES = [n for n in STUDIES if not _is_serving(n)]


@pytest.mark.parametrize("name", sorted(set(STUDIES) - set(TRAINING_STUDIES)))
def test_serving_study_cases(name: str) -> None:
    """Serving studies solve with the default engine too (their output: tests/test_serving)."""
    table = solve(name)
    assert table.exit_code == 0, (table.stdout, table.stderr)
    assert "optimal" in table.stdout


@pytest.mark.parametrize("name", TRAINING_STUDIES)
def test_study_cases(name: str) -> None:
    """Every built-in training study solves to an optimum. Solved once (the largest takes
    tens of seconds): the table is drawn from the same solution the command prints, and the
    data are the command's --json fields (tests/test_api.py checks they are the same)."""
    import io

    import perfcost
    from perfcost.solver.report import tables as report
    from rich.console import Console

    answer = perfcost.solve(name)
    text = io.StringIO()
    Console(file=text, width=150).print(report.solution(answer.detail))
    drawn = text.getvalue()
    assert "optimal" in drawn
    assert "iteration time" in drawn and "constraints" in drawn
    assert any(c in drawn for c in "┌┏"), "no table drawn"
    data = answer.to_dict()
    assert data["status"] == "optimal"
    assert data["config"] and set(data["config"]) >= {"tp", "pp", "dp", "micro_batch"}
    assert data["iteration_time_s"] > 0 and data["memory_per_gpu_bytes"] > 0
    assert data["value"] == pytest.approx(data[REPORTED[data["objective"]]], rel=1e-12)
    assert "memory" in [c["name"] for c in data["constraints"]]
    for c in data["constraints"]:
        assert c["value"] <= c["limit"]
    # What is recommended runs in the case's framework (megatron-core unless it names another)
    # and leaves the framework's memory reserve: the reserve is a term of memory_per_gpu.
    from perfcost.solver.case.schema import load
    from perfcost.solver.problem.specs import framework_problems

    config = data["config"]
    assert framework_problems(load(name), config) == [], config
    values = answer.detail.result.values
    assert values["framework_reserve"] > 0
    assert values["memory_per_gpu"] == pytest.approx(data["memory_per_gpu_bytes"])


# -- the acceptance case -------------------------------------------------------------------

def test_acceptance_gpt3_175b_on_4096_a100(tmp_path: Path) -> None:
    path = write(tmp_path, ACCEPTANCE)
    data = solve_json(path)
    assert data["status"] == "optimal"
    assert data["objective"] == "iteration_time"
    assert data["stats"]["solve_s"] > 0  # reported (the time itself is benchmarks/' business)
    assert data["notes"] == []

    # Brute force, independent of every engine's ranking: evaluate all candidates directly.
    problem = build_problem(case_mod.load(path))
    assert problem.constraints[0].limits == (80 * GIB,)
    cands = candidates(problem.space)
    assert len(cands) > 10_000  # the whole space is open
    values = Evaluator(problem.formulation, ["iteration_time", "memory_per_gpu"])(
        cands.columns, problem.parameter_arrays(cands.system))
    time_s = np.broadcast_to(values["iteration_time"], (len(cands),))
    fits = values["memory_per_gpu"] <= 80 * GIB
    assert fits.any() and not fits.all()  # memory matters
    best = int(np.flatnonzero(fits)[np.argmin(time_s[fits])])
    assert data["value"] == pytest.approx(float(time_s[best]), rel=1e-12)
    assert data["iteration_time_s"] == pytest.approx(float(time_s[best]), rel=1e-12)
    assert data["memory_per_gpu_bytes"] <= 80 * GIB
    assert data["gpus"] == 4096
    cfg = data["config"]
    assert cfg["tp"] * cfg["pp"] * cfg["dp"] * cfg["cp"] == 4096
    assert 1536 % (cfg["dp"] * cfg["micro_batch"]) == 0


def test_top_three_in_order(tmp_path: Path) -> None:
    data = solve_json(write(tmp_path, ACCEPTANCE), "--top", "3")
    ranked = [r["objective"] for r in data["top"]]
    assert len(ranked) == 3
    assert ranked == sorted(ranked)
    assert ranked[0] == pytest.approx(data["value"], rel=1e-12)
    assert len({json.dumps(r["config"], sort_keys=True) for r in data["top"]}) == 3
    table = solve(write(tmp_path, ACCEPTANCE), "--top", "3")
    assert table.exit_code == 0
    assert "best configurations" in table.stdout


def test_top_three_milp_matches_enumeration(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    by_enum = solve_json(path, "--engine", "enumerate", "--top", "3")
    by_milp = solve_json(path, "--engine", "milp", "--top", "3")
    assert by_milp["engine"] == "milp"
    assert [r["objective"] for r in by_milp["top"]] == pytest.approx(
        [r["objective"] for r in by_enum["top"]], rel=1e-9)


# -- pruned values, infeasible problems ----------------------------------------------------

def test_invalid_value_in_a_list_is_pruned_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, ACCEPTANCE)
    data = solve_json(path, "--set", "parallelism.tp=[1, 2, 3, 4, 5, 8]")
    assert data["status"] == "optimal"
    assert data["notes"] == [
        "parallelism.tp = 5 pruned: expected a divisor of model.heads = 96"]
    assert data["config"]["tp"] != 5
    table = solve(path, "--set", "parallelism.tp=[1, 2, 3, 4, 5, 8]")
    assert table.exit_code == 0
    assert "note" in table.stdout and "tp = 5 pruned" in table.stdout


def test_every_value_invalid_is_an_input_error(tmp_path: Path) -> None:
    result = solve(write(tmp_path, ACCEPTANCE), "--set", "parallelism.tp=[5, 7]")
    assert_one_line_error(result, "parallelism.tp", "no value is valid")


@pytest.mark.parametrize("setting", ["constraints.memory_headroom=0.01", "cluster.gpus=8"])
def test_infeasible_explains_the_smallest_violation(tmp_path: Path, setting: str) -> None:
    path = write(tmp_path, ACCEPTANCE)
    table = solve(path, "--set", setting)
    assert table.exit_code == 1, (table.stdout, table.stderr)
    assert "infeasible" in table.stdout and "least needed" in table.stdout
    data = solve_json(path, "--set", setting, code=1)
    assert data["status"] == "infeasible" and data["value"] is None
    assert data["config"] == {}
    assert any("no configuration satisfies memory: the least needed is" in line
               for line in data["explanation"]), data["explanation"]


def test_structurally_empty_space_is_infeasible(tmp_path: Path) -> None:
    # 96 layers, global batch 1536: pp = 7 divides neither the layers nor 4096 / 7 GPUs.
    data = solve_json(write(tmp_path, ACCEPTANCE), "--set", "cluster.gpus=7",
                      "--set", "parallelism.tp=1", "--set", "parallelism.cp=1", code=1)
    assert data["status"] == "infeasible"
    assert "rule" in " ".join(data["explanation"])


# -- engines -------------------------------------------------------------------------------

def test_milp_matches_enumeration(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    by_enum = solve_json(path, "--engine", "enumerate")
    by_milp = solve_json(path, "--engine", "milp")
    assert by_enum["engine"] == "enumerate" and by_milp["engine"] == "milp"
    assert by_milp["status"] == by_enum["status"] == "optimal"
    assert by_milp["value"] == pytest.approx(by_enum["value"], rel=1e-9)
    assert by_milp["memory_per_gpu_bytes"] <= by_milp["constraints"][0]["limit"]
    # Memory binds here: both engines say so.
    assert [c["binding"] for c in by_enum["constraints"]] == [True]
    assert [c["binding"] for c in by_milp["constraints"]] == [True]
    assert by_milp["constraints"][0]["better_if_relaxed"] == pytest.approx(
        by_enum["constraints"][0]["better_if_relaxed"], rel=1e-9)
    table = solve(path, "--engine", "milp")
    assert table.exit_code == 0 and "MILP rounds" in table.stdout


def test_show_compiled(tmp_path: Path) -> None:
    result = solve(write(tmp_path, SMALL), "--show-compiled")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"objective", "variables", "factors", "objective_terms", "constraints"}
    assert data["objective"] == "iteration_time"
    assert "memory" in data["constraints"]
    n_factors = len(data["factors"])
    for term in data["objective_terms"] + data["constraints"]["memory"]:
        assert all(0 <= f < n_factors for f in term["factors"])
    for f in data["factors"]:
        size = int(np.prod([len(data["variables"][v]) for v in f["variables"]]))
        assert len(f["values"]) == size


# -- bad input -----------------------------------------------------------------------------

def test_unknown_engine(tmp_path: Path) -> None:
    assert_one_line_error(solve(write(tmp_path, SMALL), "--engine", "foo"), "--engine", "foo")


def test_unknown_objective(tmp_path: Path) -> None:
    assert_one_line_error(solve(write(tmp_path, SMALL), "--objective", "foo"),
                          "search.objective", "foo")


def test_cost_objective_needs_a_price(tmp_path: Path) -> None:
    # b200 has a purchase price but no GPU-hour price; the case sets none either.
    result = solve(write(tmp_path, SMALL), "--set", 'hardware="b200"', "--objective", "cost")
    assert_one_line_error(result, "search.objective", "cost", "needs a GPU-hour price")


def test_cost_objective_with_a_price(tmp_path: Path) -> None:
    data = solve_json(write(tmp_path, SMALL), "--set", 'hardware="b200"',
                      "--set", 'cluster.gpu_hour_price="2 USD/h"', "--objective", "cost")
    assert data["status"] == "optimal" and data["objective"] == "cost"
    assert data["value"] == pytest.approx(data["cost_usd"], rel=1e-12)


def test_missing_gpu_count(tmp_path: Path) -> None:
    text = ACCEPTANCE.replace("[cluster]\ngpus = 4096\n", "")
    assert "gpus" not in text
    assert_one_line_error(solve(write(tmp_path, text)), "cluster.gpus", "missing")


# -- an engine that stops without proving the optimum ---------------------------------------

def test_time_limit_is_a_status_not_an_optimum(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_milp, "TIME_LIMIT_S", 1e-6)
    path = write(tmp_path, SMALL)
    result = MilpEngine().solve(build_problem(case_mod.load(path)))
    assert result.status == "time_limit"
    assert result.value is None and result.config == {} and result.explanation
    cli = solve(path, "--engine", "milp")
    assert cli.exit_code == 3, (cli.stdout, cli.stderr)
    assert "time_limit" in cli.stdout and "HiGHS stopped" in cli.stdout
    data = solve_json(path, "--engine", "milp", code=3)
    assert data["status"] == "time_limit"


def test_small_case_needs_several_rounds(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The premise of the next test: with every term in log space (none written linearly),
    the outer-approximation loop needs more than one round."""
    monkeypatch.setattr(engine_milp, "LINEAR_LIMIT", 0)
    result = MilpEngine().solve(build_problem(case_mod.load(write(tmp_path, SMALL))),
                                explain=False)
    assert result.status == "optimal"
    assert result.stats["iterations"] >= 2


def test_iteration_cap_is_a_status_not_an_optimum(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_milp, "MAX_ITERATIONS", 1)
    monkeypatch.setattr(engine_milp, "LINEAR_LIMIT", 0)
    path = write(tmp_path, SMALL)
    problem = build_problem(case_mod.load(path))
    result = MilpEngine().solve(problem, explain=False)
    # One round cannot prove the optimum here (test_small_case_needs_several_rounds).
    assert result.status != "optimal", (result.value, result.stats["iterations"])
    assert result.status == "time_limit"  # the status the engine uses for "stopped early"
    assert solve(path, "--engine", "milp").exit_code == 3


def test_enumeration_agrees_on_the_small_case(tmp_path: Path) -> None:
    """In-process, the same Result shape from both engines (the CLI tests above use JSON)."""
    problem = build_problem(case_mod.load(write(tmp_path, SMALL)))
    by_enum = EnumerateEngine().solve(problem)
    by_milp = MilpEngine().solve(problem)
    assert by_enum.ok and by_milp.ok
    assert by_milp.value == pytest.approx(by_enum.value, rel=1e-9)
    assert by_milp.system in {"a100-80gb + dgx-a100", "h100-sxm + dgx-a100"}
