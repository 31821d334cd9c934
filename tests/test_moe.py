"""Mixture of experts, multi-head latent attention and expert parallelism (formulations/moe.py,
formulations/mla.py): parameter counts against the published ones, FLOPs, the all-to-all
volume by hand, the ep rules of the search, bad inputs, and the DeepSeek-V3 study."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import cache
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations import algorithms, mla, moe, transformer
from perfcost.formulations.collectives import Link
from perfcost.formulations.compute import ComputeParams, op_time, ops_flops
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.main import app
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.solve import solve_case
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import Evaluation, evaluate_case
from typer.testing import CliRunner

STUDY = "deepseek-v3-2048-h800"
#: The published layout of the study (DeepSeek-V3 report Sec. 3.2).
PUBLISHED = ("parallelism.tp=1", "parallelism.pp=16", "parallelism.ep=64",
             "parallelism.micro_batch=1", "parallelism.recompute='selective'")
S = sp.Integer


def _case(model: str, *settings: str) -> case_mod.Case:
    """``model`` on 64 H100s (one fixed small configuration), for its parameter counts."""
    raw = {"model": model, "hardware": "h100-sxm", "network": "dgx-h100",
           "cluster": {"gpus": 64}, "training": {"global_batch": 64},
           "parallelism": {"tp": 1, "pp": 1, "micro_batch": 1, "recompute": "full"}}
    raw = case_mod.apply_overrides(raw, list(settings))
    return case_mod.from_dict(case_mod.resolve(raw))


@cache
def _evaluated(model: str, *settings: str) -> Evaluation:
    return evaluate_case(_case(model, *settings))


@cache
def _study(*settings: str) -> Evaluation:
    return evaluate_case(case_mod.load(STUDY, list(settings)))


# -- 1. parameter counts against the published ones ----------------------------------------

@pytest.mark.parametrize(("model", "total", "active"), [
    ("deepseek-v3", 671e9, 37e9),  # DeepSeek-V3 report, abstract and Sec. 4.2
    ("kimi-k2", 1.04e12, 32.6e9),  # Kimi K2 report, Table 2 (1.04T / 32.6B)
    ("mixtral-8x7b", 46.7e9, 12.9e9),  # Mixtral paper, Sec. 2 (46.7B / 12.9B)
    ("mixtral-8x22b", 141e9, 39e9),  # Mistral AI announcement (141B / 39B)
])
def test_parameters_within_2_percent_of_published(model: str, total: float,
                                                  active: float) -> None:
    v = _evaluated(model).values
    errors = (v["parameters"] / total - 1, v["active_parameters"] / active - 1)
    print(f"{model}: total {v['parameters']:.4g} ({errors[0]:+.2%}), "
          f"active {v['active_parameters']:.4g} ({errors[1]:+.2%})")
    assert abs(errors[0]) < 0.02 and abs(errors[1]) < 0.02


def test_mla_block_parameters_by_hand() -> None:
    """DeepSeek-V3's attention block: W_DQ, W_UQ, W_DKV, W_UKV, W_O and the two latent norms
    (arXiv:2412.19437 Eq. 1-11 with d_c = 512, d_c' = 1536, d_h = 128, d_h^R = 64)."""
    h, heads = 7168, 128
    by_hand = (h * 1536 + 1536 * heads * (128 + 64) + h * (512 + 64)
               + 512 * heads * (128 + 128) + heads * 128 * h + 1536 + 512)
    latent = mla.LatentDims(S(1536), S(512), S(128), S(64), S(128))
    assert mla.parameters(S(h), S(heads), latent) == by_hand


def test_mla_kv_cache_is_the_latent_and_the_rope_key() -> None:
    """DeepSeek-V2 Table 1: (d_c + d_h^R) elements per token and layer."""
    v = _evaluated("deepseek-v3").values
    assert v["kv_cache_bytes_per_token"] == 61 * (512 + 64) * 2
    latent = mla.LatentDims(S(1536), S(512), S(128), S(64), S(128))
    assert mla.kv_cache_elements_per_token(latent) == 576


def test_dense_model_has_no_experts() -> None:
    """A dense model: active = total parameters, and ep appears nowhere in its times."""
    ev = _evaluated("llama3-8b")
    assert ev.values["active_parameters"] == ev.values["parameters"]
    assert ev.values["ep_communication"] == 0
    ep = ev.formulation.decisions["ep"].symbol
    assert ep not in ev.formulation.expressions["iteration_time"].free_symbols


# -- 2. FLOPs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["deepseek-v3", "mixtral-8x7b"])
def test_model_flops_are_6_n_active_plus_attention(model: str) -> None:
    """Model FLOPs per token = 6 x (active weights that multiply: all but the input embedding
    and the norms) + 3 x the attention core's forward FLOPs, 2 a s (d_qk + d_v) per layer
    (counted over the full s x s scores, or half of it when the core counts a causal mask)."""
    ev = _evaluated(model)
    m, v = ev.case.model, ev.values
    tokens = ev.case.training.global_batch * m.seq_len
    per_token = v["model_flops_per_gpu"] * v["gpus"] / tokens
    norms = m.layers * 2 * m.hidden  # two RMSNorms per layer (the final one is not counted)
    d_qk = d_v = m.hidden // m.heads
    if m.kv_lora_rank:
        norms += m.layers * (m.kv_lora_rank + (m.q_lora_rank or 0))
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
    linear = 6 * (v["active_parameters"] - m.vocab * m.hidden - norms)
    attention = 3 * m.layers * 2 * m.heads * m.seq_len * (d_qk + d_v)
    share = (per_token - linear) / attention
    print(f"{model}: {per_token:.4g} FLOP/token; 6 N_active part {linear:.4g}, attention "
          f"{attention:.4g} x {share:.6f}")
    assert share == pytest.approx(1.0, rel=1e-9) or share == pytest.approx(0.5, rel=1e-9)


def _moe_dims(ep: int, *, load: float = 1, etp: int = 1) -> tuple[transformer.Dims,
                                                                    moe.ExpertDims]:
    d = transformer.Dims(b=S(2), s=S(4096), h=S(7168), a=S(128), kv=S(128), ffn=S(18432),
                         vocab=S(129280), t=S(1), c=S(1), sigma=S(1), e=S(2), mask=S(0),
                         swiglu=True, dropout=False, gqa=False)
    return d, moe.ExpertDims(S(256), S(1), S(8), S(2048), S(ep), S(etp), sp.nsimplify(load))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256]), st.sampled_from([1, 2, 4]))
def test_expert_flops_per_gpu_do_not_depend_on_the_layout(ep: int, etp: int) -> None:
    """Expert parallelism moves work, it does not create it: 2 T_r k 3 h f_e per rank (three
    SwiGLU matrices, two FLOPs per multiply-accumulate, T_r = 2 x 4096 tokens)."""
    d, x = _moe_dims(ep, etp=etp)
    routed = [op for op in moe.moe_forward(d, x, shared=False) if op.name.startswith("expert")]
    assert ops_flops(routed) == 2 * (2 * 4096) * 8 * 3 * 7168 * 2048


def test_tokens_per_expert_by_hand() -> None:
    """M_e = etp T_r k ep / E x load: 8192 tokens x 8 copies over 256 experts on 64 ranks."""
    d, x = _moe_dims(64, load=1.25)
    assert moe.tokens_per_expert(d, x) == 2 * 4096 * 8 * 64 // 256 * sp.Rational(5, 4)
    assert moe.load_factor(S(2), S(1)) == 1 and moe.load_factor(S(2), None) == 2
    assert moe.dropped_fraction(S(2), S(1)) == sp.Rational(1, 2)


def test_small_per_expert_batches_run_slower_per_flop() -> None:
    """Grouped-GEMM efficiency: with ep = 1 each of the 256 experts gets 256 tokens; with
    ep = 64, 16,384. Tile and wave quantisation (formulations/compute.py) and the per-kernel
    overhead make the small ones slower per FLOP."""
    hw = ComputeParams(S(989) * 10**12, sp.Rational(8, 10), S(335) * 10**10,
                       sp.Rational(9, 10), S(132), S(128), S(128), sp.Rational(5, 10**6))

    def rate(ep: int) -> float:
        d, x = _moe_dims(ep)
        d = replace(d, b=S(1), s=S(256))
        op = next(o for o in moe.moe_forward(d, x) if o.name == "expert_fc1")
        return float(op.flops / op_time(op, hw))

    assert rate(1) < 0.8 * rate(64)


# -- 3. all-to-all, by hand -------------------------------------------------------------------

def test_all_to_all_time_by_hand() -> None:
    """16 ranks, 8 per scale-up domain, 1 MiB per rank: 7 peers over NVLink get 7/16 of it,
    8 peers across get 8/16; the two proceed at once."""
    size, up, out = S(2**20), Link(S(400) * 10**9, sp.Rational(1, 10**6), S(1)), Link(
        S(50) * 10**9, sp.Rational(8, 10**6), S(1))
    t = moe.all_to_all_time(size, S(16), S(8), up, out)
    up_t = 7 * up.latency + sp.Rational(7, 16) * size / up.rate
    out_t = 8 * out.latency + sp.Rational(8, 16) * size / out.rate
    assert sp.simplify(t - sp.Max(up_t, out_t)) == 0
    # One domain: the pairwise algorithm of formulations.algorithms on the scale-up link.
    inside = moe.all_to_all_time(size, S(8), S(8), up, out)
    pairwise = algorithms.alpha_beta_time(algorithms.find("all_to_all", "pairwise"), size,
                                          S(8), up.latency, up.rate)
    assert sp.simplify(inside - pairwise) == 0


def test_node_limited_routing_by_hand() -> None:
    """8 copies per token, at most 2 domains: a quarter of the remote bytes cross the
    scale-out links, and all remote copies are forwarded inside the receiving domain."""
    size, up, out = S(2**20), Link(S(400) * 10**9, sp.Rational(1, 10**6), S(1)), Link(
        S(50) * 10**9, sp.Rational(8, 10**6), S(1))
    t = moe.all_to_all_time(size, S(16), S(8), up, out, sp.Rational(2, 8))
    remote = sp.Rational(8, 16) * size
    up_t = 7 * up.latency + (sp.Rational(7, 16) * size + remote * sp.Rational(7, 8)) / up.rate
    out_t = 8 * out.latency + remote / 4 / out.rate
    assert sp.simplify(t - sp.Max(up_t, out_t)) == 0
    _d, x = _moe_dims(64)
    assert replace(x, route_domains=S(4)).remote_copies == 4
    assert replace(x, route_domains=S(16)).remote_copies == 8


def test_dispatch_volume_and_no_communication_without_ep() -> None:
    d, x = _moe_dims(64)
    assert moe.dispatch_bytes(d, x) == 2 * 4096 * 8 * 7168 * 2  # T_r k h e
    link = Link(S(100) * 10**9, sp.Rational(1, 10**6), S(1))
    d1, x1 = _moe_dims(1)
    assert moe.expert_parallel_time(d1, x1, S(1), S(8), link, link) == 0


def test_study_all_to_all_term_by_hand() -> None:
    """The published layout: per MoE layer and micro-batch, forward and backward (selective
    recomputation does not redo the MoE block), each pass a dispatch and a combine of
    4096 x 8 token copies of 7168 bf16 values over 64 ranks, 8 per node. Node-limited
    routing (4 nodes per token) sends 4 of the 8 copies' remote share over InfiniBand and
    forwards all remote copies to their GPU over NVLink (7 of 8 GPUs are another one). Without
    overlap the 4 MoE layers of the slowest stage pay it for each of the 120 micro-batches;
    with overlap (the study's setting, DualPipe) only what exceeds the layer's compute is
    left."""
    ev = _study(*PUBLISHED)
    net = ev.case.network
    size = 4096 * 8 * 7168 * 2
    remote = 56 / 64 * size
    up = (8 - 1) * net.scale_up.latency + (7 / 64 * size + remote * 7 / 8) / (
        net.scale_up.bandwidth * net.scale_up.efficiency)
    out = (64 - 8) * net.scale_out.latency + remote * 4 / 8 / (
        net.scale_out.bandwidth * net.scale_out.efficiency)
    per_layer = 2 * 2 * max(up, out)
    assert ev.values["ep_all_to_all_per_layer"] == pytest.approx(per_layer, rel=1e-9)
    assert ev.case.training.ep_overlap
    assert 0 <= ev.values["ep_communication"] < 120 * 4 * per_layer
    exposed = _study(*PUBLISHED, "training.ep_overlap=false").values["ep_communication"]
    assert exposed == pytest.approx(120 * 4 * per_layer, rel=1e-9)


# -- 4. memory across ep -----------------------------------------------------------------------

@pytest.mark.parametrize("ep", [8, 64])
def test_expert_weights_are_sharded_over_ep(ep: int) -> None:
    settings_ = (*PUBLISHED[:2], f"parallelism.ep={ep}", *PUBLISHED[3:])
    v = _study(*settings_).values
    assert v["expert_parameters_per_gpu"] == 4 * 256 * 3 * 7168 * 2048 / ep
    assert v["expert_data_parallel"] == 128 / ep


def test_more_expert_parallelism_needs_less_memory() -> None:
    low = _study(*PUBLISHED[:2], "parallelism.ep=8", *PUBLISHED[3:]).values
    high = _study(*PUBLISHED).values
    assert high["weights"] < low["weights"] and high["gradients"] < low["gradients"]


# -- 5. the rules of ep -------------------------------------------------------------------------

def test_search_space_meets_the_ep_rules() -> None:
    p = build_problem(case_mod.load(STUDY))
    cols = p.valid().columns
    assert len(cols["ep"]) > 0
    assert set(np.unique(cols["ep"])) <= {float(2**k) for k in range(9)}
    assert np.all((cols["tp"] * cols["cp"] * cols["dp"]) % cols["ep"] == 0)
    assert {"ep*expert_tp divides tp*cp*dp"} <= {rule for rule, _n in p.valid().counts}


def test_ep_must_divide_the_stage_ranks() -> None:
    c = case_mod.load(STUDY, [*PUBLISHED, "parallelism.ep=256", "parallelism.pp=32"])
    with pytest.raises(CaseError, match="ep"):
        problem.fixed_config(c)


# -- 6. bad input: one line, exit code 2 ----------------------------------------------------------

def _evaluate_cli(*settings: str) -> Any:
    return CliRunner().invoke(app, ["evaluate", STUDY, *(a for s in settings
                                                         for a in ("--set", s))])


@pytest.mark.parametrize(("setting", "field"), [
    ("model.top_k=300", "model.top_k"),
    ("parallelism.ep=48", "parallelism.ep"),
    ("model.capacity_factor=0", "model.capacity_factor"),
    ("model.capacity_factor=-1.5", "model.capacity_factor"),
    ("model.load_imbalance=0.5", "model.load_imbalance"),
])
def test_bad_moe_input_is_one_line_and_exit_2(setting: str, field: str) -> None:
    result = _evaluate_cli(*PUBLISHED, setting)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0], result.output
    assert "Traceback" not in result.output


def test_ep_on_a_dense_model_is_refused() -> None:
    with pytest.raises(CaseError, match=re.escape("parallelism.ep")):
        _case("llama3-8b", "parallelism.ep=2")


def test_latent_attention_needs_all_its_dimensions() -> None:
    with pytest.raises(CaseError, match=re.escape("model.v_head_dim")):
        _case("llama3-8b", "model.kv_lora_rank=512", "model.qk_nope_head_dim=64",
              "model.qk_rope_head_dim=32")


# -- 7. the DeepSeek-V3 study ------------------------------------------------------------------

def test_study_solves_and_shows_the_published_layout() -> None:
    """Default engine; the [[compare]] row is in both the table and the JSON."""
    sol = solve_case(case_mod.load(STUDY))
    assert sol.result.status == "optimal"
    table = CliRunner().invoke(app, ["solve", STUDY])
    assert table.exit_code == 0, table.output
    assert "published" in table.stdout and "optimum beside" in table.stdout
    data = json.loads(CliRunner().invoke(app, ["solve", STUDY, "--json"]).stdout)
    (row,) = data["compare"]
    assert row["name"] == "published" and row["config"]["ep"] == 64
    assert row["config"]["pp"] == 16 and row["config"]["tp"] == 1 and row["config"]["zero"] == 1
    # The published layout, evaluated alone, gives the same number.
    assert row["value"] == pytest.approx(_study(*PUBLISHED).values["iteration_time"],
                                         rel=1e-9)
    # It lies in the searched space: unless memory rules it out, it cannot beat the optimum.
    assert not row["feasible"] or row["value"] >= data["value"] * (1 - 1e-12)
    assert data["config"]["ep"] in (1, 2, 4, 8, 16, 32, 64, 128, 256)


def test_milp_agrees_with_enumeration_on_the_study() -> None:
    """ep is a decision of the compiled form too: the MILP's optimum is enumeration's."""
    case = case_mod.load(STUDY)
    enum = solve_case(case, "enumerate").result
    milp = solve_case(case, "milp").result
    assert milp.status == "optimal", milp.explanation
    assert milp.value == pytest.approx(enum.value, rel=1e-9)
    assert milp.config == enum.config


def test_selective_recomputation_drops_mla_q_k_v() -> None:
    """With the up-projections recomputed only the latents and the attention output stay:
    Q and K (192 wide per head) and V (128) leave, per token and local head."""
    d, _x = _moe_dims(1)
    latent = mla.LatentDims(S(1536), S(512), S(128), S(64), S(128))
    kept = mla.activation_bytes(d, latent, S(0)) - mla.activation_bytes(d, latent, S(1))
    assert kept == 2 * 4096 * 2 * 128 * (2 * 192 + 128)
    stored = _study(*PUBLISHED[:-1], "parallelism.recompute='none'").values["activations"]
    assert _study(*PUBLISHED).values["activations"] < stored


def test_capacity_factor_caps_the_busiest_expert() -> None:
    """Imbalance 1.5 with capacity 1.25: the busiest expert takes 1.25x its share and drops
    1 - 1.25/1.5 of its tokens; without a capacity it takes all 1.5x."""
    base = ("model.load_imbalance=1.5",)
    even = _study(*PUBLISHED).values
    capped = _study(*PUBLISHED, *base, "model.capacity_factor=1.25").values
    dropless = _study(*PUBLISHED, *base).values
    assert capped["tokens_per_expert"] == pytest.approx(1.25 * even["tokens_per_expert"])
    assert dropless["tokens_per_expert"] == pytest.approx(1.5 * even["tokens_per_expert"])
    assert capped["moe_dropped_fraction"] == pytest.approx(1 - 1.25 / 1.5)
    assert dropless["moe_dropped_fraction"] == 0
    assert even["iteration_time"] < capped["iteration_time"] < dropless["iteration_time"]


def test_expert_tensor_parallelism_splits_the_experts_again() -> None:
    """expert_tp = 2 with ep = 64 on the 128 ranks of a stage: each expert's weights are split
    in two (half the expert weights per GPU), expert data parallelism drops to 1, and the
    dispatched tokens are gathered over the expert-TP pair (more communication per layer)."""
    one = _study(*PUBLISHED).values
    two = _study(*PUBLISHED, "parallelism.expert_tp=2").values
    assert two["expert_parameters_per_gpu"] == one["expert_parameters_per_gpu"] / 2
    assert two["expert_data_parallel"] == 1 and one["expert_data_parallel"] == 2
    assert two["ep_all_to_all_per_layer"] > one["ep_all_to_all_per_layer"]
    with pytest.raises(CaseError, match=re.escape("parallelism.ep")):
        problem.fixed_config(case_mod.load(STUDY, [*PUBLISHED, "parallelism.expert_tp=4"]))


def test_moe_layers_is_the_count_of_the_last_layers() -> None:
    """DESIGN.md's ``moe_layers``: DeepSeek-V3 written with 58 MoE layers instead of 3 dense
    ones is the same model; an inconsistent pair is refused."""
    same = _evaluated("deepseek-v3", "model.first_dense_layers=0", "model.moe_layers=58")
    assert same.values["parameters"] == _evaluated("deepseek-v3").values["parameters"]
    with pytest.raises(CaseError, match=re.escape("model.moe_layers")):
        _case("deepseek-v3", "model.moe_layers=50")
    every_other = _case("mixtral-8x7b", "model.moe_every=2", "model.moe_layers=16")
    assert problem.specs(every_other).model.moe_layers == 16
