"""Bad input through the command line: every mistake in a case file or a ``--set`` ends as one
line on stderr -- ``error: field = value: expected ...`` -- with exit code 2 and no traceback.

Each test writes a small case file to ``tmp_path`` and runs ``perfcost evaluate`` on it through
typer's ``CliRunner`` (and a couple through a real subprocess).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case import units
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

#: The smallest valid case (and the base of every bad one below).
SMALLEST = """\
model = "gpt3-175b"
hardware = "a100-80gb"
network = "dgx-a100"
[cluster]
gpus = 1024
[training]
global_batch = 1536
[parallelism]
tp = 8
pp = 8
dp = 16
micro_batch = 1
"""

runner = CliRunner()


def write_case(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def evaluate(tmp_path: Path, text: str, *args: str) -> Any:
    path = write_case(tmp_path, text)
    return runner.invoke(app, ["evaluate", str(path), *args])


def edited(replace: dict[str, str] | None = None, append: str = "") -> str:
    """:data:`SMALLEST` with whole lines replaced (``"tp = 8"`` -> ``"tp = 5"``) and text
    appended."""
    lines = SMALLEST.splitlines()
    for old, new in (replace or {}).items():
        if old not in lines:
            raise KeyError(old)
        lines[lines.index(old)] = new
    return "\n".join(lines) + "\n" + append


def assert_one_line_error(result: Any, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, one ``error: ...`` line on stderr containing every
    fragment, and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    err = result.stderr
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    line = err.rstrip("\n")
    assert line.startswith("error: "), line
    assert "Traceback" not in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert isinstance(result.exception, SystemExit)
    return line


@cache
def smallest_json() -> dict[str, Any]:
    """``perfcost evaluate --json`` of :data:`SMALLEST` (evaluated once per session)."""
    with tempfile.TemporaryDirectory() as tmp:
        return run_json(evaluate(Path(tmp), SMALLEST, "--json"))


def run_json(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


# -- valid cases ---------------------------------------------------------------------------


def test_smallest_case_evaluates(tmp_path: Path) -> None:
    data = smallest_json()
    assert data["gpus"] == 1024
    assert data["config"]["tp"] == 8 and data["config"]["dp"] == 16
    assert 0 < data["iteration_time_s"] < math.inf
    assert 0 < data["mfu"] < 1


def test_smallest_case_prints_a_table(tmp_path: Path) -> None:
    result = evaluate(tmp_path, SMALLEST)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() and result.stderr == ""


def test_set_overrides_change_the_answer(tmp_path: Path) -> None:
    base = smallest_json()
    faster = run_json(evaluate(tmp_path, SMALLEST, "--json",
                               "--set", 'hardware.hbm_bandwidth="3 TB/s"'))
    unquoted = run_json(evaluate(tmp_path, SMALLEST, "--json",
                                 "--set", "hardware.hbm_bandwidth=3 TB/s"))
    assert faster["iteration_time_s"] < base["iteration_time_s"]
    assert unquoted["iteration_time_s"] == faster["iteration_time_s"]


def test_set_inside_a_named_section_and_a_new_name(tmp_path: Path) -> None:
    # model = "gpt3-175b" is a name; a setting inside it lays over the built-in table.
    half = run_json(evaluate(tmp_path, SMALLEST, "--json", "--set", "model.layers=48"))
    full = smallest_json()
    assert half["parameters"] < 0.6 * full["parameters"]
    small = run_json(evaluate(tmp_path, SMALLEST, "--json", "--set", "model=llama3-8b",
                              "--set", "parallelism.pp=1", "--set", "parallelism.dp=128"))
    assert 7e9 < small["parameters"] < 9e9


def test_inline_model_table(tmp_path: Path) -> None:
    text = SMALLEST.replace('model = "gpt3-175b"\n', "").replace(
        "[cluster]", """[model]
name = "tiny"
layers = 8
hidden = 1024
heads = 16
ffn = 4096
vocab = 32000
seq_len = 2048

[cluster]""").replace("gpus = 1024", "gpus = 64").replace("dp = 16", "dp = 1")
    data = run_json(evaluate(tmp_path, text.replace("global_batch = 1536", "global_batch = 64"),
                             "--json"))
    assert data["gpus"] == 64
    assert 0 < data["parameters"] < 2e8


def test_model_base_with_an_override(tmp_path: Path) -> None:
    text = SMALLEST.replace('model = "gpt3-175b"\n', "").replace(
        "[cluster]", '[model]\nbase = "gpt3-175b"\nlayers = 48\n\n[cluster]')
    data = run_json(evaluate(tmp_path, text, "--json"))
    full = smallest_json()
    assert data["parameters"] < 0.6 * full["parameters"]


def test_hardware_base_merges_nested_tables(tmp_path: Path) -> None:
    # Only efficiency.matmul.value changes; its 'source' and the rest come from the base.
    text = SMALLEST.replace('hardware = "a100-80gb"\n', "") + (
        '[hardware]\nbase = "a100-80gb"\n[hardware.efficiency.matmul]\nvalue = 0.5\n')
    slower = run_json(evaluate(tmp_path, text, "--json"))
    base = smallest_json()
    assert slower["iteration_time_s"] > base["iteration_time_s"]


@pytest.mark.parametrize(("line", "fragments"), [
    ("gemm_deepgemm_rows = true",
     ("precision.fp8_block.gemm_deepgemm_rows = True", 'write gemm_kernels = "deepgemm-sm90"')),
    ("gemm_deepgemm_sm100 = true", ('write gemm_kernels = "deepgemm-sm100"',)),
    ('gemm_kernels = "cutlass"',
     ("gemm_kernels = 'cutlass'", "'library', 'deepgemm-sm90', 'deepgemm-sm100'")),
])
def test_gemm_kernel_family_errors(tmp_path: Path, line: str,
                                   fragments: tuple[str, ...]) -> None:
    """A hardware entry names its GEMM kernel family with one key: the two flags an earlier
    ``calibrate -o`` wrote say what to write instead, an unknown family lists the known."""
    from perfcost.solver.case import catalog

    entry = catalog.entries("hardware")["h100-sxm"].read_text(encoding="utf-8")
    family = 'gemm_kernels = "deepgemm-sm90"\n'
    assert entry.count(family) == 1
    (tmp_path / "gpu.toml").write_text(entry.replace(family, line + "\n"), encoding="utf-8")
    text = SMALLEST.replace('hardware = "a100-80gb"', 'hardware = "gpu.toml"')
    assert_one_line_error(evaluate(tmp_path, text), *fragments)


def test_cases_json_lists_the_catalog() -> None:
    result = runner.invoke(app, ["cases", "--json"])
    assert result.exit_code == 0, result.stderr
    names = {e["name"] for e in json.loads(result.stdout)}
    assert {"gpt3-175b", "llama3-8b", "llama3-70b", "llama3-405b", "a100-80gb", "h100-sxm",
            "h200-sxm", "b200", "dgx-a100", "dgx-h100"} <= names


# -- bad case files ------------------------------------------------------------------------

BAD_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (case text, fragments the one error line must contain)
    "malformed-toml": (SMALLEST + "tp = = 3\n", ("case = ", "is not valid TOML", "line 13")),
    "unclosed-table": (SMALLEST.replace("[cluster]", "[cluster"), ("is not valid TOML",)),
    "missing-field": (edited({"global_batch = 1536": ""}),
                      ("training.global_batch is missing", "expected a positive integer")),
    "missing-section": (edited({"[training]": "", "global_batch = 1536": ""}),
                        ("training is missing", "expected a table")),
    "missing-model": (edited({'model = "gpt3-175b"': ""}),
                      ("model is missing", "built-in model", "[model] table")),
    "unknown-key": (edited({"tp = 8": "tensor = 8"}),
                    ("parallelism.tensor = 8", "unknown key", "known keys: tp, pp")),
    "unknown-top-level-key": ('colour = "red"\n' + SMALLEST,
                              ("colour = 'red'", "unknown key")),
    "unknown-key-in-inline-model": (
        edited({'model = "gpt3-175b"': ""},
               '[model]\nbase = "gpt3-175b"\nlayer = 48\n'),
        ("model.layer = 48", "unknown key", "layers")),
    "wrong-dimension": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\nhbm_bandwidth = "80 GB"\n'),
        ("hardware.hbm_bandwidth = '80 GB'", "expected a bandwidth", "got a size in bytes")),
    "bytes-without-unit": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\nhbm_capacity = 80\n'),
        ("hardware.hbm_capacity = 80", "with a unit", "80 GiB")),
    "time-for-bytes": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\nhbm_capacity = "80 us"\n'),
        ("hardware.hbm_capacity = '80 us'", "expected a size in bytes", "got a duration")),
    "unreadable-unit": (
        edited({'network = "dgx-a100"': ""},
               '[network]\nbase = "dgx-a100"\n[network.scale_out]\nlatency = "8 blinks"\n'),
        ("network.scale_out.latency = '8 blinks'", "expected a duration")),
    "negative-size": (edited({"gpus = 1024": "gpus = -1024"}),
                      ("cluster.gpus = -1024", "expected a positive integer")),
    "zero-size": (edited({"micro_batch = 1": "micro_batch = 0"}),
                  ("parallelism.micro_batch = 0", "expected a positive integer")),
    "zero-layers": (edited({'model = "gpt3-175b"': ""},
                           '[model]\nbase = "gpt3-175b"\nlayers = 0\n'),
                    ("model.layers = 0", "expected a positive integer")),
    "negative-quantity": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\nhbm_capacity = "-80 GiB"\n'),
        ("hardware.hbm_capacity = '-80 GiB'", "greater than 0")),
    "zero-bandwidth": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\nhbm_bandwidth = "0 TB/s"\n'),
        ("hardware.hbm_bandwidth = '0 TB/s'", "greater than 0")),
    "tiny-bandwidth": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\nhbm_bandwidth = "1e-300 TB/s"\n'),
        ("hardware.hbm_bandwidth", "at least 1 B/s")),
    "zero-efficiency": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\n[hardware.efficiency.matmul]\nvalue = 0\n'),
        ("hardware.efficiency.matmul.value = 0", "expected a number from 0.001 to 1")),
    "efficiency-above-one": (
        edited({'network = "dgx-a100"': ""},
               '[network]\nbase = "dgx-a100"\n[network.scale_up]\nefficiency = 1.5\n'),
        ("network.scale_up.efficiency = 1.5", "expected a number from 0.001 to 1")),
    "negative-tokens": (edited({"global_batch = 1536": "global_batch = 1536\ntokens = -1"}),
                        ("training.tokens = -1", "greater than 0")),
    "nan-tokens": (edited({"global_batch = 1536": "global_batch = 1536\ntokens = nan"}),
                   ("training.tokens = nan", "finite")),
    "heads-not-divisible-by-tp": (edited({"tp = 8": "tp = 5"}),
                                  ("parallelism.tp = 5", "divisor of model.heads = 96")),
    "kv-heads-not-divisible-by-tp": (
        edited({'model = "gpt3-175b"': "", "tp = 8": "tp = 4"},
               '[model]\nbase = "llama3-8b"\nheads = 36\nhidden = 4608\nkv_heads = 6\n'),
        ("parallelism.tp = 4", "model.kv_heads = 6")),
    "layers-not-divisible-by-pp": (edited({"pp = 8": "pp = 5"}),
                                   ("parallelism.pp = 5", "to divide model.layers = 96")),
    "layers-not-divisible-by-pp-times-v": (
        edited({"micro_batch = 1": "micro_batch = 1\nvirtual_stages = 5"}),
        ("parallelism.virtual_stages = 5", "pp*virtual_stages = 8*5 = 40",
         "model.layers = 96")),
    "virtual-stages-without-pp": (
        edited({"pp = 8": "pp = 1", "dp = 16": "dp = 128",
                "micro_batch = 1": "micro_batch = 1\nvirtual_stages = 2"}),
        ("parallelism.virtual_stages = 2", "without pipeline parallelism")),
    "cp-not-dividing-seq-len": (edited({"dp = 16": "dp = 16\ncp = 3"}),
                                ("parallelism.cp = 3", "divisor of model.seq_len = 2048")),
    "global-batch-not-divisible": (
        edited({"global_batch = 1536": "global_batch = 1000"}),
        ("training.global_batch = 1000", "multiple of dp*micro_batch = 16*1 = 16")),
    "global-batch-not-divisible-by-micro-batch": (
        edited({"micro_batch = 1": "micro_batch = 5"}),
        ("training.global_batch = 1536", "dp*micro_batch = 16*5 = 80")),
    "tp-beyond-scale-up": (edited({"tp = 8": "tp = 16", "dp = 16": "dp = 8"}),
                           ("parallelism.tp = 16", "scale-up domain", "8 GPUs")),
    "gpus-mismatch": (edited({"gpus = 1024": "gpus = 1000"}),
                      ("cluster.gpus = 1000", "tp*pp*dp*cp = 8*8*16*1 = 1024")),
    "gpus-not-a-multiple": (edited({"dp = 16": ""}).replace("gpus = 1024", "gpus = 100"),
                            ("cluster.gpus = 100", "multiple of tp*pp*cp = 64")),
    "unknown-model": (edited({'model = "gpt3-175b"': 'model = "gpt5"'}),
                      ("model = 'gpt5'", "unknown built-in model", "gpt3-175b", "llama3-8b")),
    "unknown-hardware": (edited({'hardware = "a100-80gb"': 'hardware = "tpu-v9"'}),
                         ("hardware = 'tpu-v9'", "unknown built-in hardware", "h100-sxm")),
    "unknown-base": (edited({'network = "dgx-a100"': ""}, '[network]\nbase = "ethernet"\n'),
                     ("network.base = 'ethernet'", "unknown built-in network", "dgx-h100")),
    "base-not-text": (edited({'network = "dgx-a100"': ""}, "[network]\nbase = 3\n"),
                      ("network.base = 3", "expected the name of a built-in network")),
    "model-is-a-number": (edited({'model = "gpt3-175b"': "model = 175"}),
                          ("model = 175", "built-in model", "or a table")),
    "section-is-a-number": ("parallelism = 3\n" + SMALLEST.split("[parallelism]")[0],
                            ("parallelism = 3", "expected a table")),
    "non-numeric-string": (edited({"global_batch = 1536": 'global_batch = "lots"'}),
                           ("training.global_batch = 'lots'", "expected a positive integer")),
    "numeric-string": (edited({"tp = 8": 'tp = "8"'}),
                       ("parallelism.tp = '8'", "expected a positive integer",
                        "without quotes")),
    "non-numeric-efficiency": (
        edited({'network = "dgx-a100"': ""},
               '[network]\nbase = "dgx-a100"\n[network.scale_up]\nefficiency = "high"\n'),
        ("network.scale_up.efficiency = 'high'", "expected a number")),
    "fraction-for-integer": (edited({"micro_batch = 1": "micro_batch = 1.5"}),
                             ("parallelism.micro_batch = 1.5", "expected a positive integer")),
    "float-for-integer": (edited({"tp = 8": "tp = 8.0"}),
                          ("parallelism.tp = 8.0", "without a decimal point")),
    "boolean-for-integer": (edited({"tp = 8": "tp = true"}),
                            ("parallelism.tp = True", "expected a positive integer")),
    "huge-integer": (edited({"gpus = 1024": "gpus = 9223372036854775807"}),
                     ("cluster.gpus = 9223372036854775807", "at most 1e+09")),
    "table-for-integer": (edited({"tp = 8": "tp = {value = 8}"}),
                          ("parallelism.tp = {'value': 8}", "expected a positive integer")),
    "list-for-scalar": (edited({"global_batch = 1536": "global_batch = [1536]"}),
                        ("training.global_batch = [1536]", "expected a positive integer")),
    "empty-list": (edited({"tp = 8": "tp = []"}), ("parallelism.tp = []", "non-empty list")),
    "list-with-a-bad-item": (edited({"tp = 8": "tp = [8, -2]"}),
                             ("parallelism.tp = [8, -2]", "item 1 is -2")),
    "list-in-evaluate": (edited({"tp = 8": "tp = [4, 8]"}),
                         ("parallelism.tp = [4, 8]", "expected one value")),
    "bad-choice": (edited({"micro_batch = 1": 'micro_batch = 1\nrecompute = "some"'}),
                   ("parallelism.recompute = 'some'", "'none', 'selective', 'full'")),
    "bad-zero-stage": (edited({"micro_batch = 1": "micro_batch = 1\nzero = 4"}),
                       ("parallelism.zero = 4", "ZeRO stage 0, 1, 2 or 3")),
    "bad-zero-stage-in-list": (edited({"micro_batch = 1": "micro_batch = 1\nzero = [1, 7]"}),
                               ("parallelism.zero = [1, 7]", "item 1 is 7")),
    "number-for-boolean": (edited({"micro_batch = 1": "micro_batch = 1\nsequence_parallel = 1"}),
                           ("parallelism.sequence_parallel = 1", "true or false")),
    "text-for-boolean": (
        edited({"global_batch = 1536": 'global_batch = 1536\ndp_overlap = "yes"'}),
        ("training.dp_overlap = 'yes'", "expected true or false")),
    "bad-literal": (edited({"global_batch = 1536": 'global_batch = 1536\nprecision = "fp64"'}),
                    ("training.precision = 'fp64'", "'bf16', 'fp16'")),
    "number-for-text": (edited({'model = "gpt3-175b"': ""},
                               '[model]\nbase = "gpt3-175b"\nname = 3\n'),
                        ("model.name = 3", "expected text in quotes")),
    "hidden-not-divisible-by-heads": (
        edited({'model = "gpt3-175b"': ""}, '[model]\nbase = "gpt3-175b"\nhidden = 1000\n'),
        ("model.hidden = 1000", "multiple of model.heads = 96")),
    "kv-heads-not-dividing-heads": (
        edited({'model = "gpt3-175b"': ""}, '[model]\nbase = "gpt3-175b"\nkv_heads = 7\n'),
        ("model.kv_heads = 7", "divisor of model.heads = 96")),
    "unknown-precision-key": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\n[hardware.peak_flops]\nfp128 = "1 TFLOP/s"\n'),
        ("hardware.peak_flops.fp128", "unknown key", "'bf16'")),
    "bad-gemm-tile": (
        edited({'hardware = "a100-80gb"': ""},
               '[hardware]\nbase = "a100-80gb"\n[hardware.efficiency]\ngemm_tile = [64]\n'),
        ("hardware.efficiency.gemm_tile = [64]", "two positive integers")),
    "missing-scale-up-size": (
        SMALLEST.replace('network = "dgx-a100"\n', "") + """[network]
name = "custom"
source = "made up"
as_of = "2024"
[network.scale_up]
bandwidth = "300 GB/s"
latency = "5 us"
efficiency = 0.8
[network.scale_out]
bandwidth = "25 GB/s"
latency = "8 us"
efficiency = 0.9
""", ("network.scale_up.size is missing",)),
    "missing-hardware-field": (
        SMALLEST.replace('hardware = "a100-80gb"\n', "") + '[hardware]\nname = "x"\n',
        ("hardware.source is missing", "expected text in quotes")),
    "oversubscription-below-one": (
        edited({'network = "dgx-a100"': ""},
               '[network]\nbase = "dgx-a100"\n[network.scale_out]\noversubscription = 0.5\n'),
        ("network.scale_out.oversubscription = 0.5", "from 1")),
}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_case_file(tmp_path: Path, name: str) -> None:
    text, fragments = BAD_CASES[name]
    assert_one_line_error(evaluate(tmp_path, text), *fragments)


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.toml")])
    assert_one_line_error(result, "case = ", "nope.toml", "no such file")


def test_unknown_built_in_case() -> None:
    result = runner.invoke(app, ["evaluate", "no-such-study"])
    assert_one_line_error(result, "case = 'no-such-study'", "gpt3-175b-a100")


def test_directory_as_case(tmp_path: Path) -> None:
    assert_one_line_error(runner.invoke(app, ["evaluate", str(tmp_path)]),
                          "case = ", "cannot be read")


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(SMALLEST.encode() + b'description = "caf\xe9"\n')
    assert_one_line_error(runner.invoke(app, ["evaluate", str(path)]),
                          "case = ", "cannot be read (UnicodeDecodeError)")


def test_multiline_value_stays_on_one_line(tmp_path: Path) -> None:
    text = edited({"global_batch = 1536": 'global_batch = """many\nmany\nsequences"""'})
    line = assert_one_line_error(evaluate(tmp_path, text), "training.global_batch")
    assert "\\n" in line


def test_odd_key_stays_on_one_line(tmp_path: Path) -> None:
    text = edited({"tp = 8": 'tp = 8\n"weird\\nkey\\u0007" = 1'})
    assert_one_line_error(evaluate(tmp_path, text), 'parallelism."weird key\\x07"',
                          "unknown key")


def test_empty_key_is_quoted(tmp_path: Path) -> None:
    assert_one_line_error(evaluate(tmp_path, '"" = 1\n' + SMALLEST), '"" = 1: unknown key')


@pytest.mark.parametrize("depth", [50, 5000])
def test_deep_nesting(tmp_path: Path, depth: int) -> None:
    text = edited({"tp = 8": "tp = " + "[" * depth + "]" * depth})
    assert_one_line_error(evaluate(tmp_path, text), "parallelism.tp" if depth < 100 else
                          "nested too deeply")


@pytest.mark.parametrize("source", ["bad\0name", "x" * 5000, ""])
def test_odd_case_names(source: str) -> None:
    assert_one_line_error(runner.invoke(app, ["evaluate", source]), "case = ")


# -- bad --set -----------------------------------------------------------------------------

BAD_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "tp-3": (("parallelism.tp=3",), ("cluster.gpus = 1024", "3*8*16*1 = 384")),
    "tp-5": (("parallelism.tp=5",), ("parallelism.tp = 5", "model.heads = 96")),
    "tp-text": (("parallelism.tp=eight",), ("parallelism.tp = 'eight'", "positive integer")),
    "no-equals": (("parallelism.tp",), ("--set = 'parallelism.tp'", "expected key=value")),
    "empty-key": (("=3",), ("--set = '=3'", "expected key=value")),
    "empty-part": (("parallelism..tp=3",), ("--set", "expected key=value")),
    "into-a-number": (("parallelism.tp.x=1",),
                      ("--set = 'parallelism.tp.x=1'", "a table at 'parallelism.tp'")),
    "wrong-dimension": (('hardware.hbm_bandwidth="80 GB"',),
                        ("hardware.hbm_bandwidth = '80 GB'", "expected a bandwidth")),
    "gigabit-typo": (("network.scale_out.bandwidth=200 Gb/s",),
                     ("network.scale_out.bandwidth = '200 Gb/s'", "Gbit")),
    "unknown-key": (("parallelism.tensor=2",), ("parallelism.tensor = 2", "unknown key")),
    "unknown-model": (("model=gpt5",), ("model = 'gpt5'", "unknown built-in model")),
    "negative": (("training.global_batch=-8",),
                 ("training.global_batch = -8", "positive integer")),
    "section-to-number": (("training=5",), ("training = 5", "expected a table")),
}


@pytest.mark.parametrize("name", sorted(BAD_SETS))
def test_bad_set(tmp_path: Path, name: str) -> None:
    settings, fragments = BAD_SETS[name]
    args = [a for s in settings for a in ("--set", s)]
    assert_one_line_error(evaluate(tmp_path, SMALLEST, *args), *fragments)


# -- a real process: exit status and stderr as a shell sees them ---------------------------

def _perfcost() -> list[str]:
    script = Path(sys.executable).with_name("perfcost")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from perfcost.solver.cli.main import main; main()"]


@pytest.mark.parametrize(("text", "fragment"), [
    (edited({"tp = 8": "tp = 5"}), "parallelism.tp = 5"),
    ("model = [\n", "is not valid TOML"),
])
def test_subprocess(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_case(tmp_path, text)
    proc = subprocess.run([*_perfcost(), "evaluate", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert fragment in proc.stderr and "Traceback" not in proc.stderr


# -- the last line of defence in the CLI ---------------------------------------------------

def test_unexpected_exception_is_one_line(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import perfcost.solver.problem.evaluate as evaluate_mod

    def boom(case: Any) -> Any:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(evaluate_mod, "evaluate_case", boom)
    monkeypatch.delenv("PERFCOST_TRACEBACK", raising=False)
    assert_one_line_error(evaluate(tmp_path, SMALLEST), "unexpected ZeroDivisionError",
                          "PERFCOST_TRACEBACK")


def test_escaped_validation_error_is_one_line(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def raw_pydantic(source: Any, overrides: Any = None) -> Any:
        return case_mod.Case.model_validate({"model": 3})

    monkeypatch.setattr(case_mod, "load", raw_pydantic)
    assert_one_line_error(evaluate(tmp_path, SMALLEST), "model = 3", "expected a table")


# -- the pieces: CaseError and units -------------------------------------------------------

def test_case_error_is_one_line() -> None:
    err = CaseError("a\nb", "x\ny" * 100, "expected\nsomething")
    text = str(err)
    assert "\n" not in text and text.startswith("a b = 'x\\ny") and text.endswith(
        "...: expected something")
    assert str(CaseError("bell\x07", 1, "x")) == "bell\\x07 = 1: x"
    assert str(CaseError("model.layers", MISSING, "expected a positive integer")) == (
        "model.layers is missing: expected a positive integer")
    assert str(CaseError("", None, "plain")) == "plain"


@pytest.mark.parametrize(("text", "dimension", "si"), [
    ("80 GiB", "bytes", 80 * 2**30),
    ("2.039 TB/s", "bandwidth", 2.039e12),
    ("200 Gbit/s", "bandwidth", 25e9),
    ("312 TFLOP/s", "flop_rate", 312e12),
    ("5 us", "time", 5e-6),
    ("2.5 USD/h", "money_rate", 2.5 / 3600),
    ("700 W", "power", 700.0),
    ("15e12", "count", 15e12),
    (300e9, "count", 300e9),
])
def test_units_parse(text: Any, dimension: str, si: float) -> None:
    assert units.parse(text, dimension) == pytest.approx(si)


@pytest.mark.parametrize(("text", "dimension"), [
    ("80 GB", "bandwidth"),     # bytes are not a bandwidth
    ("80 GB", "count"),         # pint calls bytes dimensionless; a count is not bytes
    ("80", "bytes"),            # a plain number is not bytes
    ("10 %", "bytes"),
    ("80 /s", "bandwidth"),
    ("2 TB/s", "bytes"),
    ("", "time"),
    ("1/0 s", "time"),
    ("()", "time"),
    ("1e999 s", "time"),
    ("nan s", "time"),
    (True, "count"),
    ([1], "count"),
    (5, "time"),
    ("x" * 1000, "time"),
])
def test_units_reject(text: Any, dimension: str) -> None:
    with pytest.raises(units.UnitError) as info:
        units.parse(text, dimension)
    assert "\n" not in str(info.value) and str(info.value).startswith("expected ")


def test_torus_dimensions_must_multiply_to_the_size(tmp_path: Path) -> None:
    case = tmp_path / "torus.toml"
    case.write_text('''
model = "gpt3-175b"
hardware = "a100-80gb"
[network]
base = "tpu-v4"
[network.scale_up]
dims = [16, 16, 8]
[cluster]
gpus = 1024
[training]
global_batch = 1536
''')
    res = CliRunner().invoke(app, ["evaluate", str(case)])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: network.scale_up.dims = [16, 16, 8]: expected dimensions whose product is "
        "network.scale_up.size = 4096, got 2048"]


def test_training_on_a_torus_is_refused_clearly() -> None:
    res = CliRunner().invoke(app, ["evaluate", "gpt3-175b-a100", "--set", "network=tpu-v4"])
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith("error: network = 'tpu-v4': expected a switched scale-up domain")
