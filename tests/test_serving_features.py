"""Speculative decoding and prefix caching in the serving model.

Each feature changes the answer of its built-in study in the direction and by about the size
its paper reports (the paper's figure is stated beside ours and printed):

* EAGLE (Li et al., "EAGLE: Speculative Sampling Requires Rethinking Feature Uncertainty",
  ICML 2024, abstract): a 2.7x-3.5x latency speed-up on LLaMA2-Chat 70B at batch 1.
  ``serve-llama3.1-70b-eagle-h200``: TPOT with EAGLE heads against plain decoding. The
  acceptance rate (0.8) is an input taken from the paper's acceptance rates, not fitted to
  its speed-up: the speed-up is the model's.
* RadixAttention (Zheng et al., "SGLang: Efficient Execution of Structured Language Model
  Programs", NeurIPS 2024, abstract and Sec. 6): up to 6.4x higher throughput on workloads
  whose prompts share prefixes (cache hit rates 50-99 %).
  ``serve-llama3-8b-prefix-cache-h100``: requests per second of one replica of the cheapest
  deployment with a 0.9 hit rate against none.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations import serving
from perfcost.solver.case import schema as case_mod
from perfcost.solver.cli.main import app
from perfcost.solver.serving.emit import emit
from perfcost.solver.serving.evaluate import evaluate_serving
from perfcost.solver.serving.search import solve_serving
from typer.testing import CliRunner

runner = CliRunner()

EAGLE = "serve-llama3.1-70b-eagle-h200"
PREFIX = "serve-llama3-8b-prefix-cache-h100"
#: EAGLE's reported speed-up range on LLaMA2-Chat 70B (abstract).
EAGLE_SPEEDUP = (2.7, 3.5)
#: SGLang's RadixAttention: "up to 6.4x" throughput on shared-prefix workloads; the lower end
#: of the band is ours (a speed-up that a 90 % hit rate on prefill-heavy requests must reach
#: at least: half of the work left is decode).
PREFIX_SPEEDUP = (2.0, 6.4)


def run_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def fail(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- Leviathan et al.'s expected tokens per verification ------------------------------------

@settings(max_examples=50, deadline=None)
@given(alpha=st.floats(0.0, 0.99), k=st.integers(1, 16))
def test_accepted_tokens_is_the_geometric_sum(alpha: float, k: int) -> None:
    """(1 - a^(k+1)) / (1 - a) is the expected length of the accepted run plus the one token
    the verification itself yields: sum of a^i for i = 0..k, between 1 and k + 1, and more
    with a better drafter or a longer draft."""
    value = float(serving.accepted_tokens(sp.Float(alpha), sp.Integer(k)))
    assert value == pytest.approx(sum(alpha**i for i in range(k + 1)), rel=1e-9)
    assert 1.0 <= value <= k + 1
    assert float(serving.accepted_tokens(sp.Float(alpha), sp.Integer(k + 1))) >= value
    assert float(serving.accepted_tokens(sp.Float(min(alpha + 0.005, 0.995)),
                                         sp.Integer(k))) >= value


# -- speculative decoding --------------------------------------------------------------------

def test_eagle_speeds_up_batch_one_decoding_as_the_paper_reports() -> None:
    with_heads = solve_serving(case_mod.load(EAGLE))
    plain = solve_serving(case_mod.load(EAGLE, ["serving.speculative=none"]))
    assert with_heads.best is not None and plain.best is not None
    speedup = plain.best.values["tpot"] / with_heads.best.values["tpot"]
    accepted = with_heads.best.values["accepted_tokens_per_step"]
    print(f"\n{'':28s} {'TPOT ms':>8s} {'tokens/verify':>14s}")
    print(f"{'plain decoding':28s} {plain.best.values['tpot'] * 1e3:8.2f} {1.0:14.2f}")
    print(f"{'EAGLE heads, k=5, a=0.8':28s} {with_heads.best.values['tpot'] * 1e3:8.2f} "
          f"{accepted:14.2f}")
    print(f"speed-up {speedup:.2f}x; EAGLE (ICML 2024) reports "
          f"{EAGLE_SPEEDUP[0]}-{EAGLE_SPEEDUP[1]}x on LLaMA2-Chat 70B")
    assert EAGLE_SPEEDUP[0] <= speedup <= EAGLE_SPEEDUP[1]
    from docs_pages import generator

    generate = generator()
    assert generate.shows_row("docs/inference.md", "serving_studies", generate.study_row(
        EAGLE, generate.eagle_cell(plain.best.values["tpot"], with_heads.best.values["tpot"]))
    ), "docs/inference.md is stale: run python docs/generate.py"
    # Fewer than the tokens per verification: drafting and the wider verification cost time.
    assert speedup < accepted


def _evaluate(name: str, *overrides: str) -> dict[str, float]:
    return evaluate_serving(case_mod.load(name, list(overrides))).values


ONE_DEPLOYMENT = ("parallelism.tp=4", "serving.batch=1")


def test_a_draft_model_costs_more_than_heads_and_holds_its_weights() -> None:
    """A Llama-3 8B draft proposes as well as the heads (same acceptance) but each drafted
    token is a step of a 32-layer model, and its weights and KV cache take HBM."""
    draft = ("serving.speculative=draft", 'serving.draft_model="llama3-8b"')
    heads = _evaluate(EAGLE, *ONE_DEPLOYMENT)
    with_draft = _evaluate(EAGLE, *ONE_DEPLOYMENT, *draft)
    plain = _evaluate(EAGLE, *ONE_DEPLOYMENT, "serving.speculative=none")
    assert heads["tpot"] < with_draft["tpot"] < plain["tpot"]
    assert with_draft["draft_time"] > 3 * heads["draft_time"]
    # About 8 B parameters in bf16 over 4 GPUs (its embedding and output layer included).
    extra = with_draft["weights_per_gpu"] - plain["weights_per_gpu"]
    assert 3.5e9 < extra < 4.5e9
    assert with_draft["kv_bytes_per_token"] > plain["kv_bytes_per_token"]


def test_speculation_does_not_pay_at_a_low_acceptance_rate() -> None:
    """With a draft model almost never right, drafting is time lost (Leviathan et al. Sec. 3.5:
    the speed-up falls below 1 when the drafter is costly and alpha small)."""
    draft = ("serving.speculative=draft", 'serving.draft_model="llama3-8b"',
             "serving.acceptance_rate=0.05")
    assert _evaluate(EAGLE, *ONE_DEPLOYMENT, *draft)["tpot"] > _evaluate(
        EAGLE, *ONE_DEPLOYMENT, "serving.speculative=none")["tpot"]


def test_breakdowns_add_up_with_speculation() -> None:
    data = run_json("evaluate", EAGLE, *(a for o in ONE_DEPLOYMENT for a in ("--set", o)))
    assert data["tpot_breakdown"]["speculative_draft"] > 0
    assert sum(data["tpot_breakdown"].values()) == pytest.approx(data["tpot_s"])
    assert sum(data["ttft_breakdown"].values()) == pytest.approx(data["ttft_s"])


def test_emit_gives_the_speculative_flags() -> None:
    best = evaluate_serving(case_mod.load(EAGLE, list(ONE_DEPLOYMENT)))
    (vllm,) = emit(best, "vllm")
    assert '"method": "eagle"' in vllm["command"]
    assert '"num_speculative_tokens": 5' in vllm["command"]
    # A verification step carries 6 tokens of the one sequence, and a prefill chunk.
    assert "--max-num-batched-tokens 2054" in vllm["command"]
    (sglang,) = emit(best, "sglang")
    for flag in ("--speculative-algorithm EAGLE", "--speculative-num-steps 5",
                 "--speculative-num-draft-tokens 6"):
        assert flag in sglang["command"]
    (trt,) = emit(best, "trtllm")
    assert "decoding_type: Eagle" in trt["options"]
    assert "max_draft_len: 5" in trt["options"]
    assert "--extra_llm_api_options" in trt["command"]


@pytest.mark.parametrize(("edit", "expected"), [
    (("serving.acceptance_rate=1",), "serving.acceptance_rate = 1: expected a number from 0 "
                                     "to 0.999"),
    (("serving.draft_tokens=0",), "serving.draft_tokens = 0: expected a positive integer"),
    (("serving.draft_tokens=100",), "serving.draft_tokens = 100: expected tokens drafted"),
    (("serving.speculative=draft",), "serving.draft_model is missing: expected a built-in "
                                     "model name"),
    (("serving.speculative=draft", 'serving.draft_model="nope"'), "serving.draft_model = "
                                                                  "'nope': unknown built-in"),
    (("serving.speculative=draft", 'serving.draft_model="gpt3-175b"'),
     "serving.draft_model.vocab = 51200: expected the target's vocabulary"),
    (('serving.draft_model="llama3-8b"',), "serving.draft_model = 'llama3-8b': expected no "
                                           "draft model with speculative = 'heads'"),
    (("serving.speculative=mtp",), "serving.speculative"),
    (("serving.prefix_hit_rate=1",), "serving.prefix_hit_rate = 1: expected a number from 0"),
    (("serving.prefix_hit_rate=-0.1",), "serving.prefix_hit_rate = -0.1: expected a number"),
])
def test_bad_speculation_and_prefix_inputs_are_one_line(edit: tuple[str, ...],
                                                        expected: str) -> None:
    line = fail("evaluate", EAGLE, *(a for o in (*ONE_DEPLOYMENT, *edit)
                                     for a in ("--set", o)))
    assert expected in line, line


# -- prefix caching --------------------------------------------------------------------------

def test_prefix_caching_raises_throughput_as_radixattention_reports() -> None:
    cached = solve_serving(case_mod.load(PREFIX))
    uncached = solve_serving(case_mod.load(PREFIX, ["serving.prefix_hit_rate=0"]))
    assert cached.best is not None and uncached.best is not None
    c, u = cached.best.values, uncached.best.values
    speedup = c["requests_per_s_per_replica"] / u["requests_per_s_per_replica"]
    print(f"\n{'':22s} {'req/s/replica':>14s} {'TTFT ms':>8s} {'GPUs':>5s} {'USD/Mtok':>9s}")
    for label, v in (("no prefix cache", u), ("hit rate 0.9", c)):
        print(f"{label:22s} {v['requests_per_s_per_replica']:14.2f} {v['ttft'] * 1e3:8.1f} "
              f"{v['gpus']:5.0f} {v['cost_per_million_tokens']:9.4f}")
    print(f"throughput x{speedup:.2f}; SGLang (NeurIPS 2024) reports up to "
          f"{PREFIX_SPEEDUP[1]}x on shared-prefix workloads")
    assert PREFIX_SPEEDUP[0] <= speedup <= PREFIX_SPEEDUP[1]
    from docs_pages import generator

    generate = generator()
    assert generate.shows_row("docs/inference.md", "serving_studies", generate.study_row(
        PREFIX, generate.prefix_cell(u, c))), (
        "docs/inference.md is stale: run python docs/generate.py")
    assert c["cost_per_million_tokens"] < u["cost_per_million_tokens"]
    assert c["gpus"] <= u["gpus"]


def test_prefix_caching_saves_prefill_and_takes_kv_memory() -> None:
    fixed = ("serving.batch=16", "parallelism.tp=1")
    cached = _evaluate(PREFIX, *fixed)
    uncached = _evaluate(PREFIX, *fixed, "serving.prefix_hit_rate=0")
    assert cached["computed_prompt_tokens"] == pytest.approx(0.1 * 4096)
    # A prompt of 4096 tokens is two chunks of 2048; its 410 computed tokens are one.
    assert uncached["prefill_chunks"] == 2 and cached["prefill_chunks"] == 1
    assert cached["ttft"] < uncached["ttft"]
    # The shared preamble is held once: 3687 tokens in 231 blocks of 16 (32 layers, 8 KV
    # heads of 128, K and V, bf16); each sequence holds only its own 410 + 64 tokens.
    per_token = 32 * 8 * 128 * 2 * 2
    assert cached["prefix_cache_bytes"] == pytest.approx(231 * 16 * per_token)
    assert cached["kv_cache_bytes"] == pytest.approx(16 * 30 * 16 * per_token)
    assert uncached["prefix_cache_bytes"] == 0
    assert cached["memory_per_gpu"] == pytest.approx(
        cached["weights_per_gpu"] + cached["activation_workspace"] + cached["kv_cache_bytes"]
        + cached["prefix_cache_bytes"])


def test_more_hits_less_prefill() -> None:
    """Time to first token and time per output token fall as the hit rate rises; no hit rate
    is no prefix cache (the formulation has no such parameter)."""
    fixed = ("serving.batch=16", "parallelism.tp=1", "serving.chunk_tokens=512")
    values = [_evaluate(PREFIX, *fixed, f"serving.prefix_hit_rate={h}") for h in (0, 0.5, 0.9)]
    assert values[0]["ttft"] > values[1]["ttft"] > values[2]["ttft"]
    assert values[0]["tpot"] > values[1]["tpot"] > values[2]["tpot"]
    plain = evaluate_serving(case_mod.load(PREFIX, [*fixed, "serving.prefix_hit_rate=0"]))
    assert "prefix_hit_rate" not in plain.formulation.parameters


def test_emit_enables_prefix_caching() -> None:
    best = evaluate_serving(case_mod.load(PREFIX, ["serving.batch=16", "parallelism.tp=1"]))
    assert "--enable-prefix-caching" in emit(best, "vllm")[0]["command"]
    assert "enable_block_reuse: true" in emit(best, "trtllm")[0]["options"]
