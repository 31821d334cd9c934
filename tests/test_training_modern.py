"""Training as current frameworks run it (issue 15): pipeline schedules, ZeRO pricing, FP8,
framework profiles and the memory reserve."""

from __future__ import annotations

import math

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations import memory, mla, moe, precision, schedules, transformer
from perfcost.solver.case.schema import load
from perfcost.solver.problem.evaluate import evaluate_case
from perfcost.solver.problem.specs import adam_bytes, framework_problems

F, B, W, P, V = sp.symbols("F B W p v", positive=True)


def test_one_f_one_b_bubble_is_narayanan_et_al() -> None:
    """(p - 1)/v slots of F + B (Narayanan et al. SC'21, Sec. 2.2.1-2.2.2)."""
    got = schedules.bubble_time("1f1b", P, V, F, B, W)
    assert sp.simplify(got - (P - 1) / V * (F + B)) == 0


def test_zb_h1_bubble_is_qi_et_al() -> None:
    """ZB-H1: (p - 1)(T_F + T_B - T_W) with T_B the input gradient only (Qi et al. ICLR'24,
    Sec. 3.1); here B is the whole backward, T_B = B - W."""
    got = schedules.bubble_time("zb-h1", P, sp.Integer(1), F, B, W)
    t_b = B - W
    assert sp.simplify(got - (P - 1) * (F + t_b - W)) == 0


def test_dualpipe_bubble_is_deepseek_v3_table_2() -> None:
    """(PP/2 - 1)(F&B + B - 3W) with F&B = F + B (DeepSeek-V3 report, Table 2)."""
    p = sp.Integer(16)
    got = schedules.bubble_time("dualpipe", p, sp.Integer(1), F, B, W)
    assert sp.simplify(got - (p / 2 - 1) * ((F + B) + B - 3 * W)) == 0
    assert schedules.PARAMETER_COPIES["dualpipe"] == 2
    assert schedules.in_flight_micro_batches("dualpipe", p) == p + 1


def test_dualpipev_is_dualpipe_on_half_device_stages() -> None:
    """DualPipe README: DualPipeV on PP/2 devices has DualPipe's bubble in its PP stages, each
    half a device: with 8 devices, 16 stages of times F/2, B/2, W/2."""
    devices = sp.Integer(8)
    got = schedules.bubble_time("dualpipev", devices, sp.Integer(1), F, B, W)
    stages = 2 * devices
    expected = (stages / 2 - 1) * ((F / 2 + B / 2) + B / 2 - 3 * W / 2)
    assert sp.simplify(got - expected) == 0
    # 2x a half-device stage's parameters is one copy of the device's layers; PP + 1 stages'
    # activations are p + 1/2 of the device's micro-batches.
    assert schedules.PARAMETER_COPIES["dualpipev"] == 1
    assert schedules.in_flight_micro_batches("dualpipev", devices) == devices + sp.Rational(1, 2)


def test_schedules_order_as_the_papers_report() -> None:
    """With the usual F = B/2 = 2W... F = 1, B = 2, W = 1: ZB-H1 halves 1F1B's bubble and
    DualPipe, over 16 stages, is below both."""
    vals = {"forward": 1.0, "backward": 2.0, "weight_grad": 1.0}
    one = float(schedules.bubble_time("1f1b", 16, 1, *vals.values()))
    zb = float(schedules.bubble_time("zb-h1", 16, 1, *vals.values()))
    dual = float(schedules.bubble_time("dualpipe", 16, 1, *vals.values()))
    assert zb == pytest.approx(one / 3)
    assert dual < zb < one


def _dp_comm(zero: int, **sets: object) -> float:
    overrides = [f"parallelism.zero={zero}", "training.framework=\"deepspeed\"",
                 "training.dp_overlap=false", *(f"{k}={v}" for k, v in sets.items())]
    case = load("nemo2407-pretrain-llama2-7b-8gpu", overrides)
    return evaluate_case(case).values["dp_communication"]


def test_zero_2_and_3_cost_more_communication_than_zero_1() -> None:
    """At one configuration (8 GPUs of data parallelism, 16 micro-batches per step), ZeRO-2
    reduce-scatters every micro-batch's gradients and ZeRO-3 also gathers the weights twice
    per micro-batch (Rajbhandari et al. 2020, Sec. 7.2): both move more than ZeRO-1."""
    one, two, three = (_dp_comm(z) for z in (1, 2, 3))
    assert two > one > 0
    assert three > two
    # ZeRO-3 moves 1.5x ZeRO-2's per-micro-batch volume, whatever the latency terms add.
    assert three > 1.4 * (two - one / 2)


def test_fp8_is_faster_than_bf16_and_holds_fp8_weight_copies() -> None:
    fp8 = evaluate_case(load("nemo2407-pretrain-llama2-7b-8gpu"))
    bf16 = evaluate_case(load("nemo2407-pretrain-llama2-7b-8gpu",
                              ["training.precision=\"bf16\""]))
    speedup = bf16.values["iteration_time"] / fp8.values["iteration_time"]
    # Published H100 FP8-over-BF16 training speed-ups are 1.3-1.6x for 7B-70B models.
    assert 1.2 < speedup < 1.8
    # Two FP8 copies (row-wise and transposed) of every linear layer's weight; Llama 2's input
    # embedding and untied output layer stay BF16 (V = 32000, h = 4096; one stage).
    parameters = bf16.values["weights"] / 2
    bf16_only = 2 * 32000 * 4096
    assert fp8.values["weights"] - bf16.values["weights"] == pytest.approx(
        2 * (parameters - bf16_only))


def test_fp8_needs_hardware_with_an_fp8_peak() -> None:
    from perfcost.solver.case.errors import CaseError

    with pytest.raises(CaseError, match="FP8 peak"):
        evaluate_case(load("narayanan2021-t1-gpt-1.7b", [
            "training.precision=\"fp8\"", "training.framework=\"megatron-core\""]))


def test_evaluate_says_when_the_framework_does_not_run_a_layout() -> None:
    case = load("nemo2407-pretrain-llama2-13b-16gpu", ["parallelism.zero=3"])
    problems = framework_problems(case, evaluate_case(case).config)
    assert problems and "megatron-core" in problems[0]
    ok = load("nemo2407-pretrain-llama2-13b-16gpu")
    assert framework_problems(ok, evaluate_case(ok).config) == []


def test_interleaving_needs_a_multiple_of_pp_micro_batches_in_megatron() -> None:
    # dp 4, micro-batch 1: 136 sequences are 34 micro-batches, not a multiple of pp = 4.
    case = load("nemo2407-pretrain-llama2-13b-16gpu", ["training.global_batch=136"])
    problems = framework_problems(case, evaluate_case(case).config)
    assert any("multiple of pp" in p for p in problems)


def test_memory_reserve_is_left_and_reported() -> None:
    result = evaluate_case(load("nemo2407-pretrain-llama2-7b-8gpu"))
    data = result.to_json()
    reserve = data["memory_breakdown"]["framework_reserve"]
    assert reserve >= 3 * 2**30  # CUDA context, NCCL and workspaces, before fragmentation
    assert data["memory_margin_bytes"] == pytest.approx(
        data["memory_capacity_bytes"] - data["memory_per_gpu_bytes"])
    assert data["framework"] == {"name": "megatron-core", "runs": True, "problems": []}


def test_context_parallel_algorithms() -> None:
    """The ring hides its K/V passes behind attention; an all-gather does not; Ulysses'
    all-to-alls move Q, K, V and the output (Megatron-Core's cp_comm_type p2p, all_gather,
    a2a)."""
    name = "nemo2407-pretrain-llama3-70b-64gpu"  # cp = 2
    times = {a: evaluate_case(load(name, [f"training.cp_algorithm=\"{a}\""])).values
             for a in ("ring", "all_gather")}
    assert times["ring"]["cp_communication"] <= times["all_gather"]["cp_communication"]
    assert times["all_gather"]["cp_communication"] > 0


def test_ulysses_needs_heads_divisible_by_tp_times_cp() -> None:
    from perfcost.solver.case.errors import CaseError

    # Llama 3 70B has 64 heads: tp 4 x cp 32 = 128 does not divide them.
    with pytest.raises(CaseError, match="cp_algorithm = 'a2a'"):
        evaluate_case(load("nemo2407-pretrain-llama3-70b-64gpu", [
            "training.cp_algorithm=\"a2a\"", "parallelism.cp=32", "parallelism.dp=1",
            "parallelism.pp=1", "cluster.gpus=128", "parallelism.virtual_stages=1"]))


def test_every_engine_keeps_to_ulysses_and_the_framework_rules() -> None:
    """Enumeration and the MILP agree on a search with Ulysses context parallelism and
    Megatron-Core's interleaving rule, and the optimum keeps both."""
    from perfcost.solver.engines.solve import solve_case

    overrides = ["training.cp_algorithm=\"a2a\"", "parallelism.cp=[1, 2, 4, 8]",
                 "parallelism.tp=[1, 2, 4, 8]", "parallelism.pp=[1, 2, 4]",
                 "parallelism.virtual_stages=[1, 2, 5]", "parallelism.micro_batch=1",
                 "parallelism.dp=[1, 2, 4, 8, 16, 32, 64]",
                 "parallelism.recompute=[\"none\", \"full\"]",
                 "parallelism.sequence_parallel=true", "parallelism.zero=[0, 1]"]
    case = load("nemo2407-pretrain-llama3-70b-64gpu", overrides)
    by_enum = solve_case(case, engine="enumerate").result
    by_milp = solve_case(case, engine="milp").result
    assert by_enum.status == by_milp.status == "optimal"
    assert by_milp.value == pytest.approx(by_enum.value, rel=1e-9)
    config = by_enum.config
    assert 64 % (config["tp"] * config["cp"]) == 0
    assert framework_problems(case, config) == []


def test_bf16_moments_halve_the_moments_bytes() -> None:
    """DeepSeek-V3 Sec. 3.3.3: AdamW moments in BF16, the FP32 master weight kept."""
    fp32_state, fp32_step = adam_bytes("fp32")
    bf16_state, bf16_step = adam_bytes("bf16")
    master = 4.0
    assert fp32_state == 12.0
    assert bf16_state - master == (fp32_state - master) / 2
    # The fused Adam reads and writes both moments once: 2 x 2 x 2 B fewer per parameter.
    assert fp32_step - bf16_step == 8.0


def _mla_dims() -> tuple[transformer.Dims, mla.LatentDims]:
    b, s, h, a, t, e = sp.symbols("b s h a t e", positive=True)
    q_lora, kv_lora, nope, rope, v = sp.symbols("d_cq d_c d_nope d_rope d_v", positive=True)
    dims = transformer.Dims(b=b, s=s, h=h, a=a, kv=a, ffn=4 * h, vocab=sp.Symbol("V"), t=t,
                            c=sp.Integer(1), sigma=sp.Integer(1), e=e, mask=sp.Integer(0),
                            swiglu=True, dropout=False, gqa=False, qk_dim=nope + rope,
                            v_dim=v)
    return dims, mla.LatentDims(q_lora, kv_lora, nope, rope, v)


def test_recomputing_mla_up_projections_removes_exactly_their_outputs() -> None:
    dims, latent = _mla_dims()
    kept = mla.activation_bytes(dims, latent)
    recomputed = mla.activation_bytes(dims, latent, 1)
    qkv = dims.local_heads * (2 * latent.qk + latent.v)
    assert sp.simplify(kept - recomputed - dims.tokens * dims.e * qkv) == 0
    # The output projection's input in E5M6 (12 bits) instead of BF16: 0.75 of its bytes.
    e5m6 = mla.activation_bytes(dims, latent, output_bytes=precision.cached_bytes("delayed",
                                                                                   "e5m6"))
    output = dims.tokens * dims.local_heads * latent.v
    assert sp.simplify(kept.subs(dims.e, 2) - e5m6.subs(dims.e, 2) - output / 2) == 0


def test_recomputed_norms_drop_their_outputs_and_keep_the_core_stored() -> None:
    """With DeepSeek-V3's modules the norm outputs (QKV and fc1 inputs) are not kept and the
    attention core is: no FlashAttention forward is rerun (Sec. 3.2.3)."""
    dims, _ = _mla_dims()
    lin, sel = sp.Integer(1), sp.Symbol("sel")
    default = memory.activation_terms(dims, flash=False, linear_input_bytes=lin)
    deepseek = memory.activation_terms(dims, flash=False, linear_input_bytes=lin,
                                       modules=("layernorm", "mla_up_proj", "moe_act"))
    no = sp.Integer(0)
    dropped = (memory.layer_activation_bytes(deepseek, no, no)
               - memory.layer_activation_bytes(deepseek, sel, no))
    assert sp.simplify(dropped - sel * dims.tokens * dims.h * 2 * lin) == 0
    kept_core = memory.layer_activation_bytes(default, sel, no).subs(sel, 1)
    assert sp.simplify(memory.layer_activation_bytes(deepseek, sp.Integer(1), no) - kept_core
                       - default.attention_core + dims.tokens * dims.h * 2 * lin) == 0
    ops = [transformer.elementwise(n, "layer", dims.tokens, 2, dims.e)
           for n in ("ln_attention", "ln_mlp", "activation")]
    assert [op.name for op in memory.recompute_ops(ops, ("layernorm",))] == ["ln_attention",
                                                                             "ln_mlp"]


def test_recomputed_swiglu_keeps_its_input_in_fp8_and_not_its_output() -> None:
    dims, _ = _mla_dims()
    x = moe.ExpertDims(*sp.symbols("E E_sh k f_e ep", positive=True), sp.Integer(1),
                       sp.Integer(1))
    lin = sp.Integer(1)
    stored = moe.activation_bytes(dims, x, lin)
    recomputed = moe.activation_bytes(dims, x, lin, recompute_activation=True)
    per_copy = x.ffn * (dims.gate_factor * (dims.e - lin) + lin)
    # The shared experts split their width over the tensor-parallel ranks.
    expected = (moe.token_copies(dims, x) + dims.tokens * x.shared / dims.t) * per_copy
    assert sp.simplify(stored - recomputed - expected) == 0


@settings(max_examples=25, deadline=None)
@given(ranks=st.integers(1, 16), per_rank=st.integers(1, 8), top_k=st.integers(1, 8))
def test_distinct_ranks_per_token_is_the_hypergeometric_count(ranks: int, per_rank: int,
                                                              top_k: int) -> None:
    """A token's k experts among ranks x n, each rank missed with C(R - n, k) / C(R, k)."""
    if top_k > ranks * per_rank:
        return
    x = moe.ExpertDims(sp.Integer(ranks * per_rank), sp.Integer(0), sp.Integer(top_k),
                       sp.Integer(1), sp.Integer(ranks), sp.Integer(1), sp.Integer(1))
    got = float(moe.distinct_ranks_per_token(x, sp.Integer(1), top_k))
    total = ranks * per_rank
    expected = ranks * (1 - math.comb(total - per_rank, top_k) / math.comb(total, top_k))
    assert got == pytest.approx(expected, rel=1e-12)
    assert 1 - 1e-12 <= got <= min(top_k, ranks) + 1e-12


def test_fine_grained_fp8_caches_carry_their_scales() -> None:
    assert precision.cached_bytes("delayed") == 1
    assert precision.cached_bytes("block") == 1 + sp.Rational(4, 128)
    assert precision.cached_bytes("mxfp8") == 1 + sp.Rational(1, 32)
    assert precision.cached_bytes("block", "e5m6") == sp.Rational(3, 2) + sp.Rational(4, 128)


def test_one_fp8_weight_copy_is_transposed_before_each_dgrad() -> None:
    """HAI-LLM keeps the row-wise FP8 weight only (128 x 128 blocks transpose without
    requantising): one byte per weight resident, one transpose per dgrad in backward."""
    m, n, k, e = sp.symbols("m n k e", positive=True)
    backward = transformer.gemm_backward("fc1", "layer", m, n, k, e)
    plain = precision.quantised(backward, e, "block")
    transposed = precision.quantised(backward, e, "block", transpose_weights=True)
    extra = [op for op in transposed if op not in plain]
    assert [op.name for op in extra] == ["fc1.dgrad.weight_transpose"]
    assert sp.simplify(extra[0].bytes - 2 * n * k) == 0  # read and write the k x n weight
    assert precision.weight_copy_bytes(1) == precision.weight_copy_bytes() / 2 == 1
