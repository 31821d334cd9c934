"""Sections of hardware and network entries fitted on measured kernel databases
(``perfcost calibrate --database``; docs/calibration.md).

* ``[efficiency.precision.<p>]`` of a hardware entry: one precision's GEMM efficiency model
  (tiles, split-K, clock boost, overheads), its prefill FlashAttention rate, its decode
  attention's and its MLA decode's rates. An entry without these tables behaves exactly as before:
  the top-level ``[efficiency]`` values serve every precision.
* ``[[scale_up.collectives]]`` of a network entry: the latency and bandwidth of one measured
  collective at one rank count over one range of sizes, in the pipelined alpha-beta form of
  its algorithm (formulations.kernels.collective_time). NCCL switches algorithm and protocol
  with the size, so one op and rank count may have several entries, one per range; a size
  between two ranges is interpolated between them (solver/studies/collective_ranges.py).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from perfcost.formulations.specs import LIBRARY_KERNELS, GemmKernels
from perfcost.solver.case.fields import (
    Bandwidth,
    Bytes,
    Duration,
    Expect,
    Fraction,
    IntPair,
    PositiveInt,
    Share,
    Strict,
    Text,
    _number,
)
from pydantic import BeforeValidator

#: Precisions a hardware entry can carry its own efficiency for.
Precision = Literal["bf16", "fp8", "fp8_block", "fp4"]
#: Largest clock boost of a short kernel over the sustained clock an entry may state.
MAX_BOOST = 2.0
#: Largest exponent of the decode kernel's overlap norm an entry may state (the fits land at
#: 1.0-2.8; at 3 the norm is within 26 % of the larger term even where both are equal).
MAX_DECODE_OVERLAP = 3.0
#: The largest norm of a GEMM's tensor-core time and HBM traffic (GemmOverlap): at the
#: roofline's ridge within 6 % of the larger of the two.
MAX_GEMM_OVERLAP = 12.0
#: Largest fraction of a GEMM's main loop an entry may say TMA multicast saves: halving the
#: loop is beyond anything reported (10-20 % faster) and beyond the loads it removes.
MAX_MULTICAST_GAIN = 0.5
#: Largest speed-up over HBM an entry may state for bytes a quantised GEMM's kernels leave
#: in the L2 for the next (L2Gain): Hopper's and Blackwell's L2 read bandwidth is a few
#: times their HBM's, not an order of magnitude.
MAX_L2_GAIN = 8.0


def _from_one_to(limit: float) -> Any:
    """A validator of a number from 1 to ``limit``."""
    expected = f"expected a number from 1 to {limit:g}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(expected)
        if not math.isfinite(value) or not 1.0 <= value <= limit:
            raise ValueError(expected)
        return float(value)

    return check


Boost = Annotated[float, BeforeValidator(_from_one_to(MAX_BOOST)),
                  Expect(f"a number from 1 to {MAX_BOOST:g}")]
#: The exponent of the norm by which a decode block's fixed work and its cache stream
#: combine (formulations.kernels.decode_kernel_time): 1 adds them; the larger it is, the
#: closer to the larger of the two. The database fit searches the same range.
DecodeOverlap = Annotated[float, BeforeValidator(_from_one_to(MAX_DECODE_OVERLAP)),
                          Expect(f"a number from 1 to {MAX_DECODE_OVERLAP:g}")]
#: The exponent of the norm by which a GEMM's tensor-core time and its HBM traffic combine
#: (formulations.kernels.streamed_time); the database fit searches the same range.
GemmOverlap = Annotated[float, BeforeValidator(_from_one_to(MAX_GEMM_OVERLAP)),
                        Expect(f"a number from 1 to {MAX_GEMM_OVERLAP:g}")]
#: The fraction of a GEMM's main loop TMA multicast saves (formulations.kernels.
#: deepgemm_sm90_time): 0 none.
MulticastGain = Annotated[float, BeforeValidator(_number(0.0, MAX_MULTICAST_GAIN)),
                          Expect(f"a number from 0 to {MAX_MULTICAST_GAIN:g}")]

#: How many times faster than from HBM a quantised GEMM's kernels move the bytes they leave
#: in the L2 for the next (formulations.kernels.quantised_gemm_time); the database fit
#: searches the same range.
L2Gain = Annotated[float, BeforeValidator(_from_one_to(MAX_L2_GAIN)),
                   Expect(f"a number from 1 to {MAX_L2_GAIN:g}")]


#: Keys an earlier release wrote and this one reads under another name: what to write
#: instead (an entry that `calibrate -o` wrote before the change names the new key).
RETIRED_KEYS: dict[str, str] = {
    "gemm_deepgemm_rows": 'gemm_kernels = "deepgemm-sm90"',
    "gemm_deepgemm_sm100": 'gemm_kernels = "deepgemm-sm100"',
}


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
    # The kernel-choice GEMM model (formulations.kernels.chosen_gemm_time): the tiles and
    # split-K counts a shape's fastest configuration is chosen from; `gemm_efficiency` the
    # sustained tensor-core efficiency of a long GEMM, a GPU busy for much less than
    # `power_window` running `boost` times faster (the clock under the power limit: the
    # busy time is the kernel's context, formulations.kernels.clocked_time; the database
    # fit states the collector's, solver.studies.database_fit.DATABASE_CONTEXT). `matmul` stays the
    # achieved efficiency of a large square GEMM (8192^3, its cast included) that this model
    # predicts. Absent: the model of `gemm_tile` alone (formulations.compute).
    gemm_efficiency: Fraction | None = None
    gemm_tiles: list[IntPair] | None = None
    split_k_counts: list[PositiveInt] | None = None
    # Stream-K kernels (formulations.kernels.stream_k_time) among the configurations.
    stream_k: bool = False
    boost: Boost = 1.0
    power_window: Duration = 0.0
    # A pass over the activations takes their absolute maxima before the cast (per-tensor
    # fp8; not block-scaled fp8 on DeepGEMM's path, Hopper's and the SM 100 family's).
    amax_pass: bool = False
    # The shortest main-loop step (one k-block) of a block-scaled GEMM kernel, whose scale
    # factors cost a fixed time per k-block (formulations.kernels.main_loop_time). Absent:
    # no such bound.
    gemm_kblock_time: Duration | None = None
    # The kernel family (formulations.kernels.chosen_gemm_time): "library", the fastest of
    # `gemm_tiles` x `split_k_counts`; "deepgemm-sm90", DeepGEMM's Hopper kernels
    # (formulations.kernels.deepgemm_sm90_time): the one tile its heuristic picks (of
    # `gemm_tiles`), whole, each k-block promoted after its MMAs, with the cost per
    # main-loop step of each row the last block of rows holds past the matrix's end (a
    # part on each tile's own multiprocessor and a part that grows with the tiles holding
    # such rows, stated for as many as the multiprocessors) and the fraction of the main
    # loop's time its clusters save where they multicast the activations;
    # "deepgemm-sm100", DeepGEMM's SM 100 kernels (formulations.kernels.
    # deepgemm_sm100_time): the one tile its heuristic picks (of `gemm_tiles`), whole, and
    # up to 128 rows the faster of that and its swap-AB kernel's.
    gemm_kernels: GemmKernels = LIBRARY_KERNELS
    gemm_padded_row_time: Duration | None = None
    gemm_padded_row_shared_time: Duration | None = None
    gemm_multicast_gain: MulticastGain | None = None
    # The kernel family whose fixed work per wave of tiles runs beside the HBM traffic,
    # inside `gemm_overlap`'s norm (formulations.kernels.kernel_time). Absent: after it.
    gemm_wave_overlapped: bool = False
    # The norm by which a GEMM's tensor-core time and its HBM traffic combine
    # (formulations.kernels.streamed_time: 1 their sum). Absent: the larger of the two.
    gemm_overlap: GemmOverlap | None = None
    # The fraction of the HBM bandwidth the activations' quantisation kernels reach
    # (formulations.kernels.quantised_gemm_time). Absent: `memory`, the GEMM's own.
    gemm_quantise_memory: Fraction | None = None
    # How many times faster than from HBM the activations and their cast move where they
    # stay in the L2 (`sram`) between the quantisation chain's kernels
    # (formulations.kernels.quantised_gemm_time). Absent: every byte from HBM.
    gemm_l2_gain: L2Gain | None = None
    prefill_forward: Fraction | None = None
    prefill_tile_overhead: Duration = 0.0
    prefill_kernel_overhead: Duration = 0.0
    prefill_memory: Fraction | None = None
    # The Q/K/V preprocessing kernel before prefill attention (formulations.kernels).
    prefill_preprocess_memory: Fraction | None = None
    # The online softmax's scores per second as a fraction of the fp32 peak (formulations.
    # attention.FlashRates.softmax_rate), and the query rows of one attention tile (the
    # wave quantisation's and the causal diagonal's unit). Absent: no softmax term, the
    # tiles of the SRAM rule (formulations.attention.block_sizes).
    prefill_softmax: Fraction | None = None
    prefill_query_tile: PositiveInt | None = None
    # Decode attention (formulations.kernels.decode_kernel_time). The grouped kernel (query
    # groups of 2 to `decode_group_limit` heads): its dot products on the tensor cores as a
    # fraction of the dense bf16 peak, the fixed work of each (sequence, KV head) block, its
    # launch.
    decode_memory: Fraction | None = None
    decode_matmul: Fraction | None = None
    # The single-roofline decode model's dot products (formulations.kernels.
    # decode_attention_time) as a fraction of the fp32 peak: entries fitted before the
    # two-kernel model (the A100's) carry it.
    decode_vector: Fraction | None = None
    decode_block_overhead: Duration = 0.0
    # A grouped block's fixed work grows by this much per query row of a 128-wide head
    # (formulations.kernels.DECODE_ROW_HEAD_ELEMENTS; the block's query tile), counting the
    # MMA's padded rows ("padded") or only the group's own ("group").
    decode_row_overhead: Duration = 0.0
    decode_fixed_rows: Literal["padded", "group"] = "padded"
    decode_kernel_overhead: Duration = 0.0
    # Multi-head attention and larger groups run the per-head kernel: its dot products on
    # the CUDA cores (a fraction of the fp32 peak), fixed work per (sequence, query head)
    # block and launch.
    decode_fallback_vector: Fraction | None = None
    decode_fallback_block_overhead: Duration = 0.0
    decode_fallback_kernel_overhead: Duration = 0.0
    decode_group_limit: PositiveInt | None = None
    # A long cache is cut into blocks: by the per-head kernel into chunks of at least
    # `decode_kv_chunk` tokens to fill one wave, and as many as keep a block's span within its
    # shared memory (TensorRT-LLM's rule, formulations.kernels.mmha_chunks); by the grouped
    # kernel filling one wave ("fill") or by TensorRT-LLM's XQA rule ("xqa": a block per 128
    # cached tokens, up to 8 waves); no block streams faster than `decode_block_stream_share`
    # of one multiprocessor's part of the HBM bandwidth; a block's fixed work and the stream
    # combine as their `decode_overlap`-norm (1: their sum).
    decode_kv_chunk: PositiveInt | None = None
    decode_multi_block: Literal["fill", "xqa"] = "fill"
    decode_block_stream_share: Fraction | None = None
    decode_overlap: DecodeOverlap = 1.0
    # The grouped kernel reads a block's cache in whole tiles of `decode_kv_tile` tokens
    # and takes at least `decode_token_time` plus `decode_row_token_time` per padded query
    # row for each token it reads; the per-head kernel's blocks stream at most
    # `decode_fallback_stream_share` of a multiprocessor's part of the HBM bandwidth.
    # Absent: token by token, no such bound, the grouped kernel's share.
    decode_kv_tile: PositiveInt | None = None
    decode_token_time: Duration = 0.0
    decode_row_token_time: Duration = 0.0
    decode_fallback_stream_share: Fraction | None = None
    # MLA decode on a latent cache of this precision (formulations.kernels.mla_decode_time,
    # FlashMLA's tiling): the achieved fraction of the HBM bandwidth, the tensor cores'
    # fraction of the cache precision's peak (bf16's on a GPU without it), the fixed work per
    # sequence piece of a block, the step's launches. Absent: the serving model's roofline.
    mla_decode_memory: Fraction | None = None
    mla_decode_matmul: Fraction | None = None
    mla_decode_split_overhead: Duration | None = None
    mla_decode_kernel_overhead: Duration | None = None
    # The share of the cache a span's second and later query tiles read from HBM again, and
    # the kernel's query tiling: FlashMLA's 64-row tiles ("flashmla", Hopper), the tile
    # TensorRT-LLM's trtllm-gen kernels pick per call ("trtllm-gen", Blackwell) or fmha_v2's
    # tiled kernel, a CTA per query tile walking a whole cache ("fmha-v2", Ampere and Ada),
    # with its least time per page step (absent: none).
    mla_decode_tile_reread: Share = 0.0
    mla_decode_tiling: Literal["flashmla", "trtllm-gen", "fmha-v2"] = "flashmla"
    mla_decode_step_time: Duration = 0.0
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
    """A collective measured on the scale-up level, fitted at one rank count on the sizes
    ``min_bytes`` to ``max_bytes``."""

    op: Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]
    algorithm: Text
    implementation: Literal["nccl", "custom"] = "nccl"
    ranks: PositiveInt
    latency: Duration
    bandwidth: Bandwidth
    # The sizes this range covers; beyond the largest range of an op and rank count the
    # constants are not extrapolated.
    min_bytes: Bytes
    max_bytes: Bytes
    source: Text
    as_of: Text
    residuals: Text = ""
