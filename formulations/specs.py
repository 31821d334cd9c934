"""Frozen, typed inputs of the formulations, all in SI base units (s, B, FLOP, USD, W).

These are what the case loader hands to a formulation; they carry values, never units or text
to parse, so a formulation never has to validate anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .pipeline_layout import Layout

FfnKind = Literal["gelu", "swiglu"]

#: Codes of the categorical decisions, in the order their integer codes use.
RECOMPUTE_MODES: tuple[str, ...] = ("none", "selective", "full")
#: Orders of the parallel groups on consecutive ranks, innermost first: Megatron-LM's default
#: (data parallelism outside the pipeline), and the pipeline inside data parallelism.
PLACEMENTS: tuple[str, ...] = ("tp-cp-dp-pp", "tp-cp-pp-dp")


#: The kernel families a GEMM's configuration comes from (formulations.kernels.
#: chosen_gemm_time): a tuned library's fastest configuration, or the one tile DeepGEMM's
#: Hopper or SM 100 heuristic picks. One selector, not a flag per family: a GEMM runs one
#: family's kernels. Here, away from sympy, so that reading a hardware entry imports none.
GemmKernels = Literal["library", "deepgemm-sm90", "deepgemm-sm100"]
LIBRARY_KERNELS: GemmKernels = "library"
DEEPGEMM_SM90_KERNELS: GemmKernels = "deepgemm-sm90"
DEEPGEMM_SM100_KERNELS: GemmKernels = "deepgemm-sm100"


#: What selective recomputation redoes unless the case names its modules: the attention core
#: (Korthikanti et al.) and, in MLA models, the up-projections (Megatron-Core's defaults). Kept
#: here, beside the specs and away from sympy, so that reading a case imports no sympy.
DEFAULT_RECOMPUTE_MODULES: tuple[str, ...] = ("core_attn", "mla_up_proj")


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer (GPT: MHA + GeLU 4h; Llama: GQA + SwiGLU)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    ffn_kind: FfnKind
    vocab: int
    seq_len: int
    tied_embeddings: bool
    biases: bool
    learned_positions: bool
    dropout: bool
    #: Mixture of experts (formulations.moe); ``experts = 0`` is a dense model. ``ffn`` stays
    #: the width of the dense layers' MLP; each routed or shared expert is ``expert_ffn`` wide.
    experts: int = 0
    shared_experts: int = 0
    top_k: int = 0
    expert_ffn: int = 0
    #: Every ``moe_every``-th layer is an MoE layer, after the first ``first_dense_layers``.
    moe_every: int = 1
    first_dense_layers: int = 0
    #: Tokens an expert takes at most, over its even share (0: dropless, no capacity limit).
    capacity_factor: float = 0.0
    #: Tokens the busiest expert-parallel rank receives over the even share (>= 1).
    load_imbalance: float = 1.0
    #: Node-limited routing: scale-up domains a token may reach at most (0: no limit).
    route_domains: int = 0
    #: Multi-head latent attention (formulations.mla); ``kv_lora_rank = 0`` is MHA/GQA.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    #: Width of one attention head where ``heads x head_dim`` is not ``hidden`` (Qwen3,
    #: GPT-OSS: the Q and output projections are hidden x heads*head_dim); 0: hidden / heads.
    head_dim: int = 0
    #: Multi-token prediction modules (DeepSeek-V3 Sec. 2.2): each one more layer and one more
    #: pass of the output head on the last pipeline stage.
    mtp_modules: int = 0

    @property
    def moe(self) -> bool:
        return self.experts > 0

    @property
    def mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Number of MoE layers: every ``moe_every``-th layer after the first dense ones."""
        if not self.moe:
            return 0
        return len(range(self.first_dense_layers, self.layers, self.moe_every))


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator and the physical efficiency parameters of its software stack.

    ``matmul_efficiency`` is the fraction of the dense peak that a large, well-shaped GEMM
    reaches (a measured "maximum achievable matmul FLOPs"); ``memory_efficiency`` the fraction
    of the HBM peak that a streaming kernel reaches; ``gemm_tile_m``/``gemm_tile_n`` the
    output tile of the GEMM kernels, which with ``multiprocessors`` sets tile and wave
    quantisation; ``kernel_overhead`` the fixed cost of one kernel (launch and tail).
    """

    name: str
    peak_flops: float
    hbm_capacity: float
    hbm_bandwidth: float
    multiprocessors: int
    matmul_efficiency: float
    memory_efficiency: float
    gemm_tile_m: int
    gemm_tile_n: int
    kernel_overhead: float
    price: float
    power: float
    #: Fixed cost per wave of GEMM output tiles (formulations.compute); 0 is the plain roofline.
    gemm_wave_overhead: float = 0.0
    #: Rows of the narrow tiles of GEMMs with fewer rows than ``gemm_tile_m``
    #: (formulations.compute.gemm_tile_rows); 0: every GEMM uses ``gemm_tile_m`` rows.
    gemm_row_granule: int = 0
    #: On-chip shared memory per multiprocessor, bytes: sets FlashAttention's block sizes
    #: (formulations.attention); 0 when the entry does not give it.
    shared_memory: float = 0.0
    #: L2 cache bytes (FlashAttention's K/V re-reads hit it while they fit); 0: unknown.
    l2_cache: float = 0.0
    #: The FlashAttention generation the software stack runs ("fa2" or "fa3"), the fractions
    #: of the dense peak its forward and backward kernels reach and their fixed costs per wave
    #: of tiles.
    flash_attention: str = "fa2"
    flash_forward_efficiency: float = 0.0
    flash_backward_efficiency: float = 0.0
    flash_forward_tile_overhead: float = 0.0
    flash_backward_tile_overhead: float = 0.0
    #: Dense FP8 peak and the fraction of it FP8 GEMMs of the job's scaling recipe reach
    #: (formulations.precision); 0 where the job runs no FP8.
    peak_flops_fp8: float = 0.0
    matmul_efficiency_fp8: float = 0.0


@dataclass(frozen=True)
class LinkLevel:
    """One level of a two-level network: the bandwidth one GPU can drive (one direction)."""

    bandwidth: float
    latency: float
    efficiency: float


@dataclass(frozen=True)
class FabricSpec:
    """The scale-out fabric's taper (formulations.topology): ``unit`` GPUs keep the full
    bandwidth among themselves; beyond, ``taper`` of it and ``extra_hops`` more switch hops."""

    kind: str
    unit: float
    taper: float
    hop_latency: float
    extra_hops: int


#: Switch hops of a path inside a unit (up to the leaf / rail switch and down) and across, per
#: scale-out topology (used by formulations.topology; here so that loading needs no sympy).
HOPS = {"fat-tree": (2, 4), "rail-optimised": (2, 4), "dragonfly": (2, 3)}

#: A non-blocking fabric: one unit spans everything.
NON_BLOCKING = FabricSpec("non-blocking", 1e15, 1.0, 0.0, 0)


@dataclass(frozen=True)
class NetworkSpec:
    """A scale-up domain of ``scale_up_size`` GPUs joined by a scale-out fabric."""

    name: str
    scale_up_size: int
    scale_up: LinkLevel
    scale_out: LinkLevel
    #: Switch-side reduction inside the scale-up domain (NVLink SHARP), if the fabric has it.
    scale_up_reduction: LinkLevel | None = None
    fabric: FabricSpec = NON_BLOCKING


@dataclass(frozen=True)
class TrainingSpec:
    """The training job: batch, token budget, number formats and cost rate."""

    global_batch: int
    tokens: float
    bytes_per_element: float
    grad_reduce_bytes: float
    weight_bytes: float
    grad_bytes: float
    optimizer_state_bytes: float
    optimizer_step_bytes: float
    dropout_mask_bytes: float
    dp_overlap: bool
    gpu_hour_price: float
    #: Tensor-parallel all-reduce algorithm: "auto" takes the fastest (as NCCL's tuner does),
    #: or one of "ring", "double_binary_tree", "in_network".
    tp_algorithm: str = "auto"
    #: The attention core's kernels: "materialized" (softmax over an s x s score matrix in
    #: HBM, as Megatron-LM ran it in 2021-22) or "flash" (formulations.attention).
    attention: str = "materialized"
    #: Expert tensor parallelism: each expert's weights split over ``expert_tp`` ranks
    #: (Megatron-Core's expert_tensor_parallel_size; formulations.moe).
    expert_tp: int = 1
    #: Pipeline stages may hold unequal layer counts (``pp`` need not divide the layers); the
    #: slowest stage then holds ceil(layers / pp) of them.
    uneven_stages: bool = False
    #: The MoE all-to-alls overlap other micro-batches' compute; only what exceeds the MoE
    #: layer's compute is exposed (DeepSeek-V3 Sec. 3.2.1, DualPipe).
    ep_overlap: bool = False
    #: FP8 scaling recipe of the linear layers' GEMMs (formulations.precision); "none": the
    #: GEMMs run in the activation format.
    fp8_recipe: str = "none"
    #: Pipeline schedule (formulations.schedules); "1f1b" is interleaved when v > 1.
    schedule: str = "1f1b"
    #: Context-parallel attention algorithm (formulations.parallelism.CP_ALGORITHMS).
    cp_algorithm: str = "ring"
    #: Tensor-parallel communication overlapped with the adjacent linear GEMMs (Transformer
    #: Engine userbuffers): only what exceeds them is exposed.
    tp_overlap: bool = False
    #: ZeRO-2/3 reduce-scatter the gradients after every micro-batch's backward (DeepSpeed,
    #: FSDP) rather than once per step.
    zero_reduce_per_micro_batch: bool = True
    #: Bytes per weight in ZeRO-3/FSDP all-gathers (1 where weights are gathered in FP8).
    gather_bytes: float = 2.0
    #: The framework's memory reserve: CUDA context, communication buffers, workspaces
    #: (bytes), and the allocator's fragmentation as a fraction of what the step allocates.
    memory_reserve: float = 0.0
    memory_fragmentation: float = 0.0
    #: The framework's fixed time per optimizer step and per micro-batch and model chunk.
    step_overhead: float = 0.0
    micro_batch_overhead: float = 0.0
    #: What selective recomputation redoes (formulations.memory.RECOMPUTE_MODULES).
    recompute_modules: tuple[str, ...] = DEFAULT_RECOMPUTE_MODULES
    #: Format the attention output is cached in for backward in FP8 training
    #: (formulations.precision.CACHE_FORMAT_BITS); "": the linear-input width.
    attention_output_format: str = ""
    #: The MoE dispatch sends a token once per expert-parallel rank (DeepEP), so a rank keeps
    #: one copy of each token it receives (formulations.moe.distinct_ranks_per_token).
    dispatch_per_rank: bool = False
    #: FP8 weight copies kept through the step: 2 (row-wise and transposed), or 1 where each
    #: dgrad transposes the row-wise copy (formulations.precision).
    fp8_weight_copies: int = 2
    #: Which layers each model chunk holds, as Megatron-Core's layout string, with the ranks
    #: and virtual stages it was written for (formulations.pipeline_layout); None: every chunk
    #: holds an equal share (or the ceiling, with ``uneven_stages``).
    pipeline_layout: Layout | None = None


@dataclass(frozen=True)
class DecodeKernelSpec:
    """A hardware entry's fitted decode-attention kernels for one KV-cache format (its
    ``[efficiency.precision.<p>]`` decode keys; formulations.kernels.decode_kernel_time):
    fractions of the HBM bandwidth, of the bf16 peak (the grouped kernel's dot products) and
    of the fp32 peak (the per-head kernel's), fixed times in seconds, the largest group the
    grouped kernel takes, the per-head kernel's cache chunk in tokens and the grouped
    kernel's multi-block rule."""

    memory: float
    matmul: float
    fallback_vector: float
    block_overhead: float
    row_overhead: float
    kernel_overhead: float
    fallback_block_overhead: float
    fallback_kernel_overhead: float
    block_stream_share: float
    overlap: float
    group_limit: int
    kv_chunk: int
    multi_block: str
    #: The fp32 (CUDA-core) peak the per-head kernel's dot products run on, FLOP/s.
    fp32_peak: float
    #: Shared memory per multiprocessor, bytes: bounds the cache span of one per-head block.
    shared_memory: float
    #: The grouped kernel's cache tile (tokens; None: token by token) and its least time per
    #: token a block reads, fixed and per padded query row (seconds).
    kv_tile: int | None = None
    token_time: float = 0.0
    row_token_time: float = 0.0
    #: The per-head kernel's bound on a block's stream (None: ``block_stream_share``).
    fallback_stream_share: float | None = None
    #: The query rows a grouped block's fixed work counts: "padded" (the MMA's tile) or
    #: "group" (the group's own rows; formulations.kernels.DECODE_FIXED_ROWS).
    fixed_rows: str = "padded"


@dataclass(frozen=True)
class MlaDecodeKernelSpec:
    """A hardware entry's fitted MLA decode kernel for one KV-cache format (its
    ``mla_decode_*`` keys; formulations.kernels.mla_decode_time): fractions of the HBM
    bandwidth and of ``matmul_peak`` (the tensor-core peak of the cache's format, FLOP/s), the
    fixed time per sequence piece of a block and the step's launches, in seconds."""

    memory: float
    matmul: float
    split_overhead: float
    kernel_overhead: float
    matmul_peak: float
    #: The share of the cache a span's later query tiles read from HBM again, and the
    #: kernel's query tiling (formulations.kernels.MLA_TILINGS).
    tile_reread: float = 0.0
    tiling: str = "flashmla"
    #: The least time of one page step of a CTA (fmha_v2's kernel; 0: none), seconds.
    step_time: float = 0.0


@dataclass(frozen=True)
class ServingPoolSpec:
    """One pool of serving replicas: its accelerator, network and price (formulations.serving).
    ``peak_flops_fp8`` is the dense fp8 peak (the bf16 one where the chip has none);
    ``kernel_overhead`` the fixed time per kernel in the serving engine (CUDA graphs)."""

    hardware: HardwareSpec
    network: NetworkSpec
    peak_flops_fp8: float
    kernel_overhead: float
    gpu_price: float  # USD per GPU-second
    #: Fraction of the fp8 peak large fp8 GEMMs reach, where measured (0: the bf16 one).
    matmul_efficiency_fp8: float = 0.0
    #: The measured decode-attention kernels for the job's KV-cache format, where the
    #: hardware entry has them (None: the roofline of formulations.inference).
    decode_kernel: DecodeKernelSpec | None = None
    #: The measured MLA decode kernel for the job's KV-cache format (models with a latent
    #: cache), where the hardware entry has it (None: the roofline).
    mla_decode_kernel: MlaDecodeKernelSpec | None = None


@dataclass(frozen=True)
class InferenceSpec:
    """The serving workload (formulations.serving): requests of ``prompt_len`` prompt tokens
    and ``output_len`` output tokens arriving at ``rate`` per second, SLOs in seconds."""

    prompt_len: int
    output_len: int
    rate: float
    slo_ttft: float
    slo_tpot: float
    batching: str  # "continuous" (mixed prefill/decode steps) or "static"
    chunk_tokens: int  # prompt tokens one continuous-batching step takes at most
    block_size: int  # tokens per paged KV-cache block
    kv_bytes: float  # bytes per cached K or V element
    activation_bytes: float
    memory_utilization: float  # fraction of HBM the engine may use
    step_overhead: float  # fixed time per step (scheduler, sampling), seconds
    #: Serving engine whose fixed costs apply (formulations.serving.ENGINES), "none": none.
    engine: str = "none"
    #: Squared coefficient of variation of inter-arrival times (0 deterministic, 1 Poisson).
    arrival_scv: float = 1.0
    #: Percentile SLOs in seconds (0: none); the 99th percentile of TTFT and TPOT.
    slo_ttft_p99: float = 0.0
    slo_tpot_p99: float = 0.0
    #: A fixed fleet of GPUs (0: provision whole replicas for ``rate``).
    gpus: int = 0
    #: Speculative decoding (formulations.serving): "none", "draft" (a smaller model of the
    #: same tokenizer proposes) or "heads" (EAGLE / MTP heads on the target's last hidden
    #: state); ``draft_tokens`` proposed per verification step, each accepted with
    #: probability ``acceptance_rate`` (Leviathan et al. 2023's alpha).
    speculative: str = "none"
    draft_tokens: int = 0
    acceptance_rate: float = 0.0
    #: The draft model ("draft"), or None; "heads" are ``head_layers`` decoder layers of the
    #: target's width with the target's output layer.
    draft_model: ModelSpec | None = None
    head_layers: int = 1
    #: Prefix caching: the fraction of prompt tokens served from the cache, and how many
    #: distinct cached prefixes stay resident in the KV pool.
    prefix_hit_rate: float = 0.0
    cached_prefixes: int = 1
    #: Data-parallel attention with wide expert parallelism (MoE models): a decision of the
    #: (decode) pool, its attention ranks per replica (formulations.inference.Pool.dp).
    dp_attention: bool = False
