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


def pools(result: ServingEvaluation) -> list[PoolLaunch]:
    """The pools of the deployment, in launch order (prefill first)."""
    c, v = result.config, result.values
    sv = result.case.serving
    assert sv is not None
    step_tokens = sv.chunk_tokens if sv.batching == "continuous" else (
        int(c["batch"]) * sv.prompt_len)
    out = []
    if result.disaggregated:
        out.append(PoolLaunch(
            "prefill", round(v["prefill_replicas"]), round(v["prefill_gpus_per_replica"]),
            int(c["prefill_tp"]), int(c["prefill_pp"]), c.get("prefill_ep"),
            c["prefill_precision"], 1, sv.prompt_len, sv.memory_utilization,
            _kv_free_fraction(v, "prefill_", sv.memory_utilization)))
    decode_tokens = int(c["batch"]) if result.disaggregated else int(c["batch"]) + step_tokens
    out.append(PoolLaunch(
        "decode" if result.disaggregated else "colocated", round(v["replicas"]),
        round(v["gpus_per_replica"]), int(c["tp"]), int(c["pp"]), c.get("ep"), c["precision"],
        int(c["batch"]), decode_tokens, sv.memory_utilization,
        _kv_free_fraction(v, "", sv.memory_utilization)))
    return out


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
        flags = [f"python -m sglang.launch_server --model-path {model}", f"--tp-size {pool.tp}",
                 f"--pp-size {pool.pp}"]
        if pool.ep is not None and pool.ep > 1:
            flags.append(f"--ep-size {pool.ep}")
        flags += [f"--max-running-requests {pool.max_sequences}",
                  f"--chunked-prefill-size {pool.max_step_tokens}",
                  f"--mem-fraction-static {pool.memory_fraction:.2f}",
                  f"--page-size {block_size}"]
        if pool.role != "colocated":
            flags.append(f"--disaggregation-mode {pool.role}")
    elif engine == "trtllm":
        flags = [f"trtllm-serve {model}", "--backend pytorch", f"--tp_size {pool.tp}",
                 f"--pp_size {pool.pp}"]
        if pool.ep is not None and pool.ep > 1:
            flags.append(f"--ep_size {pool.ep}")
        flags += [f"--max_batch_size {pool.max_sequences}",
                  f"--max_num_tokens {pool.max_step_tokens}",
                  f"--kv_cache_free_gpu_memory_fraction {pool.kv_free_fraction:.2f}"]
    else:
        raise CaseError("--emit", engine, f"expected one of {', '.join(EMIT_ENGINES)}")
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
             "command": command(engine, model, p, sv.kv_precision, sv.block_size)}
            for p in pools(result)]


def render(launches: list[dict[str, Any]], engine: str) -> str:
    """The commands as a shell script fragment, a comment line above each."""
    lines = []
    for launch in launches:
        lines.append(f"# {engine}, {launch['pool']} pool: {launch['replicas']} replica(s) of "
                     f"{launch['gpus_per_replica']} GPU(s), each started with")
        lines.append(launch["command"])
    return "\n".join(lines)
