"""Frozen, typed inputs of the formulations, all in SI base units (s, B, FLOP, USD, W).

These are what the case loader hands to a formulation; they carry values, never units or text
to parse, so a formulation never has to validate anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FfnKind = Literal["gelu", "swiglu"]

#: Codes of the categorical decisions, in the order their integer codes use.
RECOMPUTE_MODES: tuple[str, ...] = ("none", "selective", "full")
#: Orders of the parallel groups on consecutive ranks, innermost first: Megatron-LM's default
#: (data parallelism outside the pipeline), and the pipeline inside data parallelism.
PLACEMENTS: tuple[str, ...] = ("tp-cp-dp-pp", "tp-cp-pp-dp")


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
