"""``perfcost evaluate``: the JSON contract, its internal consistency, and a light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from perfcost.solver.case import schema as case_mod
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

CASE = "gpt3-175b-a100"
KEYS = ("iteration_time_s", "tokens_per_s", "mfu", "hfu", "model_tflops_per_gpu",
        "memory_per_gpu_bytes", "time_to_train_s", "cost_usd", "breakdown", "config",
        "per_layer")


def _evaluate(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["evaluate", CASE, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def out() -> dict[str, Any]:
    return _evaluate()


@pytest.fixture(scope="module")
def case() -> case_mod.Case:
    return case_mod.load(CASE)


def test_json_has_the_documented_keys(out: dict[str, Any]) -> None:
    missing = [k for k in KEYS if k not in out]
    assert not missing
    for k in KEYS:
        if k not in ("breakdown", "config", "per_layer"):
            assert isinstance(out[k], float) and out[k] > 0, k
    assert set(out["per_layer"]) == {"forward_s", "backward_s"}
    assert all(v > 0 for v in out["per_layer"].values())


def test_config_is_the_case_configuration(out: dict[str, Any], case: case_mod.Case) -> None:
    par = case.parallelism
    cfg = out["config"]
    for key in ("tp", "pp", "dp", "micro_batch", "virtual_stages", "recompute",
                "sequence_parallel"):
        assert cfg[key] == getattr(par, key), key
    assert cfg["tp"] * cfg["pp"] * cfg["dp"] * cfg["cp"] == case.cluster.gpus


def test_breakdown_adds_up_to_iteration_time(out: dict[str, Any]) -> None:
    terms = out["breakdown"]
    assert len(terms) >= 5
    assert all(v >= 0 for v in terms.values())
    assert sum(terms.values()) == pytest.approx(out["iteration_time_s"], rel=1e-9)


def test_memory_breakdown_adds_up_to_memory_per_gpu(out: dict[str, Any]) -> None:
    terms = out["memory_breakdown"]
    assert {"weights", "gradients", "optimizer_states", "activations"} <= set(terms)
    assert sum(terms.values()) == pytest.approx(out["memory_per_gpu_bytes"], rel=1e-9)


def test_derived_figures_are_consistent(out: dict[str, Any], case: case_mod.Case) -> None:
    tokens = case.training.global_batch * case.model.seq_len
    assert out["tokens_per_s"] == pytest.approx(tokens / out["iteration_time_s"], rel=1e-9)
    peak = case.hardware.peak_flops[case.training.precision]
    assert out["mfu"] == pytest.approx(out["model_tflops_per_gpu"] * 1e12 / peak, rel=1e-9)
    assert 0 < out["mfu"] <= out["hfu"] < 1
    assert out["time_to_train_s"] == pytest.approx(case.training.tokens / out["tokens_per_s"],
                                                   rel=1e-9)
    gpus = case.cluster.gpus
    assert out["cost_usd"] == pytest.approx(
        out["time_to_train_s"] * gpus * case.hardware.gpu_hour_price, rel=1e-9)
    assert out["memory_per_gpu_bytes"] < case.hardware.hbm_capacity


def test_set_override_changes_the_configuration(out: dict[str, Any]) -> None:
    full = _evaluate("--set", 'parallelism.recompute="full"')
    assert full["config"]["recompute"] == "full"
    assert full["iteration_time_s"] > out["iteration_time_s"]
    assert full["memory_per_gpu_bytes"] < out["memory_per_gpu_bytes"]
    assert full["hfu"] > full["mfu"]


def test_bad_override_is_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["evaluate", CASE, "--json", "--set", "parallelism.tp=7"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: parallelism.tp")


_NO_SOLVER_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from perfcost.solver.cli.main import app
result = CliRunner().invoke(app, ["evaluate", "gpt3-175b-a100", "--json"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pyomo", "highspy"))
print(json.dumps({"exit_code": result.exit_code, "heavy": heavy,
                  "evaluated": "iteration_time_s" in json.loads(result.stdout)}))
"""


def test_evaluate_imports_neither_pyomo_nor_highspy(tmp_path: Path) -> None:
    # Without the disk cache: the evaluation builds and lambdifies the formulation, the path
    # that imports the most (a cached evaluation imports not even sympy).
    env = {**os.environ, "PERFCOST_NO_CACHE": "1"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _NO_SOLVER_SCRIPT],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["exit_code"] == 0 and report["evaluated"]
    assert report["heavy"] == []
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    # The import log is live: the evaluation's own modules are in it.
    assert "perfcost.solver.problem.evaluate" in imported and "sympy" in imported
    assert not [m for m in imported if m.split(".")[0] in ("pyomo", "highspy")]


_WARM_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from perfcost.solver.cli.main import app
result = CliRunner().invoke(app, ["evaluate", "gpt3-175b-a100", "--json"])
print(json.dumps({"exit_code": result.exit_code, "sympy": "sympy" in sys.modules}))
"""


def test_a_cached_evaluation_imports_no_sympy(tmp_path: Path) -> None:
    """The second evaluation of a case reads its function from the disk cache: reading the
    case, its specs and the cached function imports no sympy (a third of a second)."""
    env = {**os.environ, "PERFCOST_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PERFCOST_NO_CACHE", None)
    reports = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _WARM_SCRIPT], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path, check=False, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [r["exit_code"] for r in reports] == [0, 0]
    assert reports[0]["sympy"] and not reports[1]["sympy"]


def test_cases_of_one_structure_share_one_function_with_their_own_values(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two of Narayanan's GPT models (other sizes, splits and batches, one structure): the
    second evaluation builds nothing, and its values are those of a formulation built from
    its own specs, quantity by quantity."""
    from perfcost.solver.problem import evaluate
    from perfcost.solver.problem import specs as problem
    from perfcost.solver.problem.numeric import from_formulation

    monkeypatch.setattr(evaluate, "_BY_STRUCTURE", {})
    evaluate.evaluate_case(case_mod.load("narayanan2021-t1-gpt-1.7b"))
    case = case_mod.load("narayanan2021-t1-gpt-18.4b")
    shared = evaluate.evaluate_case(case)
    assert len(evaluate._BY_STRUCTURE) == 1
    s = problem.specs(problem.single(case))
    own = from_formulation(evaluate.build("training", s.model, s.hardware, s.network,
                                          s.training))(problem.decision_codes(shared.config))
    assert own.keys() == shared.values.keys()
    for name, value in own.items():
        assert shared.values[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    assert shared.numbers.parameters["layers"].value != evaluate.evaluate_case(
        case_mod.load("narayanan2021-t1-gpt-1.7b")).numbers.parameters["layers"].value
