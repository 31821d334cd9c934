"""The public Python API (``import perfcost``): the same answers, with the same field names, as
the command line's ``--json``; cases by name, path, dict or loaded object; clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import perfcost
import pytest
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()

SMALL_CASE = {
    "model": "gpt3-175b", "hardware": "a100-80gb", "network": "dgx-a100",
    "cluster": {"gpus": 1024}, "training": {"global_batch": 1536},
    "parallelism": {"tp": 8, "pp": 8, "dp": 16, "micro_batch": 1},
}


def cli_json(*args: str) -> object:
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_version_matches_the_command_line() -> None:
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0
    assert out.output.strip() == f"perfcost {perfcost.__version__}"
    assert perfcost.__version__ == perfcost.version()


def test_evaluate_gives_the_fields_of_evaluate_json() -> None:
    api = perfcost.evaluate("gpt3-175b-a100", set={"parallelism.micro_batch": 2})
    cli = cli_json("evaluate", "gpt3-175b-a100", "--set", "parallelism.micro_batch=2")
    assert api.kind == "evaluation"
    assert api.to_dict() == cli
    assert api["iteration_time_s"] == pytest.approx(cli["iteration_time_s"])  # type: ignore[index]
    assert json.loads(api.to_json()) == cli


def test_solve_gives_the_fields_of_solve_json() -> None:
    api = perfcost.solve("gpt3-175b-4096-a100")
    cli = cli_json("solve", "gpt3-175b-4096-a100")
    assert api.ok
    assert set(api.to_dict()) == set(cli)  # type: ignore[arg-type]
    assert api.to_dict()["config"] == cli["config"]  # type: ignore[index]
    assert api["value"] == pytest.approx(cli["value"])  # type: ignore[index]


def test_a_case_by_name_path_dict_or_object_is_the_same_case(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text('model = "gpt3-175b"\nhardware = "a100-80gb"\nnetwork = "dgx-a100"\n'
                    "[cluster]\ngpus = 1024\n[training]\nglobal_batch = 1536\n"
                    "[parallelism]\ntp = 8\npp = 8\ndp = 16\nmicro_batch = 1\n")
    from_dict = perfcost.load(SMALL_CASE)
    from_path = perfcost.load(path)
    assert from_dict.model == from_path.model
    assert from_dict.parallelism == from_path.parallelism
    assert perfcost.load(from_dict) is from_dict
    a = perfcost.evaluate(SMALL_CASE)["iteration_time_s"]
    b = perfcost.evaluate(str(path))["iteration_time_s"]
    assert a == pytest.approx(b)


def test_overrides_as_mapping_or_texts_agree() -> None:
    # Without TP overlap, so that the NVLink bandwidth shows in the step.
    a = perfcost.evaluate("gpt3-175b-a100", set={"network.scale_up.bandwidth": "600 GB/s",
                                                  "training.tp_overlap": False})
    b = perfcost.evaluate("gpt3-175b-a100", set=["network.scale_up.bandwidth=\"600 GB/s\"",
                                                  "training.tp_overlap=false"])
    base = perfcost.evaluate("gpt3-175b-a100", set={"training.tp_overlap": False})
    assert a["iteration_time_s"] == pytest.approx(b["iteration_time_s"])
    assert a["iteration_time_s"] < base["iteration_time_s"]  # faster NVLink, faster step


def test_bad_input_is_a_case_error_naming_the_field() -> None:
    with pytest.raises(perfcost.CaseError, match=r"parallelism\.tp = 0"):
        perfcost.evaluate("gpt3-175b-a100", set={"parallelism.tp": 0})
    with pytest.raises(perfcost.CaseError, match="engine"):
        perfcost.solve("gpt3-175b-a100", engine="simplex")
    with pytest.raises(perfcost.CaseError, match="case"):
        perfcost.load(42)  # type: ignore[arg-type]
    with pytest.raises(perfcost.CaseError, match="set"):
        perfcost.load("gpt3-175b-a100", set="parallelism.tp=4")  # type: ignore[arg-type]


def test_export_cost_sweep_and_listing() -> None:
    text = perfcost.export("gpt3-175b-a100", "python", quantities=["iteration_time"])
    compile(text, "export.py", "exec")  # the generated module is valid Python
    assert "def iteration_time(" in text
    priced = perfcost.cost("h100-like")
    assert priced.to_dict() == cli_json("cost", "h100-like")
    rows = perfcost.sweep("gpt3-175b-a100", {"parallelism.micro_batch": [1, 2]})
    assert [r["parallelism.micro_batch"] for r in rows.to_dict()] == [1, 2]
    names = {(e["kind"], e["name"]) for e in perfcost.list_cases().to_dict()}
    assert ("study", "gpt3-175b-4096-a100") in names or any(
        n == "gpt3-175b-4096-a100" for _k, n in names)


def test_import_perfcost_stays_light() -> None:
    """``import perfcost`` (which every command pays) loads neither pydantic nor sympy."""
    code = ("import sys, perfcost; "
            "print(sorted(m for m in ('sympy', 'pydantic', 'numpy', 'pint') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
