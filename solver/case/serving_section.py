"""The ``[serving]`` section of a case and its translation into formulation inputs.

A serving case names a model, one or more hardware entries and a network like a training case,
and a ``[serving]`` table in place of ``[training]``::

    [serving]
    prompt_len = 2048          # tokens per request
    output_len = 256
    rate = 20                  # requests per second (or gpus = 16: a fixed fleet)
    slo_ttft = "500 ms"        # once admitted (no queueing)
    slo_tpot = "40 ms"
    slo_ttft_p99 = "1 s"       # 99th percentile, queueing included (optional)
    slo_tpot_p99 = "50 ms"
    arrivals = "poisson"       # or "gamma" (gamma_shape < 1 is burstier), "deterministic"
    engine = "vllm"            # fixed costs of "vllm", "sglang", "trtllm" (default "none")
    precision = ["bf16", "fp8"]    # weight format; a list is a choice for 'perfcost solve'
    kv_precision = "bf16"
    batching = "continuous"        # or "static"
    disaggregated = [false, true]  # a choice, or fixed
    speculative = "heads"      # or "draft" (draft_model = "llama3-8b"), default "none"
    draft_tokens = 4           # tokens drafted per verification step
    acceptance_rate = 0.8      # probability a drafted token is accepted
    prefix_hit_rate = 0.5      # fraction of prompt tokens served from the prefix cache
    dp_attention = [1, 8, 16]  # MoE: attention ranks per replica, experts over all their GPUs
    [serving.prefill]              # the prefill pool of a disaggregated deployment
    hardware = "h100-sxm"
    tp = [1, 2, 4, 8]

``[parallelism]`` gives ``tp`` and ``pp`` of the (decode) pool. Every number is checked here;
a problem is a one-line :class:`CaseError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from perfcost.solver.case import catalog
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.case.fields import (
    Duration,
    Expect,
    FlagChoice,
    Fraction,
    IntChoice,
    MoneyRate,
    PositiveInt,
    Strict,
    Text,
    _choice_or_list,
    _number,
)
from perfcost.solver.case.sections import HardwareSection, ModelSection, NetworkSection
from pydantic import BeforeValidator, Field

#: Largest request rate a case may ask for (requests per second).
MAX_RATE = 1e9
#: Weight formats (the codes of formulations.inference.WEIGHT_PRECISIONS, which a test keeps
#: equal; this module stays free of sympy so that loading a case stays fast).
WEIGHT_PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "int4")
#: vLLM's defaults: gpu_memory_utilization 0.9, block_size 16 tokens, and a chunked-prefill
#: token budget (max_num_batched_tokens) of 2048 (vLLM engine arguments, v0.6).
DEFAULT_MEMORY_UTILIZATION = 0.9
DEFAULT_BLOCK_SIZE = 16
DEFAULT_CHUNK_TOKENS = 2048

#: The [parallelism] fields a serving case may set.
SERVING_PARALLELISM: tuple[str, ...] = ("tp", "pp", "ep")

PrecisionChoice = Annotated[
    str | list[str],
    BeforeValidator(_choice_or_list(WEIGHT_PRECISIONS, "one of 'bf16', 'fp8', 'int4'")),
    Expect("one of 'bf16', 'fp8', 'int4', or a non-empty list of them")]
_RATE_TEXT = f"requests per second, a number greater than 0 and at most {MAX_RATE:g}"
_rate_number = _number(0.0, MAX_RATE, low_open=True)


def _rate(value: Any) -> float:
    try:
        return _rate_number(value)
    except ValueError:
        raise ValueError(f"expected {_RATE_TEXT}") from None


RequestRate = Annotated[float, BeforeValidator(_rate), Expect(_RATE_TEXT)]


class PoolSection(Strict):
    """The prefill pool of a disaggregated deployment (the decode pool is the case's own
    hardware and ``[parallelism]``)."""

    hardware: Text | list[str] | None = None
    tp: IntChoice | None = None
    pp: IntChoice | None = None
    ep: IntChoice | None = None
    precision: PrecisionChoice | None = None


#: Serving engines with fixed costs (formulations.serving.ENGINES, which a test keeps equal).
ENGINES: tuple[str, ...] = ("none", "vllm", "sglang", "trtllm")
#: Arrival processes (formulations.queueing.ARRIVALS).
ARRIVALS: tuple[str, ...] = ("deterministic", "poisson", "gamma")
#: Speculative drafters (formulations.serving.SPECULATIVE).
SPECULATIVE: tuple[str, ...] = ("none", "draft", "heads")
#: Most tokens drafted per verification step: engines speculate a handful (EAGLE-2's trees
#: verify up to 60 positions, Li et al. 2024); beyond this the search space only grows.
MAX_DRAFT_TOKENS = 64
#: Largest acceptance rate and prefix hit rate a case may give: 1 would divide by zero in
#: Leviathan et al.'s expected-token formula and leave no prompt token to compute.
MAX_RATE_FRACTION = 0.999
RateFraction = Annotated[float, BeforeValidator(_number(0.0, MAX_RATE_FRACTION)),
                         Expect(f"a number from 0 to {MAX_RATE_FRACTION:g}")]


class ServingSection(Strict):
    prompt_len: PositiveInt
    output_len: PositiveInt
    rate: RequestRate | None = None
    slo_ttft: Duration
    slo_tpot: Duration
    slo_ttft_p99: Duration | None = None
    slo_tpot_p99: Duration | None = None
    arrivals: Literal["deterministic", "poisson", "gamma"] = "poisson"
    gamma_shape: Fraction | None = None
    engine: Literal["none", "vllm", "sglang", "trtllm"] = "none"
    gpus: PositiveInt | None = None
    # Offered load of a fixed fleet, per cent of its capacity ('perfcost solve' searches it).
    load: IntChoice | None = None
    precision: PrecisionChoice = "bf16"
    kv_precision: Literal["bf16", "fp8"] = "bf16"
    batching: Literal["continuous", "static"] = "continuous"
    batch: IntChoice | None = None
    chunk_tokens: PositiveInt = DEFAULT_CHUNK_TOKENS
    block_size: PositiveInt = DEFAULT_BLOCK_SIZE
    memory_utilization: Fraction = DEFAULT_MEMORY_UTILIZATION
    disaggregated: FlagChoice = False
    prefill: PoolSection = PoolSection()
    # Fixed time per kernel with CUDA graphs; the hardware entry's (eager) value if absent.
    kernel_overhead: Duration | None = None
    kernel_overhead_source: Text = ""
    step_overhead: Duration = 0.0
    # GPU-hour price per hardware name; else the hardware entry's or [cluster]'s.
    prices: dict[str, MoneyRate] = Field(default_factory=dict)
    price_source: Text = ""
    price_as_of: Text = ""
    # A fixed fleet (gpus) defaults to "throughput": the most requests per second in the SLOs.
    objective: Literal["cost_per_token", "gpus", "goodput", "throughput"] = "cost_per_token"
    # Speculative decoding (formulations/serving.py): the drafter, tokens drafted per
    # verification step and the acceptance rate of a drafted token.
    speculative: Literal["none", "draft", "heads"] = "none"
    draft_model: Text | ModelSection | None = None
    draft_tokens: PositiveInt | None = None
    acceptance_rate: RateFraction | None = None
    head_layers: PositiveInt = 1
    # Prefix caching: fraction of prompt tokens found in the cache; distinct cached prefixes.
    prefix_hit_rate: RateFraction = 0.0
    cached_prefixes: PositiveInt = 1
    # Data-parallel attention ranks per replica with the experts sharded over all their GPUs
    # (wide expert parallelism, MoE models); a list is a choice for 'perfcost solve'.
    dp_attention: IntChoice | None = None


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def hardware_entries(case: Any) -> list[HardwareSection]:
    return as_list(case.hardware)


def network_entry(case: Any) -> NetworkSection:
    nets = as_list(case.network)
    if len(nets) != 1:
        raise CaseError("network", [n.name for n in nets],
                        "expected one network for a serving case")
    return nets[0]


def draft_model_section(sv: ServingSection) -> ModelSection | None:
    """The draft model of ``speculative = "draft"``: a built-in model's name or a table."""
    draft = sv.draft_model
    if draft is None or isinstance(draft, ModelSection):
        return draft
    table = catalog.load_entry("models", draft, "serving.draft_model")
    try:
        return ModelSection.model_validate(table)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CaseError("serving.draft_model", draft, f"expected a valid model entry: {exc}"
                        ) from None


def check_speculation(case: Any) -> None:
    """Speculative decoding and prefix-caching fields, and the draft model against the
    target (the same tokenizer: the same vocabulary)."""
    sv: ServingSection = case.serving
    if sv.speculative == "none":
        # The drafter's settings stay in the case, unused, so that one switch
        # (--set serving.speculative=none) compares a deployment with and without.
        return
    if sv.draft_tokens is None or sv.draft_tokens > MAX_DRAFT_TOKENS:
        raise CaseError("serving.draft_tokens", sv.draft_tokens if sv.draft_tokens is not None
                        else MISSING, f"expected tokens drafted per verification step, "
                        f"an integer from 1 to {MAX_DRAFT_TOKENS}")
    if sv.acceptance_rate is None:
        raise CaseError("serving.acceptance_rate", MISSING, "expected the probability that "
                        f"a drafted token is accepted, a number from 0 to {MAX_RATE_FRACTION:g}")
    draft = draft_model_section(sv)
    if sv.speculative == "heads":
        if draft is not None:
            raise CaseError("serving.draft_model", sv.draft_model, "expected no draft model "
                            "with speculative = 'heads' (the heads are the target's)")
        return
    if draft is None:
        raise CaseError("serving.draft_model", MISSING, "expected a built-in model name "
                        "(like 'llama3-8b') or a model table with speculative = 'draft'")
    if draft.vocab != case.model.vocab:
        raise CaseError("serving.draft_model.vocab", draft.vocab, f"expected the target's "
                        f"vocabulary, model.vocab = {case.model.vocab} (a draft shares the "
                        "target's tokenizer)")
    if draft.experts:
        raise CaseError("serving.draft_model.experts", draft.experts,
                        "expected a dense draft model")
    for t in as_list(case.parallelism.tp) if case.parallelism.tp is not None else []:
        if draft.heads % t or (draft.kv_heads or draft.heads) % t:
            raise CaseError("parallelism.tp", t, f"expected a divisor of the draft model's "
                            f"heads ({draft.heads}) and key/value heads too (the draft runs "
                            "on the target's tensor-parallel GPUs)")


def check_serving(case: Any) -> None:
    """Rules between the serving section and the model and hardware."""
    sv: ServingSection = case.serving
    check_speculation(case)
    if sv.dp_attention is not None and not case.model.experts:
        raise CaseError("serving.dp_attention", sv.dp_attention, "expected no data-parallel "
                        "attention for a dense model (it shards the experts of an MoE model)")
    if sv.rate is None and sv.gpus is None:
        raise CaseError("serving.rate", MISSING, f"expected {_RATE_TEXT}, or serving.gpus "
                        "for the best deployment on a fixed fleet")
    if sv.gpus is not None and True in as_list(sv.disaggregated):
        raise CaseError("serving.gpus", sv.gpus, "expected a colocated deployment on a fixed "
                        "fleet (disaggregated = false)")
    if (sv.gamma_shape is None) != (sv.arrivals != "gamma"):
        raise CaseError("serving.gamma_shape", sv.gamma_shape if sv.gamma_shape is not None
                        else MISSING, "expected a gamma shape in (0, 1] with arrivals = "
                        "'gamma' (1: Poisson, smaller: burstier), and none otherwise")
    for load in as_list(sv.load) if sv.load is not None else []:
        if sv.gpus is None or not 1 <= load <= 99:
            raise CaseError("serving.load", load, "expected a per cent from 1 to 99 of a fixed "
                            "fleet's capacity, with serving.gpus")
    context = case.model.seq_len
    if sv.prompt_len > context:
        raise CaseError("serving.prompt_len", sv.prompt_len,
                        f"expected at most the model's context, model.seq_len = {context}")
    if sv.prompt_len + sv.output_len > context:
        raise CaseError("serving.output_len", sv.output_len,
                        f"expected prompt_len + output_len at most the model's context, "
                        f"model.seq_len = {context}")
    names = [hw.name for hw in hardware_entries(case)]
    for name in as_list(sv.prefill.hardware) if sv.prefill.hardware is not None else []:
        if name not in names:
            raise CaseError("serving.prefill.hardware", name,
                            f"expected one of the case's hardware entries: {', '.join(names)}")
    precisions = set(as_list(sv.precision)) | set(
        as_list(sv.prefill.precision) if sv.prefill.precision is not None else [])
    for hw in hardware_entries(case):
        if "bf16" not in hw.peak_flops:
            raise CaseError(f"hardware.{hw.name}.peak_flops", sorted(hw.peak_flops),
                            "expected a bf16 entry for serving")
        if "fp8" in precisions and "fp8" not in hw.peak_flops:
            raise CaseError("serving.precision", "fp8",
                            f"expected a precision the hardware runs; {hw.name} has no fp8 "
                            "peak_flops entry")
        gpu_price(case, hw)
    for par, where in ((case.parallelism.tp, "parallelism.tp"),
                       (sv.prefill.tp, "serving.prefill.tp")):
        for t in as_list(par) if par is not None else []:
            if case.model.heads % t:
                raise CaseError(where, t, f"expected a divisor of model.heads = "
                                f"{case.model.heads}")
    for par, where in ((case.parallelism.pp, "parallelism.pp"),
                       (sv.prefill.pp, "serving.prefill.pp")):
        for p in as_list(par) if par is not None else []:
            if p > case.model.layers:
                raise CaseError(where, p, f"expected at most model.layers = "
                                f"{case.model.layers}")
    for par, where in ((case.parallelism.ep, "parallelism.ep"),
                       (sv.prefill.ep, "serving.prefill.ep")):
        for e in as_list(par) if par is not None else []:
            experts = case.model.experts or 0
            if not experts:
                raise CaseError(where, e, "expected no expert parallelism for a dense model")
            if experts % e:
                raise CaseError(where, e, f"expected a divisor of model.experts = {experts}")
    unused = sorted(case.parallelism.model_fields_set - set(SERVING_PARALLELISM))
    if unused:
        raise CaseError(f"parallelism.{unused[0]}", getattr(case.parallelism, unused[0]),
                        f"expected only {', '.join(SERVING_PARALLELISM)} in a serving case")


def gpu_price(case: Any, hw: HardwareSection) -> float:
    """USD per GPU-second of ``hw``: the serving section's price, else the hardware entry's,
    else the cluster's."""
    sv: ServingSection = case.serving
    price = sv.prices.get(hw.name) or hw.gpu_hour_price or case.cluster.gpu_hour_price
    if not price:
        raise CaseError(f"serving.prices.{hw.name}", MISSING,
                        "expected a GPU-hour price, like '3.49 USD/h' (the hardware entry has "
                        "none)")
    return float(price)
