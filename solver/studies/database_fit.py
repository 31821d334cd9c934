"""Fit a hardware entry's per-precision rates to a measured kernel database, judged held out.

Every table of :mod:`perfcost.solver.studies.kernel_database` is split at random (seeded) into
the 70 % the fit sees and the 30 % it is judged on. The predictions are the formulations' own
expressions (:mod:`formulations.compute`, :mod:`formulations.attention`,
:mod:`formulations.kernels`), lambdified once; this module only chooses parameter values:

* GEMMs, per precision: the kernel-choice model of :func:`formulations.kernels.
  quantised_gemm_time` (per shape the fastest of the candidate tiles x split-K counts), its
  sustained ``matmul_efficiency``, clock ``boost`` and ``power_window`` (a busy time: the
  GEMMs run in the context the database's collector times them in, :class:`ClockContext`),
  ``memory_efficiency``, ``kernel_overhead``, ``wave_overhead``, the ``overlap``-norm of
  the tensor cores' time and the HBM traffic's, and for a quantised precision the HBM rate of
  the activations' quantisation kernels (``quantise_efficiency``), by the median plus half
  the 90th percentile of the absolute log errors over the GEMMs of at least
  :data:`FIT_MIN_FLOPS` (differential evolution); the kernel families (with or without
  stream-K kernels; the cost per wave after or beside the HBM traffic,
  ``wave_overlapped``) are chosen by the fitted loss.
* Prefill (context) attention, per precision: FlashAttention's forward efficiency, tile
  overhead (wave-quantised), kernel overhead and memory efficiency, and the bandwidth of the
  Q/K/V preprocessing kernel, by least squares on the log errors.
* Decode (generation) attention, per KV-cache precision (formulations.kernels.
  decode_kernel_time): the achieved HBM bandwidth (as a fraction of the peak) and the
  share of a multiprocessor's part of it one block streams at most, the fractions of the
  dense bf16 (tensor-core) peak and of the fp32 peak the grouped and the per-head kernels'
  dot products reach, each kernel's fixed cost per block (the grouped kernel's growing with
  its query rows x head size) and its kernel overhead, how far that fixed work overlaps the
  stream, a grouped block's least time per token it reads, and on Hopper with an fp8 cache
  the launch of the preprocessing kernel the collector's rotary span adds to 64-wide heads,
  by least squares on the log errors for every candidate multi-block rule, group limit,
  cache chunk, cache tile and rows of the fixed work; the combination of least loss wins.
* MLA decode (DeepSeek's multi-head latent attention on its latent cache), per cache
  precision (formulations.kernels.mla_decode_time, FlashMLA's tiling and scheduling): the
  achieved HBM bandwidth, the tensor cores' fraction of the cache precision's peak, the fixed
  cost per sequence piece of a block and the step's launches, by least squares on the log
  errors.
* MoE layers, per precision: the grouped GEMMs' fraction of the peak and of the HBM
  bandwidth, the bandwidth of the token permutation and the layer's fixed cost
  (formulations.kernels.moe_layer_time), by least squares on the log errors.
* Collectives, per table and rank count: a few size ranges (NCCL switches algorithm and
  protocol with the size), each with the latency and bandwidth of the pipelined alpha-beta
  form of the algorithm (:data:`COLLECTIVE_ALGORITHMS`); the ranges' number and breakpoints
  chosen on the fitted rows alone, the last range's bus bandwidth held to the growth its
  largest fitted sizes show, a size between two ranges on the alpha-beta bridge through
  them (:mod:`perfcost.solver.studies.collective_ranges`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from perfcost.formulations.specs import (
    DEEPGEMM_SM90_KERNELS,
    DEEPGEMM_SM100_KERNELS,
    LIBRARY_KERNELS,
    GemmKernels,
)
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.case.measured_sections import (
    MAX_DECODE_OVERLAP,
    MAX_GEMM_OVERLAP,
    MAX_L2_GAIN,
)
from perfcost.solver.studies.kernel_database import Database, Table, version_key

#: Fraction of every table kept out of the fit, and the seed that picks it.
HELD_OUT = 0.3
SEED = 0
#: Rows of a table the fit sees at most (a seeded sample of the 70 %). A GEMM table's fit
#: (eight to twelve parameters) takes about a minute of CPU at this size. 4,000 rows
#: doubled that and moved the held-out GEMMs >= 1 GFLOP by 0.1-0.2 point of median, the
#: 90th percentile either way (B200 bf16 5.9 / 15.9 -> 5.8 / 15.9 %, GB200 bf16 6.4 / 17.2
#: -> 6.2 / 16.9 %, GB200 fp8 4.1 / 10.1 -> 4.0 / 10.3 %), while the GEMMs below 1 GFLOP
#: worsened (B200 bf16 11.5 -> 13.5 %): not adopted.
MAX_FIT_ROWS = 1000
#: GEMMs below this many FLOPs are judged separately: launch latency, not the kernel.
FIT_MIN_FLOPS = 1e9
#: Collectives of at least this many bytes are judged as "large" (bandwidth-bound).
LARGE_MESSAGE = 2**20
#: Candidate GEMM output tiles of the Hopper and Blackwell tensor-core kernels.
TILE_CANDIDATES: tuple[tuple[int, int], ...] = ((64, 128), (128, 128), (128, 256))
#: Rows of the narrow tiles of GEMMs of few rows (formulations.compute.gemm_tile_rows).
ROW_GRANULE = 8
#: Shortest reduction slice of a split-K GEMM (formulations.compute). Chosen, not fitted:
#: four of the 64-deep k-blocks that CUTLASS's Hopper and Blackwell GEMM tiles load per
#: mainloop stage, so that every slice still runs its operand pipeline full for a while.
SPLIT_K_GRANULE = 256
#: Bytes per element of each precision's operands, and of the activations they come from.
OPERAND_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "fp4": 0.5}
ACTIVATION_BYTES = 2.0
#: The hardware entry's peak key of each precision (block-scaled fp8 runs at the fp8 peak).
PEAK_KEY = {"bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "fp4": "fp4"}
#: Algorithm of each measured collective (formulations.algorithms).
COLLECTIVE_ALGORITHMS = {"all_reduce": "ring", "all_gather": "ring",
                         "reduce_scatter": "ring", "alltoall": "pairwise"}
COLLECTIVE_OPS = {"alltoall": "all_to_all"}
#: Split-K counts a GEMM's kernel configurations choose among (one: no split). Every count
#: of 1-8, 10, 12, 14 and 16 (cuBLASLt takes any) fitted no better: held out, GEMMs >= 1
#: GFLOP, B200 bf16 5.9 -> 6.1 %, GB200 bf16 6.4 -> 6.4 %.
SPLIT_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Precisions whose GEMM kernels never split the reduction: TensorRT-LLM's block-scaled FP8
#: GEMMs accumulate each 128-deep block with its own scales in one pass over k (on the
#: H100 tables, allowing split-K predicts the deep GEMMs of 13-257 rows 2-4x too fast);
#: its NVFP4 GEMMs on SM 100 choose among tile and cluster shapes of one data-parallel
#: schedule, no split-K or stream-K configuration among them (fp4_gemm_template.h,
#: ``CutlassFp4GemmRunner::getConfigs``). The NVFP4 tables show it: with k = 65536 a GEMM
#: of 1-257 rows and 128-4096 columns takes 120-130 us on the GB200 whatever its size, one
#: tile's 256 main-loop steps one after another (held out, GEMMs >= 1 GFLOP, median / p90:
#: GB200 5.7 / 25.7 -> 3.1 / 10.7 %; below 1 GFLOP 14.8 -> 2.3 %).
NO_SPLIT_K = frozenset({"fp8_block", "fp4"})
#: Precisions whose activation cast is preceded by a pass over the activations that takes
#: their absolute maxima (formulations.kernels.quantised_gemm_time): per-tensor fp8 by
#: construction (dynamic per-tensor scaling); block-scaled fp8 where it does not run
#: DeepGEMM (:data:`DEEPGEMM_FP8_BLOCK_SMS`; chosen by the measurements before the
#: framework's Hopper path was read: held-out median of the H100 table 11.1 % with one pass,
#: 7.4 % with two).
AMAX_PASS = frozenset({"fp8", "fp8_block"})
#: Precisions whose GEMM main loop has a shortest step (formulations.kernels.main_loop_time),
#: fitted as ``kblock_time``: NVFP4, whose 16-element blocks bring 16 scale factors per
#: operand row into every 256-deep k-block. Held out against the model without it (median /
#: p90 %, GEMMs >= 1 GFLOP; < 1 GFLOP, not fitted, in brackets): B200 9.9 / 37.9 -> 6.0 /
#: 30.0 (29.4 -> 13.6), GB200 11.3 / 38.4 -> 7.4 / 30.2 (26.3 -> 21.1). Hopper's
#: block-scaled fp8 was mixed (>= 1 GFLOP: H100 7.1 -> 7.0, H200 8.6 -> 8.6; < 1 GFLOP:
#: H100 23.2 -> 38.0, H200 28.8 -> 39.7); bf16 and per-tensor fp8 moved no median by more
#: than 0.5 point and took the sustained clock with them (H200 bf16: the independent file
#: 9.0 -> 22.6 %).
KBLOCK_PRECISIONS = frozenset({"fp4"})
#: Range of the fitted ``kblock_time`` (seconds): the NVFP4 fits land at 0.60-0.64 us, the
#: block-scaled fp8 fits of the SM 100 family at 0.12-0.13 us.
KBLOCK_BOUNDS = (0.0, 2e-6)
#: Compute capabilities on which TensorRT-LLM's block-scaled fp8 ``Linear`` runs DeepGEMM.
#:
#: * The SM 100 family: ai-dynamo/aiconfigurator collector/trtllm/collect_gemm.py labels
#:   these rows ``deepgemm``: TensorRT-LLM 1.3's ``trtllm::fp8_swap_ab_gemm``, which calls
#:   ``fp8_utils.per_token_quant_and_transform`` (one Triton kernel that takes each
#:   128-element group's maximum in registers and writes the fp8 values and the packed
#:   UE8M0 scales in the same pass) and then ``deep_gemm.fp8_gemm_nt``, whose SM 100 kernel
#:   (deep_gemm/include/deep_gemm/impls/sm100_fp8_gemm_1d1d.cuh) runs the block-scaled
#:   tensor-core MMA, loading each 128-deep k-block's scale factors by TMA beside its
#:   operands and copying them into tensor memory (UTCCP), as NVFP4's kernels do. Its
#:   tiles follow DeepGEMM's SM 100 heuristic (formulations.kernels.deepgemm_sm100_time).
#: * Hopper (SM 90): the collector's ``Linear`` calls ``trtllm::fp8_quantize_1x128`` (one
#:   kernel, cpp/tensorrt_llm/thop/fp8Quantize.cpp ``scale_1x128_kernel``: a warp takes its
#:   128-element group's maximum by shuffles, then scales and casts it) and
#:   ``trtllm::fp8_block_scaling_gemm``, which on SM 90 runs TensorRT-LLM's JIT copy of
#:   DeepGEMM (cutlass_kernels/fp8_blockscale_gemm/fp8_blockscale_gemm_kernel.cuh,
#:   ``gemm_dispatch``; the tables' step at 1,024 rows, where the heuristic turns on TMA
#:   multicast, says that path ran): its main loop promotes each 128-deep k-block's partial
#:   sums with the scales on the CUDA cores (DeepSeek-V3 Sec. 3.3.2), after the k-block's
#:   WGMMAs. Its tiles follow the heuristic (formulations.kernels.deepgemm_sm90_time) and
#:   its padded rows cost (``padded_row_time``); its clusters' multicast saves a fraction of
#:   the main loop (``multicast_gain``).
#:
#: On both: no amax pass before the cast, a shortest main-loop step (``kblock_time``), and a
#: persistent scheduler that walks whole output tiles over every k-block: no split-K
#: (:data:`NO_SPLIT_K`).
#:
#: Held out, GEMMs >= 1 GFLOP, median / p90 % (below 1 GFLOP, never fitted, in brackets),
#: against Hopper's rule, both at 30 generations: B200 7.0 / 16.8 -> 5.2 / 14.3 (9.1 ->
#: 14.5), GB200 6.4 / 15.6 -> 5.1 / 13.4 (9.5 -> 8.5); at :data:`GEMM_GENERATIONS` 4.7 /
#: 13.2 (7.9) and 4.6 / 12.7 (8.5). A shortest step alone gave 6.6 / 16.6 on the B200: the
#: amax pass's extra read had held the cast's fitted rate at its bound (0.98 of the HBM
#: bandwidth). On Hopper, against its earlier rule (an amax pass, no step, the fastest of
#: :data:`TILE_CANDIDATES`): H100 7.0 / 24.4 -> 5.7 / 18.3 % (9.9 -> 4.6), H200 6.7 / 24.7
#: -> 6.0 / 17.5 % (10.8 -> 7.2); each part's share is in docs/calibration.md.
DEEPGEMM_FP8_BLOCK_SMS = frozenset({90, 100, 103})
#: The compute capability whose DeepGEMM runs the tile its heuristic picks, promotes each
#: k-block after its WGMMAs and pays for padded rows (formulations.kernels.
#: deepgemm_sm90_time): Hopper. Held out, GEMMs >= 1 GFLOP, median / p90 %, against the
#: fastest of the heuristic's rows and four column widths with the step hidden behind the
#: MMAs: H100 5.7 / 18.3 -> 5.4 / 16.6 (fitted loss 0.135 -> 0.127), H200 6.0 / 17.5 ->
#: 5.4 / 16.4. The heuristic's tile alone, the step still hidden, fitted the H100 table
#: worse (loss 0.139): its narrow tiles' steps take the MMAs' time plus the promotion's.
DEEPGEMM_SM90 = 90
#: The compute capabilities whose DeepGEMM runs the tile its SM 100 heuristic picks
#: (formulations.kernels.deepgemm_sm100_time), in place of the fastest of
#: :data:`TILE_CANDIDATES`: the B200 and GB200 (10.0) and the B300 and GB300 (10.3). Held
#: out, GEMMs >= 1 GFLOP, median / p90 % (below 1 GFLOP, never fitted, in brackets),
#: against the fastest of the generic tiles: B200 4.5 / 15.0 (10.3) -> 3.9 / 10.0 (9.9),
#: fitted loss 0.110 -> 0.086; GB200 4.6 / 12.7 (8.5) -> 4.0 / 10.3 (8.8), 0.110 -> 0.091.
#: Step by step on the B200: the heuristic's tile without the shallow-k rule 4.3 / 11.0
#: (loss 0.094), with the swap-AB kernel beside it 4.3 / 10.9 (0.094), with the rule 3.9 /
#: 10.0 (0.086). Tried, not adopted: a fitted gain for the TMA multicast the heuristic turns
#: on from 512 rows (as on Hopper): it fitted to 0.001 and the loss rose (0.095).
DEEPGEMM_SM100_FAMILY = frozenset({100, 103})
#: Range of the fitted time per padded row and main-loop step (seconds).
PADDED_ROW_BOUNDS = (0.0, 20e-9)
#: Range of the fitted part of that time that grows with the tiles holding padded rows
#: (seconds per padded row and step when they are as many as the multiprocessors:
#: formulations.kernels.gemm_config_time). Held out, GEMMs >= 1 GFLOP, median / p90 %
#: (below 1 GFLOP, never fitted, in brackets), against the per-tile part alone: H100 5.4 /
#: 16.6 -> 5.1 / 13.5 (5.1 -> 5.4), fitted loss 0.127 -> 0.111; H200 5.4 / 16.4 -> 4.9 /
#: 11.3 (4.3 -> 7.1), 0.122 -> 0.099. The shared part alone: H100 5.6 / 13.7 (6.4), loss
#: 0.119; H200 5.2 / 11.1 (8.0), 0.102. Both land at 5.3-5.6 ns, the per-tile part at
#: 0.6-1.1 ns. The same range as the per-tile part's.
PADDED_ROW_SHARED_BOUNDS = PADDED_ROW_BOUNDS
#: Range of the fitted fraction of the main loop's time that DeepGEMM's TMA multicast saves
#: (formulations.kernels.deepgemm_sm90_time; the sources report 10-20 % faster, a fraction
#: of 0.09-0.17). Held out, GEMMs >= 1 GFLOP, median / p90 % (below 1 GFLOP, never fitted,
#: in brackets), against none: H100 5.1 / 13.5 -> 4.2 / 11.5 (5.4 -> 6.3), fitted loss
#: 0.111 -> 0.095, fraction 0.18; H200 4.9 / 11.3 -> 4.3 / 11.6 (7.1 -> 8.1), 0.099 ->
#: 0.094, fraction 0.10. A gain in proportion to the L2 traffic multicast saves (a quarter
#: of a 128 x 128 tile's) fitted the same (0.095, 0.095); a pipelined L2 feed (the larger of
#: it and the MMAs) gained nothing (0.110), its rate fitted out of reach.
MULTICAST_GAIN_BOUNDS = (0.0, 0.4)
#: How many times faster than from HBM a quantised GEMM's activations and their cast move
#: where they stay in the L2 between the chain's kernels (formulations.kernels.
#: quantised_gemm_time; the L2's size is the entry's datasheet ``sram``).
L2_GAIN_BOUNDS = (1.0, MAX_L2_GAIN)


def runs_deepgemm(precision: str, sm_version: int | None) -> bool:
    """Whether ``precision``'s GEMMs on a GPU of compute capability ``sm_version`` run
    DeepGEMM's block-scaled fp8 path (:data:`DEEPGEMM_FP8_BLOCK_SMS`)."""
    return precision == "fp8_block" and sm_version in DEEPGEMM_FP8_BLOCK_SMS


def takes_amax_pass(precision: str, sm_version: int | None) -> bool:
    """Whether the activations' cast of ``precision``'s GEMMs on a GPU of compute
    capability ``sm_version`` follows a pass that takes their absolute maxima."""
    return precision in AMAX_PASS and not runs_deepgemm(precision, sm_version)


def has_kblock_step(precision: str, sm_version: int | None) -> bool:
    """Whether ``precision``'s GEMM kernels on a GPU of compute capability ``sm_version``
    have a shortest main-loop step (block-scaled tensor-core MMAs)."""
    return precision in KBLOCK_PRECISIONS or runs_deepgemm(precision, sm_version)


def gemm_kernels(precision: str, sm_version: int | None) -> GemmKernels:
    """The kernel family ``precision``'s GEMMs run on a GPU of compute capability
    ``sm_version``: DeepGEMM's Hopper tiles (:data:`DEEPGEMM_SM90`), the tile its SM 100
    heuristic picks (:data:`DEEPGEMM_SM100_FAMILY`), or a tuned library's fastest."""
    if runs_deepgemm(precision, sm_version):
        if sm_version == DEEPGEMM_SM90:
            return DEEPGEMM_SM90_KERNELS
        if sm_version in DEEPGEMM_SM100_FAMILY:
            return DEEPGEMM_SM100_KERNELS
    return LIBRARY_KERNELS


def split_counts(precision: str) -> tuple[int, ...]:
    """The split-K counts the GEMM kernels of ``precision`` choose among."""
    return (1,) if precision in NO_SPLIT_K else SPLIT_COUNTS


#: The large square GEMM whose achieved efficiency an entry's ``matmul`` states (m, n, k).
REFERENCE_GEMM = (8192, 8192, 8192)
FLOPS_PER_MAC = 2
#: Generations of the GEMM fit's differential evolution. With eight to ten parameters (the
#: overlap norm, the cast's rate and the main-loop step beside the six of the roofline and
#: the clock) 30 generations left the search short of its optimum. The same seeded search
#: run to 100 can only lower the fitted loss, and the held-out median fell with it on most
#: tables (GEMMs >= 1 GFLOP, median / p90 %: B200 block-scaled fp8 5.2 / 14.3 -> 4.7 /
#: 13.2, GB200 5.1 / 13.4 -> 4.6 / 12.7, B200 NVFP4 3.1 / 9.8 -> 2.8 / 8.6, B200 bf16
#: 6.1 / 16.7 -> 5.9 / 15.9; no table worse by more than 0.3 point). The GEMMs below
#: 1 GFLOP, which the fit never sees, move both ways (B200 block-scaled fp8 14.5 -> 7.9 %,
#: H200 bf16 8.5 -> 7.6 %; H100 bf16 9.8 -> 14.0 %, H100 fp8 6.1 -> 7.5 %): the fixed
#: costs that set them are barely pinned by the larger GEMMs. A GPU's GEMM fits take
#: about three times as long (H100: 54 -> 162 CPU seconds).
GEMM_GENERATIONS = 100
GEMM_BOUNDS: dict[str, tuple[float, float]] = {
    "matmul_efficiency": (0.2, 1.0),
    # The boost clock over the sustained one, and the busy time over which the power limit
    # pulls the clock down (the power controller's averaging; the database's GEMMs are
    # busy for about ten times their own duration: COLLECTOR_BUSY_RUNS).
    "boost": (1.0, 1.5),
    "power_window": (1e-4, 1.0),
    "memory_efficiency": (0.3, 1.0),
    "kernel_overhead": (0.0, 30e-6),
    "wave_overhead": (0.0, 10e-6),
    # The norm of the tensor cores' time and the HBM traffic's (formulations.kernels.
    # streamed_time): from their sum (1) to within 6 % of the larger at the ridge.
    "overlap": (1.0, MAX_GEMM_OVERLAP),
}
CONTEXT_BOUNDS: dict[str, tuple[float, float]] = {
    "forward": (0.05, 1.0),
    "forward_tile_overhead": (0.0, 50e-6),
    "kernel_overhead": (0.0, 50e-6),
    "memory_efficiency": (0.2, 1.0),
    "preprocess_efficiency": (0.05, 1.0),
    # The online softmax's scores per second as a fraction of the fp32 (CUDA-core) peak in
    # FLOP/s (formulations.attention.FlashRates.softmax_rate); Hopper's and Blackwell's
    # fits land at 0.055-0.092 (14-24 scores per clock per multiprocessor).
    "softmax": (0.01, 1.0),
}
#: Candidate query rows of a prefill attention tile (one CTA's share of the queries): the
#: 128-row tiles of FlashAttention-3 and TensorRT-LLM's Hopper kernels (two 64-row warpgroup
#: MMAs), 64 rows, and the 256 rows (two 128-row softmax warpgroups) of CUTLASS's Blackwell
#: FMHA (examples/77_blackwell_fmha). The fit keeps the one of least fitted loss (the tiles
#: that Dao et al.'s SRAM rule gives, ``formulations.attention.block_sizes``, fitted worse
#: than the best fixed tile on every Hopper and Blackwell table once the softmax has its own
#: term).
PREFILL_QUERY_TILES: tuple[int, ...] = (64, 128, 256)
DECODE_BOUNDS: dict[str, tuple[float, float]] = {
    "memory_efficiency": (0.05, 1.0),
    "matmul_efficiency": (0.01, 1.0),
    "fallback_efficiency": (0.01, 1.0),
    "block_overhead": (0.0, 10e-6),
    "fallback_block_overhead": (0.0, 10e-6),
    # The tables' smallest calls take 5-10 us: the solver starts each kernel's overhead at
    # the middle of its range, 10 us.
    "kernel_overhead": (0.0, 20e-6),
    "fallback_kernel_overhead": (0.0, 20e-6),
    "block_stream_share": (0.05, 1.0),
    # The exponent of the norm by which blocks' fixed work and the stream overlap: from
    # their sum (1) towards their maximum; the fits land at 1.0-2.8.
    "overlap": (1.0, MAX_DECODE_OVERLAP),
    # The grouped kernel's fixed work per query row of 128 head elements
    # (formulations.kernels.DECODE_ROW_HEAD_ELEMENTS); the fits land at 0.07-0.5 us.
    "row_overhead": (0.0, 2e-6),
    # A grouped block's least time per cached token it reads, and its growth per padded
    # query row (formulations.kernels.decode_kernel_time): one sequence of one KV head
    # takes 15-16 ns per token on the H100's fp8 table.
    "token_time": (0.0, 40e-9),
    "row_token_time": (0.0, 4e-9),
    # The QKV preprocessing kernel that runs before the grouped kernel where that kernel
    # cannot rotate the new query and key itself: a launch, like the kernels' overheads.
    "rope_kernel_overhead": (0.0, 10e-6),
    # The per-head kernel's own bound on a block's stream.
    "fallback_stream_share": (0.05, 1.0),
}
#: Candidate query-group sizes up to which the grouped decode kernel runs (TensorRT-LLM's
#: XQA kernels are compiled for groups of up to a power of two), and candidate cache chunks
#: (tokens) of multi-block mode: the fit keeps the pair of least loss. Chunks of 512 and
#: 2048 tokens lost on the fitted rows of every table (a100, h100, h200, b200, gb200; bf16
#: and fp8); Blackwell's tables choose 32 or 64.
DECODE_GROUP_LIMITS: tuple[int, ...] = (8, 16, 32, 64)
DECODE_KV_CHUNKS: tuple[int, ...] = (32, 64, 128)
#: Candidate rules by which the grouped kernel cuts a cache into blocks (formulations.kernels.
#: DECODE_MULTI_BLOCK_RULES): filling one wave, or TensorRT-LLM's XQA rule. The fitted loss
#: chooses XQA's on the A100, H100 and H200 tables and filling on B200 and GB200 (whose
#: TensorRT-LLM runs other decode kernels).
DECODE_MULTI_BLOCK: tuple[str, ...] = ("fill", "xqa")
#: Candidate cache tiles (tokens) of the grouped decode kernel: the fit keeps the one of
#: least loss. TensorRT-LLM's Hopper XQA kernel for an fp8 cache reads 64-token tiles
#: (mha_sm90.cu, gemm0CtaTileNbTokens); the others run kernels whose tiles the package
#: does not say.
DECODE_KV_TILES: tuple[int, ...] = (32, 64, 128)
#: The compute capability whose grouped decode kernel for an fp8 cache rotates the new query
#: and key itself: TensorRT-LLM runs Hopper's warp-specialised XQA kernel (mha_sm90.cu) only
#: on SM 90 and, for heads up to 256 wide, only for an fp8 (E4M3) cache (decoderXQAImplJIT:
#: supportConfigQGMMA); that kernel alone applies RoPE in-kernel (applyRoPEInXqaKernel).
IN_KERNEL_ROPE_SM = 90
MLA_DECODE_BOUNDS: dict[str, tuple[float, float]] = {
    "memory_efficiency": (0.05, 1.0),
    "matmul_efficiency": (0.01, 1.0),
    # A block's fixed work per sequence piece; the Hopper and Blackwell fits land at 2-4 us.
    "split_overhead": (0.0, 10e-6),
    # The tables' smallest calls take 9-15 us (four launches: formulations.kernels.
    # mla_decode_time).
    "kernel_overhead": (0.0, 30e-6),
    # The share of the cache the second and later query tiles of a span read from HBM
    # again (the rest from L2).
    "tile_reread": (0.0, 1.0),
    # fmha_v2's least time per page step of a CTA alone on its multiprocessor (the A100
    # table: 7.3 us per 64 tokens for one sequence of 1 to 64 heads).
    "step_time": (0.0, 20e-6),
}
#: The latent cache row of the measured MLA tables: DeepSeek-V3's kv_lora_rank and
#: qk_rope_head_dim (its config.json; the database collector's scenario, ai-dynamo/
#: aiconfigurator collector/trtllm/collect_mla*.py, runs them).
MLA_KV_LORA = 512
MLA_ROPE = 64
MOE_BOUNDS: dict[str, tuple[float, float]] = {
    "matmul_efficiency": (0.05, 1.0),
    "memory_efficiency": (0.05, 1.0),
    "permute_efficiency": (0.01, 1.0),
    "overhead": (0.0, 500e-6),
}
#: Rows of the tile a grouped GEMM pads each expert's rows to (the 64-row tiles of the
#: Hopper grouped-GEMM kernels; a smaller tile would leave the MMA's 64-row warpgroup
#: instructions partly idle).
MOE_TILE_ROWS = 64
COLLECTIVE_BOUNDS: dict[str, tuple[float, float]] = {
    "latency": (1e-8, 1e-3),
    "bandwidth": (1e8, 5e12),
}


@dataclass(frozen=True)
class Machine:
    """The datasheet values of the hardware entry the fit keeps fixed."""

    name: str
    peaks: tuple[tuple[str, float], ...]  # (precision, FLOP/s); a tuple: hashable
    hbm_bandwidth: float
    multiprocessors: int
    shared_memory: float
    l2_cache: float = 0.0

    def peak(self, precision: str) -> float | None:
        return dict(self.peaks).get(PEAK_KEY.get(precision, precision))


@dataclass(frozen=True)
class Judged:
    """Held-out errors of one subset of one table."""

    kind: str
    precision: str
    subset: str
    errors: np.ndarray  # predicted / measured - 1

    def row(self) -> dict[str, Any]:
        e = np.abs(self.errors)
        return {"kind": self.kind, "precision": self.precision, "subset": self.subset,
                "rows": int(e.size), "median_pct": float(np.median(e) * 100),
                "p90_pct": float(np.quantile(e, 0.9) * 100), "max_pct": float(e.max() * 100)}


@dataclass
class KindFit:
    kind: str
    precision: str
    params: dict[str, Any]
    source: str
    fit_rows: int
    judged: list[Judged] = field(default_factory=list)
    #: The fit's loss on its own rows (least squares: the robust cost), to choose among
    #: candidate discrete settings.
    loss: float = 0.0


@dataclass
class DatabaseFit:
    database: Database
    machine: Machine
    fits: list[KindFit]
    skipped: list[str]  # tables the machine cannot model (no peak for the precision...)

    def summary(self) -> list[dict[str, Any]]:
        """Held-out errors per fitted table and subset, then each collective family's rows
        pooled over tables and rank counts (what the acceptance figures judge)."""
        rows = [j.row() for f in self.fits for j in f.judged if j.errors.size]
        pooled: dict[tuple[str, str], list[np.ndarray]] = {}
        for f in self.fits:
            family = f.kind.split(" ", 1)[0]
            if family in ("nccl", "custom"):
                for j in f.judged:
                    pooled.setdefault((family, j.subset), []).append(j.errors)
        for (family, subset), errors in pooled.items():
            joined = np.concatenate(errors)
            if joined.size:
                rows.append(Judged(f"{family} (all)", "pooled", subset, joined).row())
        return rows

    def of(self, kind: str, precision: str) -> KindFit | None:
        return next((f for f in self.fits if f.kind == kind and f.precision == precision),
                    None)


def split(rows: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fitted 70 % and the held-out 30 % of a table of ``rows`` rows."""
    order = np.random.default_rng(seed).permutation(rows)
    cut = rows - round(HELD_OUT * rows)
    return np.sort(order[:cut]), np.sort(order[cut:])


def _sample(index: np.ndarray, seed: int = SEED) -> np.ndarray:
    if index.size <= MAX_FIT_ROWS:
        return index
    return np.sort(np.random.default_rng(seed + 1).choice(index, MAX_FIT_ROWS, replace=False))


def _log_objective(err: np.ndarray) -> float:
    # The median is what a model of many shapes is judged by; the tail term keeps most rows
    # close without letting a few odd kernel choices set the parameters.
    return float(np.median(err) + 0.5 * np.quantile(err, 0.9))


# -- GEMMs -----------------------------------------------------------------------------------

@functools.cache
def _gemm_function(quantised: bool, amax_pass: bool, tiles: tuple[tuple[int, int], ...],
                   splits: tuple[int, ...], stream_k: bool,
                   kblock: bool = False, overlap: bool = False,
                   quantise_rate: bool = False,
                   gemm_family: GemmKernels = LIBRARY_KERNELS,
                   wave_overlapped: bool = False, l2: bool = False) -> Callable[..., Any]:
    import sympy as sp
    from perfcost.formulations import kernels

    m, n, k, e, e_act = sp.symbols("m n k e e_act", positive=True)
    peak, eta, boost, window, bw, eta_mem, sms, k_oh, w_oh = sp.symbols(
        "peak eta boost window bw eta_mem sms k_oh w_oh", positive=True)
    before, repeats = sp.symbols("busy_before busy_repeats", nonnegative=True)
    # Without ``kblock``, ``quantise_rate`` or ``overlap`` their parameter is absent from the
    # expression (the argument unused): the formulation's own default holds.
    step = sp.Symbol("kblock_time", positive=True)
    eta_quant = sp.Symbol("eta_quant", positive=True)
    ov = sp.Symbol("overlap", positive=True)
    padded = sp.Symbol("padded_row_time", positive=True)
    padded_shared = sp.Symbol("padded_row_shared_time", positive=True)
    gain = sp.Symbol("multicast_gain", nonnegative=True)
    l2_capacity, l2_gain = sp.symbols("l2_capacity l2_gain", positive=True)
    # Only DeepGEMM's Hopper kernels pay for padded rows and gain from multicast.
    deepgemm_rows = gemm_family == DEEPGEMM_SM90_KERNELS
    rates = kernels.GemmRates(peak, eta, boost, window, bw, eta_mem, sms, k_oh, w_oh,
                              sp.Integer(ROW_GRANULE), sp.Integer(SPLIT_K_GRANULE),
                              before, repeats, step if kblock else sp.S.Zero,
                              eta_quant if quantise_rate else None, ov if overlap else None,
                              padded if deepgemm_rows else sp.S.Zero,
                              padded_shared if deepgemm_rows else sp.S.Zero,
                              gain if deepgemm_rows else sp.S.Zero,
                              wave_overlapped=wave_overlapped,
                              l2_capacity=l2_capacity if l2 else sp.S.Zero,
                              l2_gain=l2_gain if l2 else sp.S.One)
    expr = kernels.quantised_gemm_time(m, n, k, e, e_act, rates, tiles, splits, quantised,
                                       amax_pass, stream_k, gemm_family)
    return sp.lambdify((m, n, k, e, e_act, peak, eta, boost, window, bw, eta_mem, sms, k_oh,
                        w_oh, before, repeats, step, eta_quant, ov, padded, padded_shared,
                        gain, l2_capacity, l2_gain),
                       expr, "numpy",
                       # DeepGEMM's picked tile recurs throughout its expression.
                       cse=gemm_family != LIBRARY_KERNELS)


#: How aiconfigurator-core's collector times a GEMM (ai-dynamo/aiconfigurator,
#: collector/helper.py ``benchmark_with_power`` and collector/trtllm/collect_gemm.py): 3
#: eager warm-up calls, 3 warm-up replays of a CUDA graph, then 6 timed replays, back to
#: back; each call runs the GEMM on as many weight copies as fill the L2 cache (1 to
#: :data:`COLLECTOR_MAX_COPIES`). Half-way through the timed replays the GPU has run the
#: GEMM 3 + 3 + 6 / 2 = 9 times per copy: the database's clock context.
COLLECTOR_BUSY_RUNS = 3 + 3 + 6 / 2
COLLECTOR_MAX_COPIES = 5


@dataclass(frozen=True)
class ClockContext:
    """How long the GPU has been busy when a GEMM runs (formulations.kernels.GemmRates):
    ``before`` seconds of other back-to-back work, plus ``repeats`` times the GEMM's own
    duration (``None``: the database collector's repeats, :func:`collector_repeats`)."""

    before: float = 0.0
    repeats: float | None = None


#: The database's own context: its collector's repeats, nothing before.
DATABASE_CONTEXT = ClockContext()
#: A GPU kept busy indefinitely (a training step of seconds, a long measurement loop): the
#: sustained clock.
STEADY_CONTEXT = ClockContext(before=float("inf"), repeats=0.0)


def collector_repeats(table: Table, index: np.ndarray, machine: Machine) -> np.ndarray:
    """The database collector's busy time per GEMM in multiples of the GEMM's duration:
    :data:`COLLECTOR_BUSY_RUNS` runs of each of its weight copies (as many copies as the
    L2 cache holds, 1 to :data:`COLLECTOR_MAX_COPIES`; one where the entry has no L2 size)."""
    c = table.columns
    weights = c["n"][index].astype(float) * c["k"][index] * OPERAND_BYTES[table.precision]
    copies = np.ones(index.size)
    if machine.l2_cache > 0:
        copies = np.clip(np.ceil(machine.l2_cache / weights), 1, COLLECTOR_MAX_COPIES)
    return COLLECTOR_BUSY_RUNS * copies


def predict_gemm(table: Table, index: np.ndarray, machine: Machine,
                 params: dict[str, Any],
                 context: ClockContext = DATABASE_CONTEXT) -> np.ndarray:
    """GEMM times of the rows ``index`` in the clock ``context`` (by default the database's
    own)."""
    c = table.columns
    tiles = tuple((int(a), int(b)) for a, b in params["tiles"])
    kblock_time = float(params.get("kblock_time", 0.0))
    fn = _gemm_function(table.precision != "bf16", bool(params["amax_pass"]), tiles,
                        split_counts(table.precision), bool(params.get("stream_k", False)),
                        kblock_time > 0, "overlap" in params, "quantise_efficiency" in params,
                        params.get("kernels", LIBRARY_KERNELS),
                        bool(params.get("wave_overlapped", False)), "l2_gain" in params)
    peak = machine.peak(table.precision)
    repeats = (collector_repeats(table, index, machine) if context.repeats is None
               else context.repeats)
    return np.asarray(fn(c["m"][index].astype(float), c["n"][index].astype(float),
                         c["k"][index].astype(float), OPERAND_BYTES[table.precision],
                         ACTIVATION_BYTES, peak, params["matmul_efficiency"],
                         params["boost"], params["power_window"], machine.hbm_bandwidth,
                         params["memory_efficiency"], machine.multiprocessors,
                         params["kernel_overhead"], params["wave_overhead"],
                         context.before, repeats, kblock_time,
                         params.get("quantise_efficiency", 1.0), params.get("overlap", 1.0),
                         params.get("padded_row_time", 0.0),
                         params.get("padded_row_shared_time", 0.0),
                         params.get("multicast_gain", 0.0),
                         machine.l2_cache,
                         params.get("l2_gain", 1.0)),
                      dtype=float) * np.ones(index.size)


def large_gemm_efficiency(precision: str, machine: Machine, params: dict[str, Any],
                          context: ClockContext = DATABASE_CONTEXT) -> float:
    """The fitted model's achieved fraction of the peak on :data:`REFERENCE_GEMM`, the cast of
    a low-precision GEMM's activations included: the "large-GEMM efficiency" of the
    precision that a hardware entry's ``matmul`` states (the maximum achievable matmul rate
    of a large square GEMM, as a MAMF measurement times it)."""
    m, n, k = REFERENCE_GEMM
    table = Table("gemm", precision, {"m": np.array([m]), "n": np.array([n]),
                                      "k": np.array([k])}, np.ones(1), "")
    seconds = float(predict_gemm(table, np.arange(1), machine, params, context)[0])
    return FLOPS_PER_MAC * m * n * k / seconds / float(machine.peak(precision) or 1.0)


def gemm_flops(table: Table) -> np.ndarray:
    c = table.columns
    return 2.0 * c["m"].astype(float) * c["n"] * c["k"]


def fit_gemm(table: Table, machine: Machine,
             tiles: tuple[tuple[int, int], ...] = TILE_CANDIDATES,
             generations: int = GEMM_GENERATIONS, sm_version: int | None = None) -> KindFit:
    """The GEMM model of :func:`formulations.kernels.quantised_gemm_time` (the fastest of
    ``tiles`` x :data:`SPLIT_COUNTS` configurations per shape, with or without stream-K
    kernels, then on that choice with the cost per wave after or beside the HBM traffic
    (:func:`formulations.kernels.kernel_time`), for a quantised precision both choices
    with and without the L2 hand-off of its quantisation chain: each the one of least
    fitted loss), its rates fitted by differential evolution on the median plus half the
    90th percentile of the log errors. ``sm_version``, the GPU's compute capability, says
    which kernels the framework runs (:func:`takes_amax_pass`, :func:`has_kblock_step`)."""
    from scipy.optimize import differential_evolution

    fit_idx, test_idx = split(len(table))
    big = gemm_flops(table) >= FIT_MIN_FLOPS
    rows = _sample(fit_idx[big[fit_idx]])
    if rows.size == 0:
        raise CaseError(f"{table.source}", len(table),
                        f"expected GEMMs of at least {FIT_MIN_FLOPS:.0e} FLOPs")
    bounds = dict(GEMM_BOUNDS)
    family = gemm_kernels(table.precision, sm_version)
    if family != LIBRARY_KERNELS:
        from perfcost.formulations.kernels import DEEPGEMM_FAMILY_TILES

        # DeepGEMM's heuristics pick one of their tiles (formulations.kernels.
        # deepgemm_sm90_time, deepgemm_sm100_time); the candidates are what the entry states.
        tiles = DEEPGEMM_FAMILY_TILES[family]
    if family == DEEPGEMM_SM90_KERNELS:
        bounds["padded_row_time"] = PADDED_ROW_BOUNDS
        bounds["padded_row_shared_time"] = PADDED_ROW_SHARED_BOUNDS
        bounds["multicast_gain"] = MULTICAST_GAIN_BOUNDS
    if has_kblock_step(table.precision, sm_version):
        bounds["kblock_time"] = KBLOCK_BOUNDS
    if table.precision != "bf16":
        # The activations' quantisation kernels stream at a rate of their own.
        bounds["quantise_efficiency"] = GEMM_BOUNDS["memory_efficiency"]

    def fitted(base: dict[str, Any], extra: dict[str, tuple[float, float]] | None = None,
               ) -> tuple[float, dict[str, Any]]:
        searched = {**bounds, **(extra or {})}
        names = list(searched)

        def objective(x: np.ndarray) -> float:
            params = {**base, **dict(zip(names, x, strict=True))}
            pred = predict_gemm(table, rows, machine, params)
            return _log_objective(np.abs(np.log(pred / table.seconds[rows])))

        result = differential_evolution(objective, list(searched.values()), seed=SEED,
                                        maxiter=generations, tol=1e-6, polish=False)
        return (float(result.fun),
                {**base, **dict(zip(names, (float(v) for v in result.x), strict=True))})

    # The library's kernel families, each chosen by the fitted loss: with and without
    # stream-K kernels among the configurations (never for a precision whose kernels do not
    # split k), then on that choice the cost per wave beside the HBM traffic instead of
    # after it (formulations.kernels.kernel_time). One after the other, not every pair: in
    # the tables' fits of both forms the stream-K choice never differed where the second
    # family won, and the pairs would cost a fourth fit.
    base = {"tiles": tiles, "amax_pass": takes_amax_pass(table.precision, sm_version),
            "kernels": family, "wave_overlapped": False}

    def chosen(extra: dict[str, tuple[float, float]] | None) -> tuple[float, dict[str, Any]]:
        best = min((fitted({**base, "stream_k": stream_k}, extra)
                    for stream_k in ((False,) if table.precision in NO_SPLIT_K
                                     else (False, True))), key=lambda c: c[0])
        overlapped = fitted({**base, "stream_k": best[1]["stream_k"],
                             "wave_overlapped": True}, extra)
        return overlapped if overlapped[0] < best[0] else best

    best = chosen(None)
    if table.precision != "bf16" and machine.l2_cache > 0:
        # The same choices again with the quantisation chain's tensors handed on through
        # the L2 where they fit (formulations.kernels.quantised_gemm_time). That form
        # holds the one without (a gain of 1), but a search in one more dimension need not
        # find as good a point, and the stream-K choice can change with it (the H100's
        # per-tensor fp8 takes stream-K with it, not without); the lower loss decides.
        cached = chosen({"l2_gain": L2_GAIN_BOUNDS})
        if cached[0] < best[0]:
            best = cached
    params = best[1]
    fit = KindFit("gemm", table.precision, params, table.source, int(rows.size),
                  loss=best[0])
    errors = predict_gemm(table, test_idx, machine, params) / table.seconds[test_idx] - 1
    held_big = big[test_idx]
    fit.judged.append(Judged("gemm", table.precision, ">= 1 GFLOP", errors[held_big]))
    fit.judged.append(Judged("gemm", table.precision, "< 1 GFLOP", errors[~held_big]))
    return fit


# -- attention -------------------------------------------------------------------------------

@functools.cache
def _context_function(machine: Machine, head_dim: int, element_bytes: float,
                      preprocess: bool = True, query_tile: int | None = None,
                      softmax: bool = False) -> Callable[..., Any]:
    """The lambdified prefill model; ``query_tile`` None: the SRAM rule's blocks;
    ``softmax``: the softmax's own term (its rate the last argument)."""
    import sympy as sp
    from perfcost.formulations import attention, kernels

    blocks = attention.block_sizes(machine.shared_memory, head_dim, head_dim, element_bytes)
    if query_tile is not None:
        blocks = attention.Blocks(q=query_tile, kv=blocks.kv)
    b, h, kvh, s, peak = sp.symbols("b h kvh s peak", positive=True)
    fwd, tile, k_oh, eta_mem, scores = sp.symbols("fwd tile k_oh eta_mem scores",
                                                  positive=True)
    shape = attention.AttentionShape(b, h, kvh, s, s, sp.Integer(head_dim),
                                     sp.Integer(head_dim), sp.Float(element_bytes), True)
    rates = attention.FlashRates(peak, fwd, fwd, sp.Float(machine.hbm_bandwidth), eta_mem,
                                 sp.Integer(machine.multiprocessors), tile, tile, k_oh,
                                 sp.Float(machine.l2_cache), wave_quantised=True,
                                 softmax_rate=scores if softmax else None)
    pre = sp.Symbol("eta_pre", positive=True)
    expr = (kernels.prefill_attention_time(shape, blocks, rates, pre) if preprocess
            else attention.flash_forward_time(shape, blocks, rates))
    return sp.lambdify((b, h, kvh, s, peak, fwd, tile, k_oh, eta_mem, pre, scores), expr,
                       "numpy")


def predict_context(table: Table, index: np.ndarray, machine: Machine,
                    params: dict[str, Any], preprocess: bool = True) -> np.ndarray:
    """Prefill attention times; ``preprocess=False``: the attention kernel alone. Without
    ``query_tile`` and ``softmax`` in ``params``: the SRAM rule's tiles and no softmax term."""
    c = table.columns
    out = np.empty(index.size)
    dims = c["d"][index]
    softmax = params.get("softmax")
    scores_per_second = 1.0 if softmax is None else softmax * (machine.peak("fp32") or 0.0)
    for d in np.unique(dims):
        sel = dims == d
        rows = index[sel]
        fn = _context_function(machine, int(d), OPERAND_BYTES[table.precision], preprocess,
                               params.get("query_tile"), softmax is not None)
        out[sel] = np.asarray(fn(c["b"][rows].astype(float), c["heads"][rows].astype(float),
                                 c["kv_heads"][rows].astype(float), c["s"][rows].astype(float),
                                 machine.peak(table.precision), params["forward"],
                                 params["forward_tile_overhead"], params["kernel_overhead"],
                                 params["memory_efficiency"], params["preprocess_efficiency"],
                                 scores_per_second),
                              dtype=float)
    return out


@functools.cache
def _decode_function(multi_block: str, kv_tile: int | None,
                     fixed_rows: str) -> Callable[..., Any]:
    import sympy as sp
    from perfcost.formulations import kernels

    names = ("b kv_len h kvh d e_kv e_act bw eta_mem vec eta_mm eta_fallback sms block_oh "
             "fallback_oh k_oh group_limit kv_chunk fallback_k_oh stream_share overlap mm")
    symbols = sp.symbols(names, positive=True)
    row, token, row_token = sp.symbols("row_oh token_time row_token_time", nonnegative=True)
    shared, tensors, fallback_share, rotary = sp.symbols(
        "shared_memory grouped_tensors fallback_share rotary_dim", positive=True)
    rope = sp.Symbol("rope_kernel_overhead", nonnegative=True)
    return sp.lambdify((*symbols, row, shared, tensors, token, row_token, fallback_share,
                        rotary, rope),
                       kernels.decode_kernel_time(
        *symbols, multi_block=multi_block, row_overhead=row, shared_memory=shared,
        grouped_cache_tensors=tensors, token_time=token, row_token_time=row_token,
        kv_tile=kv_tile, fallback_stream_share=fallback_share, rotary_dim=rotary,
        rope_kernel_overhead=rope, fixed_rows_of=fixed_rows), "numpy")


#: The first TensorRT-LLM version whose generation-attention tables the database collector
#: measured on a cache pool of K and V. Before it (aiconfigurator's collector up to its
#: 1.3.0rc20 upgrade, ai-dynamo/aiconfigurator PR 1356, 2026-08-03) collect_attn.py built
#: the pool as ``CacheType.SELFKONLY``, a K-only pool meant for MLA; the collector now notes
#: that GQA/MHA "must benchmark the full serving layout".
FULL_CACHE_POOL_SINCE = "1.3.0rc20"


#: The rotary span of every decode-attention measurement in the tables: the collector builds
#: its attention layer with ``RopeParams(dim=128)`` whatever the head size
#: (ai-dynamo/aiconfigurator, collector/trtllm/collect_attn.py), so a 64-wide head's rotary
#: span is wider than the head and Hopper's grouped kernel leaves RoPE to a kernel of its own
#: (formulations.kernels.decode_kernel_time).
COLLECTOR_ROTARY_DIM = 128


def grouped_cache_tensors(table: Table) -> float:
    """Cache tensors per token and KV head the grouped decode kernel streams from HBM in the
    measurement of ``table`` (formulations.kernels.decode_kernel_time): 2 (K and V), but 1
    for a TensorRT-LLM table older than :data:`FULL_CACHE_POOL_SINCE`. On such a K-only
    pool the grouped kernel's V reads land on K's lines: the A100 table (TensorRT-LLM
    1.0.0) has 64 sequences x 8 KV heads x 4096 cached bf16 tokens take 342 us with groups
    of 8 -- 3.1 TB/s counting K and V, 1.54 times the A100's HBM peak -- and 686 us in the
    per-head kernel (1.56 TB/s, 77 % of it), where the H100's and H200's tables (K and V
    pools) run both kernels within 5 % of each other at about 90 % of their peaks."""
    from perfcost.formulations.kernels import KV_TENSORS

    framework, version = table.framework_version
    if framework == "trtllm" and version_key(version) < version_key(FULL_CACHE_POOL_SINCE):
        return 1.0
    return float(KV_TENSORS)


def predict_decode(table: Table, index: np.ndarray, machine: Machine,
                   params: dict[str, Any]) -> np.ndarray:
    """Decode-attention times of the rows ``index``: TensorRT-LLM's two decode kernels
    (formulations.kernels.decode_kernel_time) on the machine's shared memory, in the
    cache layout the table was measured on (:func:`grouped_cache_tensors`)."""
    c = table.columns
    return np.asarray(_decode_function(params["multi_block"], params["kv_tile"],
                                       params["fixed_rows"])(
        c["b"][index].astype(float), c["kv_len"][index].astype(float),
        c["heads"][index].astype(float), c["kv_heads"][index].astype(float),
        c["d"][index].astype(float), OPERAND_BYTES[table.precision], ACTIVATION_BYTES,
        machine.hbm_bandwidth, params["memory_efficiency"], machine.peak("fp32"),
        params["matmul_efficiency"], params["fallback_efficiency"], machine.multiprocessors,
        params["block_overhead"], params["fallback_block_overhead"],
        params["kernel_overhead"], params["group_limit"], params["kv_chunk"],
        params["fallback_kernel_overhead"], params["block_stream_share"], params["overlap"],
        machine.peak("bf16"), params["row_overhead"], machine.shared_memory,
        grouped_cache_tensors(table), params["token_time"], params["row_token_time"],
        params["fallback_stream_share"], COLLECTOR_ROTARY_DIM,
        params["rope_kernel_overhead"]), dtype=float) * np.ones(index.size)


def _least_squares_fit(table: Table, machine: Machine, bounds: dict[str, tuple[float, float]],
                       predict: Callable[..., np.ndarray], kind: str,
                       fixed: dict[str, Any] | None = None,
                       starts: tuple[float, ...] = (0.5,)) -> KindFit:
    from scipy.optimize import least_squares

    fit_idx, test_idx = split(len(table))
    rows = _sample(fit_idx)
    fixed = fixed or {}
    # A parameter given in ``fixed`` is held there, not fitted (a term that does not apply).
    bounds = {k: v for k, v in bounds.items() if k not in fixed}
    names = list(bounds)
    # Parameters of very different magnitudes (seconds, fractions): solve in units of the
    # upper bound so the solver's steps are comparable.
    scale = np.array([hi for _, hi in bounds.values()])

    def residuals(x: np.ndarray) -> np.ndarray:
        params = {**fixed, **dict(zip(names, x * scale, strict=True))}
        return np.log(predict(table, rows, machine, params) / table.seconds[rows])

    lo = np.array([a for a, _ in bounds.values()]) / scale
    hi = np.ones(len(names))
    # Started at each fraction ``starts`` of the parameters' ranges; the least cost wins.
    # (Weighted so that the middle is bit for bit (lo + hi) / 2: the decode fits follow
    # their start into different optima on a last-bit change.)
    result = min((least_squares(residuals, (1 - start) * lo + start * hi, bounds=(lo, hi),
                                loss="soft_l1", f_scale=0.1) for start in starts),
                 key=lambda r: float(r.cost))
    params = {**fixed, **dict(zip(names, (float(v) for v in result.x * scale), strict=True))}
    fit = KindFit(kind, table.precision, params, table.source, int(rows.size),
                  loss=float(result.cost))
    errors = predict(table, test_idx, machine, params) / table.seconds[test_idx] - 1
    fit.judged.append(Judged(kind, table.precision, "all", errors))
    return fit


@functools.cache
def _mla_decode_function(tiling: str) -> Callable[..., Any]:
    import sympy as sp
    from perfcost.formulations import kernels

    names = "b kv_len h kv_lora rope e_kv e_act bw eta_mem mm eta_mm sms split_oh k_oh"
    symbols = sp.symbols(names, positive=True)
    reread = sp.Symbol("tile_reread", nonnegative=True)
    step = sp.Symbol("step_time", nonnegative=True)
    return sp.lambdify((*symbols, reread, step), kernels.mla_decode_time(
        *symbols, tiling=tiling, tile_reread=reread, step_time=step), "numpy")


#: The compute capabilities on which TensorRT-LLM runs its trtllm-gen MLA generation kernels
#: (formulations.kernels.MLA_TILINGS "trtllm-gen"): Blackwell's SM 100 and 103 (its FMHA
#: runner, TllmGenFmhaRunner, is built for them; Hopper runs FlashMLA's copy).
TRTLLM_GEN_SMS = (100, 103)
#: The compute capabilities on which it runs fmha_v2's tiled kernel instead ("fmha-v2"):
#: Ampere's SM 80 and Ada's SM 89 (cpp/tensorrt_llm/kernels/contextFusedMultiHeadAttention/
#: fmhaRunner.cpp: the tiled kernels of DeepSeek's 576 / 512 heads for SM 80, 89 and 90;
#: attentionOp.cpp runs FlashMLA on SM 90 alone).
FMHA_V2_MLA_SMS = (80, 89)
#: The compute capabilities on which TensorRT-LLM runs MLA generation on an fp8 latent
#: cache (attentionOp.cpp's check "FP8 Generation MLA is supported on Ada, Hopper or
#: Blackwell architecture."). On the others an "fp8" table ran a bf16 cache (the database
#: collector, collector/trtllm/collect_mla.py, sets no KV-cache quantisation; the A100's
#: bf16 and fp8 rows agree within their noise): it is not fitted as fp8.
FP8_GENERATION_MLA_SMS = (89, 90, 100, 103, 120)
#: Where the fmha_v2 fit starts (fractions of each parameter's range): a floor under each
#: step leaves the solver no gradient where it does not bind, and started at the middle
#: alone the A100 fit ends with no floor (held out 10.7 % against 3.3 %).
FMHA_V2_STARTS = (0.25, 0.5, 0.75)


#: The MLA decode parameters each tiling holds at zero instead of fitting: only fmha_v2's
#: CTAs walk a whole cache alone, with a least time per step; FlashMLA's later query tiles
#: read a span's pages from L2 (:func:`fit_mla_decode`).
MLA_HELD: dict[str, dict[str, float]] = {
    "flashmla": {"tile_reread": 0.0, "step_time": 0.0},
    "trtllm-gen": {"step_time": 0.0},
    "fmha-v2": {},
}


def mla_tiling(sm_version: int | None) -> str:
    """The MLA decode kernel's query tiling on a GPU of compute capability ``sm_version``."""
    if sm_version in TRTLLM_GEN_SMS:
        return "trtllm-gen"
    return "fmha-v2" if sm_version in FMHA_V2_MLA_SMS else "flashmla"


def mla_matmul_peak(precision: str, machine: Machine) -> float:
    """The tensor-core peak of an MLA decode kernel on a cache of ``precision``: the cache's
    own (TensorRT-LLM's FlashMLA runs an fp8 cache's dot products in fp8,
    cpp/tensorrt_llm/kernels/flashMLA/flash_fwd_mla_fp8_sm90.cu), the bf16 one on a GPU
    without that precision (the cache converted on load)."""
    return float(machine.peak(precision) or machine.peak("bf16") or 0.0)


def predict_mla_decode(table: Table, index: np.ndarray, machine: Machine,
                       params: dict[str, Any]) -> np.ndarray:
    c = table.columns
    return np.asarray(_mla_decode_function(params["tiling"])(
        c["b"][index].astype(float), c["kv_len"][index].astype(float),
        c["heads"][index].astype(float), MLA_KV_LORA, MLA_ROPE,
        OPERAND_BYTES[table.precision], ACTIVATION_BYTES, machine.hbm_bandwidth,
        params["memory_efficiency"], mla_matmul_peak(table.precision, machine),
        params["matmul_efficiency"], machine.multiprocessors, params["split_overhead"],
        params["kernel_overhead"], params["tile_reread"], params.get("step_time", 0.0)),
        dtype=float) * np.ones(index.size)


def fit_mla_decode(table: Table, machine: Machine, tiling: str = "flashmla") -> KindFit:
    """The MLA decode model (formulations.kernels.mla_decode_time) with the kernel's query
    ``tiling``, judged held out. The later query tiles' re-read of the cache is fitted for
    trtllm-gen's tiles only: FlashMLA's tiles of one span share its pages through L2, and
    its Hopper fits' tensor-core rate (0.64-0.66 of the bf16 peak) matches the 660 TFLOP/s
    its README states on an H800, where a fitted re-read would put that rate at its bound."""
    return _least_squares_fit(table, machine, MLA_DECODE_BOUNDS, predict_mla_decode,
                              "generation mla", {"tiling": tiling, **MLA_HELD[tiling]},
                              FMHA_V2_STARTS if tiling == "fmha-v2" else (0.5,))


@functools.cache
def _moe_function() -> Callable[..., Any]:
    import sympy as sp
    from perfcost.formulations import kernels

    names = ("tokens hidden inter topk experts tp ep matrices e_w e_act rows peak eta bw "
             "eta_mem eta_perm overhead")
    symbols = sp.symbols(names, positive=True)
    return sp.lambdify(symbols, kernels.moe_layer_time(*symbols), "numpy")


def predict_moe(table: Table, index: np.ndarray, machine: Machine,
                params: dict[str, Any]) -> np.ndarray:
    c = table.columns
    cols = [c[name][index].astype(float) for name in
            ("tokens", "hidden", "inter", "topk", "experts", "tp", "ep", "matrices")]
    return np.asarray(_moe_function()(
        *cols, OPERAND_BYTES[table.precision], ACTIVATION_BYTES, MOE_TILE_ROWS,
        machine.peak(table.precision), params["matmul_efficiency"], machine.hbm_bandwidth,
        params["memory_efficiency"], params["permute_efficiency"], params["overhead"]),
        dtype=float) * np.ones(index.size)


def fit_moe(table: Table, machine: Machine) -> KindFit:
    return _least_squares_fit(table, machine, MOE_BOUNDS, predict_moe, "moe")


def fit_context(table: Table, machine: Machine,
                query_tiles: tuple[int, ...] = PREFILL_QUERY_TILES) -> KindFit:
    """The prefill model (formulations.kernels.prefill_attention_time, the softmax with its
    own rate) for every candidate query tile; the one of least fitted loss wins (judged held
    out)."""
    fits = [_least_squares_fit(table, machine, CONTEXT_BOUNDS, predict_context,
                               "context attention", {"query_tile": tile})
            for tile in query_tiles]
    return min(fits, key=lambda fit: fit.loss)


def rotates_in_kernel(sm_version: int | None, precision: str) -> bool:
    """Whether the grouped decode kernel that measured a table of this cache ``precision``
    on a GPU of compute capability ``sm_version`` applies RoPE itself (see
    :data:`IN_KERNEL_ROPE_SM`)."""
    return sm_version == IN_KERNEL_ROPE_SM and precision == "fp8"


def fit_decode(table: Table, machine: Machine,
               multi_block: tuple[str, ...] = DECODE_MULTI_BLOCK,
               group_limits: tuple[int, ...] = DECODE_GROUP_LIMITS,
               kv_chunks: tuple[int, ...] = DECODE_KV_CHUNKS,
               kv_tiles: tuple[int, ...] = DECODE_KV_TILES,
               fixed_rows: tuple[str, ...] | None = None,
               in_kernel_rope: bool = False) -> KindFit:
    """The decode kernel model (formulations.kernels.decode_kernel_time) for every candidate
    multi-block rule, group limit, cache chunk, cache tile and rows of the fixed work; the
    one of least fitted loss wins (judged held out). Where the grouped kernel applies RoPE
    itself (``in_kernel_rope``), the collector's rotary span wider than a head costs the
    preprocessing kernel's launch (``rope_kernel_overhead``, fitted); elsewhere that
    kernel always runs and its launch is part of ``kernel_overhead``. The candidate rows of
    the fixed work are the formulation's (formulations.kernels.DECODE_FIXED_ROWS: the padded
    tile's or the group's own) unless ``fixed_rows`` names some."""
    from perfcost.formulations import kernels

    fixed_rows = kernels.DECODE_FIXED_ROWS if fixed_rows is None else fixed_rows
    rope = {} if in_kernel_rope else {"rope_kernel_overhead": 0.0}
    fits = (_least_squares_fit(table, machine, DECODE_BOUNDS, predict_decode,
                               "generation attention",
                               {"group_limit": limit, "kv_chunk": chunk, "multi_block": rule,
                                "kv_tile": tile, "fixed_rows": rows, **rope})
            for rule, limit, chunk, tile, rows in itertools.product(
                multi_block, group_limits, kv_chunks, kv_tiles, fixed_rows))
    return min(fits, key=lambda fit: fit.loss)


# -- collectives -----------------------------------------------------------------------------

def collective_op(kind: str) -> str:
    """The formulations' name of a collective table's operation (``nccl all_reduce`` ->
    ``all_reduce``)."""
    op = kind.split(" ", 1)[1]
    return COLLECTIVE_OPS.get(op, op)


@functools.cache
def _collective_function(op: str, algorithm: str) -> Callable[..., Any]:
    import sympy as sp
    from perfcost.formulations import kernels

    size, n, latency, bandwidth = sp.symbols("size n latency bandwidth", positive=True)
    return sp.lambdify((size, n, latency, bandwidth),
                       kernels.collective_time(op, algorithm, size, n, latency, bandwidth),
                       "numpy")


def _collective_algorithm(table: Table) -> str:
    return COLLECTIVE_ALGORITHMS[table.kind.split(" ", 1)[1]]


def _size_ranges(params: dict[str, Any]) -> tuple[Any, ...]:
    from perfcost.solver.studies.collective_ranges import SizeRange

    return tuple(SizeRange(r["min_bytes"], r["max_bytes"], r["latency"], r["bandwidth"],
                           r["fit_rows"]) for r in params["ranges"])


def predict_collective(table: Table, index: np.ndarray, machine: Machine,
                       params: dict[str, Any]) -> np.ndarray:
    """Seconds of the rows ``index`` (of one rank count): by the size ranges of
    :mod:`perfcost.solver.studies.collective_ranges` (a size between two ranges
    interpolated between them) when ``params`` has them, else by one ``latency`` and
    ``bandwidth``."""
    op, algorithm = collective_op(table.kind), _collective_algorithm(table)
    sizes = table.columns["bytes"][index].astype(float)
    ranks = table.columns["ranks"][index].astype(float)
    if "ranges" in params:
        from perfcost.solver.studies import collective_ranges

        if np.unique(ranks).size > 1:
            raise ValueError("size ranges are fitted per rank count")
        return collective_ranges.predict(_size_ranges(params),
                                         collective_ranges.root_terms(op, algorithm), sizes,
                                         float(ranks[0]) if ranks.size else 2.0)
    fn = _collective_function(op, algorithm)
    return np.asarray(fn(sizes, ranks, params["latency"], params["bandwidth"]),
                      dtype=float) * np.ones(index.size)


def fit_collective(table: Table, machine: Machine) -> list[KindFit]:
    """Per rank count, the size ranges of :func:`collective_ranges.choose_ranges` (their
    number and breakpoints chosen on the fitted 70 % alone), each with the pipelined
    alpha-beta form's latency and bandwidth; judged on large and small messages apart.

    A range's ``min_bytes``..``max_bytes`` are its fitted sizes, the first range's reaching
    down to the table's smallest size and the last one's up to its largest, where it is
    held to the saturation floor (:func:`collective_ranges.saturation_floor`)."""
    from perfcost.solver.studies import collective_ranges

    out = []
    op, algorithm = collective_op(table.kind), _collective_algorithm(table)
    terms = collective_ranges.root_terms(op, algorithm)
    for ranks in np.unique(table.columns["ranks"]):
        part = table.take(np.flatnonzero(table.columns["ranks"] == ranks))
        fit_idx, test_idx = split(len(part))
        sizes = part.columns["bytes"].astype(float)
        choice = collective_ranges.choose_ranges(sizes[fit_idx], float(ranks), terms,
                                                 part.seconds[fit_idx], COLLECTIVE_BOUNDS,
                                                 cover_to=float(sizes.max()))
        low, high = int(sizes.min()), int(sizes.max())
        last = len(choice.ranges) - 1
        ranges = [{"min_bytes": low if i == 0 else int(r.start),
                   "max_bytes": high if i == last else int(r.end),
                   "latency": r.latency, "bandwidth": r.bandwidth, "fit_rows": r.fit_rows}
                  for i, r in enumerate(choice.ranges)]
        params: dict[str, Any] = {
            "ranks": int(ranks), "algorithm": algorithm, "min_bytes": low, "max_bytes": high,
            "ranges": ranges, "leave_one_out": dict(choice.leave_one_out)}
        fit = KindFit(table.kind, table.precision, params, table.source, int(fit_idx.size))
        errors = predict_collective(part, test_idx, machine, params) / part.seconds[test_idx] - 1
        large = sizes[test_idx] >= LARGE_MESSAGE
        label = f"{int(ranks)} GPUs"
        fit.judged.append(Judged(table.kind, label, ">= 1 MiB", errors[large]))
        fit.judged.append(Judged(table.kind, label, "< 1 MiB", errors[~large]))
        out.append(fit)
    return out


# -- the whole database ----------------------------------------------------------------------

#: The kinds of table ``perfcost calibrate --database --kinds`` can restrict the fit to.
KIND_GROUPS = ("gemm", "prefill", "decode", "decode_mla", "moe", "collectives")


def kind_group(kind: str) -> str:
    """The :data:`KIND_GROUPS` name of a table's kind."""
    if kind.split(" ", 1)[0] in ("nccl", "custom"):
        return "collectives"
    return {"context attention": "prefill", "generation attention": "decode",
            "generation mla": "decode_mla"}.get(kind, kind)


def fit_database(database: Database, machine: Machine,
                 tiles: tuple[tuple[int, int], ...] = TILE_CANDIDATES,
                 generations: int = GEMM_GENERATIONS,
                 kinds: frozenset[str] | None = None) -> DatabaseFit:
    """Every table the machine can model (of the :data:`KIND_GROUPS` in ``kinds``; all by
    default), fitted and judged (GEMMs over candidate ``tiles``, their rates searched for
    ``generations`` generations)."""
    fits: list[KindFit] = []
    skipped: list[str] = []
    for table in database.tables:
        if kinds is not None and kind_group(table.kind) not in kinds:
            continue
        # Decode attention's per-head kernel runs on the CUDA cores, its grouped kernel on
        # the tensor cores; prefill's softmax runs on the CUDA cores.
        needs = (("fp32", "bf16") if table.kind == "generation attention"
                 else (table.precision, "fp32") if table.kind == "context attention"
                 # An MLA cache without tensor cores of its precision converts to bf16.
                 else ("bf16",) if table.kind == "generation mla"
                 else (table.precision,))
        if (table.kind == "generation mla" and table.precision == "fp8"
                and database.sm_version is not None
                and database.sm_version not in FP8_GENERATION_MLA_SMS):
            skipped.append(f"{table.kind} fp8: TensorRT-LLM runs no fp8 latent cache on "
                           f"SM {database.sm_version} (the table ran a bf16 cache)")
            continue
        missing = next((n for n in needs if machine.peak(n) is None), None)
        if missing is not None:
            skipped.append(f"{table.kind} {table.precision}: the hardware entry has no "
                           f"{PEAK_KEY.get(missing, missing)} peak")
            continue
        if table.kind == "gemm":
            fits.append(fit_gemm(table, machine, tiles, generations, database.sm_version))
        elif table.kind == "context attention":
            fits.append(fit_context(table, machine))
        elif table.kind == "generation attention":
            fits.append(fit_decode(table, machine, in_kernel_rope=rotates_in_kernel(
                database.sm_version, table.precision)))
        elif table.kind == "generation mla":
            fits.append(fit_mla_decode(table, machine, mla_tiling(database.sm_version)))
        elif table.kind == "moe":
            fits.append(fit_moe(table, machine))
        elif table.kind.split(" ", 1)[0] in ("nccl", "custom") and (
                table.kind.split(" ", 1)[1] in COLLECTIVE_ALGORITHMS):
            fits += fit_collective(table, machine)
        else:
            skipped.append(f"{table.kind} {table.precision}: not fitted (no model of it yet)")
    return DatabaseFit(database, machine, fits, skipped)


def machine_of(hardware: Any) -> Machine:
    """The fixed datasheet values of a validated hardware section."""
    if hardware.shared_memory is None:
        raise CaseError("hardware.shared_memory", MISSING,
                        "expected the shared memory per multiprocessor, like '228 KiB'")
    return Machine(hardware.name, tuple(sorted(hardware.peak_flops.items())),
                   hardware.hbm_bandwidth, hardware.multiprocessors, hardware.shared_memory,
                   hardware.sram or 0.0)


# -- an independent check: kernel files of other measurements -------------------------------

#: FlashAttention-2's forward rate on Hopper as a fraction of the dense bf16 peak: "only 35%
#: utilization on the H100 GPU" (Shah et al., "FlashAttention-3: Fast and Accurate Attention
#: with Asynchrony and Low-precision", 2024, abstract). The H200 has the H100's multiprocessors,
#: clocks and power limit.
FA2_FORWARD_EFFICIENCY = 0.35
#: The forward rate of the attention library behind each backend a kernel file names
#: (docs/kernels.md: ``flash`` is PyTorch's FlashAttention-2); a backend not listed here
#: (``fa3``) is predicted with the database's own context-attention kernel (TensorRT-LLM's
#: fused multi-head attention).
LIBRARY_FORWARD = {"flash": FA2_FORWARD_EFFICIENCY, "fa2": FA2_FORWARD_EFFICIENCY}


def predict_kernel_file(fit: DatabaseFit, kernels: Any,
                        context: ClockContext = STEADY_CONTEXT,
                        ) -> list[tuple[str, str, float, float]]:
    """``(kind, shape, measured, predicted)`` of a kernel file's bf16 GEMMs and FlashAttention
    forward rows (:mod:`perfcost.solver.studies.calibrate`), from the database fit alone:
    nothing of the file is fitted.

    The GEMMs run in the clock ``context``: by default a GPU kept busy (a kernel file's rows
    are medians of repeated back-to-back calls, docs/kernels.md), where the database's
    GEMMs run in its collector's context (:data:`DATABASE_CONTEXT`). The forward rows use
    the prefill fit's overheads and memory rate without the preprocessing kernel (a bare
    attention call runs none), at the forward rate of the row's attention library
    (:data:`LIBRARY_FORWARD`); the file's backward passes have no counterpart in a serving
    database and are not predicted."""
    out: list[tuple[str, str, float, float]] = []
    gemm = fit.of("gemm", "bf16")
    if gemm is not None and kernels.gemm:
        rows = kernels.gemm
        table = Table("gemm", "bf16", {
            "m": np.array([r.m for r in rows]), "n": np.array([r.n for r in rows]),
            "k": np.array([r.k for r in rows])}, np.array([r.seconds for r in rows]), "")
        predicted = predict_gemm(table, np.arange(len(rows)), fit.machine, gemm.params,
                                 context)
        out += [("gemm", f"{r.m}x{r.n}x{r.k}", r.seconds, float(p))
                for r, p in zip(rows, predicted, strict=True)]
    prefill = fit.of("context attention", "bf16")
    flash = [r for r in kernels.attention if r.backend in ("flash", "fa2", "fa3") and r.causal
             and r.d == r.d_v]
    if prefill is not None and flash:
        for r in flash:
            table = Table("context attention", "bf16", {
                "b": np.array([r.b]), "s": np.array([r.s]), "heads": np.array([r.heads]),
                "kv_heads": np.array([r.kv_heads]), "d": np.array([r.d])},
                np.array([r.fwd_s]), "")
            params = {**prefill.params,
                      "forward": LIBRARY_FORWARD.get(r.backend, prefill.params["forward"])}
            if r.backend in LIBRARY_FORWARD:
                # A published utilisation is all-in: its softmax is inside the rate.
                params["softmax"] = None
            bare = predict_context(table, np.arange(1), fit.machine, params,
                                   preprocess=False)[0]
            out.append(("flash forward", f"b{r.b} h{r.heads} s{r.s} d{r.d}", r.fwd_s,
                        float(bare)))
    return out
