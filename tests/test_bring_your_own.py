"""Bring your own hardware, network and model files (issue 14, item 4): ``hardware =
"gpu.toml"``, ``network = "net.toml"`` and ``model = "config.json"`` in a case and in
``--set``; Hugging Face configs of each family against their published parameter counts; the
file ``perfcost calibrate -o`` writes used directly by path; ``perfcost collective --network
FILE``; and every wrong path or wrong kind of file as a one-line error."""

from __future__ import annotations

import json
import shutil
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations.registry import build
from perfcost.solver.case import catalog, hf_config
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.sections import ModelSection
from perfcost.solver.cli.main import app
from perfcost.solver.problem import specs as problem
from typer.testing import CliRunner

DATA = Path(__file__).resolve().parent / "data"
HF = DATA / "hf"
KERNELS = DATA / "h200-kernels.json"
#: A job around the model: only the model's own numbers are asserted.
JOB = {"hardware": "h100-sxm", "network": "dgx-h100", "cluster": {"gpus": 64},
       "training": {"global_batch": 64}}

#: config file -> published total parameters, and where the number is published. The configs
#: in tests/data/hf/ are written from the model cards' config.json numbers.
PUBLISHED: dict[str, tuple[float, str]] = {
    "llama-2-7b": (6.7e9, "Touvron et al., 'LLaMA', arXiv:2302.13971, Table 2 (6.7B; Llama 2 "
                          "7B keeps the architecture, arXiv:2307.09288 Sec. 2.2)"),
    "llama-3.1-8b": (8e9, "Llama 3.1 model card, meta-llama/Llama-3.1-8B (8B)"),
    "llama-3.1-70b": (70e9, "Llama 3.1 model card, meta-llama/Llama-3.1-70B (70B)"),
    "mistral-7b-v0.3": (7.3e9, "Mistral AI, 'Mistral 7B' announcement (7.3B)"),
    "mixtral-8x7b": (46.7e9, "Jiang et al., 'Mixtral of Experts', arXiv:2401.04088, Sec. 2 "
                             "(46.7B total, 12.9B active)"),
    "qwen2.5-7b": (7.61e9, "Qwen/Qwen2.5-7B model card (7.61B)"),
    "qwen3-8b": (8.2e9, "Qwen/Qwen3-8B model card (8.2B)"),
    "qwen1.5-moe-a2.7b": (14.3e9, "Qwen team, 'Qwen1.5-MoE' blog post and the "
                                  "Qwen/Qwen1.5-MoE-A2.7B card (14.3B total, 2.7B active)"),
    "qwen3-30b-a3b": (30.5e9, "Qwen/Qwen3-30B-A3B model card (30.5B total, 3.3B active)"),
    "deepseek-v3": (671e9, "DeepSeek-AI, 'DeepSeek-V3 Technical Report', arXiv:2412.19437, "
                           "abstract (671B total, 37B active; the 14B MTP module not counted)"),
    "gpt-oss-120b": (116.83e9, "OpenAI, 'gpt-oss-120b & gpt-oss-20b Model Card', Table 1 "
                               "(116.83B total, 5.13B active without the embedding)"),
}


def _case(model: Any, *settings: str, base_dir: Path | None = None) -> case_mod.Case:
    raw = case_mod.apply_overrides({"model": model, **JOB}, list(settings))
    return case_mod.from_dict(case_mod.resolve(raw, base_dir))


@cache
def _parameters(name: str) -> tuple[float, float]:
    """Total and active parameters the training formulation counts for a config file."""
    s = problem.specs(_case(str(HF / f"{name}.json"), "model.seq_len=4096"))
    f = build("training", s.model, s.hardware, s.network, s.training)
    return (float(f.substituted("parameters", {})),
            float(f.substituted("active_parameters", {})))


def _error(fn: Any, *args: Any) -> str:
    with pytest.raises(CaseError) as info:
        fn(*args)
    text = str(info.value)
    assert "\n" not in text
    return text


# -- 1. Hugging Face configs against the published parameter counts ---------------------------

def test_every_config_within_1_percent_of_its_published_parameter_count() -> None:
    rows = []
    for name, (published, source) in PUBLISHED.items():
        total, active = _parameters(name)
        rows.append((name, total, active, total / published - 1, source))
    print(f"\n{'config':<20}{'total':>12}{'active':>10}{'published':>12}{'error':>9}")
    for name, total, active, error, _ in rows:
        print(f"{name:<20}{total / 1e9:>11.3f}B{active / 1e9:>9.3f}B"
              f"{PUBLISHED[name][0] / 1e9:>11.2f}B{error:>+9.2%}")
    worst = max(rows, key=lambda r: abs(r[3]))
    assert abs(worst[3]) <= 0.01, worst


def test_configs_cover_every_family() -> None:
    families = {json.loads((HF / f"{n}.json").read_text())["model_type"] for n in PUBLISHED}
    assert families == set(hf_config.FAMILIES)


@pytest.mark.parametrize(("config", "builtin"), [
    ("deepseek-v3", "deepseek-v3"), ("mixtral-8x7b", "mixtral-8x7b"),
    ("llama-3.1-70b", "llama3-70b")])
def test_config_maps_to_the_built_in_entry_of_the_same_model(config: str, builtin: str
                                                             ) -> None:
    """The hand-written catalog entries and the mapped configs agree field by field (all but
    the labels and seq_len: the catalog gives the pre-training length)."""
    mapped = _case(str(HF / f"{config}.json")).model.model_dump()
    entry = _case(builtin).model.model_dump()
    labels = {"name", "description", "source", "seq_len"}
    differ = {k: (mapped[k], entry[k]) for k in mapped if k not in labels
              and mapped[k] != entry[k]}
    assert not differ


def test_head_dim_wider_than_hidden_counts_the_wider_projections() -> None:
    """Qwen3-30B-A3B has 32 heads of 128 on a hidden size of 2048: Q and the output projection
    are 2048 x 4096, K and V 2048 x 512 -- by hand, per layer."""
    m = _case(str(HF / "qwen3-30b-a3b.json")).model
    assert m.head_dim == 128 and m.hidden == 2048
    narrow = _case(str(HF / "qwen3-30b-a3b.json"), "model.head_dim=64")
    s = problem.specs(narrow)
    narrow_total = float(build("training", s.model, s.hardware, s.network, s.training
                               ).substituted("parameters", {}))
    wide_attention = 2048 * (4096 + 2 * 512) + 4096 * 2048
    narrow_attention = 2048 * (2048 + 2 * 256) + 2048 * 2048
    assert _parameters("qwen3-30b-a3b")[0] - narrow_total == 48 * (wide_attention
                                                                  - narrow_attention)


def test_head_dim_equal_to_hidden_over_heads_changes_nothing() -> None:
    totals = []
    for extra in ((), ("model.head_dim=128",)):
        s = problem.specs(_case("llama3-8b", *extra))
        f = build("training", s.model, s.hardware, s.network, s.training)
        totals.append(float(f.substituted("parameters", {})))
    assert totals[0] == totals[1]


def test_head_dim_rules() -> None:
    # heads x head_dim need not be hidden, but latent attention has its own head widths.
    assert _case("llama3-8b", "model.hidden=4001", "model.head_dim=128").model.hidden == 4001
    assert "model.hidden = 4001: expected a multiple of model.heads" in _error(
        _case, "llama3-8b", "model.hidden=4001")
    assert "model.head_dim = 128: expected no head_dim with multi-head latent attention" in (
        _error(_case, "deepseek-v3", "model.head_dim=128"))


# -- 2. what the mapper refuses -----------------------------------------------------------------

def _config(name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((HF / f"{name}.json").read_text())
    data.update(changes)
    return data


def _write(tmp_path: Path, data: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_sliding_window_on_every_layer_needs_a_short_enough_sequence() -> None:
    path = str(HF / "mistral-7b-v0.1.json")
    text = _error(_case, path)
    assert "sliding_window = 4096" in text and "model.seq_len = 32768" in text
    assert _case(path, "model.seq_len=4096").model.seq_len == 4096


def test_alternating_window_is_full_attention_and_says_so() -> None:
    m = _case(str(HF / "gpt-oss-120b.json")).model
    assert "sliding window (128 tokens on 18 of 36 layers) is modelled as full attention" in (
        m.description)


@pytest.mark.parametrize(("change", "fragment"), [
    ({"model_type": "gemma2"}, "model_type = 'gemma2': expected one of llama"),
    ({"model_type": None}, "model_type is missing"),
    ({"sliding_window_pattern": 6}, "sliding_window_pattern = 6: a key perfcost cannot map"),
    ({"hidden_act": "gelu"}, "hidden_act = 'gelu'"),
    ({"num_hidden_layers": 0}, "num_hidden_layers = 0: expected an integer of at least 1"),
    ({"num_attention_heads": "32"}, "num_attention_heads = '32'"),
    ({"attention_dropout": 0.1}, "attention_dropout = 0.1: expected 0"),
    ({"layer_types": ["full_attention"]}, "layer_types = ['full_attention']"),
])
def test_unmappable_config_is_one_line_naming_the_key(tmp_path: Path, change: dict[str, Any],
                                                      fragment: str) -> None:
    path = _write(tmp_path, _config("llama-3.1-8b", **change))
    text = _error(_case, str(path))
    assert text.startswith("model: config.json: ") and fragment in text


def test_moe_layouts_perfcost_cannot_place_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _config("qwen3-30b-a3b", mlp_only_layers=[5, 9]))
    assert "mlp_only_layers = [5, 9]" in _error(_case, str(path))
    path = _write(tmp_path, _config("qwen1.5-moe-a2.7b", shared_expert_intermediate_size=5000))
    assert "shared_expert_intermediate_size = 5000" in _error(_case, str(path))


@settings(max_examples=40, deadline=None)
@given(layers=st.integers(1, 200), heads_log=st.integers(0, 7), group_log=st.integers(0, 7),
       head_dim=st.sampled_from([64, 80, 128, 256]), ffn=st.integers(1, 10**6),
       vocab=st.integers(1, 10**6), tied=st.booleans(),
       extra=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
def test_any_llama_shape_maps_field_for_field(layers: int, heads_log: int, group_log: int,
                                              head_dim: int, ffn: int, vocab: int, tied: bool,
                                              extra: str) -> None:
    heads = 2 ** heads_log
    kv = 2 ** min(group_log, heads_log)
    config = {"model_type": "llama", "num_hidden_layers": layers, "hidden_size": heads * head_dim,
              "num_attention_heads": heads, "num_key_value_heads": kv, "intermediate_size": ffn,
              "vocab_size": vocab, "max_position_embeddings": 4096, "tie_word_embeddings": tied}
    table, window = hf_config.model_table(config, "model", "c.json", "c")
    m = ModelSection.model_validate(table)
    assert window is None and m.head_dim is None
    assert (m.layers, m.hidden, m.heads, m.kv_heads, m.ffn, m.vocab, m.tied_embeddings) == (
        layers, heads * head_dim, heads, kv, ffn, vocab, tied)
    if extra not in config and extra not in hf_config.NO_EFFECT and not extra.endswith(
            ("_bias", "_act", "_dropout", "_dim", "_window", "_layers", "_types")):
        with pytest.raises(CaseError, match=f"{extra} = 1: a key perfcost cannot map"):
            hf_config.model_table({**config, extra: 1}, "model", "c.json", "c")


# -- 3. paths in a case, in --set, and files of the wrong kind ---------------------------------

def _builtin(folder: str, name: str) -> str:
    return catalog.entries(folder)[name].read_text(encoding="utf-8")


def _case_file(folder: Path, **sections: Any) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in sections.items()]
    lines += ["[cluster]", "gpus = 64", "[training]", "global_batch = 64"]
    path = folder / "case.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_relative_paths_are_taken_from_the_case_files_folder(tmp_path: Path,
                                                             monkeypatch: Any) -> None:
    (tmp_path / "gpus").mkdir()
    (tmp_path / "gpus" / "mine.toml").write_text(
        _builtin("hardware", "h100-sxm").replace('name = "h100-sxm"', 'name = "mine"'))
    shutil.copy(catalog.entries("networks")["dgx-h100"], tmp_path / "net.toml")
    shutil.copy(HF / "llama-3.1-8b.json", tmp_path / "config.json")
    path = _case_file(tmp_path, model="config.json", hardware="gpus/mine.toml",
                      network="net.toml")
    monkeypatch.chdir(DATA)  # not the case's folder
    case = case_mod.load(str(path), ["model.seq_len=8192"])
    assert case.hardware.name == "mine" and case.network.name == "dgx-h100"
    assert case.model.layers == 32 and case.model.seq_len == 8192
    assert case_mod.load(str(path)).model.seq_len == 131072  # max_position_embeddings


def test_set_takes_paths_and_lists_mix_names_and_files(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text(_builtin("hardware", "b200").replace(
        'name = "b200"', 'name = "my-b200"'))
    path = _case_file(tmp_path, model="llama3-8b", hardware="h100-sxm", network="dgx-h100")
    case = case_mod.load(str(path), ["hardware=b.toml", "hardware.price='1000 USD'"])
    assert case.hardware.name == "my-b200" and case.hardware.price == 1000.0
    case = case_mod.load(str(path), ['hardware=["h100-sxm", "b.toml"]'])
    assert [h.name for h in case.hardware] == ["h100-sxm", "my-b200"]


def test_wrong_path_and_wrong_kinds_are_one_line_errors(tmp_path: Path) -> None:
    shutil.copy(catalog.entries("networks")["dgx-h100"], tmp_path / "net.toml")
    shutil.copy(catalog.entries("hardware")["h100-sxm"], tmp_path / "gpu.toml")
    whole = _case_file(tmp_path, model="llama3-8b", hardware="h100-sxm", network="dgx-h100")
    (tmp_path / "junk.toml").write_text("x = [")
    (tmp_path / "list.json").write_text("[1, 2]")
    for setting, fragment in [
        ("hardware=missing/gpu.toml", "hardware = 'missing/gpu.toml': no such file"),
        ("hardware=net.toml", "expected a hardware file (a table with peak_flops, "
                              "hbm_bandwidth); this file looks like a network file"),
        ("network=gpu.toml", "this file looks like a hardware file"),
        ("model=case.toml", "expected a model file (a table with layers, hidden, heads); this "
                            "file looks like a whole case file"),
        ("model=junk.toml", "model = 'junk.toml': expected a TOML file"),
        ("hardware=gpu.json", "expected a hardware TOML file (.toml)"),
        ("model=list.json", "expected a Hugging Face config.json: a JSON object, not list"),
        (f"model={json.dumps(str(KERNELS))}", "model: h200-kernels.json: model_type is missing"),
        ("model.base=net.toml", "model.base = 'net.toml': expected a model file"),
    ]:
        text = _error(case_mod.load, str(whole), [setting])
        assert fragment in text, (setting, text)


def test_cli_error_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = _case_file(tmp_path, model="no/config.json", hardware="h100-sxm",
                      network="dgx-h100")
    result = CliRunner().invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: model = 'no/config.json': no such file")
    assert result.stderr.count("\n") == 1


# -- 4. calibrate -o, then hardware = "my.toml"; collective --network FILE -------------------

def test_calibrated_file_is_usable_by_path(tmp_path: Path) -> None:
    out = tmp_path / "my.toml"
    result = CliRunner().invoke(app, ["calibrate", str(KERNELS), "--hardware", "h200-sxm",
                                      "--kernel-overhead", "2.63 us",
                                      "--kernel-overhead-source", "test", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = tomllib.loads(out.read_text(encoding="utf-8"))
    path = _case_file(tmp_path, model="llama3-8b", hardware="my.toml", network="dgx-h100")
    case = case_mod.load(str(path), ["parallelism.tp=8", "parallelism.pp=1",
                                     "parallelism.micro_batch=1", "cluster.gpus=8",
                                     "training.global_batch=8"])
    eff = case.hardware.efficiency
    assert eff.matmul.value == written["efficiency"]["matmul"]["value"]
    assert eff.fit_source and "h200-kernels.json" in eff.fit_source
    # The fitted numbers are what the formulation's inputs carry.
    hardware = problem.specs(case).hardware
    assert hardware.matmul_efficiency == eff.matmul.value
    assert hardware.kernel_overhead == pytest.approx(2.63e-6)


MY_NETWORK = """name = "my-net"
source = "test"
as_of = "2025-01"
[scale_up]
size = 8
topology = "nvswitch"
bandwidth = "SCALE_UP"
latency = "1 us"
efficiency = 0.9
[scale_out]
bandwidth = "50 GB/s"
latency = "8 us"
efficiency = 0.9
"""


def _collective(network: str) -> list[Any]:
    result = CliRunner().invoke(app, ["collective", "all_reduce", "--network", network,
                                      "--ranks", "8", "--bytes", "256 MiB", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_collective_takes_a_network_file(tmp_path: Path) -> None:
    copy = tmp_path / "net.toml"
    shutil.copy(catalog.entries("networks")["dgx-h100"], copy)
    assert _collective(str(copy)) == _collective("dgx-h100")
    # A network of one's own: a tenth of the scale-up bandwidth takes about ten times longer
    # on 256 MiB (bandwidth-bound).
    times = []
    for bandwidth in ("450 GB/s", "45 GB/s"):
        mine = tmp_path / "mine.toml"
        mine.write_text(MY_NETWORK.replace("SCALE_UP", bandwidth))
        times.append(min(p["time_s"] for p in _collective(str(mine))[0]))
    assert 8 < times[1] / times[0] < 10.5


def test_collective_network_file_errors(tmp_path: Path) -> None:
    shutil.copy(catalog.entries("hardware")["h100-sxm"], tmp_path / "gpu.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(_builtin("networks", "dgx-h100").replace("efficiency = 0.", "efficiency = 7.",
                                                             1))
    for network, fragment in [(str(tmp_path / "gpu.toml"), "looks like a hardware file"),
                              (str(tmp_path / "none.toml"), "no such file"),
                              (str(bad), "network.scale_up.efficiency = 7.")]:
        result = CliRunner().invoke(app, ["collective", "all_reduce", "--network", network,
                                          "--bytes", "1 MiB"])
        assert result.exit_code == 2, result.output
        assert fragment in result.stderr and result.stderr.count("\n") == 1
