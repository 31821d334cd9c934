"""Sections of hardware and network entries fitted on measured kernel databases
(``perfcost calibrate --database``; docs/calibration.md).

* ``[efficiency.precision.<p>]`` of a hardware entry: one precision's GEMM efficiency model
  (tile, split-K, overheads), its prefill FlashAttention rate and its decode attention's
  achieved bandwidth. An entry without these tables behaves exactly as before: the top-level
  ``[efficiency]`` values serve every precision.
* ``[[scale_up.collectives]]`` of a network entry: the latency and bandwidth of one measured
  collective at one rank count, in the pipelined alpha-beta form of its algorithm
  (formulations.kernels.collective_time), and the range of sizes it was measured on.
"""

from __future__ import annotations

from typing import Literal

from perfcost.solver.case.fields import (
    Bandwidth,
    Bytes,
    Duration,
    Fraction,
    IntPair,
    PositiveInt,
    Strict,
    Text,
)

#: Precisions a hardware entry can carry its own efficiency for.
Precision = Literal["bf16", "fp8", "fp8_block", "fp4"]


class PrecisionEfficiency(Strict):
    """One precision's fitted rates: GEMMs, prefill (context) and decode attention, MoE."""

    matmul: Fraction
    memory: Fraction
    gemm_tile: IntPair
    kernel_overhead: Duration
    wave_overhead: Duration = 0.0
    gemm_row_granule: PositiveInt | None = None
    split_k_granule: PositiveInt | None = None
    # Activations converted to the operand format by a kernel of their own before the GEMM.
    quantised_activations: bool = False
    prefill_forward: Fraction | None = None
    prefill_tile_overhead: Duration = 0.0
    prefill_kernel_overhead: Duration = 0.0
    prefill_memory: Fraction | None = None
    # The Q/K/V preprocessing kernel before prefill attention (formulations.kernels).
    prefill_preprocess_memory: Fraction | None = None
    decode_memory: Fraction | None = None
    # Decode attention's dot products on the CUDA cores, as a fraction of the fp32 peak, and
    # its fixed cost per wave of (sequence, KV head) blocks.
    decode_vector: Fraction | None = None
    decode_block_overhead: Duration = 0.0
    decode_kernel_overhead: Duration = 0.0
    # The MoE layer (formulations.kernels.moe_layer_time): its grouped GEMMs' fractions of the
    # peak and of the HBM bandwidth, the token permutation's bandwidth, the fixed cost.
    moe_matmul: Fraction | None = None
    moe_memory: Fraction | None = None
    moe_permute: Fraction | None = None
    moe_overhead: Duration = 0.0
    source: Text
    as_of: Text
    residuals: Text = ""


class MeasuredCollective(Strict):
    """A collective measured on the scale-up level, fitted at one rank count."""

    op: Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]
    algorithm: Text
    implementation: Literal["nccl", "custom"] = "nccl"
    ranks: PositiveInt
    latency: Duration
    bandwidth: Bandwidth
    # The sizes the table measured: the constants are not extrapolated beyond them.
    min_bytes: Bytes
    max_bytes: Bytes
    source: Text
    as_of: Text
    residuals: Text = ""
