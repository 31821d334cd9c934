"""``perfcost compare`` and ``perfcost evaluate --baseline``: cases side by side, each number's
change against the baseline, the same in ``--json``."""

from __future__ import annotations

import json

import pytest
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
# Faster HBM: the memory-bound kernels (norms, activations, optimizer) take less time.
FASTER_HBM = 'hardware.hbm_bandwidth="3 TB/s"'


def _json(args: list[str]) -> dict:
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_baseline_shows_the_what_if_against_the_case_as_written() -> None:
    data = _json(["evaluate", "gpt3-175b-a100", "--set", FASTER_HBM, "--baseline"])
    base, changed = data["cases"]
    assert base["ratio_to_baseline"]["iteration_time_s"] == 1.0
    # Faster HBM: less time in memory-bound kernels, the same memory.
    assert changed["ratio_to_baseline"]["iteration_time_s"] < 1.0
    assert changed["ratio_to_baseline"]["memory_per_gpu_bytes"] == pytest.approx(1.0)
    assert changed["metrics"]["iteration_time_s"] == pytest.approx(
        base["metrics"]["iteration_time_s"] * changed["ratio_to_baseline"]["iteration_time_s"])
    # GPU-hours are the GPU count times the time to train.
    gpu_hours = base["metrics"]["gpu_hours"]
    assert gpu_hours == pytest.approx(1024 * base["metrics"]["time_to_train_s"] / 3600)


def test_compare_cases_and_variants_in_one_table() -> None:
    data = _json(["compare", "gpt3-175b-a100", "--variant", "parallelism.micro_batch=2",
                  "--variant", f"{FASTER_HBM};parallelism.micro_batch=2"])
    names = [c["name"] for c in data["cases"]]
    assert names[0] == "gpt3-175b-a100" and len(names) == 3
    assert data["cases"][1]["config"]["micro_batch"] == 2
    # Both changes together are faster than the micro-batch change alone.
    assert (data["cases"][2]["metrics"]["iteration_time_s"]
            < data["cases"][1]["metrics"]["iteration_time_s"])
    text = runner.invoke(app, ["compare", "gpt3-175b-a100", "--variant",
                               "parallelism.micro_batch=2"])
    assert text.exit_code == 0 and "changes against the first" in text.output


@pytest.mark.parametrize(("args", "fragment"), [
    (["evaluate", "gpt3-175b-a100", "--baseline"], "--baseline"),
    (["compare", "gpt3-175b-a100"], "two or more"),
    (["compare", "gpt3-175b-a100", "--variant", " ; "], "--variant"),
    (["compare", "gpt3-175b-a100", "serve-llama3-8b-h100"], "one kind"),
])
def test_bad_comparisons_are_one_line(args: list[str], fragment: str) -> None:
    out = runner.invoke(app, args)
    assert out.exit_code == 2
    assert fragment in out.output and "Traceback" not in out.output
