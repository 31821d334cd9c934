"""The sections of a training case (model, hardware, network, cluster, training, parallelism,
search, constraints, co-design), built from the value types of :mod:`.fields`."""

from __future__ import annotations

from typing import Annotated, Literal

from perfcost.solver.case.fields import (
    Bandwidth,
    Budget,
    Bytes,
    CapacityFactor,
    Count,
    Duration,
    Expect,
    Experts,
    Flag,
    FlagChoice,
    FlopRate,
    Fraction,
    IntChoice,
    IntPair,
    LoadImbalance,
    Money,
    MoneyRate,
    NonNegativeInt,
    Oversubscription,
    PlacementChoice,
    PositiveInt,
    Power,
    RecomputeChoice,
    SourcedFraction,
    Strict,
    Text,
    Tolerance,
    ZeroChoice,
)
from perfcost.solver.case.measured_sections import (
    MeasuredCollective,
    Precision,
    PrecisionEfficiency,
)
from pydantic import Field


class ModelSection(Strict):
    name: Text
    description: Text = ""
    source: Text = ""
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt | None = None
    # Width of one head where heads x head_dim is not hidden (Qwen3, GPT-OSS); None: hidden /
    # heads.
    head_dim: PositiveInt | None = None
    ffn: PositiveInt
    ffn_kind: Literal["gelu", "swiglu"] = "gelu"
    vocab: PositiveInt
    seq_len: PositiveInt
    tied_embeddings: Flag = False
    biases: Flag = False
    positions: Literal["learned", "rope"] = "rope"
    dropout: Flag = False
    # Mixture of experts (formulations/moe.py); no experts is a dense model.
    experts: Experts | None = None
    shared_experts: NonNegativeInt = 0
    top_k: PositiveInt | None = None
    expert_ffn: PositiveInt | None = None
    moe_every: PositiveInt = 1
    first_dense_layers: NonNegativeInt = 0
    # How many layers are MoE (DESIGN.md's key): the last ones, every moe_every-th; an
    # alternative to first_dense_layers (first_dense_layers = layers - moe_layers * moe_every).
    moe_layers: PositiveInt | None = None
    capacity_factor: CapacityFactor | None = None
    load_imbalance: LoadImbalance = 1.0
    # Node-limited routing: scale-up domains (nodes) one token may be sent to at most.
    route_domains: PositiveInt | None = None
    # Multi-head latent attention (formulations/mla.py).
    q_lora_rank: PositiveInt | None = None
    kv_lora_rank: PositiveInt | None = None
    qk_nope_head_dim: PositiveInt | None = None
    qk_rope_head_dim: PositiveInt | None = None
    v_head_dim: PositiveInt | None = None
    # Multi-token prediction modules (DeepSeek-V3 Sec. 2.2): recorded, not yet modelled.
    mtp_modules: NonNegativeInt = 0


class FlashEfficiency(Strict):
    """Fractions of the dense peak one FlashAttention generation's kernels reach, and their
    fixed cost per wave of tiles."""

    forward: Fraction
    backward: Fraction
    forward_tile_overhead: Duration = 0.0
    backward_tile_overhead: Duration = 0.0
    source: Text


class EfficiencySection(Strict):
    matmul: SourcedFraction
    memory: SourcedFraction
    gemm_tile: IntPair
    kernel_overhead: Duration
    kernel_overhead_source: Text
    # Fixed cost per wave of GEMM output tiles (formulations.compute); 0: plain roofline.
    wave_overhead: Duration = 0.0
    # Rows of the narrow tiles of GEMMs with fewer rows than gemm_tile[0]
    # (formulations.compute.gemm_tile_rows); None: every GEMM uses gemm_tile[0] rows.
    gemm_row_granule: PositiveInt | None = None
    gemm_row_granule_source: Text = ""
    # Dispatch latency an isolated eager kernel timing adds ('perfcost calibrate'); recorded
    # with the fit, paid by no workload.
    measurement_floor: Duration = 0.0
    measurement_floor_source: Text = ""
    # The FlashAttention generation the software stack runs and the rates of each generation
    # (formulations.attention).
    flash_attention: Literal["fa2", "fa3"] = "fa2"
    fa2: FlashEfficiency | None = None
    fa3: FlashEfficiency | None = None
    # Provenance of a kernel fit ('perfcost calibrate'): file, date, residual summary.
    fit_source: Text = ""
    fit_as_of: Text = ""
    fit_residuals: Text = ""
    # Per-precision rates fitted on a measured kernel database (measured_sections.py); an
    # entry without them uses the values above for every precision.
    precision: dict[Precision, PrecisionEfficiency] = Field(default_factory=dict)


class HardwareSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    peak_flops: dict[Literal["fp32", "tf32", "bf16", "fp16", "fp8", "fp4"], FlopRate]
    hbm_capacity: Bytes
    hbm_bandwidth: Bandwidth
    sram: Bytes | None = None
    # On-chip shared memory per multiprocessor: FlashAttention's block sizes.
    shared_memory: Bytes | None = None
    shared_memory_source: Text = ""
    multiprocessors: PositiveInt
    price: Money = 0.0
    power: Power
    gpu_hour_price: MoneyRate = 0.0
    price_source: Text = ""
    efficiency: EfficiencySection


class LinkSection(Strict):
    bandwidth: Bandwidth
    latency: Duration
    efficiency: Fraction
    efficiency_source: Text = ""
    topology: Text = ""
    size: PositiveInt | None = None
    # A torus (topology = "torus") gives its dimensions; their product is the size.
    dims: Annotated[list[PositiveInt], Expect("a list of positive integers, like [16, 16, 16]")
                    ] | None = None
    oversubscription: Oversubscription = 1.0
    # Scale-out fabric structure (formulations/topology.py): GPUs under one leaf switch, rail
    # group or dragonfly group; the global-link share of a dragonfly; latency per switch hop.
    unit: PositiveInt | None = None
    global_taper: Fraction | None = None
    hop_latency: Duration = 0.0
    # Switch-side reduction (NVLink SHARP / InfiniBand SHARP), where the fabric has it: the
    # all-reduce bandwidth each rank sees and the latency of one reduce or multicast phase.
    reduction_bandwidth: Bandwidth | None = None
    reduction_latency: Duration | None = None
    reduction_source: Text = ""
    # Collectives fitted on measured tables ('perfcost calibrate --database'); where one
    # matches an op and rank count, 'perfcost collective' uses its constants.
    collectives: list[MeasuredCollective] = Field(default_factory=list)


class NetworkSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    scale_up: LinkSection
    scale_out: LinkSection


class ClusterSection(Strict):
    gpus: IntChoice | None = None
    gpu_hour_price: MoneyRate | None = None


class TrainingSection(Strict):
    global_batch: PositiveInt
    tokens: Count = 300e9
    # "fp8": BF16 activations with the linear layers' GEMMs in FP8 (formulations.precision).
    precision: Literal["bf16", "fp16", "fp8"] = "bf16"
    fp8_recipe: Literal["delayed", "current", "block", "mxfp8"] = "delayed"
    # The framework profile (cases/frameworks/): what it runs, its reserve and fixed costs.
    framework: Text = "megatron-core"
    schedule: Literal["1f1b", "zb-h1", "dualpipe", "dualpipev"] = "1f1b"
    # Context-parallel attention: K/V ring, all-gather, or Ulysses all-to-all ("a2a", which
    # needs the local heads, heads / tp, to divide over cp).
    cp_algorithm: Literal["ring", "all_gather", "a2a"] = "ring"
    # Tensor-parallel communication overlap; left out: the framework's default.
    tp_overlap: Flag | None = None
    optimizer: Literal["adam"] = "adam"
    # Format of Adam's first and second moments (DeepSeek-V3 Sec. 3.3.3 keeps them in BF16);
    # the master weights stay FP32.
    optimizer_moment_precision: Literal["fp32", "bf16"] = "fp32"
    grad_reduce_precision: Literal["bf16", "fp16", "fp32"] | None = None
    dp_overlap: Flag = False
    # Hide the MoE all-to-alls behind other micro-batches' compute (DeepSeek-V3's DualPipe,
    # Megatron-Core's a2a overlap): only the excess over the MoE layer's compute is exposed.
    ep_overlap: Flag = False
    # The tensor-parallel all-reduce algorithm; "auto" takes the fastest, as NCCL does.
    tp_algorithm: Literal["auto", "ring", "double_binary_tree", "in_network"] = "auto"
    # The attention core's kernels (formulations.attention).
    attention: Literal["materialized", "flash"] = "materialized"


#: Modules selective recomputation may redo (formulations.memory.RECOMPUTE_MODULES).
RecomputeModule = Literal["core_attn", "mla_up_proj", "layernorm", "moe_act"]


class ParallelismSection(Strict):
    tp: IntChoice | None = None
    pp: IntChoice | None = None
    dp: IntChoice | None = None
    cp: IntChoice | None = None
    micro_batch: IntChoice | None = None
    virtual_stages: IntChoice | None = None
    recompute: RecomputeChoice | None = None
    placement: PlacementChoice | None = None
    sequence_parallel: FlagChoice | None = None
    zero: ZeroChoice | None = None
    ep: IntChoice | None = None
    # Not searched: expert tensor parallelism and whether stages may hold unequal layers.
    expert_tp: PositiveInt = 1
    uneven_stages: Flag = False
    # Which layers each model chunk holds, as Megatron-Core's --pipeline-model-parallel-layout
    # string (formulations.pipeline_layout); implies uneven stages.
    pipeline_layout: str | None = None
    # What selective recomputation redoes (Megatron-Core's --recompute-modules names;
    # formulations.memory.RECOMPUTE_MODULES); left out: the attention core and MLA's
    # up-projections.
    recompute_modules: list[RecomputeModule] | None = None

    @property
    def uneven(self) -> bool:
        """Stages may hold unequal layer counts (``uneven_stages``, or a layout)."""
        return self.uneven_stages or self.pipeline_layout is not None


class CompareSection(Strict):
    """A fixed configuration (a published layout) evaluated beside the optimum by ``solve``."""

    name: Text
    source: Text = ""
    parallelism: ParallelismSection


class MetricSection(Strict):
    measured: float | str
    tolerance_pct: Tolerance


class ValidationSection(Strict):
    suite: Text
    source: Text
    published_id: Text
    metrics: dict[str, MetricSection]


class SearchSection(Strict):
    objective: Text = "iteration_time"
    engine: Literal["auto", "enumerate", "bound", "milp"] = "auto"


class ConstraintsSection(Strict):
    """Limits the search must respect (``perfcost solve``)."""

    budget: Budget | None = None
    memory_headroom: Fraction = 1.0


class CodesignSection(Strict):
    """Hardware-software co-design (solver/cost/codesign.py): the accelerator designs of a cost
    case (its ``[design]`` choices, fabric and datacenter) become systems of the search, one per
    design x network x GPU count, each priced by its own cluster bill of materials."""

    design: Text
    #: Capital budget of the whole cluster (accelerators, hosts, fabric), if any.
    capex_budget: Budget | None = None
    #: Facility power limit (IT power x PUE), if any.
    power_limit: Power | None = None
