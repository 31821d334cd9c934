"""Time of one kernel: a roofline over compute and HBM traffic with a physical efficiency model.

* Compute ceiling: ``peak_flops * matmul_efficiency * utilisation`` where
  ``matmul_efficiency`` is the measured maximum achievable matmul rate over the dense peak
  (the "MAMF" of a large square GEMM) and ``utilisation`` is the tile and wave quantisation of
  the GEMM's output over the multiprocessors: the useful output elements over the elements of
  all waves of ``tile_m x tile_n`` tiles launched (Calculon, SC'23, Sec. 4; NVIDIA's "Matrix
  Multiplication Background" guide for tile and wave quantisation).
* Memory ceiling: ``hbm_bandwidth * memory_efficiency``, the bandwidth a streaming kernel
  reaches (Williams et al. 2009, roofline).
* Every wave of output tiles pays ``wave_overhead``: the prologue (filling the operand
  pipeline) and epilogue (writing the C tile) of a tile that the main loop does not hide. It
  makes the efficiency saturate in the work per wave, ``2 T_m T_n k`` FLOPs per tile: a GEMM
  with a short reduction or few tiles per wave reaches less of the peak (NVIDIA's "Matrix
  Multiplication Background" guide; fitted to kernel timings by ``perfcost calibrate``, see
  docs/calibration.md). Zero reproduces the plain roofline.
* A GEMM with fewer rows than a tile runs a narrow-tile kernel: its tiles have ``m`` rows
  rounded up to ``row_granule`` (at most ``tile_m``). cuBLAS and CUTLASS pick such small-M
  kernels for skinny products, computing ``C^T = B^T A^T`` so that the token rows fall on the
  MMA instruction's N dimension, whose smallest size is 8 on Ampere and Hopper (``mma.sync``
  m16n8k16; ``wgmma`` N = 8..256 in steps of 8: PTX ISA, "Warpgroup MMA" shapes). ``None``
  keeps ``tile_m`` rows for every GEMM (the model the A100 validation was fitted with).
* The memory ceiling is the whole chip's: a GEMM with fewer output tiles than
  multiprocessors still streams its operands over all of them (split-K).
* With ``split_k_granule`` set, a GEMM with fewer output tiles than multiprocessors also
  splits its reduction over them: ``splits = min(floor(SMs / tiles), ceil(k / granule))``
  slices of ``k`` (at least one), each a tile of the wave (cuBLAS split-K and CUTLASS
  stream-K kernels for skinny, deep GEMMs; NVIDIA's "Matrix Multiplication Background"
  guide). ``None`` keeps one slice per tile (the model the A100 validation was fitted with).
* Every kernel pays ``kernel_overhead``: the ramp and tail a kernel pays when kernels run
  back to back (a training step, a CUDA-graph replay), where asynchronous launch hides the
  host's launch latency.
* A kernel timed on its own, eagerly, between two CUDA events additionally pays
  ``measurement_floor``: the host's dispatch latency, during which the GPU waits for the
  kernel after the first event. Kernel files of isolated calls include it
  (:func:`isolated_op_time`); no step of a workload pays it.

The time of a kernel is the larger of its compute and memory times plus the overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .attention import FlashOp, FlashRates, flash_op_time
from .core import largest, smallest
from .transformer import Op


@dataclass(frozen=True)
class ComputeParams:
    """Symbols of one accelerator's compute model."""

    peak_flops: sp.Expr
    matmul_efficiency: sp.Expr
    hbm_bandwidth: sp.Expr
    memory_efficiency: sp.Expr
    multiprocessors: sp.Expr
    tile_m: sp.Expr
    tile_n: sp.Expr
    kernel_overhead: sp.Expr
    wave_overhead: sp.Expr = sp.S.Zero
    #: Rates of the FlashAttention kernels (formulations.attention), where a layer uses them.
    flash: FlashRates | None = None
    #: Rows of a narrow tile are ``m`` rounded up to this (None: always ``tile_m`` rows).
    row_granule: sp.Expr | None = None
    #: Host dispatch latency an isolated, eagerly launched kernel's timing includes.
    measurement_floor: sp.Expr = sp.S.Zero
    #: Shortest reduction slice of a split-K GEMM (None: no split-K).
    split_k_granule: sp.Expr | None = None
    #: Peak and GEMM efficiency of the FP8 tensor cores, for GEMMs marked
    #: ``fp8`` (formulations.precision); None where the job runs none.
    fp8_peak_flops: sp.Expr | None = None
    fp8_matmul_efficiency: sp.Expr | None = None


def gemm_tile_rows(op: Op, hw: ComputeParams) -> sp.Expr:
    """Rows of the output tile the GEMM runs with: ``tile_m``, or for a GEMM of fewer rows
    ``m`` rounded up to the row granule (a small-M kernel)."""
    if hw.row_granule is None:
        return hw.tile_m
    # smallest: evaluated only between numbers (on every GEMM of a formulation, sympy's
    # symbolic comparison was most of a serving build's time).
    return smallest(hw.tile_m, hw.row_granule * sp.ceiling(op.m / hw.row_granule))


def gemm_output_tiles(op: Op, hw: ComputeParams) -> sp.Expr:
    """Output tiles of the (batched) GEMM."""
    return op.batch * sp.ceiling(op.m / gemm_tile_rows(op, hw)) * sp.ceiling(op.n / hw.tile_n)


def gemm_splits(op: Op, hw: ComputeParams) -> sp.Expr:
    """Slices of the reduction each output tile is split into (1 without split-K)."""
    if hw.split_k_granule is None:
        return sp.S.One
    room = sp.floor(hw.multiprocessors / gemm_output_tiles(op, hw))
    return largest(1, smallest(room, sp.ceiling(op.k / hw.split_k_granule)))


def gemm_waves(op: Op, hw: ComputeParams) -> sp.Expr:
    """Waves of output tiles (:func:`gemm_tile_rows` x ``tile_n``, times their split-K
    slices) over the multiprocessors."""
    return sp.ceiling(gemm_output_tiles(op, hw) * gemm_splits(op, hw) / hw.multiprocessors)


def gemm_utilisation(op: Op, hw: ComputeParams) -> sp.Expr:
    """Fraction of the launched tile-waves computing useful output (tile + wave quantisation;
    with split-K, each slice computes ``ceil(k / splits)`` of the reduction)."""
    waves = gemm_waves(op, hw)
    useful = op.batch * op.m * op.n
    launched = waves * hw.multiprocessors * gemm_tile_rows(op, hw) * hw.tile_n
    if hw.split_k_granule is None:
        return useful / launched
    splits = gemm_splits(op, hw)
    return useful * op.k / (launched * sp.ceiling(op.k / splits))


def compute_time(op: Op, hw: ComputeParams) -> sp.Expr:
    """Time the op would take if compute-bound."""
    if op.kind != "gemm":
        return sp.Integer(0)
    peak, efficiency = hw.peak_flops, hw.matmul_efficiency
    if op.fp8:
        if hw.fp8_peak_flops is None or hw.fp8_matmul_efficiency is None:
            raise ValueError(f"{op.name}: an FP8 GEMM without FP8 rates")
        peak, efficiency = hw.fp8_peak_flops, hw.fp8_matmul_efficiency
    rate = peak * efficiency * gemm_utilisation(op, hw)
    if hw.wave_overhead == 0:
        return op.flops / rate
    return op.flops / rate + gemm_waves(op, hw) * hw.wave_overhead


def memory_time(op: Op, hw: ComputeParams) -> sp.Expr:
    """Time the op would take if bound by HBM bandwidth."""
    return op.bytes / (hw.hbm_bandwidth * hw.memory_efficiency)


def op_time(op: Op, hw: ComputeParams) -> sp.Expr:
    """Roofline time of one kernel plus its fixed overhead."""
    if isinstance(op, FlashOp):
        if hw.flash is None:
            raise ValueError(f"{op.name}: FlashAttention kernel without FlashAttention rates")
        return flash_op_time(op, hw.flash)
    if op.kind == "gemm":
        # evaluate=False: sympy would otherwise try to order the two branches symbolically (slow).
        return (sp.Max(compute_time(op, hw), memory_time(op, hw), evaluate=False)
                + hw.kernel_overhead)
    return memory_time(op, hw) + hw.kernel_overhead


def isolated_op_time(op: Op, hw: ComputeParams) -> sp.Expr:
    """Time of the kernel as an isolated eager call between two CUDA events measures it:
    :func:`op_time` plus the measurement floor (``perfcost calibrate`` fits kernel files of
    such timings; docs/calibration.md)."""
    return op_time(op, hw) + hw.measurement_floor


def ops_time(ops: list[Op], hw: ComputeParams) -> sp.Expr:
    """Sequential time of a list of kernels."""
    return sp.Add(*(op_time(op, hw) for op in ops))


def ops_flops(ops: list[Op]) -> sp.Expr:
    return sp.Add(*(op.flops for op in ops))
