"""Launch commands of a chosen deployment for a serving engine (``perfcost solve --emit``).

One command per pool (a disaggregated deployment has a prefill pool and a decode pool), each
run once per replica of its pool. Flag names as the engines document them:

* vLLM, ``vllm serve`` engine arguments (docs.vllm.ai, "Engine Arguments"):
  ``--tensor-parallel-size``, ``--pipeline-parallel-size``, ``--enable-expert-parallel``,
  ``--max-num-seqs``, ``--max-num-batched-tokens``, ``--gpu-memory-utilization``,
  ``--block-size``, ``--quantization``, ``--kv-cache-dtype``, ``--kv-transfer-config``
  (a ``kv_role`` of ``kv_producer`` / ``kv_consumer`` for disaggregated prefill);
* SGLang, ``python -m sglang.launch_server`` server arguments (docs.sglang.io, "Server
  Arguments"): ``--tp-size``, ``--pp-size``, ``--ep-size``, ``--max-running-requests``,
  ``--chunked-prefill-size``, ``--mem-fraction-static``, ``--page-size``,
  ``--quantization``, ``--kv-cache-dtype``, ``--disaggregation-mode prefill|decode``;
* TensorRT-LLM, ``trtllm-serve`` (nvidia.github.io/TensorRT-LLM, "trtllm-serve"):
  ``--tp_size``, ``--pp_size``, ``--ep_size``, ``--max_batch_size``, ``--max_num_tokens``,
  ``--kv_cache_free_gpu_memory_fraction`` (of the memory left after weights and buffers).

Speculative decoding and prefix caching:

* vLLM: ``--speculative-config`` (a JSON object: ``method`` "eagle" for draft heads, a draft
  ``model``, ``num_speculative_tokens``; docs.vllm.ai, "Speculative Decoding") and
  ``--enable-prefix-caching``;
* SGLang: ``--speculative-algorithm EAGLE`` (heads) or ``STANDALONE`` (a draft model),
  ``--speculative-draft-model-path``, ``--speculative-num-steps``,
  ``--speculative-eagle-topk 1`` (a chain, as the model assumes),
  ``--speculative-num-draft-tokens`` (docs.sglang.io, "Speculative Decoding"); its radix
  cache is on by default;
Data-parallel attention (wide expert parallelism): vLLM ``--data-parallel-size`` with
``--enable-expert-parallel``; SGLang ``--enable-dp-attention --dp-size`` with ``--tp-size``
counting every GPU of the replica; TensorRT-LLM ``enable_attention_dp`` in its options file,
``--tp_size`` the replica's GPUs.

* TensorRT-LLM: an ``--extra_llm_api_options`` YAML file with a ``speculative_config``
  (``decoding_type`` Eagle or DraftTarget, ``max_draft_len``, ``speculative_model_dir``) and
  ``kv_cache_config: enable_block_reuse`` (nvidia.github.io/TensorRT-LLM, "Speculative
  Decoding", "KV cache reuse").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.serving.evaluate import ServingEvaluation

#: Engines ``--emit`` writes commands for.
EMIT_ENGINES: tuple[str, ...] = ("vllm", "sglang", "trtllm")
#: fp8 KV-cache format names: SGLang spells out the e4m3 variant the others mean by "fp8".
_KV_FP8 = {"vllm": "fp8", "sglang": "fp8_e4m3"}


@dataclass(frozen=True)
class PoolLaunch:
    """What one pool's engine needs to know, from the evaluated deployment."""

    role: str  # "colocated", "prefill" or "decode"
    replicas: int
    gpus_per_replica: int
    tp: int
    pp: int
    ep: int | None
    precision: str
    max_sequences: int
    max_step_tokens: int
    memory_fraction: float
    kv_free_fraction: float
    #: Speculative decoding: "none", "draft" or "heads", tokens drafted per verification and
    #: the draft model's name; whether prompts reuse cached prefixes.
    speculative: str = "none"
    draft_tokens: int = 0
    draft_model: str = ""
    prefix_caching: bool = False
    #: Data-parallel attention ranks (wide expert parallelism over all ``tp dp`` GPUs).
    dp: int = 1


def pools(result: ServingEvaluation) -> list[PoolLaunch]:
    """The pools of the deployment, in launch order (prefill first)."""
    c, v = result.config, result.values
    sv = result.case.serving
    assert sv is not None
    step_tokens = sv.chunk_tokens if sv.batching == "continuous" else (
        int(c["batch"]) * sv.prompt_len)
    draft = sv.draft_model if isinstance(sv.draft_model, str) else (
        sv.draft_model.name if sv.draft_model is not None else "")
    features = {"speculative": sv.speculative, "draft_tokens": sv.draft_tokens or 0,
                "draft_model": draft, "prefix_caching": sv.prefix_hit_rate > 0}
    out = []
    if result.disaggregated:
        out.append(PoolLaunch(
            "prefill", round(v["prefill_replicas"]), round(v["prefill_gpus_per_replica"]),
            int(c["prefill_tp"]), int(c["prefill_pp"]), c.get("prefill_ep"),
            c["prefill_precision"], 1, sv.prompt_len, sv.memory_utilization,
            _kv_free_fraction(v, "prefill_", sv.memory_utilization),
            prefix_caching=sv.prefix_hit_rate > 0))
    # A speculative verification step carries k + 1 tokens of each sequence.
    verified = int(c["batch"]) * ((sv.draft_tokens or 0) + 1 if sv.speculative != "none" else 1)
    decode_tokens = verified if result.disaggregated else verified + step_tokens
    out.append(PoolLaunch(
        "decode" if result.disaggregated else "colocated", round(v["replicas"]),
        round(v["gpus_per_replica"]), int(c["tp"]), int(c["pp"]), c.get("ep"), c["precision"],
        int(c["batch"]), decode_tokens, sv.memory_utilization,
        _kv_free_fraction(v, "", sv.memory_utilization), **features,
        dp=int(c.get("dp_attention", 1))))
    return out


def _speculative_flags(engine: str, pool: PoolLaunch) -> list[str]:
    """vLLM's and SGLang's speculative-decoding and prefix-caching flags."""
    flags = []
    k = pool.draft_tokens
    checkpoint = (f"<{pool.draft_model} checkpoint>" if pool.speculative == "draft"
                  else "<EAGLE head checkpoint>")
    if engine == "vllm" and pool.speculative != "none":
        method = '"method": "eagle", ' if pool.speculative == "heads" else ""
        flags.append(f"--speculative-config '{{{method}\"model\": \"{checkpoint}\", "
                     f"\"num_speculative_tokens\": {k}}}'")
    if engine == "vllm" and pool.prefix_caching:
        flags.append("--enable-prefix-caching")
    if engine == "sglang" and pool.speculative != "none":
        algorithm = "EAGLE" if pool.speculative == "heads" else "STANDALONE"
        flags += [f"--speculative-algorithm {algorithm}",
                  f"--speculative-draft-model-path {checkpoint}",
                  f"--speculative-num-steps {k}", "--speculative-eagle-topk 1",
                  f"--speculative-num-draft-tokens {k + 1}"]
    return flags


#: The file of TensorRT-LLM's LLM API options the command reads.
TRTLLM_OPTIONS = "extra_llm_api_options.yaml"


def trtllm_options(pool: PoolLaunch) -> str:
    """TensorRT-LLM's LLM API options for speculation and KV-cache reuse (YAML), or ''."""
    lines = []
    if pool.speculative != "none":
        kind = "Eagle" if pool.speculative == "heads" else "DraftTarget"
        checkpoint = (f"<{pool.draft_model} checkpoint>" if pool.speculative == "draft"
                      else "<EAGLE head checkpoint>")
        lines += ["speculative_config:", f"  decoding_type: {kind}",
                  f"  max_draft_len: {pool.draft_tokens}",
                  f'  speculative_model_dir: "{checkpoint}"']
    if pool.prefix_caching:
        lines += ["kv_cache_config:", "  enable_block_reuse: true"]
    if pool.dp > 1:
        lines.append("enable_attention_dp: true")
    return "\n".join(lines)


def _kv_free_fraction(values: dict[str, float], prefix: str, utilisation: float) -> float:
    """TensorRT-LLM's KV-cache share of the memory left after weights and the step's
    buffers: the KV cache the engine may use, ``util x HBM - weights - workspace``, over the
    free memory, ``HBM - weights - workspace``."""
    capacity = values[prefix + "memory_capacity"]
    weights = values[prefix + "weights_per_gpu"]
    workspace = values[prefix + "activation_workspace"]
    free = capacity / utilisation - weights - workspace
    return max(0.0, min(1.0, (capacity - weights - workspace) / free)) if free > 0 else 0.0


def _quantisation(engine: str, pool: PoolLaunch) -> list[str]:
    if pool.precision == "fp8":
        return ["--quantization fp8"] if engine in ("vllm", "sglang") else []
    if pool.precision == "int4":
        return ["--quantization awq"] if engine in ("vllm", "sglang") else []
    return []


def command(engine: str, model: str, pool: PoolLaunch, kv_precision: str,
            block_size: int) -> str:
    """The launch command of one replica of ``pool``."""
    if engine == "vllm":
        flags = [f"vllm serve {model}", f"--tensor-parallel-size {pool.tp}",
                 f"--pipeline-parallel-size {pool.pp}"]
        if pool.dp > 1:
            flags.append(f"--data-parallel-size {pool.dp}")
        if pool.ep is not None and pool.ep > 1:
            flags.append("--enable-expert-parallel")
        flags += [f"--max-num-seqs {pool.max_sequences}",
                  f"--max-num-batched-tokens {pool.max_step_tokens}",
                  f"--gpu-memory-utilization {pool.memory_fraction:.2f}",
                  f"--block-size {block_size}"]
        if pool.role != "colocated":
            role = "kv_producer" if pool.role == "prefill" else "kv_consumer"
            flags.append(f"--kv-transfer-config '{{\"kv_role\": \"{role}\"}}'")
    elif engine == "sglang":
        # With DP attention SGLang's tp-size counts every GPU of the replica.
        flags = [f"python -m sglang.launch_server --model-path {model}",
                 f"--tp-size {pool.tp * pool.dp}", f"--pp-size {pool.pp}"]
        if pool.dp > 1:
            flags += [f"--dp-size {pool.dp}", "--enable-dp-attention"]
        if pool.ep is not None and pool.ep > 1:
            flags.append(f"--ep-size {pool.ep}")
        flags += [f"--max-running-requests {pool.max_sequences}",
                  f"--chunked-prefill-size {pool.max_step_tokens}",
                  f"--mem-fraction-static {pool.memory_fraction:.2f}",
                  f"--page-size {block_size}"]
        if pool.role != "colocated":
            flags.append(f"--disaggregation-mode {pool.role}")
    elif engine == "trtllm":
        flags = [f"trtllm-serve {model}", "--backend pytorch",
                 f"--tp_size {pool.tp * pool.dp}", f"--pp_size {pool.pp}"]
        if pool.ep is not None and pool.ep > 1:
            flags.append(f"--ep_size {pool.ep}")
        flags += [f"--max_batch_size {pool.max_sequences}",
                  f"--max_num_tokens {pool.max_step_tokens}",
                  f"--kv_cache_free_gpu_memory_fraction {pool.kv_free_fraction:.2f}"]
        if trtllm_options(pool):
            flags.append(f"--extra_llm_api_options {TRTLLM_OPTIONS}")
    else:
        raise CaseError("--emit", engine, f"expected one of {', '.join(EMIT_ENGINES)}")
    flags += _speculative_flags(engine, pool)
    flags += _quantisation(engine, pool)
    if kv_precision == "fp8" and engine in _KV_FP8:
        flags.append(f"--kv-cache-dtype {_KV_FP8[engine]}")
    return " \\\n    ".join(flags)


def emit(result: ServingEvaluation, engine: str) -> list[dict[str, Any]]:
    """One launch command per pool of the deployment, with how many replicas run it."""
    if engine not in EMIT_ENGINES:
        raise CaseError("--emit", engine, f"expected one of {', '.join(EMIT_ENGINES)}")
    sv = result.case.serving
    assert sv is not None
    model = f"<{result.case.model.name} checkpoint>"
    return [{"pool": p.role, "replicas": p.replicas, "gpus_per_replica": p.gpus_per_replica,
             "command": command(engine, model, p, sv.kv_precision, sv.block_size),
             **({"options_file": TRTLLM_OPTIONS, "options": trtllm_options(p)}
                if engine == "trtllm" and trtllm_options(p) else {})}
            for p in pools(result)]


def render(launches: list[dict[str, Any]], engine: str) -> str:
    """The commands as a shell script fragment, a comment line above each."""
    lines = []
    for launch in launches:
        lines.append(f"# {engine}, {launch['pool']} pool: {launch['replicas']} replica(s) of "
                     f"{launch['gpus_per_replica']} GPU(s), each started with")
        if "options" in launch:
            lines += [f"cat > {launch['options_file']} <<'EOF'", launch["options"], "EOF"]
        lines.append(launch["command"])
    return "\n".join(lines)
