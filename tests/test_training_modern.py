"""Training as current frameworks run it (issue 15): pipeline schedules, ZeRO pricing, FP8,
framework profiles and the memory reserve."""

from __future__ import annotations

import pytest
import sympy as sp
from perfcost.formulations import schedules
from perfcost.solver.case.schema import load
from perfcost.solver.problem.evaluate import evaluate_case
from perfcost.solver.problem.specs import framework_problems

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
    assert fp8.values["weights"] == pytest.approx(2 * bf16.values["weights"])


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


def test_deepseek_v3_gpu_hours_per_trillion_tokens() -> None:
    """The published layout (PP16 DualPipe, EP64, ZeRO-1, FP8 block scaling) on 2048 H800s:
    within 15 % of the reported 180K GPU-hours per trillion tokens."""
    result = evaluate_case(load("deepseek-v3-pretrain-h800"))
    assert result.values["gpu_hours"] == pytest.approx(180_000, rel=0.15)


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
