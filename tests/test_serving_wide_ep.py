"""Wide expert parallelism with data-parallel attention (DeepSeek-V3 decoding).

The SGLang team's deployment of DeepSeek-V3 on H100 nodes ("Deploying DeepSeek with PD
Disaggregation and Large-scale Expert Parallelism on 96 H100 GPUs", LMSYS blog, 2025-05-05)
reaches 22.3k output tokens per second per decode node for 2000-token inputs, and up to 5x
the output throughput of vanilla tensor parallelism on the same GPUs. The built-in study
``serve-deepseek-v3-wide-ep-h100`` lets the solver choose data-parallel attention; these tests
check that it does, that the answer gets cheaper, and the size of the decode throughput per
node against SGLang's figure (printed beside ours).
"""

from __future__ import annotations

import pytest
from perfcost.solver.case import schema as case_mod
from perfcost.solver.serving.evaluate import evaluate_serving
from perfcost.solver.serving.search import (
    peak_throughput_per_node,
    solve_serving,
)

STUDY = "serve-deepseek-v3-wide-ep-h100"

#: SGLang's decode throughput per H100 node (8 GPUs), 2000-token inputs, and the band we
#: accept around it (our model has no two-batch overlap and no expert-load balancer: the
#: two act in opposite directions).
SGLANG_TOKENS_PER_NODE = 22.3e3
BAND = 0.25
#: SGLang: "up to 5x" vanilla tensor parallelism.
SGLANG_OVER_TP = 5.0
GPUS_PER_NODE = 8


def peak_decode_per_node(overrides: list[str]) -> tuple[float, dict[str, object]]:
    """The most output tokens per second per node of a feasible deployment's decode pool."""
    return peak_throughput_per_node(case_mod.load(STUDY, overrides), GPUS_PER_NODE)


def test_wide_ep_is_chosen_and_cheaper() -> None:
    wide = solve_serving(case_mod.load(STUDY))
    narrow = solve_serving(case_mod.load(STUDY, ["serving.dp_attention=1"]))
    assert wide.best is not None and narrow.best is not None
    assert wide.best.config["dp_attention"] > 1
    w, n = wide.best.values, narrow.best.values
    print(f"\n{'':28s} {'decode GPUs':>11s} {'GPUs':>5s} {'USD/Mtok':>9s}")
    for label, v in (("attention TP only", n), ("data-parallel attention", w)):
        print(f"{label:28s} {v['decode_gpus']:11.0f} {v['gpus']:5.0f} "
              f"{v['cost_per_million_tokens']:9.3f}")
    assert w["decode_gpus"] < n["decode_gpus"]
    assert w["cost_per_million_tokens"] < n["cost_per_million_tokens"]


def test_decode_throughput_per_node_is_sglangs() -> None:
    wide, wide_at = peak_decode_per_node([])
    narrow, narrow_at = peak_decode_per_node(["serving.dp_attention=1"])
    print(f"\npeak decode output tokens/s per node: wide EP {wide:,.0f} at {wide_at}")
    print(f"attention TP only {narrow:,.0f} at {narrow_at}")
    print(f"SGLang (LMSYS 2025-05-05): {SGLANG_TOKENS_PER_NODE:,.0f} per node; ours "
          f"{(wide / SGLANG_TOKENS_PER_NODE - 1) * 100:+.1f} %")
    print(f"over attention TP: x{wide / narrow:.1f} (SGLang: up to x{SGLANG_OVER_TP:g} over "
          "vanilla TP)")
    assert wide == pytest.approx(SGLANG_TOKENS_PER_NODE, rel=BAND)
    # docs/inference.md shows these figures (docs/generate.py computes the same row).
    from docs_pages import generator

    generate = generator()
    assert generate.SGLANG_TOKENS_PER_NODE == SGLANG_TOKENS_PER_NODE
    assert generate.shows_row("docs/inference.md", "serving_studies", generate.study_row(
        STUDY, generate.wide_ep_cell(wide, narrow))), "run python docs/generate.py"
    assert wide_at["dp_attention"] > 1
    # The direction, and a large factor: the replicated MLA cache of attention TP limits
    # its batch (MLA's latent is not split over tensor-parallel GPUs).
    assert wide / narrow > 2.0


def test_one_attention_rank_is_the_model_without_it() -> None:
    """dp_attention = 1 gives the numbers of the case without the field."""
    base = ["parallelism.pp=1", "serving.batch=64", "parallelism.ep=8",
            "serving.disaggregated=false"]
    plain = evaluate_serving(case_mod.load("serve-deepseek-v3-h200", base)).values
    one = evaluate_serving(case_mod.load("serve-deepseek-v3-h200",
                                         [*base, "serving.dp_attention=1"])).values
    for name in ("tpot", "ttft", "memory_per_gpu", "weights_per_gpu", "kv_cache_bytes"):
        assert one[name] == pytest.approx(plain[name], rel=1e-12), name


def test_experts_are_sharded_over_every_attention_rank() -> None:
    """With 32 attention ranks of one GPU the routed experts are split 32 ways, the rest is
    whole on every GPU; each rank caches only its own sequences."""
    base = ["parallelism.tp=1", "parallelism.pp=1", "serving.batch=1024",
            "serving.disaggregated=false"]
    wide = evaluate_serving(case_mod.load(STUDY, [*base, "serving.dp_attention=32",
                                                  "parallelism.ep=32"])).values
    one = evaluate_serving(case_mod.load(STUDY, [*base, "serving.dp_attention=1",
                                                 "parallelism.ep=1"])).values
    # DeepSeek-V3: 58 MoE layers of 256 experts of 3 x 7168 x 2048 weights, fp8.
    experts = 58 * 256 * 3 * 7168 * 2048
    assert one["weights_per_gpu"] - wide["weights_per_gpu"] == pytest.approx(
        experts * (1 - 1 / 32), rel=1e-9)
    assert wide["kv_cache_bytes"] == pytest.approx(one["kv_cache_bytes"] / 32)
    assert wide["gpus_per_replica"] == 32
    # The dispatch and combine cross the scale-out network: 32 ranks over 4 nodes.
    assert wide["decode_step_ep_communication"] > 0
    assert wide["max_batch"] > 32 * 0.9 * one["max_batch"]


def test_dp_attention_inputs() -> None:
    with pytest.raises(Exception, match="expected no data-parallel attention for a dense"):
        case_mod.load("serve-llama3-70b-8xh100", ["serving.dp_attention=8"])
    with pytest.raises(Exception, match="tensor-parallel size times the data-parallel"):
        evaluate_serving(case_mod.load(STUDY, [
            "parallelism.tp=1", "parallelism.pp=1", "serving.batch=64",
            "serving.disaggregated=false", "serving.dp_attention=8", "parallelism.ep=32"]))
