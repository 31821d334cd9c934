"""Serving metrics of a deployment: TTFT, TPOT, throughput, replicas, cost and energy.

Two deployments, each a registered formulation over the step times of :mod:`inference`:

``serving`` -- one pool of replicas that prefill and decode (colocated):

* *continuous batching* (Orca, Yu et al. OSDI'22) with chunked prefill mixed into decode steps
  (Sarathi-Serve, Agrawal et al. OSDI'24). In the steady state a replica keeps ``B`` sequences
  decoding; each step emits one token for each and, as ``B / s_o`` sequences finish per step,
  takes the same number of new prompts: ``P = B s_p / s_o`` prompt tokens per step. So
  ``TPOT = T(B + P)``. A new prompt is cut into chunks of at most ``C`` tokens, one per
  step: ``TTFT = ceil(s_p / C) T(B + C)``. The prompt tokens must fit the chunk budget,
  ``P <= C`` (else prompts queue without bound).
* *static batching*: ``B`` requests prefilled together, then ``s_o`` decode steps:
  ``TTFT = T_prefill(B s_p)``, ``TPOT = T(B)``, a batch every ``TTFT + (s_o - 1) TPOT``.

``serving_disaggregated`` -- a prefill pool and a decode pool, each with its own hardware and
split (DistServe, Zhong et al. OSDI'24; Splitwise, Patel et al. ISCA'24): a prefill replica
runs one prompt at a time, ``T_p = T(s_p)``; the prompt's KV cache then crosses the
scale-out network to a decode replica, which runs pure decode steps: ``TPOT = T(B)``,
``TTFT = T_p + T_kv``. Decode is no longer slowed by prompts, at the price of a second pool
and the transfer.

Either way the deployment provisions whole replicas for the request rate ``lambda``:
``ceil(lambda / rate per replica)`` of each pool; cost per million tokens is the GPUs' price
over the tokens they serve, ``(sum of GPUs x price) / (lambda (s_p + s_o)) x 10^6``, split
into input and output by the time each kind of token takes; energy per token is the
provisioned board power over the same token rate.

Queueing (:mod:`queueing`): requests arrive at random (Poisson, or bursty gamma inter-arrival
times); a continuously batching replica is a queue of ``B`` slots, each held for a request's
whole life (``e2e``), at utilisation ``rho``. ``ttft`` is the time once admitted (today's
meaning, which ``slo_ttft`` bounds); ``ttft_p50/p90/p99`` add the wait's percentiles, which
``slo_ttft_p99`` bounds. ``tpot_p99`` is the step time with every slot busy (a replica at lower
occupancy steps faster), which ``slo_tpot_p99`` bounds. Goodput is the request rate whose TTFT
meets its SLO.

A fixed fleet (``gpus``): ``floor(gpus / (tp pp))`` replicas, and the offered load a decision
(``load`` per cent of their capacity), so that the search finds the most requests per second
the fleet serves within the SLOs.

Engines (:data:`ENGINES`): the serving engine's fixed time per step (scheduler, sampler,
launch of the step's graph) and per request (admission and context set-up) are named
parameters, with the public sources of their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import inference as inf
from . import queueing
from .core import Decision, Formulation, ParameterSet, register
from .specs import InferenceSpec, ModelSpec, ServingPoolSpec

#: Tokens per million, for prices per million tokens.
MILLION = 10**6

#: Decisions of a pool: tensor and pipeline parallel degrees and the weight format.
POOL_DECISIONS: dict[str, str] = {
    "tp": "tensor-parallel GPUs per replica",
    "pp": "pipeline stages per replica",
    "precision": "weight format: bf16, fp8 or int4 (weight-only)",
}
LABELS: dict[str, tuple[str, ...]] = {"precision": inf.WEIGHT_PRECISIONS}
#: The decode batch: sequences a replica keeps decoding at once.
BATCH_DOC = "sequences decoding at once on one replica (continuous) or per batch (static)"
#: Expert parallelism, a decision of MoE models only.
EP_DOC = "expert-parallel GPUs per stage (each expert split over the other tp / ep)"


@dataclass(frozen=True)
class EngineOverheads:
    """Fixed costs of one serving engine, in seconds, and where they come from."""

    step: float
    request: float
    cuda_graphs: bool
    source: str


#: Fixed costs per engine. Engines overlap most host work with the GPU; these are what is
#: left on the critical path of a step and of a request's first token.
ENGINES: dict[str, EngineOverheads] = {
    "none": EngineOverheads(0.0, 0.0, True, "no engine overhead: the case's step_overhead"),
    # vLLM v0.6 (blog 'vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction',
    # 2024-09-05): before it, API server and scheduler took over half of a Llama-3 8B H100
    # step; with multi-step scheduling and the async output processor the remaining host
    # time per step is of the order of a millisecond. Estimate: 1 ms per step, 2 ms per
    # request (tokenise, admit, allocate blocks), CUDA graphs on for decode.
    "vllm": EngineOverheads(1.0e-3, 2.0e-3, True,
                            "estimate after the vLLM v0.6.0 blog (2024-09-05) profile"),
    # SGLang v0.4 (blog 'SGLang v0.4: Zero-Overhead Batch Scheduler', 2024-12-04): the CPU
    # scheduler runs one batch ahead, overlapped with the GPU; left is the sampler's sync.
    # Estimate: 0.3 ms per step, 2 ms per request.
    "sglang": EngineOverheads(0.3e-3, 2.0e-3, True,
                              "estimate after the SGLang v0.4 blog (2024-12-04)"),
    # TensorRT-LLM: the C++ runtime enqueues a prebuilt TensorRT engine (no Python per step);
    # gptSessionBenchmark times the session only. Estimate: 0.2 ms per step (sampling and
    # the host-device sync of the step's tokens), 1 ms per request (context set-up).
    "trtllm": EngineOverheads(0.2e-3, 1.0e-3, False,
                              "estimate: TensorRT-LLM C++ runtime (docs/source/performance.md "
                              "benchmarks time gptSessionBenchmark sessions)"),
}
#: Offered load of a fixed fleet, per cent of its capacity: the values searched.
LOAD_PERCENTS: tuple[int, ...] = tuple(range(5, 100, 5))
LOAD_DOC = "offered load of a fixed fleet, per cent of its replicas' capacity"


def _decisions(prefix: str, model: ModelSpec) -> dict[str, Decision]:
    out = {}
    docs = dict(POOL_DECISIONS)
    if model.moe:
        docs["ep"] = EP_DOC
    for name, doc in docs.items():
        if name in LABELS:
            symbol = sp.Symbol(prefix + name, integer=True, nonnegative=True)
        else:
            symbol = sp.Symbol(prefix + name, integer=True, positive=True)
        out[prefix + name] = Decision(symbol, doc, LABELS.get(name, ()))
    return out


def _ep(dec: dict[str, Decision], prefix: str) -> sp.Expr | None:
    """A pool's expert-parallel degree, where the model has experts."""
    found = dec.get(prefix + "ep")
    return None if found is None else found.symbol


def _workload(ps: ParameterSet, job: InferenceSpec) -> dict[str, sp.Expr]:
    add = ps.add
    return {
        "s_p": add("prompt_len", job.prompt_len, "1", "prompt tokens per request"),
        "s_o": add("output_len", job.output_len, "1", "output tokens per request"),
        "rate": add("request_rate", job.rate, "1/s", "requests per second"),
        "C": add("chunk_tokens", job.chunk_tokens, "1",
                 "prompt tokens one continuous-batching step takes at most"),
        "block": add("block_size", job.block_size, "1", "tokens per KV-cache block"),
        "util": add("memory_utilization", job.memory_utilization, "1",
                    "fraction of HBM the serving engine may use"),
        "step": add("step_overhead", job.step_overhead, "s",
                    "fixed time per step (scheduling, sampling)")
        + add("engine_step_overhead", ENGINES[job.engine].step, "s",
              f"fixed time per step of the {job.engine} engine ({ENGINES[job.engine].source})"),
        "request": add("engine_request_overhead", ENGINES[job.engine].request, "s",
                       f"fixed time per request before its first token, {job.engine} engine"),
        "ca2": add("arrival_scv", job.arrival_scv, "1",
                   "squared coefficient of variation of inter-arrival times (1: Poisson)"),
        "slo_ttft": add("slo_ttft", job.slo_ttft, "s", "time-to-first-token objective"),
        "slo_tpot": add("slo_tpot", job.slo_tpot, "s", "time-per-output-token objective"),
        **({"slo_ttft_p99": add("slo_ttft_p99", job.slo_ttft_p99, "s",
                                "99th-percentile time-to-first-token objective")}
           if job.slo_ttft_p99 else {}),
        **({"slo_tpot_p99": add("slo_tpot_p99", job.slo_tpot_p99, "s",
                                "99th-percentile time-per-output-token objective")}
           if job.slo_tpot_p99 else {}),
    }


def _queueing(w: dict[str, sp.Expr], rho: sp.Expr, slots: sp.Expr, holding: sp.Expr,
              ttft: sp.Expr, tpot: sp.Expr, rate: sp.Expr) -> dict[str, sp.Expr]:
    """TTFT percentiles with the queueing wait (:mod:`queueing`), the p99 TPOT and goodput."""
    out: dict[str, sp.Expr] = {}
    for pct in queueing.PERCENTILES:
        wait = queueing.wait_quantile(pct / 100, rho, slots, holding, w["ca2"], sp.Integer(0))
        out[f"ttft_p{pct}"] = ttft + wait
    out["mean_queueing_wait"] = queueing.mean_wait(rho, slots, holding, w["ca2"],
                                                   sp.Integer(0))
    # Every slot busy: the slowest step a request sees.
    out["tpot_p99"] = tpot
    target = w.get("slo_ttft_p99", w["slo_ttft"])
    met = queueing.served_fraction(target - ttft, rho, slots, holding, w["ca2"],
                                   sp.Integer(0))
    tpot_target = w.get("slo_tpot_p99", w["slo_tpot"])
    out["goodput_requests_per_s"] = rate * met * queueing.step(tpot_target - tpot)
    out["load_utilisation"] = rho
    return out


def _step(ms: inf.ModelSymbols, pool: inf.Pool, w: dict[str, sp.Expr], decode: sp.Expr,
          prefill: sp.Expr, logit_rows: sp.Expr) -> inf.StepTimes:
    """A step with ``decode`` sequences at the average context and ``prefill`` prompt tokens
    (their share of whole prompts' causal attention)."""
    context = w["s_p"] + w["s_o"] / 2
    attention = inf.decode_attention_time(ms, pool, decode, context) if decode != 0 else 0
    if prefill != 0:
        attention += inf.prefill_attention_time(ms, pool, prefill, w["s_p"])
    return inf.step_time(ms, pool, decode + prefill, attention, logit_rows)


def _pipeline_fill(pool: inf.Pool, step: inf.StepTimes) -> sp.Expr:
    """Latency a prompt adds to a step's throughput time on ``pp`` stages: the step's ``pp``
    micro-batches take ``pp`` stage slots each cycle once the pipeline is full, but the last
    one of a prompt leaves the last stage ``pp - 1`` slots later (the fill of the 1F1B
    forward pass, Narayanan et al. SC'21 Sec. 2.2)."""
    return (pool.pp - 1) / pool.pp * step.total


def _memory(ms: inf.ModelSymbols, pool: inf.Pool, w: dict[str, sp.Expr], sequences: sp.Expr,
            step_tokens: sp.Expr) -> dict[str, sp.Expr]:
    """Memory of one GPU of a pool holding ``sequences`` full-length sequences' KV cache."""
    context = w["s_p"] + w["s_o"]
    kv_token = inf.kv_bytes_per_token(ms, pool)
    weights = inf.weights_per_gpu(ms, pool)
    workspace = inf.activation_workspace(ms, pool, step_tokens, sequences + 1)
    kv = sequences * inf.blocks(context, w["block"]) * w["block"] * kv_token
    capacity = w["util"] * pool.hbm_capacity
    return {
        "weights_per_gpu": weights,
        "activation_workspace": workspace,
        "kv_cache_bytes": kv,
        "kv_bytes_per_token": kv_token,
        "memory_per_gpu": weights + workspace + kv,
        "memory_capacity": capacity,
        "max_batch": _max_batch(capacity - weights, workspace, sequences, kv_token, context,
                                w["block"]),
    }


def _max_batch(free: sp.Expr, workspace: sp.Expr, sequences: sp.Expr, kv_token: sp.Expr,
               context: sp.Expr, block: sp.Expr) -> sp.Expr:
    """The most sequences whose KV cache and step workspace fit in ``free`` bytes (the
    workspace grows linearly with the sequences a step carries)."""
    if not isinstance(sequences, sp.Symbol):
        return inf.max_sequences(free - workspace, kv_token, context, block)
    fixed = workspace.subs(sequences, 0)
    per_sequence = workspace.subs(sequences, 1) - fixed
    cache = inf.blocks(context, block) * block * kv_token
    return sp.Max(0, sp.floor((free - fixed) / (cache + per_sequence)), evaluate=False)


def _units(expressions: dict[str, sp.Expr]) -> dict[str, str]:
    units = {}
    for name in expressions:
        if name.startswith(("throughput", "requests", "goodput")):
            units[name] = "1/s"
        elif name.endswith(("bytes", "_per_gpu", "memory_capacity", "workspace")):
            units[name] = "B"
        elif name in ("ttft", "tpot", "e2e_latency", "kv_transfer", "mean_queueing_wait",
                      "request_overhead_time") or name.startswith(
                ("decode_step", "prefill_step", "mixed_step", "chunk_step", "ttft_p",
                 "tpot_p")):
            units[name] = "s"
        elif name.startswith("cost"):
            units[name] = "USD/Mtok"
        elif name == "energy_per_token":
            units[name] = "J"
        else:
            units[name] = "1"
    return units


def _step_group(step: str) -> tuple[str, ...]:
    """The names of a step's parts (:meth:`inference.StepTimes.as_dict` with ``step``)."""
    return tuple(f"{step}_{k}" for k in inf.STEP_PARTS)


def _pricing(w: dict[str, sp.Expr], gpu_cost: sp.Expr, input_cost: sp.Expr,
             power: sp.Expr, rate: sp.Expr | None = None) -> dict[str, sp.Expr]:
    """Cost and energy per token of a deployment costing ``gpu_cost`` USD/s, ``input_cost``
    of it attributed to prompt tokens, drawing ``power`` W at the request rate."""
    rate = w["rate"] if rate is None else rate
    tokens = rate * (w["s_p"] + w["s_o"])
    return {
        "cost_per_million_tokens": gpu_cost / tokens * MILLION,
        "cost_per_million_input_tokens": input_cost / (rate * w["s_p"]) * MILLION,
        "cost_per_million_output_tokens": (gpu_cost - input_cost) / (rate * w["s_o"])
        * MILLION,
        "energy_per_token": power / tokens,
        "cost_per_s": gpu_cost,
    }


@register("serving")
def build_serving(model: ModelSpec, pool_spec: ServingPoolSpec, job: InferenceSpec
                  ) -> Formulation:
    """One pool that prefills and decodes (continuous or static batching)."""
    ps = ParameterSet()
    ms = inf.model_symbols(ps, model, job.activation_bytes, job.kv_bytes)
    w = _workload(ps, job)
    dec = _decisions("", model)
    batch = Decision(sp.Symbol("batch", integer=True, positive=True), BATCH_DOC)
    dec["batch"] = batch
    B = batch.symbol
    pool = inf.pool_parameters(ps, "", pool_spec, dec["tp"].symbol, dec["pp"].symbol,
                               dec["precision"].symbol, _ep(dec, ""))
    s_p, s_o, C = w["s_p"], w["s_o"], w["C"]

    expressions: dict[str, sp.Expr] = {}
    decode_only = _step(ms, pool, w, B, sp.Integer(0), B)
    t_decode = decode_only.total + w["step"]
    if job.batching == "continuous":
        prompt_tokens = B * s_p / s_o
        mixed = _step(ms, pool, w, B, prompt_tokens, B + B / s_o)
        chunk = _step(ms, pool, w, B, C, B + 1)
        tpot = mixed.total + w["step"]
        chunks = sp.ceiling(s_p / C)
        # The last chunk also waits for the pipeline to drain (see _pipeline_fill).
        fill = _pipeline_fill(pool, chunk)
        ttft = chunks * (chunk.total + w["step"]) + fill + w["request"]
        e2e = ttft + (s_o - 1) * tpot
        replica_rate = B / (s_o * tpot)
        # Time of a step spent on prompts: the mixed step over the decode-only step.
        input_share = (tpot - t_decode) / tpot
        step_tokens = B + C
        expressions.update(mixed.as_dict("mixed_step"))
        expressions.update(chunk.as_dict("chunk_step"))
        expressions.update({"prompt_tokens_per_step": prompt_tokens,
                            "prefill_chunks": chunks,
                            "prefill_budget_ok": sp.Piecewise((1, prompt_tokens <= C),
                                                              (0, True))})
    else:
        prefill = _step(ms, pool, w, sp.Integer(0), B * s_p, B)
        fill = _pipeline_fill(pool, prefill)
        ttft = prefill.total + w["step"] + fill + w["request"]
        tpot = t_decode
        e2e = ttft + (s_o - 1) * tpot
        replica_rate = B / e2e
        input_share = ttft / e2e
        step_tokens = B * s_p
        expressions.update(prefill.as_dict("prefill_step"))
        expressions["prefill_budget_ok"] = sp.Integer(1)

    if job.gpus:
        # A fixed fleet: its whole replicas, loaded to the searched share of their capacity.
        load = Decision(sp.Symbol("load", integer=True, positive=True), LOAD_DOC)
        dec["load"] = load
        replicas = sp.floor(ps.add("fleet_gpus", job.gpus, "1", "GPUs of the fixed fleet")
                            / pool.gpus)
        rate = load.symbol / 100 * replicas * replica_rate
    else:
        rate = w["rate"]
        replicas = sp.ceiling(rate / replica_rate)
    gpus = replicas * pool.gpus
    gpu_cost = gpus * pool.gpu_price
    rho = rate / (replicas * replica_rate)
    expressions.update(_queueing(w, rho, B, e2e, ttft, tpot, rate))
    expressions["request_overhead_time"] = w["request"]
    expressions["request_rate"] = rate
    expressions.update(decode_only.as_dict("decode_step"))
    expressions.update(_memory(ms, pool, w, B, step_tokens))
    expressions.update({
        "ttft": ttft,
        "tpot": tpot,
        "e2e_latency": e2e,
        "throughput_tokens_per_s": s_o * replica_rate,
        "throughput_per_gpu": rate * s_o / gpus,
        "requests_per_s_per_replica": replica_rate,
        "replicas": replicas,
        "gpus_per_replica": pool.gpus,
        "gpus": gpus,
        "goodput_per_gpu": replica_rate / pool.gpus,
        "utilisation": rho,
        "pipeline_fill": fill,
        "step_overhead_time": w["step"],
        "parameters": inf.total_parameters(ms),
        **_pricing(w, gpu_cost, gpu_cost * input_share, gpus * pool.power, rate),
    })
    # The step a TPOT is made of, and the one a TTFT repeats.
    tpot_step, ttft_step = (("mixed_step", "chunk_step") if job.batching == "continuous"
                            else ("decode_step", "prefill_step"))
    return Formulation(
        name="serving",
        expressions=expressions,
        units=_units(expressions),
        docs={"ttft": "time to first token", "tpot": "time per output token",
              "throughput_tokens_per_s": "output tokens per second of one replica"},
        decisions=dec,
        parameters=ps.parameters,
        groups={"tpot": _step_group(tpot_step), "ttft": _step_group(ttft_step),
                "memory_per_gpu": ("weights_per_gpu", "activation_workspace",
                                   "kv_cache_bytes")},
    )


@register("serving_disaggregated")
def build_disaggregated(model: ModelSpec, prefill_spec: ServingPoolSpec,
                        decode_spec: ServingPoolSpec, job: InferenceSpec) -> Formulation:
    """A prefill pool and a decode pool, the KV cache sent between them."""
    ps = ParameterSet()
    ms = inf.model_symbols(ps, model, job.activation_bytes, job.kv_bytes)
    w = _workload(ps, job)
    dec = {**_decisions("prefill_", model), **_decisions("", model)}
    dec["batch"] = Decision(sp.Symbol("batch", integer=True, positive=True), BATCH_DOC)
    B = dec["batch"].symbol
    pre = inf.pool_parameters(ps, "prefill_", prefill_spec, dec["prefill_tp"].symbol,
                              dec["prefill_pp"].symbol, dec["prefill_precision"].symbol,
                              _ep(dec, "prefill_"))
    dcd = inf.pool_parameters(ps, "", decode_spec, dec["tp"].symbol, dec["pp"].symbol,
                              dec["precision"].symbol, _ep(dec, ""))
    s_p, s_o = w["s_p"], w["s_o"]

    prefill = _step(ms, pre, w, sp.Integer(0), s_p, sp.Integer(1))
    t_prefill = prefill.total + w["step"]
    decode = _step(ms, dcd, w, B, sp.Integer(0), B)
    tpot = decode.total + w["step"]
    # The prompt's whole KV cache crosses the scale-out network, every prefill GPU sending
    # its share at once (each GPU has its own NIC), at the slower pool's per-GPU rate.
    kv_total = s_p * inf.kv_bytes_per_token_model(ms)
    senders = pre.gpus
    link_rate = sp.Min(pre.out.rate, dcd.out.rate)
    # One message latency across the scale-out fabric, half of it at each pool's end (a
    # smooth mean rather than the larger of two equal values, which would be a kink).
    latency = (pre.out.latency + dcd.out.latency) / 2
    kv_transfer = latency + kv_total / (senders * link_rate)
    fill = _pipeline_fill(pre, prefill)
    ttft = t_prefill + fill + kv_transfer + w["request"]
    e2e = ttft + (s_o - 1) * tpot
    prefill_rate = 1 / t_prefill
    decode_rate = B / (s_o * tpot)
    prefill_replicas = sp.ceiling(w["rate"] / prefill_rate)
    decode_replicas = sp.ceiling(w["rate"] / decode_rate)
    prefill_gpus = prefill_replicas * pre.gpus
    decode_gpus = decode_replicas * dcd.gpus
    prefill_cost = prefill_gpus * pre.gpu_price
    gpu_cost = prefill_cost + decode_gpus * dcd.gpu_price

    expressions: dict[str, sp.Expr] = {}
    expressions.update(prefill.as_dict("prefill_step"))
    expressions.update(decode.as_dict("decode_step"))
    memory = _memory(ms, dcd, w, B, B)
    prefill_memory = _memory(ms, pre, w, sp.Integer(1), s_p)
    expressions.update(memory)
    expressions.update({f"prefill_{k}": v for k, v in prefill_memory.items()})
    expressions.update({
        "ttft": ttft,
        "tpot": tpot,
        "e2e_latency": e2e,
        "prefill_time": t_prefill,
        "pipeline_fill": fill,
        "step_overhead_time": w["step"],
        "kv_transfer": kv_transfer,
        "kv_transfer_bytes": kv_total,
        "throughput_tokens_per_s": B / tpot,
        "throughput_per_gpu": w["rate"] * s_o / (prefill_gpus + decode_gpus),
        "requests_per_s_per_replica": decode_rate,
        "prefill_requests_per_s_per_replica": prefill_rate,
        "prefill_replicas": prefill_replicas,
        "replicas": decode_replicas,
        "prefill_gpus_per_replica": pre.gpus,
        "gpus_per_replica": dcd.gpus,
        "prefill_gpus": prefill_gpus,
        "decode_gpus": decode_gpus,
        "gpus": prefill_gpus + decode_gpus,
        "goodput_per_gpu": w["rate"] / (prefill_gpus + decode_gpus),
        "prefill_budget_ok": sp.Integer(1),
        # Busy fraction of each pool at the request rate (whole replicas idle the rest).
        "prefill_utilisation": w["rate"] * t_prefill / prefill_replicas,
        "decode_utilisation": w["rate"] / (decode_replicas * decode_rate),
        "parameters": inf.total_parameters(ms),
        "request_overhead_time": w["request"],
        "request_rate": w["rate"],
        # A prompt waits for one of the prefill replicas, one prompt at a time each.
        **_queueing(w, w["rate"] * t_prefill / prefill_replicas, sp.Integer(1), t_prefill,
                    ttft, tpot, w["rate"]),
        **_pricing(w, gpu_cost, prefill_cost,
                   prefill_gpus * pre.power + decode_gpus * dcd.power),
    })
    return Formulation(
        name="serving_disaggregated",
        expressions=expressions,
        units=_units(expressions),
        docs={"ttft": "prefill, then the KV transfer", "tpot": "a pure decode step"},
        decisions=dec,
        parameters=ps.parameters,
        groups={"tpot": _step_group("decode_step"), "ttft": _step_group("prefill_step"),
                "memory_per_gpu": ("weights_per_gpu", "activation_workspace",
                                   "kv_cache_bytes")},
    )
