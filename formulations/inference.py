"""One serving replica: prefill, decode steps, KV cache and memory, as sympy expressions.

A *pool* is a group of identical replicas, each ``tp x pp`` GPUs of one accelerator kind
running one copy of the model. This module gives the time of one forward step of a replica
and the memory it needs; :mod:`serving` turns them into TTFT, TPOT, throughput and cost.

Forward step over ``m`` tokens (decode tokens of running sequences plus prompt tokens being
prefilled), per GPU, tensor parallelism splitting heads and the MLP (Megatron-LM, Shoeybi et
al. 2019), one pipeline micro-batch of ``m / pp`` tokens per stage:

* the GEMMs of every layer read their weights once per step (``weight_bytes`` per weight:
  bf16, fp8, or int4 with a scale per group) and the activations of the ``m`` tokens; each is
  the roofline of :func:`compute.op_time` (compute with tile and wave quantisation, or HBM),
  so a decode step of a small batch is bound by the weight reads and a large prefill by the
  FLOPs (Pope et al., "Efficiently Scaling Transformer Inference", MLSys'23, Sec. 2);
* attention over the KV cache: each decode sequence reads its whole cache once per layer
  (FlashDecoding / PagedAttention: Kwon et al., SOSP'23), a roofline of the attention FLOPs
  and the cache bytes; prompt tokens run causal FlashAttention, timed by the FlashAttention
  model of :mod:`attention` where the hardware entry gives its rates;
* MoE layers (:mod:`moe`): the router, the routed experts spread over the ``tp`` GPUs of a
  stage as ``ep`` expert-parallel groups of ``tp / ep`` expert-tensor-parallel GPUs (Liu et
  al. 2025, MoE parallel folding) with their all-to-alls and gathers, and the shared
  experts; a step reads only the experts its tokens route to; MLA layers (:mod:`mla`): the
  latent projections, and the latent KV cache;
* two tensor-parallel all-reduces of the step's activations per dense layer (one per MoE
  layer), the fastest algorithm in NCCL's pipelined alpha-beta form (latency-bound at the
  few kilobytes of a decode step);
* one pipeline send of the activations per stage boundary;
* a fixed overhead per kernel (``kernel_overhead`` of the serving section: with CUDA graphs
  the launch is replayed, leaving the kernel's tail and ramp).

KV cache per token and GPU (GQA: Ainslie et al. 2023): ``2 (L/pp) max(kv/t, 1) d_head``
elements of ``kv_bytes`` (MLA: ``(L/pp) (kv_lora + rope)``, DeepSeek-V2 Sec. 2.1.2); paged in
blocks of ``block_size`` tokens (vLLM, Kwon et al. 2023).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from . import algorithms, attention, compute, kernels, mla, moe, parallelism, transformer
from .collectives import Link, point_to_point
from .core import ParameterSet, indicator
from .specs import HardwareSpec, ModelSpec, ServingPoolSpec

#: Weight formats a replica may serve in, in the order of their integer codes.
WEIGHT_PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "int4")
#: Bytes per weight element of each format, before quantisation scales.
WEIGHT_ELEMENT_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "int4": 0.5}
#: int4 weight-only quantisation keeps one fp16 scale per group of 128 weights (AWQ: Lin et
#: al., MLSys'24, Sec. 4, group size 128; GPTQ, Frantar et al. 2023, the same default).
INT4_GROUP_SIZE = 128
#: Bytes of one fp16 quantisation scale.
SCALE_BYTES = 2.0
#: KV-cache formats and their bytes per element.
KV_ELEMENT_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0}
#: Bytes of one fp32 logit (the sampler works on fp32 logits).
LOGIT_BYTES = 4
#: K and V: two cached vectors per token, layer and KV head.
KV_TENSORS = 2
#: Elementwise kernels of a decoder layer in a serving engine: two fused residual-add + RMSNorm
#: kernels, rotary embedding, the MLP activation (vLLM's fused kernels).
LAYER_ELEMENTWISE_KERNELS = 4
#: Accesses per element of a fused residual-add + norm: read x and the residual, write both.
ADD_NORM_ACCESSES = 4


def weight_bytes(code: sp.Expr) -> sp.Expr:
    """Bytes per weight of the format with integer ``code`` (see :data:`WEIGHT_PRECISIONS`)."""
    int4 = WEIGHT_ELEMENT_BYTES["int4"] + SCALE_BYTES / INT4_GROUP_SIZE
    return sp.Piecewise((WEIGHT_ELEMENT_BYTES["bf16"], sp.Eq(code, 0)),
                        (WEIGHT_ELEMENT_BYTES["fp8"], sp.Eq(code, 1)), (int4, True))


@dataclass(frozen=True)
class DecodeRates:
    """The symbols of a pool's measured decode-attention kernels
    (:class:`~perfcost.formulations.specs.DecodeKernelSpec`; kernels.decode_kernel_time)."""

    memory: sp.Expr
    matmul: sp.Expr
    fallback_vector: sp.Expr
    block_overhead: sp.Expr
    row_overhead: sp.Expr
    kernel_overhead: sp.Expr
    fallback_block_overhead: sp.Expr
    fallback_kernel_overhead: sp.Expr
    block_stream_share: sp.Expr
    overlap: sp.Expr
    group_limit: sp.Expr
    kv_chunk: sp.Expr
    fp32_peak: sp.Expr
    shared_memory: sp.Expr
    token_time: sp.Expr
    row_token_time: sp.Expr
    kv_tile: sp.Expr | None
    fallback_stream_share: sp.Expr | None
    multi_block: str
    fixed_rows: str


@dataclass(frozen=True)
class MlaDecodeRates:
    """The symbols of a pool's measured MLA decode kernel
    (:class:`~perfcost.formulations.specs.MlaDecodeKernelSpec`; kernels.mla_decode_time)."""

    memory: sp.Expr
    matmul: sp.Expr
    split_overhead: sp.Expr
    kernel_overhead: sp.Expr
    matmul_peak: sp.Expr
    tile_reread: sp.Expr
    step_time: sp.Expr
    tiling: str


@dataclass(frozen=True)
class Pool:
    """Symbols of one pool's accelerator, network and split (``prefix`` keeps two pools of a
    disaggregated deployment apart)."""

    prefix: str
    peak_bf16: sp.Expr
    peak_fp8: sp.Expr
    eta_mm: sp.Expr
    hbm_bandwidth: sp.Expr
    eta_mem: sp.Expr
    sms: sp.Expr
    tile_m: sp.Expr
    tile_n: sp.Expr
    kernel_overhead: sp.Expr
    wave_overhead: sp.Expr
    hbm_capacity: sp.Expr
    power: sp.Expr
    gpu_price: sp.Expr
    scale_up_size: sp.Expr
    up: Link
    reduction: Link
    has_reduction: sp.Expr
    out: Link
    t: sp.Expr
    pp: sp.Expr
    precision: sp.Expr
    #: FlashAttention kernel rates (formulations.attention) and the shared memory per
    #: multiprocessor that sizes its tiles, where the hardware entry gives them.
    flash: attention.FlashRates | None = None
    shared_memory: float = 0.0
    #: Expert-parallel ranks among the ``t`` GPUs of a stage (MoE models); each expert is
    #: split over the other ``t / ep`` (expert tensor parallelism, Megatron-Core's folding).
    ep: sp.Expr = sp.S.One
    #: Rows of the narrow tiles of small-M GEMMs (formulations.compute); None: tile rows.
    row_granule: sp.Expr | None = None
    #: Fraction of the fp8 peak large fp8 GEMMs reach, where the hardware entry measured it
    #: (fp8 GEMMs reach a smaller share of their doubled peak); None: ``eta_mm``.
    eta_mm_fp8: sp.Expr | None = None
    #: Data-parallel attention ranks of a replica (SGLang's --enable-dp-attention; DeepSeek-V3
    #: report Sec. 3.4): each runs attention and the dense layers on its own sequences over
    #: ``t`` GPUs, and the experts are sharded over all ``t dp`` GPUs (wide expert
    #: parallelism across scale-up domains). 1: attention tensor parallel only.
    dp: sp.Expr = sp.S.One
    #: The measured decode-attention kernels for the job's KV-cache format, where the
    #: hardware entry has them; None: decode attention is a roofline.
    decode: DecodeRates | None = None
    #: The same for MLA's decode on a latent cache (:class:`MlaDecodeRates`).
    mla_decode: MlaDecodeRates | None = None

    @property
    def expert_tp(self) -> sp.Expr:
        return self.t * self.dp / self.ep

    def compute_params(self) -> compute.ComputeParams:
        """The roofline of :mod:`compute` at this pool's weight format (fp8 weights run fp8
        GEMMs; int4 weights are dequantised into bf16 GEMMs)."""
        fp8 = indicator(self.precision, 1)
        peak = self.peak_bf16 + fp8 * (self.peak_fp8 - self.peak_bf16)
        eta = self.eta_mm if self.eta_mm_fp8 is None else (
            self.eta_mm + fp8 * (self.eta_mm_fp8 - self.eta_mm))
        return compute.ComputeParams(peak, eta, self.hbm_bandwidth, self.eta_mem,
                                     self.sms, self.tile_m, self.tile_n, self.kernel_overhead,
                                     wave_overhead=self.wave_overhead,
                                     row_granule=self.row_granule)

    @property
    def gpus(self) -> sp.Expr:
        return self.t * self.pp * self.dp


def pool_parameters(ps: ParameterSet, prefix: str, spec: ServingPoolSpec,
                    t: sp.Symbol, pp: sp.Symbol, precision: sp.Symbol,
                    ep: sp.Expr | None = None, dp: sp.Expr | None = None) -> Pool:
    """Declare one pool's parameters (names prefixed by ``prefix``) and return its symbols
    (``dp``: data-parallel attention ranks, :attr:`Pool.dp`)."""
    hw, net = spec.hardware, spec.network
    peak_fp8, kernel_overhead, gpu_price = (spec.peak_flops_fp8, spec.kernel_overhead,
                                            spec.gpu_price)

    def add(name: str, value: float, unit: str, doc: str) -> sp.Symbol:
        return ps.add(prefix + name, value, unit, doc)

    up = Link(add("scale_up_bandwidth", net.scale_up.bandwidth, "B/s",
                  "scale-up bandwidth per GPU, one direction"),
              add("scale_up_latency", net.scale_up.latency, "s", "scale-up step latency"),
              add("scale_up_efficiency", net.scale_up.efficiency, "1",
                  "collective bus bandwidth over link bandwidth, scale-up"))
    red_level = net.scale_up_reduction or net.scale_up
    reduction = Link(add("scale_up_reduction_bandwidth", red_level.bandwidth, "B/s",
                         "all-reduce bandwidth per rank with switch-side reduction"),
                     add("scale_up_reduction_latency", red_level.latency, "s",
                         "latency of one switch-side reduce or multicast phase"),
                     sp.Integer(1))
    out = Link(add("scale_out_bandwidth", net.scale_out.bandwidth, "B/s",
                   "scale-out bandwidth per GPU, one direction"),
               add("scale_out_latency", net.scale_out.latency, "s", "scale-out step latency"),
               add("scale_out_efficiency", net.scale_out.efficiency, "1",
                   "collective bus bandwidth over link bandwidth, scale-out"))
    # Declared in this order (the order of the formulation's parameters).
    peak_bf16 = add("peak_flops", hw.peak_flops, "FLOP/s", "dense bf16 peak FLOP rate")
    peak_fp8 = add("peak_flops_fp8", peak_fp8, "FLOP/s", "dense fp8 peak FLOP rate")
    eta_mm = add("matmul_efficiency", hw.matmul_efficiency, "1",
                 "achievable fraction of peak for large GEMMs")
    hbm_bandwidth = add("hbm_bandwidth", hw.hbm_bandwidth, "B/s", "HBM bandwidth")
    eta_mem = add("memory_efficiency", hw.memory_efficiency, "1",
                  "achievable fraction of HBM bandwidth (streaming copy ceiling)")
    sms = add("multiprocessors", hw.multiprocessors, "1", "streaming multiprocessors")
    tile_m = add("gemm_tile_m", hw.gemm_tile_m, "1", "GEMM output tile rows")
    tile_n = add("gemm_tile_n", hw.gemm_tile_n, "1", "GEMM output tile columns")
    overhead = add("serving_kernel_overhead", kernel_overhead, "s",
                   "fixed time per kernel in the serving engine (CUDA graphs)")
    return Pool(
        prefix=prefix,
        peak_bf16=peak_bf16,
        peak_fp8=peak_fp8,
        eta_mm=eta_mm,
        hbm_bandwidth=hbm_bandwidth,
        eta_mem=eta_mem,
        sms=sms,
        tile_m=tile_m,
        tile_n=tile_n,
        kernel_overhead=overhead,
        # The calibrated small-batch GEMM model of formulations.compute (0: plain roofline).
        wave_overhead=(add("gemm_wave_overhead", hw.gemm_wave_overhead, "s",
                           "fixed time per wave of GEMM output tiles")
                       if hw.gemm_wave_overhead else sp.Integer(0)),
        hbm_capacity=add("hbm_capacity", hw.hbm_capacity, "B", "HBM capacity per GPU"),
        power=add("power", hw.power, "W", "board power per GPU"),
        gpu_price=add("gpu_price", gpu_price, "USD/s", "price per GPU-second"),
        scale_up_size=add("scale_up_size", net.scale_up_size, "1", "GPUs per scale-up domain"),
        up=up,
        reduction=reduction,
        has_reduction=add("scale_up_reduction", 1.0 if net.scale_up_reduction else 0.0, "1",
                          "1 when the scale-up switches reduce (NVLink SHARP), else 0"),
        out=out,
        t=t,
        pp=pp,
        precision=precision,
        flash=(_flash_rates(add, hw, peak_bf16, hbm_bandwidth, eta_mem, sms, overhead)
               if hw.flash_forward_efficiency else None),
        shared_memory=hw.shared_memory,
        ep=t if ep is None else ep,
        dp=sp.S.One if dp is None else dp,
        # The calibrated small-batch GEMM model: decode GEMMs of a few rows run narrow tiles.
        row_granule=(add("gemm_row_granule", hw.gemm_row_granule, "1",
                         "rows of the narrow tiles of GEMMs with fewer rows than a tile")
                     if hw.gemm_row_granule else None),
        eta_mm_fp8=(add("matmul_efficiency_fp8", spec.matmul_efficiency_fp8, "1",
                        "achievable fraction of the fp8 peak for large fp8 GEMMs")
                    if spec.matmul_efficiency_fp8 else None),
        decode=(_measured_rates(add, DecodeRates, DECODE_PARAMETERS, spec.decode_kernel,
                                multi_block=spec.decode_kernel.multi_block,
                                fixed_rows=spec.decode_kernel.fixed_rows)
                if spec.decode_kernel is not None else None),
        mla_decode=(_measured_rates(add, MlaDecodeRates, MLA_DECODE_PARAMETERS,
                                    spec.mla_decode_kernel,
                                    tiling=spec.mla_decode_kernel.tiling)
                    if spec.mla_decode_kernel is not None else None),
    )


#: The measured decode kernels' parameters: the field of :class:`DecodeRates` (and of
#: :class:`~perfcost.formulations.specs.DecodeKernelSpec`), the parameter's name, unit and
#: description.
DECODE_PARAMETERS: tuple[tuple[str, str, str, str], ...] = (
    ("memory", "decode_memory_efficiency", "1",
     "fraction of HBM bandwidth the decode kernels stream the cache at"),
    ("matmul", "decode_matmul_efficiency", "1",
     "fraction of the bf16 peak of the grouped decode kernel's dot products"),
    ("fallback_vector", "decode_fallback_vector_efficiency", "1",
     "fraction of the fp32 peak of the per-head decode kernel's dot products"),
    ("block_overhead", "decode_block_overhead", "s", "fixed work of one grouped decode block"),
    ("row_overhead", "decode_row_overhead", "s",
     "fixed work per query row of a grouped decode block"),
    ("kernel_overhead", "decode_kernel_overhead", "s", "fixed time of the grouped decode kernel"),
    ("fallback_block_overhead", "decode_fallback_block_overhead", "s",
     "fixed work of one per-head decode block"),
    ("fallback_kernel_overhead", "decode_fallback_kernel_overhead", "s",
     "fixed time of the per-head decode kernel"),
    ("block_stream_share", "decode_block_stream_share", "1",
     "most of a multiprocessor's share of HBM one decode block streams"),
    ("overlap", "decode_overlap", "1",
     "norm by which a decode block's fixed work and its stream combine"),
    ("group_limit", "decode_group_limit", "1",
     "largest query group the grouped decode kernel takes"),
    ("kv_chunk", "decode_kv_chunk", "1",
     "cache tokens per block of the per-head decode kernel's multi-block mode"),
    ("fp32_peak", "peak_flops_fp32", "FLOP/s", "dense fp32 peak FLOP rate"),
    ("shared_memory", "shared_memory_per_multiprocessor", "B",
     "shared memory per multiprocessor, bounding the cache span of a per-head decode block"),
    ("token_time", "decode_token_time", "s",
     "least time of a grouped decode block per cached token it reads"),
    ("row_token_time", "decode_row_token_time", "s",
     "growth of that time per padded query row"),
    ("kv_tile", "decode_kv_tile", "1", "cache tokens per tile of the grouped decode kernel"),
    ("fallback_stream_share", "decode_fallback_stream_share", "1",
     "most of a multiprocessor's share of HBM one per-head decode block streams"),
)


#: The measured MLA decode kernel's parameters, as :data:`DECODE_PARAMETERS`.
MLA_DECODE_PARAMETERS: tuple[tuple[str, str, str, str], ...] = (
    ("memory", "mla_decode_memory_efficiency", "1",
     "fraction of HBM bandwidth the MLA decode kernel streams the latent cache at"),
    ("matmul", "mla_decode_matmul_efficiency", "1",
     "fraction of the tensor-core peak of the MLA decode kernel's dot products"),
    ("split_overhead", "mla_decode_split_overhead", "s",
     "fixed work per sequence piece of an MLA decode block"),
    ("kernel_overhead", "mla_decode_kernel_overhead", "s",
     "fixed time of an MLA decode step's kernels"),
    ("matmul_peak", "mla_decode_matmul_peak", "FLOP/s",
     "tensor-core peak of the KV cache's format, the MLA decode kernel's dot products"),
    ("tile_reread", "mla_decode_tile_reread", "1",
     "share of the latent cache a span's later query tiles read from HBM again"),
    ("step_time", "mla_decode_step_time", "s",
     "least time of one page step of an MLA decode CTA alone on its multiprocessor"),
)


def _measured_rates(add: Callable[[str, float, str, str], sp.Symbol], rates: type[Any],
                    parameters: tuple[tuple[str, str, str, str], ...], spec: Any,
                    **structure: str) -> Any:
    """A measured kernel's parameters (their values: the hardware entry's fit) as the
    ``rates`` dataclass of their symbols (None for an optional one the entry does not
    state); ``structure``: its fields that are no parameters."""
    symbols = {field: (None if getattr(spec, field) is None
                       else add(name, getattr(spec, field), unit, doc))
               for field, name, unit, doc in parameters}
    return rates(**symbols, **structure)


def _flash_rates(add: Callable[[str, float, str, str], sp.Symbol], hw: HardwareSpec,
                 peak: sp.Expr, hbm_bandwidth: sp.Expr, memory_efficiency: sp.Expr,
                 multiprocessors: sp.Expr, kernel_overhead: sp.Expr) -> attention.FlashRates:
    """The forward FlashAttention rates of the hardware entry (serving runs no backward), on
    the pool's own peak, HBM, multiprocessor and kernel-overhead symbols."""
    efficiency = add("flash_forward_efficiency", hw.flash_forward_efficiency, "1",
                     "fraction of the dense peak the FlashAttention forward kernel reaches")
    tile = (add("flash_forward_tile_overhead", hw.flash_forward_tile_overhead, "s",
                "fixed time per wave of FlashAttention tiles")
            if hw.flash_forward_tile_overhead else sp.Integer(0))
    return attention.FlashRates(
        peak_flops=peak, forward_efficiency=efficiency, backward_efficiency=efficiency,
        hbm_bandwidth=hbm_bandwidth, memory_efficiency=memory_efficiency,
        multiprocessors=multiprocessors, forward_tile_overhead=tile,
        backward_tile_overhead=tile, kernel_overhead=kernel_overhead)


@dataclass(frozen=True)
class ModelSymbols:
    """The model's sizes as symbols, and its structure."""

    L: sp.Expr
    h: sp.Expr
    a: sp.Expr
    kv: sp.Expr
    ffn: sp.Expr
    vocab: sp.Expr
    e: sp.Expr  # bytes per activation element (bf16)
    kv_bytes: sp.Expr  # bytes per cached K or V element
    swiglu: bool
    gqa: bool
    tied: bool
    biases: bool
    #: Multi-head latent attention (formulations.mla), or None for MHA/GQA.
    latent: mla.LatentDims | None = None
    #: Mixture of experts (formulations.moe), or None for a dense model.
    moe: MoeSymbols | None = None
    #: Head dimensions and bytes per activation as numbers (FlashAttention's tile sizes).
    qk_dim: int = 0
    v_dim: int = 0
    activation_bytes: float = 2.0
    #: Width of one head where heads x head_dim is not hidden (transformer.Dims.hd), or None.
    hd: sp.Expr | None = None

    def dims(self, t: sp.Expr, tokens: sp.Expr = sp.S.One) -> transformer.Dims:
        """:class:`transformer.Dims` of ``tokens`` serving tokens (one micro-batch of
        ``b = tokens`` sequences of one token: s = c = 1, no dropout)."""
        one = sp.Integer(1)
        latent = self.latent
        return transformer.Dims(b=tokens, s=one, h=self.h, a=self.a, kv=self.kv,
                                ffn=self.ffn, vocab=self.vocab, t=t, c=one, sigma=one,
                                e=self.e, mask=sp.Integer(0), swiglu=self.swiglu,
                                dropout=False, gqa=self.gqa,
                                qk_dim=None if latent is None else latent.qk,
                                v_dim=None if latent is None else latent.v, hd=self.hd)

    @property
    def dense_layers(self) -> sp.Expr:
        return self.L if self.moe is None else self.L - self.moe.layers


@dataclass(frozen=True)
class MoeSymbols:
    """An MoE model's expert sizes (formulations.moe)."""

    experts: sp.Expr
    shared: sp.Expr
    top_k: sp.Expr
    ffn: sp.Expr
    layers: sp.Expr  # MoE layers (the rest are dense)
    load: sp.Expr  # busiest expert-parallel rank's tokens over the even share

    def expert_dims(self, ep: sp.Expr, etp: sp.Expr = sp.S.One) -> moe.ExpertDims:
        return moe.ExpertDims(self.experts, self.shared, self.top_k, self.ffn, ep, etp,
                              sp.Integer(1), self.load)


def model_symbols(ps: ParameterSet, model: ModelSpec, activation_bytes: float,
                  kv_bytes: float) -> ModelSymbols:
    add = ps.add
    a = add("heads", model.heads, "1", "attention heads")
    kv = a if model.kv_heads == model.heads else add("kv_heads", model.kv_heads, "1",
                                                     "key/value heads")
    latent = None
    if getattr(model, "mla", False):
        latent = mla.LatentDims(
            q_lora=(add("q_lora_rank", model.q_lora_rank, "1", "query latent width")
                    if model.q_lora_rank else None),
            kv_lora=add("kv_lora_rank", model.kv_lora_rank, "1", "key/value latent width"),
            nope=add("qk_nope_head_dim", model.qk_nope_head_dim, "1",
                     "query/key head dimension without RoPE"),
            rope=add("qk_rope_head_dim", model.qk_rope_head_dim, "1",
                     "decoupled RoPE key dimension"),
            v=add("v_head_dim", model.v_head_dim, "1", "value head dimension"))
    experts = None
    if getattr(model, "moe", False):
        capacity = (add("capacity_factor", model.capacity_factor, "1",
                        "tokens an expert takes at most over its even share")
                    if model.capacity_factor else None)
        imbalance = add("load_imbalance", model.load_imbalance, "1",
                        "busiest expert-parallel rank's tokens over the even share")
        experts = MoeSymbols(
            experts=add("experts", model.experts, "1", "routed experts"),
            shared=(add("shared_experts", model.shared_experts, "1", "shared experts")
                    if model.shared_experts else sp.Integer(0)),
            top_k=add("top_k", model.top_k, "1", "routed experts per token"),
            ffn=add("expert_ffn", model.expert_ffn, "1", "width of one expert"),
            layers=add("moe_layers", model.moe_layers, "1", "MoE layers"),
            load=moe.load_factor(imbalance, capacity))
    head_dim = getattr(model, "head_dim", 0) or model.hidden // model.heads
    return ModelSymbols(
        hd=(add("head_dim", model.head_dim, "1", "width of one attention head")
            if getattr(model, "head_dim", 0) else None),
        latent=latent,
        moe=experts,
        qk_dim=(model.qk_nope_head_dim + model.qk_rope_head_dim) if latent else head_dim,
        v_dim=model.v_head_dim if latent else head_dim,
        activation_bytes=activation_bytes,
        L=add("layers", model.layers, "1", "decoder layers"),
        h=add("hidden", model.hidden, "1", "hidden size"),
        a=a,
        kv=kv,
        ffn=add("ffn", model.ffn, "1", "MLP width"),
        vocab=add("vocab", model.vocab, "1", "vocabulary size"),
        e=add("bytes_per_element", activation_bytes, "B", "bytes per activation (bf16)"),
        kv_bytes=add("kv_bytes", kv_bytes, "B", "bytes per cached K or V element"),
        swiglu=model.ffn_kind == "swiglu",
        gqa=model.kv_heads != model.heads,
        tied=model.tied_embeddings,
        biases=model.biases,
    )


# -- sizes -----------------------------------------------------------------------------------

def kv_elements_per_token_layer(ms: ModelSymbols, t: sp.Expr) -> sp.Expr:
    """Cached elements of one token in one layer on one of ``t`` tensor-parallel GPUs.

    GQA: K and V of the local KV heads, split over TP and replicated when TP exceeds them
    (Ainslie et al. 2023). MLA: the KV latent and the RoPE key, shared by all heads and so
    not split (DeepSeek-V2 Sec. 2.1.2, :func:`mla.kv_cache_elements_per_token`).
    """
    if ms.latent is not None:
        return mla.kv_cache_elements_per_token(ms.latent)
    d = ms.dims(t)
    return KV_TENSORS * d.local_kv_heads * d.head_dim


def kv_bytes_per_token(ms: ModelSymbols, pool: Pool) -> sp.Expr:
    """KV-cache bytes one token of one sequence occupies on one GPU (its stage's layers)."""
    return (ms.L / pool.pp) * kv_elements_per_token_layer(ms, pool.t) * ms.kv_bytes


def kv_bytes_per_token_model(ms: ModelSymbols) -> sp.Expr:
    """KV-cache bytes of one token over the whole model (what a KV transfer moves)."""
    return ms.L * kv_elements_per_token_layer(ms, sp.Integer(1)) * ms.kv_bytes


def layer_weights(ms: ModelSymbols) -> sp.Expr:
    """Weights of one dense decoder layer (whole model); with MLA its projections
    (:func:`mla.parameters`) replace the QKV and output projections' weights."""
    d = ms.dims(sp.Integer(1))
    dense = transformer.layer_parameters(d, ms.biases)
    if ms.latent is None:
        return dense
    return (dense - transformer.attention_parameters(d, biases=False)
            + mla.parameters(ms.h, ms.a, ms.latent))


def moe_layer_weights(ms: ModelSymbols) -> sp.Expr:
    """Weights of one MoE layer: the dense layer with its MLP replaced by the experts, the
    shared experts and the router (formulations.moe)."""
    if ms.moe is None:
        return sp.Integer(0)
    d = ms.dims(sp.Integer(1))
    x = ms.moe.expert_dims(sp.Integer(1))
    mlp = transformer.mlp_parameters(d, biases=False)
    return (layer_weights(ms) - mlp + moe.expert_parameters(ms.h, x, d.gate_factor)
            + moe.shared_expert_parameters(ms.h, x, d.gate_factor)
            + moe.router_parameters(ms.h, x))


def embedding_weights(ms: ModelSymbols) -> sp.Expr:
    return ms.vocab * ms.h * (1 if ms.tied else 2)


def total_parameters(ms: ModelSymbols) -> sp.Expr:
    moe_layers = 0 if ms.moe is None else ms.moe.layers * moe_layer_weights(ms)
    return ms.dense_layers * layer_weights(ms) + moe_layers + embedding_weights(ms)


def weights_per_gpu(ms: ModelSymbols, pool: Pool) -> sp.Expr:
    """Bytes of weights on a GPU: an even share of the layers in the pool's format (experts
    split over the ``tp`` GPUs as expert parallelism -- over ``tp dp`` with data-parallel
    attention -- everything else tensor parallel), and
    the embedding (and, with one stage, the untied output layer) kept in bf16, as quantised
    checkpoints keep them."""
    t, pp = pool.t, pool.pp
    layer_total = total_parameters(ms) - embedding_weights(ms)
    if pool.dp != 1 and ms.moe is not None:
        # Data-parallel attention: the routed experts are sharded over all t dp GPUs of the
        # replica (ep x expert tp), the rest is replicated per DP rank and split over t.
        x = ms.moe.expert_dims(sp.Integer(1))
        experts = ms.moe.layers * moe.expert_parameters(ms.h, x, ms.dims(t).gate_factor)
        layer_total = layer_total - experts + experts / pool.dp
    layers = layer_total / (pp * t) * weight_bytes(pool.precision)
    vocab_tables = 1 + (0 if ms.tied else indicator(pp, 1))
    return layers + vocab_tables * ms.vocab * ms.h / t * ms.e


# -- one forward step --------------------------------------------------------------------------

def _weight_gemm(name: str, m: sp.Expr, n: sp.Expr, k: sp.Expr, w_bytes: sp.Expr,
                 e: sp.Expr) -> transformer.Op:
    """C[m,n] = A[m,k] W[k,n] with W stored in ``w_bytes`` per element."""
    return requantised(transformer.gemm(name, "layer", m, n, k, e), w_bytes, e)


def requantised(op: transformer.Op, w_bytes: sp.Expr, e: sp.Expr,
                weights_read: sp.Expr = sp.S.One) -> transformer.Op:
    """A weight GEMM of :mod:`transformer`, :mod:`mla` or :mod:`moe` (written with ``e``-byte
    weights) with its weights in ``w_bytes`` per element, of which the fraction
    ``weights_read`` is read (experts no token of the step routes to are not read)."""
    if op.kind != "gemm":
        return op
    data = op.batch * e * (op.m * op.k + op.m * op.n)
    return dataclasses.replace(op, bytes=op.batch * weights_read * w_bytes * op.k * op.n + data)


def touched_experts(x: moe.ExpertDims, tokens: sp.Expr) -> sp.Expr:
    """Fraction of the experts that at least one of ``tokens`` tokens routes to, each token
    picking ``top_k`` of ``experts`` uniformly: ``1 - (1 - k/E)^tokens``. Decode at a small
    batch reads only these experts' weights (the grouped GEMM skips empty groups)."""
    return 1 - (1 - x.top_k / x.experts) ** tokens


def attention_projection_ops(ms: ModelSymbols, pool: Pool, m: sp.Expr) -> list[transformer.Op]:
    """The attention block's weight GEMMs over ``m`` tokens on one GPU: QKV and output
    projections (GQA), or MLA's down- and up-projections (formulations.mla)."""
    d = ms.dims(pool.t, m)
    wb = weight_bytes(pool.precision)
    if ms.latent is not None:
        ops = (mla.projections_forward(d, ms.latent)
               + mla.output_projection_forward(d, ms.latent))
        return [requantised(op, wb, ms.e) for op in ops]
    qkv = (d.local_heads + 2 * d.local_kv_heads) * d.head_dim
    return [
        _weight_gemm("qkv", m, qkv, ms.h, wb, ms.e),
        _weight_gemm("proj", m, ms.h, d.attention_width / pool.t, wb, ms.e),
    ]


def mlp_ops(ms: ModelSymbols, pool: Pool, m: sp.Expr, experts: bool) -> list[transformer.Op]:
    """The MLP over ``m`` tokens on one GPU: a dense tensor-parallel MLP, or in an MoE layer
    the router, the routed experts (``experts / ep`` on each GPU, each split over ``t / ep``
    GPUs) and the shared experts (formulations.moe)."""
    wb = weight_bytes(pool.precision)
    if experts and ms.moe is not None:
        x = ms.moe.expert_dims(pool.ep, pool.expert_tp)
        d = ms.dims(pool.t, m)
        # With data-parallel attention the experts take the tokens of every DP rank.
        touched = touched_experts(x, m * pool.dp)
        return [requantised(op, wb, ms.e, touched if op.name.startswith("expert_") else 1)
                for op in moe.moe_forward(d, x)]
    d = ms.dims(pool.t)
    return [
        _weight_gemm("fc1", m, d.gate_factor * ms.ffn / pool.t, ms.h, wb, ms.e),
        _weight_gemm("fc2", m, ms.h, ms.ffn / pool.t, wb, ms.e),
    ]


def expert_parallel_time(ms: ModelSymbols, pool: Pool, m: sp.Expr) -> sp.Expr:
    """Dispatch and combine all-to-alls of one MoE layer over the ``ep`` ranks of a stage,
    ``t / ep`` apart (expert tensor parallelism innermost), and the expert-TP gathers
    (:func:`moe.expert_parallel_time`)."""
    if ms.moe is None:
        return sp.Integer(0)
    return moe.expert_parallel_time(ms.dims(pool.t, m),
                                    ms.moe.expert_dims(pool.ep, pool.expert_tp),
                                    pool.expert_tp, pool.scale_up_size, pool.up, pool.out)


def decode_attention_time(ms: ModelSymbols, pool: Pool, sequences: sp.Expr,
                          context: sp.Expr, queries: sp.Expr = sp.S.One) -> sp.Expr:
    """One layer's decode attention: each of ``sequences`` queries attends to ``context``
    cached tokens, reading its cache once (PagedAttention / FlashDecoding: Kwon et al.
    SOSP'23; the query heads of a GQA group share one read of their K/V head). MLA decodes
    in the absorbed form on the latent cache: ``kv_lora + rope`` wide scores, ``kv_lora``
    wide values (DeepSeek-V2 Sec. 2.1.2). Roofline of the FLOPs at the matmul rate and the
    bytes at the streaming rate, plus one kernel's overhead.

    ``queries`` tokens of each sequence attend at once (a speculative verification step of
    ``k`` drafted tokens has ``k + 1``): the FLOPs and the query/output traffic scale with
    them, the cache is still read once (Leviathan et al. 2023, Sec. 3: verification costs
    one forward pass of the target)."""
    d = ms.dims(pool.t)
    if pool.decode is not None and ms.latent is None:
        return _measured_decode_time(ms, pool, pool.decode, sequences, context, queries)
    if pool.mla_decode is not None and ms.latent is not None:
        return _measured_mla_decode_time(ms, ms.latent, pool, pool.mla_decode, sequences,
                                         context, queries)
    if ms.latent is not None:
        width = mla.kv_cache_elements_per_token(ms.latent) + ms.latent.kv_lora
    else:
        width = 2 * d.head_dim
    flops = transformer.FLOPS_PER_MAC * sequences * queries * d.local_heads * context * width
    cache = sequences * context * kv_elements_per_token_layer(ms, pool.t) * ms.kv_bytes
    # The queries in, the outputs out.
    io = cache + sequences * queries * d.local_heads * width * ms.e
    return _attention_roofline(pool, flops, io)


def _measured_decode_time(ms: ModelSymbols, pool: Pool, rates: DecodeRates,
                          sequences: sp.Expr, context: sp.Expr, queries: sp.Expr) -> sp.Expr:
    """One layer's decode attention by the hardware entry's measured decode kernels
    (kernels.decode_kernel_time: TensorRT-LLM's grouped XQA kernel and its per-head
    fallback, fitted on the kernel database). The step attends to ``context`` tokens, the
    kernel's ``kv_len`` cached ones and the new one; a verification step's ``queries`` tokens
    of a sequence are more query rows of each KV head's group (XQA's multi-token mode for
    speculative decoding), so its cache is still read once and the grouped kernel, whose
    limit counts the query heads of one token, takes ``queries`` times as many rows."""
    d = ms.dims(pool.t)
    return kernels.decode_kernel_time(
        batch=sequences, kv_len=context - 1, heads=d.local_heads * queries,
        kv_heads=d.local_kv_heads, head_dim=d.head_dim, kv_bytes=ms.kv_bytes,
        activation_bytes=ms.e, hbm_bandwidth=pool.hbm_bandwidth,
        memory_efficiency=rates.memory, vector_flops=rates.fp32_peak,
        matmul_efficiency=rates.matmul, fallback_efficiency=rates.fallback_vector,
        multiprocessors=pool.sms, block_overhead=rates.block_overhead,
        fallback_block_overhead=rates.fallback_block_overhead,
        kernel_overhead=rates.kernel_overhead, group_limit=rates.group_limit * queries,
        kv_chunk=rates.kv_chunk, fallback_kernel_overhead=rates.fallback_kernel_overhead,
        block_stream_share=rates.block_stream_share, overlap=rates.overlap,
        matmul_flops=pool.peak_bf16, multi_block=rates.multi_block,
        row_overhead=rates.row_overhead, shared_memory=rates.shared_memory,
        token_time=rates.token_time, row_token_time=rates.row_token_time,
        kv_tile=rates.kv_tile, fallback_stream_share=rates.fallback_stream_share,
        fixed_rows_of=rates.fixed_rows)


def _measured_mla_decode_time(ms: ModelSymbols, latent: mla.LatentDims, pool: Pool,
                              rates: MlaDecodeRates, sequences: sp.Expr, context: sp.Expr,
                              queries: sp.Expr) -> sp.Expr:
    """One layer's MLA decode attention by the hardware entry's measured kernel
    (kernels.mla_decode_time: the kernel TensorRT-LLM runs on the entry's GPU, fitted on the
    kernel database): the rank's query heads, ``queries`` rows each in a verification step (FlashMLA
    counts draft tokens times heads as query rows), on the latent cache of ``context`` tokens
    (``kv_len`` cached and the new one)."""
    d = ms.dims(pool.t)
    return kernels.mla_decode_time(
        batch=sequences, kv_len=context - 1, heads=d.local_heads * queries,
        kv_lora=latent.kv_lora, rope=latent.rope, kv_bytes=ms.kv_bytes, activation_bytes=ms.e,
        hbm_bandwidth=pool.hbm_bandwidth, memory_efficiency=rates.memory,
        matmul_flops=rates.matmul_peak, matmul_efficiency=rates.matmul,
        multiprocessors=pool.sms, split_overhead=rates.split_overhead,
        kernel_overhead=rates.kernel_overhead, tiling=rates.tiling,
        tile_reread=rates.tile_reread, step_time=rates.step_time)


def prefill_attention_time(ms: ModelSymbols, pool: Pool, tokens: sp.Expr,
                           prompt_len: sp.Expr) -> sp.Expr:
    """One layer's causal attention for ``tokens`` prompt tokens of prompts ``prompt_len``
    long (a chunk is its share of the whole prompt's attention). With the hardware entry's
    FlashAttention rates this is the FlashAttention-2/3 forward model of
    :mod:`attention` (Dao 2022, 2023; Shah 2024); otherwise a roofline of the causal FLOPs
    at the matmul rate. MLA prefills in the expanded form (query/key 192, value 128 wide)."""
    d = ms.dims(pool.t)
    prompts = tokens / prompt_len
    kv_heads = d.local_heads if ms.latent is not None else d.local_kv_heads
    if pool.flash is not None and pool.shared_memory:
        shape = attention.AttentionShape(batch=prompts, heads=d.local_heads, kv_heads=kv_heads,
                                         q_len=prompt_len, kv_len=prompt_len,
                                         d_qk=d.qk_head_dim, d_v=d.v_head_dim, e=ms.e,
                                         causal=True)
        blocks = attention.block_sizes(pool.shared_memory, ms.qk_dim, ms.v_dim,
                                       ms.activation_bytes)
        return attention.flash_forward_time(shape, blocks, pool.flash)
    flops = (transformer.FLOPS_PER_MAC * tokens * d.local_heads * prompt_len
             * (d.qk_head_dim + d.v_head_dim) * attention.CAUSAL_FRACTION)
    io = tokens * (kv_elements_per_token_layer(ms, pool.t) * ms.kv_bytes
                   + d.local_heads * (d.qk_head_dim + d.v_head_dim) * ms.e)
    return _attention_roofline(pool, flops, io)


def _attention_roofline(pool: Pool, flops: sp.Expr, io: sp.Expr) -> sp.Expr:
    """An attention kernel without FlashAttention rates: its FLOPs at the bf16 matmul rate
    or its bytes at the streaming rate, whichever is slower, plus one kernel's overhead."""
    return sp.Max(flops / (pool.peak_bf16 * pool.eta_mm), _streaming_time(pool, io),
                  evaluate=False) + pool.kernel_overhead


def _streaming_time(pool: Pool, nbytes: sp.Expr) -> sp.Expr:
    """Time to move ``nbytes`` through HBM at the streaming rate (the roofline's memory side,
    :func:`compute.memory_time`)."""
    return nbytes / (pool.hbm_bandwidth * pool.eta_mem)


def elementwise_time(ms: ModelSymbols, pool: Pool, m: sp.Expr,
                     dense_mlp: bool = True) -> sp.Expr:
    """The layer's norms, rotary embedding and (dense) MLP activation: memory-bound, one
    kernel each (an MoE layer's activations are among its :func:`mlp_ops`)."""
    d = ms.dims(pool.t)
    mlp = transformer.SWIGLU_ACCESSES[0] * ms.ffn / pool.t if dense_mlp else 0
    elements = m * (2 * ADD_NORM_ACCESSES * ms.h + mlp
                    + 2 * (d.local_heads + d.local_kv_heads) * d.head_dim)
    return (_streaming_time(pool, elements * ms.e)
            + LAYER_ELEMENTWISE_KERNELS * pool.kernel_overhead)


#: Tensor-parallel all-reduce algorithms a serving step may run (NCCL's ring and trees, and
#: switch-side reduction where the fabric has it).
TP_ALGORITHMS: tuple[str, ...] = ("ring", "double_binary_tree", "in_network")


def tp_all_reduce_time(ms: ModelSymbols, pool: Pool, m: sp.Expr) -> sp.Expr:
    """One tensor-parallel all-reduce of ``m`` tokens' activations, the fastest algorithm in
    the pipelined alpha-beta form NCCL runs (:func:`algorithms.pipelined_time`: the buffer cut
    into chunks flowing through the algorithm's steps). A decode step's all-reduce is a few
    kilobytes: its time is the steps' latencies, far from the link's bandwidth (the
    nccl-tests curve of docs/collectives.md); the textbook form would add the latency and the
    transfer, the pipelined one also their geometric mean, as measured small messages do."""
    size = m * ms.h * ms.e
    times = []
    for name in TP_ALGORITHMS:
        algorithm = algorithms.find("all_reduce", name)
        link = pool.reduction if algorithm.in_network else pool.up
        time = algorithms.pipelined_time(algorithm, size, pool.t, link.latency, link.rate)
        if algorithm.in_network:
            ring = algorithms.pipelined_time(algorithms.find("all_reduce", "ring"), size,
                                             pool.t, pool.up.latency, pool.up.rate)
            time = pool.has_reduction * time + (1 - pool.has_reduction) * ring
        times.append(time)
    # One GPU (t = 1) reduces nothing.
    return (1 - indicator(pool.t, 1)) * sp.Min(*times, evaluate=False)


def head_time(ms: ModelSymbols, pool: Pool, rows: sp.Expr) -> sp.Expr:
    """Final norm and the logits GEMM for ``rows`` tokens (vocabulary split over TP; the
    output layer in bf16), and the fp32 logits written for the sampler."""
    hw = pool.compute_params()
    gemm = _weight_gemm("logits", rows, ms.vocab / pool.t, ms.h, ms.e, ms.e)
    logits = rows * ms.vocab / pool.t * LOGIT_BYTES
    return compute.op_time(gemm, hw) + _streaming_time(pool, logits) + pool.kernel_overhead


@dataclass(frozen=True)
class StepTimes:
    """Time of one forward step of a replica, by part (all layers, all stages)."""

    weights_and_gemms: sp.Expr
    attention: sp.Expr
    elementwise: sp.Expr
    tp_communication: sp.Expr
    ep_communication: sp.Expr
    pp_communication: sp.Expr
    head: sp.Expr

    @property
    def total(self) -> sp.Expr:
        return sp.Add(*(getattr(self, k) for k in STEP_PARTS))

    #: The GEMMs' time had they been bound by compute alone, and by HBM alone (what limits).
    gemm_compute_bound: sp.Expr = sp.S.Zero
    gemm_memory_bound: sp.Expr = sp.S.Zero

    def as_dict(self, prefix: str) -> dict[str, sp.Expr]:
        parts = {f"{prefix}_{k}": getattr(self, k) for k in STEP_PARTS}
        parts[f"{prefix}_gemm_compute_bound"] = self.gemm_compute_bound
        parts[f"{prefix}_gemm_memory_bound"] = self.gemm_memory_bound
        return parts


#: The parts of a step, in report order.
STEP_PARTS: tuple[str, ...] = ("weights_and_gemms", "attention", "elementwise",
                               "tp_communication", "ep_communication", "pp_communication",
                               "head")


def step_time(ms: ModelSymbols, pool: Pool, tokens: sp.Expr, attention: sp.Expr,
              logit_rows: sp.Expr) -> StepTimes:
    """A forward step over ``tokens`` tokens through all ``L`` layers and ``pp`` stages.

    ``attention`` is one layer's attention time for the step (:func:`attention_time`, summed
    over its decode and prefill parts). With ``pp`` stages the step is cut into ``pp``
    micro-batches of ``tokens/pp`` that flow through the stages back to back, so every GPU
    stays busy and a token still crosses all ``L`` layers: the time of a step is that of
    ``L`` layers on ``tokens/pp`` tokens plus ``pp`` sends (the first stage waits for the
    last; Narayanan et al. SC'21 Sec. 2.2 for the schedule). Attention is split the same way.
    """
    pp = pool.pp
    hw = pool.compute_params()
    micro = tokens / pp
    dense_layers = ms.dense_layers
    moe_layers = sp.Integer(0) if ms.moe is None else ms.moe.layers
    attn_ops = attention_projection_ops(ms, pool, micro)
    dense_ops = attn_ops + mlp_ops(ms, pool, micro, experts=False)
    moe_ops = attn_ops + mlp_ops(ms, pool, micro, experts=True) if ms.moe is not None else []
    # Stages of a replica larger than the scale-up domain sit in different domains.
    share = micro * ms.h * ms.e / pool.t
    p2p = sp.Piecewise((point_to_point(share, pool.up), pool.t * pp <= pool.scale_up_size),
                       (point_to_point(share, pool.out), True))
    all_reduce = tp_all_reduce_time(ms, pool, micro)
    # Over the pp micro-batches of a step, every GPU runs its L/pp layers once per
    # micro-batch: pp * (L/pp) = L layer passes on tokens/pp tokens each.

    def over_layers(per_op: Callable[[transformer.Op], sp.Expr]) -> sp.Expr:
        dense = dense_layers * sp.Add(*(per_op(op) for op in dense_ops))
        if not moe_ops:
            return dense
        return dense + moe_layers * sp.Add(*(per_op(op) for op in moe_ops))

    return StepTimes(
        weights_and_gemms=over_layers(lambda op: compute.op_time(op, hw)),
        attention=ms.L * attention,
        elementwise=(dense_layers * elementwise_time(ms, pool, micro)
                     + moe_layers * elementwise_time(ms, pool, micro, dense_mlp=False)),
        # Two all-reduces in a dense layer (after attention and after the MLP); an MoE layer
        # combines its experts' outputs with the all-to-all instead of the second one.
        tp_communication=(parallelism.TP_ALL_REDUCES_PER_PASS * dense_layers + moe_layers)
        * all_reduce,
        ep_communication=moe_layers * expert_parallel_time(ms, pool, micro),
        pp_communication=(1 - indicator(pp, 1)) * pp * p2p,
        head=head_time(ms, pool, logit_rows),
        gemm_compute_bound=over_layers(lambda op: compute.compute_time(op, hw)),
        gemm_memory_bound=over_layers(
            lambda op: compute.memory_time(op, hw) if op.kind == "gemm" else sp.S.Zero),
    )


# -- memory ----------------------------------------------------------------------------------

def activation_workspace(ms: ModelSymbols, pool: Pool, tokens: sp.Expr,
                         logit_rows: sp.Expr) -> sp.Expr:
    """Peak activation bytes of a step over ``tokens`` tokens: the layer's widest tensors
    (QKV, the MLP's gate and up outputs and its input) live at once, plus the fp32 logits of
    the ``logit_rows`` tokens that sample (one per sequence, not per prompt token)."""
    d = ms.dims(pool.t)
    width = (ms.h + (d.local_heads + 2 * d.local_kv_heads) * d.head_dim
             + (d.gate_factor + 1) * ms.ffn / pool.t)
    return (tokens / pool.pp * width * ms.e
            + logit_rows / pool.pp * ms.vocab / pool.t * LOGIT_BYTES)


def blocks(tokens: sp.Expr, block_size: sp.Expr) -> sp.Expr:
    """Paged-cache blocks a sequence of ``tokens`` tokens holds (the last one partly full)."""
    return sp.ceiling(tokens / block_size)


def max_sequences(free_bytes: sp.Expr, kv_token: sp.Expr, context: sp.Expr,
                  block_size: sp.Expr) -> sp.Expr:
    """Sequences of ``context`` tokens whose paged KV cache fits into ``free_bytes``."""
    per_sequence = blocks(context, block_size) * block_size * kv_token
    return sp.Max(0, sp.floor(free_bytes / per_sequence), evaluate=False)
