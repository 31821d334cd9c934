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

Speculative decoding (Leviathan, Kalman & Matias, "Fast Inference from Transformers via
Speculative Decoding", ICML 2023; Chen et al. 2023): each iteration drafts ``k`` tokens per
sequence, then one target step verifies all ``k + 1`` positions at once (``k + 1`` query
tokens per sequence: more GEMM rows and attention FLOPs, the same weight and KV-cache
reads). With each drafted token accepted with probability ``alpha``, an iteration emits
``(1 - alpha^(k+1)) / (1 - alpha)`` tokens on average (Leviathan et al., Eq. 1), so
``TPOT = (k T_draft + T_verify) / that``. The drafter is a smaller model of the same
tokenizer (``k`` decode steps of its own, its weights and KV cache beside the target's) or
EAGLE / multi-token-prediction heads (Li et al., "EAGLE", ICML 2024; DeepSeek-V3 report
Sec. 2.2): one decoder layer of the target's width per drafted token, with the target's
output layer.

Prefix caching (RadixAttention: Zheng et al., "SGLang: Efficient Execution of Structured
Language Model Programs", NeurIPS 2024; vLLM automatic prefix caching): a fraction ``h`` of
every prompt is found in the cache, so only ``(1 - h) s_p`` prompt tokens are computed (their
attention still spans the whole prompt), a request holds KV blocks for its own
``(1 - h) s_p + s_o`` tokens, and the cached prefixes (``cached_prefixes`` of ``h s_p``
tokens) stay resident in the KV pool, held once and shared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

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
EP_DOC = "expert-parallel GPUs per stage (each expert split over the other tp dp / ep)"
#: Data-parallel attention (wide expert parallelism), a decision of MoE models where asked.
DP_DOC = ("data-parallel attention ranks of a replica, tp GPUs each; the experts sharded "
          "over all tp dp GPUs")


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
#: Speculative drafters: none, a draft model, EAGLE / MTP heads on the target.
SPECULATIVE: tuple[str, ...] = ("none", "draft", "heads")
#: Offered load of a fixed fleet, per cent of its capacity: the values searched.
LOAD_PERCENTS: tuple[int, ...] = tuple(range(5, 100, 5))
LOAD_DOC = "offered load of a fixed fleet, per cent of its replicas' capacity"


def _decisions(prefix: str, model: ModelSpec, dp_attention: bool = False
               ) -> dict[str, Decision]:
    out = {}
    docs = dict(POOL_DECISIONS)
    if model.moe:
        docs["ep"] = EP_DOC
        if dp_attention:
            docs["dp_attention"] = DP_DOC
    for name, doc in docs.items():
        if name in LABELS:
            symbol = sp.Symbol(prefix + name, integer=True, nonnegative=True)
        else:
            symbol = sp.Symbol(prefix + name, integer=True, positive=True)
        out[prefix + name] = Decision(symbol, doc, LABELS.get(name, ()))
    return out


def _dp(dec: dict[str, Decision], prefix: str = "") -> sp.Expr | None:
    """A pool's data-parallel attention ranks, where the case searches them."""
    found = dec.get(prefix + "dp_attention")
    return None if found is None else found.symbol


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
        **({"hit": add("prefix_hit_rate", job.prefix_hit_rate, "1",
                       "fraction of prompt tokens served from the prefix cache"),
            "prefixes": add("cached_prefixes", job.cached_prefixes, "1",
                            "distinct cached prefixes resident in the KV pool")}
           if job.prefix_hit_rate else {}),
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
    queue = queueing.Queue(rho, slots, holding, w["ca2"])
    for pct in queueing.PERCENTILES:
        out[f"ttft_p{pct}"] = ttft + queue.quantile(pct / 100)
    out["mean_queueing_wait"] = queue.mean()
    # Every slot busy: the slowest step a request sees.
    out["tpot_p99"] = tpot
    target = w.get("slo_ttft_p99", w["slo_ttft"])
    met = queue.served(target - ttft)
    tpot_target = w.get("slo_tpot_p99", w["slo_tpot"])
    out["goodput_requests_per_s"] = rate * met * queueing.step(tpot_target - tpot)
    out["load_utilisation"] = rho
    return out


def computed_prompt(w: dict[str, sp.Expr]) -> sp.Expr:
    """Prompt tokens a request computes: those the prefix cache does not hold."""
    return w["s_p"] * (1 - w["hit"]) if "hit" in w else w["s_p"]


def _prefill_attention(ms: inf.ModelSymbols, pool: inf.Pool, w: dict[str, sp.Expr],
                       tokens: sp.Expr) -> sp.Expr:
    """Causal attention of ``tokens`` computed prompt tokens. With a cached prefix of
    ``h s_p`` tokens a prompt's suffix attends over the whole prompt: the causal attention
    of the whole prompt less that of the cached prefix (computed when it was first seen)."""
    s_p = w["s_p"]
    if "hit" not in w:
        return inf.prefill_attention_time(ms, pool, tokens, s_p)
    prompts = tokens / computed_prompt(w)
    cached = w["hit"] * s_p
    return (inf.prefill_attention_time(ms, pool, prompts * s_p, s_p)
            - inf.prefill_attention_time(ms, pool, prompts * cached, cached))


def _step(ms: inf.ModelSymbols, pool: inf.Pool, w: dict[str, sp.Expr], decode: sp.Expr,
          prefill: sp.Expr, logit_rows: sp.Expr, queries: sp.Expr = sp.S.One
          ) -> inf.StepTimes:
    """A step with ``decode`` sequences at the average context, ``queries`` tokens each (a
    speculative verification), and ``prefill`` computed prompt tokens (their share of whole
    prompts' causal attention)."""
    context = w["s_p"] + w["s_o"] / 2
    attention = (inf.decode_attention_time(ms, pool, decode, context, queries)
                 if decode != 0 else 0)
    if prefill != 0:
        attention += _prefill_attention(ms, pool, w, prefill)
    return inf.step_time(ms, pool, decode * queries + prefill, attention, logit_rows)


class _Prefixed(ParameterSet):
    """The parameters of a second model (the draft) under a name prefix, in the same set."""

    def __init__(self, parent: ParameterSet, prefix: str) -> None:
        self.parameters = parent.parameters
        self.prefix = prefix

    def add(self, name: str, value: float, unit: str, doc: str, *,
            latex: str | None = None) -> sp.Symbol:
        return super().add(self.prefix + name, value, unit, f"draft model: {doc}",
                           latex=None if latex is None else self.prefix + latex)


@dataclass(frozen=True)
class Speculation:
    """A speculative drafter: ``k`` tokens drafted per iteration, ``accepted`` tokens emitted
    per iteration on average, the drafter's model symbols (None: no speculation)."""

    k: sp.Expr
    accepted: sp.Expr
    drafter: inf.ModelSymbols | None
    #: EAGLE / MTP heads (on the target's hidden state), not a separate draft model.
    heads: bool = False

    @property
    def queries(self) -> sp.Expr:
        """Query tokens per sequence in a verification step."""
        return self.k + 1

    def draft_time(self, pool: inf.Pool, w: dict[str, sp.Expr], sequences: sp.Expr,
                   prompt_tokens: sp.Expr) -> sp.Expr:
        """The drafter's time per iteration: ``k`` sequential decode steps over the
        ``sequences``, the first also taking the iteration's new prompt tokens (the drafter
        keeps its own KV cache of every prompt)."""
        if self.drafter is None:
            return sp.Integer(0)
        first = _step(self.drafter, pool, w, sequences, prompt_tokens, sequences).total
        rest = _step(self.drafter, pool, w, sequences, sp.Integer(0), sequences).total
        return first + (self.k - 1) * rest

    def prefill_time(self, pool: inf.Pool, w: dict[str, sp.Expr], tokens: sp.Expr
                     ) -> sp.Expr:
        """The drafter's own prefill of ``tokens`` prompt tokens (one step)."""
        if self.drafter is None:
            return sp.Integer(0)
        return _step(self.drafter, pool, w, sp.Integer(0), tokens, sp.Integer(1)).total


def accepted_tokens(alpha: sp.Expr, k: sp.Expr) -> sp.Expr:
    """Expected tokens one verification of ``k`` drafted tokens emits when each is accepted
    with probability ``alpha`` (independently): ``(1 - alpha^(k+1)) / (1 - alpha)``
    (Leviathan et al. 2023, Eq. 1; ``k + 1`` at ``alpha = 1``, 1 at ``k = 0``)."""
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def speculation(ps: ParameterSet, model: ModelSpec, ms: inf.ModelSymbols,
                job: InferenceSpec) -> Speculation:
    """The case's drafter as symbols (a draft model's sizes under ``draft_``)."""
    if job.speculative == "none":
        return Speculation(sp.Integer(0), sp.Integer(1), None)
    k = ps.add("draft_tokens", job.draft_tokens, "1", "tokens drafted per verification step")
    alpha = ps.add("acceptance_rate", job.acceptance_rate, "1",
                   "probability that the target accepts a drafted token")
    if job.speculative == "draft":
        if job.draft_model is None:
            raise ValueError("speculative = 'draft' needs a draft model")
        drafter = inf.model_symbols(_Prefixed(ps, "draft_"), job.draft_model,
                                    job.activation_bytes, job.kv_bytes)
    else:
        # EAGLE / MTP: decoder layers of the target's own width (dense: an MoE target's MTP
        # module is counted at its dense MLP), reading the target's output layer.
        layers = ps.add("head_layers", job.head_layers, "1",
                        "decoder layers of the EAGLE / MTP draft head")
        drafter = dataclasses.replace(ms, L=layers, moe=None)
    return Speculation(k, accepted_tokens(alpha, k), drafter, job.speculative == "heads")


def _pipeline_fill(pool: inf.Pool, step: inf.StepTimes) -> sp.Expr:
    """Latency a prompt adds to a step's throughput time on ``pp`` stages: the step's ``pp``
    micro-batches take ``pp`` stage slots each cycle once the pipeline is full, but the last
    one of a prompt leaves the last stage ``pp - 1`` slots later (the fill of the 1F1B
    forward pass, Narayanan et al. SC'21 Sec. 2.2)."""
    return (pool.pp - 1) / pool.pp * step.total


def _memory(ms: inf.ModelSymbols, pool: inf.Pool, w: dict[str, sp.Expr], sequences: sp.Expr,
            step_tokens: sp.Expr, spec: Speculation | None = None) -> dict[str, sp.Expr]:
    """Memory of one GPU of a pool holding ``sequences`` full-length sequences' KV cache
    (their own tokens; a cached prefix is held once, shared), the cached prefixes, and a
    drafter's weights and KV cache."""
    context = computed_prompt(w) + w["s_o"]
    kv_token = inf.kv_bytes_per_token(ms, pool)
    weights = inf.weights_per_gpu(ms, pool)
    drafter = None if spec is None else spec.drafter
    if drafter is not None:
        kv_token += inf.kv_bytes_per_token(drafter, pool)
        # EAGLE / MTP heads share the target's embedding and output layer: only their
        # decoder layers are added, split over the tensor-parallel GPUs.
        weights += (drafter.L * inf.layer_weights(drafter) / pool.t
                    * inf.weight_bytes(pool.precision) if spec.heads
                    else inf.weights_per_gpu(drafter, pool))
    workspace = inf.activation_workspace(ms, pool, step_tokens, sequences + 1)
    kv = sequences * inf.blocks(context, w["block"]) * w["block"] * kv_token
    prefixes = (w["prefixes"] * inf.blocks(w["hit"] * w["s_p"], w["block"]) * w["block"]
                * kv_token if "hit" in w else sp.Integer(0))
    capacity = w["util"] * pool.hbm_capacity
    return {
        "weights_per_gpu": weights,
        "activation_workspace": workspace,
        "kv_cache_bytes": kv,
        "prefix_cache_bytes": prefixes,
        "kv_bytes_per_token": kv_token,
        "memory_per_gpu": weights + workspace + kv + prefixes,
        "memory_capacity": capacity,
        "max_batch": _max_batch(capacity - weights - prefixes, workspace, sequences, kv_token,
                                context, w["block"]),
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
                      "request_overhead_time", "draft_time", "ttft_draft_time"
                      ) or name.startswith(
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


def _feature_quantities(w: dict[str, sp.Expr], spec: Speculation,
                        computed: sp.Expr) -> dict[str, sp.Expr]:
    """What speculation and the prefix cache contribute, for reports and tests."""
    return {"accepted_tokens_per_step": spec.accepted,
            "draft_tokens": spec.k,
            "computed_prompt_tokens": computed,
            "prefill_saved_fraction": 1 - computed / w["s_p"]}


@register("serving")
def build_serving(model: ModelSpec, pool_spec: ServingPoolSpec, job: InferenceSpec
                  ) -> Formulation:
    """One pool that prefills and decodes (continuous or static batching)."""
    ps = ParameterSet()
    ms = inf.model_symbols(ps, model, job.activation_bytes, job.kv_bytes)
    w = _workload(ps, job)
    dec = _decisions("", model, job.dp_attention)
    batch = Decision(sp.Symbol("batch", integer=True, positive=True), BATCH_DOC)
    dec["batch"] = batch
    B = batch.symbol
    pool = inf.pool_parameters(ps, "", pool_spec, dec["tp"].symbol, dec["pp"].symbol,
                               dec["precision"].symbol, _ep(dec, ""), _dp(dec))
    # The sequences of one attention rank (all of them without data-parallel attention):
    # each rank steps its own, the experts take every rank's tokens.
    b = B / pool.dp
    s_o, C = w["s_o"], w["C"]
    computed = computed_prompt(w)
    spec = speculation(ps, model, ms, job)
    # An iteration verifies k + 1 positions of each sequence and emits ``accepted`` tokens.
    q, emitted = spec.queries, spec.accepted

    expressions: dict[str, sp.Expr] = {}
    decode_only = _step(ms, pool, w, b, sp.Integer(0), b * q, q)
    t_decode = (decode_only.total + w["step"] + spec.draft_time(pool, w, b, sp.Integer(0))
                ) / emitted
    if job.batching == "continuous":
        # Sequences finish every s_o / emitted iterations; as many prompts join.
        prompt_tokens = b * computed * emitted / s_o
        mixed = _step(ms, pool, w, b, prompt_tokens, b * q + b * emitted / s_o, q)
        chunk = _step(ms, pool, w, b, C, b * q + 1, q)
        draft = spec.draft_time(pool, w, b, prompt_tokens)
        tpot = (mixed.total + w["step"] + draft) / emitted
        chunks = sp.ceiling(computed / C)
        # The last chunk also waits for the pipeline to drain (see _pipeline_fill).
        fill = _pipeline_fill(pool, chunk)
        ttft_draft = spec.draft_time(pool, w, b, C)
        ttft = chunks * (chunk.total + w["step"] + ttft_draft) + fill + w["request"]
        e2e = ttft + (s_o - 1) * tpot
        replica_rate = B / (s_o * tpot)
        # Time of a step spent on prompts: the mixed step over the decode-only step.
        input_share = (tpot - t_decode) / tpot
        step_tokens = b * q + C
        expressions.update(mixed.as_dict("mixed_step"))
        expressions.update(chunk.as_dict("chunk_step"))
        expressions.update({"prompt_tokens_per_step": prompt_tokens,
                            "prefill_chunks": chunks,
                            "prefill_budget_ok": sp.Piecewise((1, prompt_tokens <= C),
                                                              (0, True))})
    else:
        prefill = _step(ms, pool, w, sp.Integer(0), b * computed, b)
        fill = _pipeline_fill(pool, prefill)
        ttft_draft = spec.prefill_time(pool, w, b * computed)
        ttft = prefill.total + w["step"] + fill + w["request"] + ttft_draft
        draft = spec.draft_time(pool, w, b, sp.Integer(0))
        tpot = t_decode
        e2e = ttft + (s_o - 1) * tpot
        replica_rate = B / e2e
        input_share = ttft / e2e
        step_tokens = b * computed
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
    memory = _memory(ms, pool, w, b, step_tokens, spec)
    # The replica's sequences: every attention rank's.
    memory["max_batch"] = memory["max_batch"] * pool.dp
    expressions.update(memory)
    expressions.update(_feature_quantities(w, spec, computed))
    # The drafter's time in the iteration a TPOT divides, and in the step a TTFT repeats.
    expressions["draft_time"] = draft
    expressions["ttft_draft_time"] = ttft_draft
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
    dec = {**_decisions("prefill_", model), **_decisions("", model, job.dp_attention)}
    dec["batch"] = Decision(sp.Symbol("batch", integer=True, positive=True), BATCH_DOC)
    B = dec["batch"].symbol
    # The prefill pool runs no decode step: its decode kernels would be parameters of nothing.
    pre = inf.pool_parameters(ps, "prefill_", replace(prefill_spec, decode_kernel=None,
                                                      mla_decode_kernel=None),
                              dec["prefill_tp"].symbol, dec["prefill_pp"].symbol,
                              dec["prefill_precision"].symbol, _ep(dec, "prefill_"))
    dcd = inf.pool_parameters(ps, "", decode_spec, dec["tp"].symbol, dec["pp"].symbol,
                              dec["precision"].symbol, _ep(dec, ""), _dp(dec))
    # The sequences of one attention rank of the decode pool (see build_serving).
    b = B / dcd.dp
    s_o = w["s_o"]
    computed = computed_prompt(w)
    spec = speculation(ps, model, ms, job)

    prefill = _step(ms, pre, w, sp.Integer(0), computed, sp.Integer(1))
    # The drafter's KV cache of the prompt is built where the prompt is (the prefill pool).
    ttft_draft = spec.prefill_time(pre, w, computed)
    t_prefill = prefill.total + w["step"] + ttft_draft
    decode = _step(ms, dcd, w, b, sp.Integer(0), b * spec.queries, spec.queries)
    draft = spec.draft_time(dcd, w, b, sp.Integer(0))
    tpot = (decode.total + w["step"] + draft) / spec.accepted
    # The prompt's whole KV cache crosses the scale-out network, every prefill GPU sending
    # its share at once (each GPU has its own NIC), at the slower pool's per-GPU rate.
    # A cached prefix is held by the decode pool too (its prefix_cache_bytes): only the
    # computed tokens' KV crosses.
    kv_total = computed * inf.kv_bytes_per_token_model(ms)
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
    memory = _memory(ms, dcd, w, b, b * spec.queries, spec)
    memory["max_batch"] = memory["max_batch"] * dcd.dp
    prefill_memory = _memory(ms, pre, w, sp.Integer(1), computed, spec)
    expressions.update(_feature_quantities(w, spec, computed))
    expressions["draft_time"] = draft
    expressions["ttft_draft_time"] = ttft_draft
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
