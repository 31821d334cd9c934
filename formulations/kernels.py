"""Single-kernel times that a measured kernel database tabulates, from the shared models.

``perfcost calibrate --database`` fits these to NVIDIA's measured tables
(solver/studies/database_fit.py); the expressions are the formulations' own:

* a GEMM as a tuned library runs it (:func:`chosen_gemm_time`): per shape the fastest of a
  few kernel configurations (output tile x split-K count), each a tile- and wave-quantised
  roofline whose tensor cores run at a clock that drops under the power limit for long
  kernels (:func:`clocked_time`); :func:`quantised_gemm_time` adds the activations' cast;
* the same GEMM in the single-tile model of :func:`formulations.compute.op_time`
  (:func:`low_precision_gemm_time`): in a precision below the activations' (fp8,
  block-scaled fp8, fp4) on ``operand_bytes`` elements, after a quantisation
  kernel that reads the ``m x k`` activations at ``activation_bytes`` and writes them at
  ``operand_bytes`` (per-tensor and block-scaled FP8 recipes quantise the activations on
  the fly: Micikevicius et al., "FP8 Formats for Deep Learning", 2022, Sec. 4; DeepSeek-V3
  Sec. 3.3.2 for 1x128 block scales); a bf16 GEMM has no such kernel;
* prefill attention: FlashAttention's causal forward (:func:`formulations.attention.
  flash_forward_time`) with query and key length the prompt, its online softmax at a rate
  of its own (``FlashRates.softmax_rate``), after the memory-bound
  preprocessing kernel a serving engine runs first (TensorRT-LLM's attention op applies the
  rotary embedding to Q and K and writes K and V into the paged cache before its fused
  multi-head attention kernel): it reads the Q, K, V rows and writes them back;
* decode attention as a serving engine's two decode kernels run it (grouped-query and
  per-head, :func:`decode_kernel_time`); in its single-roofline form
  (:func:`decode_attention_time`), one new token per sequence: the KV cache of ``kv_len + 1`` tokens
  streamed once from HBM, plus the query and output rows -- the memory-bound regime of
  decoding (FlashDecoding, Dao et al. 2023; "Efficient Memory Management for LLM Serving
  with PagedAttention", Kwon et al. SOSP 2023, Sec. 2.3), or its dot products on the CUDA
  cores where a large query group per KV head makes them the bound, plus fixed costs;
* multi-head latent attention's decode (DeepSeek-V3's absorbed MLA on the latent cache) as
  FlashMLA, TensorRT-LLM's trtllm-gen kernels or fmha_v2's tiled kernel run it
  (:func:`mla_decode_time`);
* an MoE layer on one rank: grouped GEMMs over the touched experts (rows padded to a tile)
  and the token permutation around them (:func:`moe_layer_time`);
* a collective on one scale-up level: the pipelined alpha-beta form of one algorithm of
  :mod:`formulations.algorithms` (the buffer cut into optimally sized chunks that flow
  through the algorithm's steps, as NCCL runs them: ``(sqrt(steps alpha) + sqrt(volume /
  B))^2``), the form ``perfcost collective`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import algorithms
from .attention import AttentionShape, Blocks, FlashRates, flash_forward_time
from .compute import ComputeParams, op_time
from .core import largest, smallest
from .specs import (
    DEEPGEMM_SM90_KERNELS,
    DEEPGEMM_SM100_KERNELS,
    LIBRARY_KERNELS,
    GemmKernels,
)
from .transformer import Op, gemm

#: FLOPs of one multiply-accumulate.
FLOPS_PER_MAC = 2
#: K and V: the two cached tensors a decode step reads per token and KV head.
KV_TENSORS = 2
#: The query row read and the output row written per head of a decode step.
QUERY_AND_OUTPUT = 2


def quantise_op(m: sp.Expr, k: sp.Expr, activation_bytes: sp.Expr,
                operand_bytes: sp.Expr) -> Op:
    """The kernel that converts the ``m x k`` activations to the GEMM's operand format."""
    return Op(name="quantise", kind="elementwise", region="layer", flops=sp.S.Zero,
              bytes=m * k * (activation_bytes + operand_bytes))


def low_precision_gemm_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                            activation_bytes: sp.Expr, hw: ComputeParams,
                            quantised: bool) -> sp.Expr:
    """Time of a GEMM on ``operand_bytes`` operands, with its activation quantisation kernel
    when ``quantised``."""
    time = op_time(gemm("gemm", "layer", m, n, k, operand_bytes), hw)
    if quantised:
        time = time + op_time(quantise_op(m, k, activation_bytes, operand_bytes), hw)
    return time


#: Bytes of each operand row a GEMM's main loop loads per k-block: one 128-byte swizzled row
#: of a TMA tile (64 bf16, 128 fp8, 256 fp4 elements: CUTLASS's Hopper and Blackwell GEMM
#: tiles).
K_BLOCK_BYTES = 128
#: Bytes of one fp32 partial-sum element a split-K slice writes and its reduction reads.
PARTIAL_BYTES = 4
#: A split-K GEMM's partial sums are written once and read once by the reduction.
WRITE_AND_READ = 2


@dataclass(frozen=True)
class GemmRates:
    """Fitted rates of one precision's GEMM kernels (:func:`chosen_gemm_time`).

    ``matmul_efficiency`` is the sustained fraction of the tensor-core peak a large GEMM
    reaches; a GPU that has been busy for much less than ``power_window`` runs up to
    ``boost`` times faster (the clock the power limit allows before it pulls the clock
    down). How long it has been busy is the context the kernel runs in
    (:func:`clocked_time`): ``busy_before`` seconds of back-to-back work before it, plus
    ``busy_repeats`` times its own duration (a measurement loop repeating it). The defaults
    (0 and 1) are a kernel run on its own; a training step or a long measurement loop is
    ``busy_before`` = infinity: the sustained clock.

    ``kblock_time`` is the shortest time one main-loop step of a tile takes (one k-block of
    :data:`K_BLOCK_BYTES` per operand row), whatever its MMA work: 0 (the default) for no
    such bound (:func:`main_loop_time`)."""

    peak_flops: sp.Expr
    matmul_efficiency: sp.Expr
    boost: sp.Expr
    power_window: sp.Expr
    hbm_bandwidth: sp.Expr
    memory_efficiency: sp.Expr
    multiprocessors: sp.Expr
    kernel_overhead: sp.Expr
    wave_overhead: sp.Expr
    row_granule: sp.Expr
    #: The shallowest reduction slice a split-K kernel is chosen with.
    split_k_granule: sp.Expr
    busy_before: sp.Expr = sp.S.Zero
    busy_repeats: sp.Expr = sp.S.One
    kblock_time: sp.Expr = sp.S.Zero
    #: The fraction of the HBM bandwidth the kernels that quantise the activations reach
    #: (:func:`quantised_gemm_time`); None: ``memory_efficiency``, the GEMM's own.
    quantise_efficiency: sp.Expr | None = None
    #: The norm by which a kernel's tensor-core time and its HBM traffic combine
    #: (:func:`streamed_time`): 1 their sum, None the larger of the two.
    overlap: sp.Expr | None = None
    #: The time a main-loop step of the last block of rows takes per row past the matrix's
    #: last row (:func:`gemm_config_time`); 0: none.
    padded_row_time: sp.Expr = sp.S.Zero
    #: The part of that time which grows with the tiles that hold padded rows: per padded
    #: row and step when they are as many as the multiprocessors (:func:`gemm_config_time`);
    #: 0: none.
    padded_row_shared_time: sp.Expr = sp.S.Zero
    #: The fraction of the main loop's time a tile saves when its cluster of
    #: :data:`DEEPGEMM_MULTICAST` tiles loads their shared operand tile once for both (TMA
    #: multicast, :func:`deepgemm_sm90_time`); 0: none.
    multicast_gain: sp.Expr = sp.S.Zero
    #: The kernel family: True where a tile's fixed work per wave runs beside the HBM
    #: traffic (inside the overlap norm, on the tensor cores' side), False where it follows
    #: it (:func:`kernel_time`).
    wave_overlapped: bool = False
    #: Bytes of the L2 cache that a quantisation chain's tensors stay in between its kernels
    #: (:func:`quantised_gemm_time`); 0: none stay.
    l2_capacity: sp.Expr = sp.S.Zero
    #: How many times faster than from HBM a kernel moves the bytes that stay in the L2.
    l2_gain: sp.Expr = sp.S.One


def hbm_stream(traffic: sp.Expr, resident: sp.Expr, rates: GemmRates,
               efficiency: sp.Expr | None = None) -> sp.Expr:
    """Time of a kernel's ``traffic`` bytes at ``efficiency`` of the HBM bandwidth (by
    default ``rates.memory_efficiency``), of which ``resident`` bytes stay in the L2 and move
    ``rates.l2_gain`` times faster."""
    rate = rates.hbm_bandwidth * (rates.memory_efficiency if efficiency is None
                                  else efficiency)
    return (traffic - resident) / rate + resident / (rate * rates.l2_gain)


def clocked_time(sustained: sp.Expr, boost: sp.Expr, window: sp.Expr,
                 busy: sp.Expr | None = None) -> sp.Expr:
    """Time of tensor-core work that takes ``sustained`` seconds at the sustained clock, on a
    GPU that has been running back-to-back work for ``busy`` seconds (by default the work's
    own duration at the boost clock): much less than ``window`` and it runs at ``boost``
    times the sustained clock, much more and at the sustained clock, in between a smooth
    blend. The power controller averages the board's power over its recent history, not
    over one kernel, so the clock is a property of the context a kernel runs in (a kernel
    timed alone, a measurement loop, a training step), not of the kernel alone."""
    fast = sustained / boost
    busy = fast if busy is None else busy
    # The boosted share ``window / (busy + window)`` tends to 0 as ``busy`` grows without
    # bound (sympy: infinity gives exactly the sustained time); the default context keeps the
    # entries' fitted values meaning what they did. A first-order controller's boosted share
    # exp(-busy / window) held out as well (H200 bf16 5.2 against 5.3 %) but put the
    # sustained clock far lower (the independent H200 file: 19.9 against 9.0 %).
    return sustained - (sustained - fast) * window / (busy + window)


def context_clocked_time(sustained: sp.Expr, rates: GemmRates) -> sp.Expr:
    """:func:`clocked_time` in the context ``rates`` states: ``busy_before`` plus
    ``busy_repeats`` times the work's own duration at the boost clock."""
    fast = sustained / rates.boost
    return clocked_time(sustained, rates.boost, rates.power_window,
                        rates.busy_before + rates.busy_repeats * fast)


def main_loop_time(mma: sp.Expr, steps: sp.Expr, rates: GemmRates,
                   promoted: bool = False) -> sp.Expr:
    """Sustained-clock time of a tile's main loop of ``steps`` k-blocks whose MMA work takes
    ``mma``: no step shorter than ``rates.kblock_time``. A block-scaled GEMM (NVFP4's
    16-element and DeepSeek-style 1x128 / 128x128 fp8 scales) loads each k-block's scale
    factors beside its operands and applies them before or after the MMA (CUTLASS's
    block-scaled SM100 main loop copies them into tensor memory per k-block; Hopper's
    block-scaled fp8 kernels promote the partial sums with the scales on the CUDA cores per
    k-block, DeepSeek-V3 Sec. 3.3.2), a fixed cost per step that a narrow tile (few rows or
    columns: little MMA work per k-block) cannot hide behind its tensor cores. The database
    fit states it for NVFP4 and, on the SM 100 family, for block-scaled fp8 (DeepGEMM's
    block-scaled MMA: solver.studies.database_fit.has_kblock_step, where the held-out
    errors say which formats show it).

    With ``promoted`` the step's fixed cost follows its MMAs instead of hiding behind them:
    DeepGEMM's Hopper kernel waits for each k-block's WGMMAs before the math warpgroup
    promotes their partial sums with the scales on the CUDA cores (DeepSeek-V3 Sec. 3.3.2;
    on the H100 table the sum fitted better than the larger of the two: loss 0.139 ->
    0.127)."""
    if rates.kblock_time == 0:
        return mma
    if promoted:
        return mma + steps * rates.kblock_time
    return sp.Max(mma, steps * rates.kblock_time)


def streamed_time(mma: sp.Expr, stream: sp.Expr, rates: GemmRates) -> sp.Expr:
    """A GEMM kernel's time from its tensor cores' time ``mma`` and its HBM traffic's
    ``stream``: the ``rates.overlap``-norm of the two (as decode's fixed work and stream,
    :func:`decode_kernel_time`), the roofline's larger of the two where ``overlap`` is None.

    A tile's main loop hides its operand loads behind its MMAs (the TMA pipeline), but not
    its prologue (the first stages' loads) nor its epilogue (the output tile's store): those
    overlap another tile's main loop only where one runs beside it on the multiprocessor
    (CUTLASS's ping-pong and persistent schedules). Near the roofline's ridge, where the two
    times are alike, neither bound is reached: GEMMs of a short reduction, which store much
    more than they load, are predicted 12-20 % too fast by the larger of the two (H200 bf16,
    k = 256: docs/calibration.md)."""
    if rates.overlap is None:
        return sp.Max(mma, stream, evaluate=False)
    return (mma**rates.overlap + stream**rates.overlap) ** (1 / rates.overlap)


def kernel_time(mma: sp.Expr, stream: sp.Expr, waves: sp.Expr, kernels: int,
                rates: GemmRates) -> sp.Expr:
    """A GEMM's time from its tensor cores' time ``mma``, its HBM traffic's ``stream``
    (combined by :func:`streamed_time`), its ``waves`` of tiles at ``rates.wave_overhead``
    each (a tile's prologue and epilogue, which its own main loop does not hide) and its
    ``kernels`` launches.

    Where that fixed work runs depends on the kernel family (``rates.wave_overlapped``,
    chosen per table by the fitted loss): after the overlap norm, as a kernel whose tiles
    wait for it; or inside it, on the tensor cores' side, as a persistent kernel whose
    epilogue warps drain one accumulator while its MMA warp fills another would run it,
    beside the other tiles' HBM traffic (two accumulators in a Blackwell multiprocessor's
    tensor memory: JAX's Pallas guide "Writing high-performance matrix multiplication
    kernels for Blackwell", step 5, "Dedicated epilogue warpgroup"). GEMMs whose output
    dominates tell the two apart: a GB200 NVFP4 GEMM with k = 128 and 8192 x 65536 outputs
    takes 202 us, its output stored at 5.3 TB/s; with the cost after the norm the fitted
    model gave 302 us, 111 waves of 0.88 us on top of the store. The Hopper tables all fit
    worse inside (H200 bf16: loss 0.112 -> 0.126); the Blackwell tables and the A100's
    take it by a little, all but GB200 block-scaled fp8 (docs/calibration.md)."""
    if rates.wave_overlapped:
        return (streamed_time(mma + waves * rates.wave_overhead, stream, rates)
                + kernels * rates.kernel_overhead)
    return (streamed_time(mma, stream, rates) + waves * rates.wave_overhead
            + kernels * rates.kernel_overhead)


def gemm_config_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                     output_bytes: sp.Expr, rates: GemmRates,
                     tile: tuple[int | sp.Expr, int | sp.Expr], splits: int,
                     narrow: bool = True, promoted: bool = False,
                     multicast: sp.Expr = sp.S.Zero,
                     resident: sp.Expr = sp.S.Zero) -> sp.Expr:
    """Time of a GEMM run by one kernel configuration: output tiles ``tile`` (with ``narrow``
    rows narrowed to ``m``, columns to ``n``, rounded up to the row granule, for few rows or
    columns: the MMA instruction's N dimension comes in steps of 8, and a library computes
    the transposed product to put either side on it; without, the tile whole; ``promoted``
    as in :func:`main_loop_time`) and the reduction cut into ``splits`` slices of at least
    ``split_k_granule`` (split-K: each slice a tile of its own, its fp32 partial sums
    written to HBM and summed by a second kernel).

    The roofline of the tensor cores over the launched waves of tiles (NVIDIA's "Matrix
    Multiplication Background" guide: tile and wave quantisation), at the clock
    :func:`clocked_time` gives, and of HBM (operands once, the output, split-K partials);
    plus a cost per wave (a tile's prologue and epilogue) and per kernel, and with
    ``rates.padded_row_time`` a cost per main-loop step for each row the last block of rows
    holds past the matrix's end (DeepGEMM's Hopper kernels: its maintainers on the TMA
    loads' bounds checks, deepseek-ai/DeepGEMM issue 35, "TMA load is faster for m=132 than
    for m=68 due to boundary check"; the tables' times fall within each 128-row band as
    its padding shrinks, H100 n = 16384, k = 10240: 133 us at 129 rows, 94 us at 256).

    With ``rates.padded_row_shared_time`` part of that cost grows with how many tiles hold
    padded rows, as the multiprocessors' shares of one resource they all use would: the
    H100 table's 65-row GEMMs take 3 ns more per padded row and step than its 128-row ones
    where the last block of rows has 128 tiles (n = 2048, k = 51200: 163 against 86 us),
    and nothing more where it has 8 (n = 128, k = 10240: 15.6 against 16.2 us). A cost on
    each tile's own multiprocessor cannot give both. Which resource it is, the sources
    read do not say; the fitted loss chose the form (solver.studies.database_fit.
    PADDED_ROW_SHARED_BOUNDS).

    ``multicast`` is 1 where the kernel runs its tiles in clusters that multicast an operand
    (:func:`deepgemm_sm90_time`), 0 where not: its main loop then takes
    ``rates.multicast_gain`` less of its time.

    ``resident`` is the share of the ``m x k`` operand read from the L2, where the kernel
    before it left it (:func:`quantised_gemm_time`, :func:`l2_resident_share`); the rest
    comes from HBM."""
    rows, cols = sp.sympify(tile[0]), sp.sympify(tile[1])
    if narrow:
        rows = sp.Min(rows, rates.row_granule * sp.ceiling(m / rates.row_granule))
        cols = sp.Min(cols, rates.row_granule * sp.ceiling(n / rates.row_granule))
    tiles = sp.ceiling(m / rows) * sp.ceiling(n / cols) * splits
    waves = sp.ceiling(tiles / rates.multiprocessors)
    depth = sp.ceiling(k / splits)
    slots = waves * rates.multiprocessors
    tile_steps = sp.ceiling(depth * operand_bytes / K_BLOCK_BYTES)
    steps = waves * tile_steps
    # The last block of rows runs its tiles side by side in one wave: each of their steps
    # pays for the padded rows once, beside the MMAs. (As a longer shortest step instead,
    # hidden behind the MMAs where those are the longer, the H100 table fitted worse: loss
    # 0.154 against 0.135; paid in every wave instead of once, worse again: 0.150 against
    # 0.127.) The shared part is those tiles' share of the multiprocessors.
    padded_tiles = sp.ceiling(n / cols) * splits
    padding = ((rows * sp.ceiling(m / rows) - m) * tile_steps
               * (rates.padded_row_time
                  + rates.padded_row_shared_time * padded_tiles / rates.multiprocessors))
    loop = main_loop_time(slots * FLOPS_PER_MAC * rows * cols * depth
                          / (rates.peak_flops * rates.matmul_efficiency), steps, rates, promoted)
    # A fraction of the whole loop, not a feed rate: the tables gain no more from a pipelined
    # L2 feed that multicast halves (solver.studies.database_fit.MULTICAST_GAIN_BOUNDS).
    mma = context_clocked_time(loop * (1 - rates.multicast_gain * multicast) + padding,
                               rates)
    # One rate for loads and stores: the output's store and the partial sums' writes at a
    # fitted rate of their own landed beside the loads' (B200 bf16: 0.73 against 0.76 of
    # the HBM bandwidth) and moved nothing held out (5.9 -> 5.9 %).
    traffic = (m + n) * k * operand_bytes + m * n * output_bytes
    kernels = 1
    if splits > 1:
        traffic = traffic + WRITE_AND_READ * splits * m * n * PARTIAL_BYTES
        kernels = 2
    stream = hbm_stream(traffic, resident * m * k * operand_bytes, rates)
    time = kernel_time(mma, stream, waves, kernels, rates)
    if splits == 1:
        return time
    # A library splits the reduction only where every slice stays deep.
    return sp.Piecewise((time, k >= splits * rates.split_k_granule), (sp.oo, True))


def stream_k_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                  output_bytes: sp.Expr, rates: GemmRates, tile: tuple[int, int],
                  resident: sp.Expr = sp.S.Zero) -> sp.Expr:
    """Time of a GEMM run by a stream-K kernel of output tiles ``tile`` (Osama et al.,
    "Stream-K: Work-centric Parallel Decomposition for Dense Matrix Multiplication on the
    GPU", PPoPP 2023; CUTLASS's and cuBLAS's Hopper and Blackwell kernels offer it): the
    tiles' k-blocks (:data:`K_BLOCK_BYTES` of each operand row) are dealt out evenly to the
    multiprocessors, so the tensor cores wait on one k-block at most rather than on a wave
    of tiles; the tiles that end up shared write and read fp32 partial sums (at most one per
    multiprocessor). Rows and columns narrow, and ``resident`` reads the ``m x k`` operand
    from the L2, as in :func:`gemm_config_time`."""
    tile_m, tile_n = sp.Integer(tile[0]), sp.Integer(tile[1])
    rows = sp.Min(tile_m, rates.row_granule * sp.ceiling(m / rates.row_granule))
    cols = sp.Min(tile_n, rates.row_granule * sp.ceiling(n / rates.row_granule))
    tiles = sp.ceiling(m / rows) * sp.ceiling(n / cols)
    depth = K_BLOCK_BYTES / operand_bytes
    blocks_per_unit = sp.ceiling(tiles * sp.ceiling(k / depth) / rates.multiprocessors)
    mma = context_clocked_time(main_loop_time(
        blocks_per_unit * rates.multiprocessors * FLOPS_PER_MAC * rows * cols * depth
        / (rates.peak_flops * rates.matmul_efficiency), blocks_per_unit, rates), rates)
    traffic = ((m + n) * k * operand_bytes + m * n * output_bytes
               + WRITE_AND_READ * rates.multiprocessors * rows * cols * PARTIAL_BYTES)
    stream = hbm_stream(traffic, resident * m * k * operand_bytes, rates)
    # Each multiprocessor starts as many tiles as a wave-by-wave kernel would, and one more
    # where its share of k-blocks straddles two tiles.
    waves = sp.ceiling(tiles / rates.multiprocessors) + 1
    return kernel_time(mma, stream, waves, 1, rates)


#: DeepGEMM's Hopper tile heuristic (TensorRT-LLM's copy, cpp/include/tensorrt_llm/deep_gemm/
#: jit_utils.cuh ``get_best_gemm_config``): a tile is 64 rows for at most 64 rows and 128
#: otherwise; its columns are the one of 16 to 128 in steps of 8 that gives the fewest
#: waves, then the fullest last wave, then the narrowest tile.
DEEPGEMM_NARROW_ROWS = 64
DEEPGEMM_WIDE_ROWS = 128
DEEPGEMM_COLUMNS: tuple[int, ...] = tuple(range(16, 129, 8))
#: Every tile the heuristic can pick (rows, columns).
DEEPGEMM_TILES: tuple[tuple[int, int], ...] = tuple(
    (rows, cols) for rows in (DEEPGEMM_NARROW_ROWS, DEEPGEMM_WIDE_ROWS)
    for cols in DEEPGEMM_COLUMNS)
#: TensorRT-LLM's Hopper dispatch (fp8_blockscale_gemm_kernel.cuh ``gemm_dispatch``,
#: ``m_threshold``) runs DeepGEMM's swap-AB kernel below this many rows: the weight's rows
#: take the tile's rows and the activations' rows its columns.
DEEPGEMM_SWAP_BELOW = 32
#: Weights that order the heuristics' three criteria in one number (waves first, then the
#: last wave's tiles, then the columns): each larger than the range of the next (at most
#: 999 multiprocessors, at most 256 columns).
DEEPGEMM_WAVE_WEIGHT = 10**6
DEEPGEMM_UTIL_WEIGHT = 10**3
#: The heuristic's TMA multicast (TensorRT-LLM's copy, jit_utils.cuh ``get_best_gemm_config``
#: and ``is_tma_multicast_legal``, as in deepseek-ai/DeepGEMM's gemm.py): clusters of this
#: many tiles side by side along n, which load their shared tile of the activations once,
#: from this many rows on, where n is a multiple of the cluster's columns and the
#: multiprocessors a multiple of its tiles.
DEEPGEMM_MULTICAST = 2
DEEPGEMM_MULTICAST_MIN_ROWS = 1024


def deepgemm_block_rows(extent: sp.Expr) -> sp.Expr:
    """Rows of DeepGEMM's Hopper tile over a side of ``extent`` rows."""
    return sp.Piecewise((DEEPGEMM_NARROW_ROWS, extent <= DEEPGEMM_NARROW_ROWS),
                        (DEEPGEMM_WIDE_ROWS, True))


def fewest_waves_columns(rows: sp.Expr, block_rows: sp.Expr, cols: sp.Expr,
                         candidates: tuple[int, ...], multiprocessors: sp.Expr) -> sp.Expr:
    """Columns of the tile DeepGEMM's heuristics pick for an output of ``rows`` x ``cols`` in
    blocks of ``block_rows`` rows: of ``candidates``, the fewest waves, then the fullest last
    wave, then the fewest columns. Each candidate's three criteria are one number, the
    columns its last digits (:data:`DEEPGEMM_WAVE_WEIGHT`, :data:`DEEPGEMM_UTIL_WEIGHT`): the
    least number is the pick, and its remainder its columns."""
    keys = []
    for block_cols in candidates:
        tiles = sp.ceiling(rows / block_rows) * sp.ceiling(cols / block_cols)
        waves = sp.ceiling(tiles / multiprocessors)
        last_wave = tiles - multiprocessors * (waves - 1)
        keys.append(waves * DEEPGEMM_WAVE_WEIGHT - last_wave * DEEPGEMM_UTIL_WEIGHT
                    + block_cols)
    least = sp.Min(*keys)
    return least - DEEPGEMM_UTIL_WEIGHT * sp.floor(least / DEEPGEMM_UTIL_WEIGHT)


def deepgemm_tile_columns(rows: sp.Expr, cols: sp.Expr, multiprocessors: sp.Expr) -> sp.Expr:
    """Columns of the tile DeepGEMM's Hopper heuristic picks for an output of ``rows`` x
    ``cols`` (of :data:`DEEPGEMM_COLUMNS`, by :func:`fewest_waves_columns`)."""
    return fewest_waves_columns(rows, deepgemm_block_rows(rows), cols, DEEPGEMM_COLUMNS,
                                multiprocessors)


def _divides(divisor: sp.Expr, value: sp.Expr) -> sp.Expr:
    """1 where the positive integer ``divisor`` divides the positive integer ``value``, 0
    where not: floors, not ``Mod`` and ``Eq``, which keep the expression arithmetic (a
    Piecewise on them takes lambdify minutes over DeepGEMM's picked tile)."""
    return sp.floor(value / divisor) - sp.floor((value - 1) / divisor)


def deepgemm_multicast(m: sp.Expr, n: sp.Expr, columns: sp.Expr,
                       multiprocessors: sp.Expr) -> sp.Expr:
    """1 where DeepGEMM's Hopper heuristic multicasts the activations' tile to a cluster of
    :data:`DEEPGEMM_MULTICAST` tiles of ``columns`` columns (:data:`DEEPGEMM_MULTICAST_MIN_ROWS`
    rows or more, n and the multiprocessors multiples of the cluster), 0 where not."""
    return (sp.Heaviside(m - DEEPGEMM_MULTICAST_MIN_ROWS, 1)
            * _divides(DEEPGEMM_MULTICAST * columns, n)
            * _divides(sp.Integer(DEEPGEMM_MULTICAST), multiprocessors))


def deepgemm_sm90_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                       output_bytes: sp.Expr, rates: GemmRates,
                       resident: sp.Expr = sp.S.Zero) -> sp.Expr:
    """A block-scaled fp8 GEMM as TensorRT-LLM runs it on Hopper: DeepGEMM's persistent
    kernel (no split-K) with the tile its heuristic picks (:func:`deepgemm_block_rows`,
    :func:`deepgemm_tile_columns`), the activations' rows on the tile's rows, or below
    :data:`DEEPGEMM_SWAP_BELOW` rows on its columns (the swap-AB kernel, the weight's rows
    on the tile's rows). The tile is whole: its WGMMAs compute every row and column of it,
    padded or not; each k-block's promotion follows its WGMMAs (:func:`main_loop_time`).
    Where its clusters multicast the activations (:func:`deepgemm_multicast`; never below
    the swap-AB kernel's rows), the main loop takes ``rates.multicast_gain`` less of its
    time: fewer loads from L2 for the same MMAs. The sources give its size only in passing
    (10-20 % faster with multicast: HazyResearch/ThunderKittens pull request 136,
    deepseek-ai/DeepGEMM pull request 193); the tables fit it. ``resident`` as in
    :func:`gemm_config_time`."""
    sms = rates.multiprocessors
    normal = (deepgemm_block_rows(m), deepgemm_tile_columns(m, n, sms))
    multicast = deepgemm_multicast(m, n, normal[1], sms)
    swapped = (deepgemm_tile_columns(n, m, sms), deepgemm_block_rows(n))
    return sp.Piecewise(
        (gemm_config_time(m, n, k, operand_bytes, output_bytes, rates, normal, 1,
                          narrow=False, promoted=True, multicast=multicast,
                          resident=resident),
         m >= DEEPGEMM_SWAP_BELOW),
        (gemm_config_time(m, n, k, operand_bytes, output_bytes, rates, swapped, 1,
                          narrow=False, promoted=True, resident=resident), True),
        evaluate=False)


#: DeepGEMM's SM 100 heuristic (deepseek-ai/DeepGEMM, csrc/jit_kernels/heuristics/sm100.hpp
#: and common.hpp ``get_best_config``, releases of 2025-11 and 2026-01), which TensorRT-LLM's
#: block-scaled fp8 ``Linear`` runs on the B200 and GB200 (``trtllm::fp8_swap_ab_gemm`` ->
#: ``deep_gemm.fp8_gemm_nt``): a tile is 32 rows for at most 32 rows, 64 for at most 64,
#: else 128 (256-row tiles are excluded for its 1D1D kernel: "Performance is lower"); its
#: columns are the one of 16 and 32 to 224 in steps of 32 that gives the fewest waves, then
#: the fullest last wave, then the fewest columns. 256 columns are a candidate too, but not
#: a legal one for block-scaled fp8: two accumulators of 256 columns and the scale factors'
#: columns (4 + 8) overflow the 512 columns of tensor memory.
DEEPGEMM_SM100_ROW_BLOCKS: tuple[int, ...] = (32, 64)
DEEPGEMM_SM100_WIDE_ROWS = 128
DEEPGEMM_SM100_COLUMNS: tuple[int, ...] = (16, *range(32, 225, 32))
#: "For small K, fewer store blocks improve store/compute overlap" (the heuristic's
#: ``is_block_size_legal``): up to this k, tiles of at most
#: :data:`DEEPGEMM_SM100_SHALLOW_COLUMNS` columns.
DEEPGEMM_SM100_SHALLOW_K = 256
DEEPGEMM_SM100_SHALLOW_COLUMNS = 128
#: TensorRT-LLM's runner (``fp8SwapABGemmRunner.get_valid_tactics``) also tries DeepGEMM's
#: swap-AB kernel up to this many rows and its autotuner keeps the faster: the weight's
#: rows on 128-row blocks, the activations' rows on the tile's columns, 16 to 256 in steps
#: of 16 (the swap-AB layouts DeepGEMM's SM 100 heuristic enumerates from its 2026-04
#: release on; its comparator there puts multicast first, which leaves the tile's waves,
#: and so its pick, as this rule has them), picked by the same rule.
DEEPGEMM_SM100_SWAP_MAX_ROWS = 128
DEEPGEMM_SM100_SWAP_BLOCK = 128
DEEPGEMM_SM100_SWAP_COLUMNS: tuple[int, ...] = tuple(range(16, 257, 16))
#: Every tile the heuristic picks for the activations' rows on the tile's rows (rows,
#: columns): what a hardware entry states.
DEEPGEMM_SM100_TILES: tuple[tuple[int, int], ...] = tuple(
    (rows, cols) for rows in (*DEEPGEMM_SM100_ROW_BLOCKS, DEEPGEMM_SM100_WIDE_ROWS)
    for cols in DEEPGEMM_SM100_COLUMNS)

#: The candidate tiles each DeepGEMM kernel family's heuristic picks from: what a hardware
#: entry states as its ``gemm_tiles``.
DEEPGEMM_FAMILY_TILES: dict[GemmKernels, tuple[tuple[int, int], ...]] = {
    DEEPGEMM_SM90_KERNELS: DEEPGEMM_TILES, DEEPGEMM_SM100_KERNELS: DEEPGEMM_SM100_TILES}


def deepgemm_sm100_block_rows(m: sp.Expr) -> sp.Expr:
    """Rows of DeepGEMM's SM 100 tile over ``m`` rows (:data:`DEEPGEMM_SM100_ROW_BLOCKS`)."""
    pieces = [(sp.Integer(rows), m <= rows) for rows in DEEPGEMM_SM100_ROW_BLOCKS]
    return sp.Piecewise(*pieces, (sp.Integer(DEEPGEMM_SM100_WIDE_ROWS), True))


def deepgemm_sm100_tile(m: sp.Expr, n: sp.Expr, k: sp.Expr,
                        multiprocessors: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """The tile (rows, columns) DeepGEMM's SM 100 heuristic picks for an ``m x n`` output
    reduced over ``k`` (:data:`DEEPGEMM_SM100_COLUMNS`, narrower for a shallow ``k``)."""
    rows = deepgemm_sm100_block_rows(m)
    shallow = tuple(c for c in DEEPGEMM_SM100_COLUMNS if c <= DEEPGEMM_SM100_SHALLOW_COLUMNS)
    cols = sp.Piecewise(
        (fewest_waves_columns(m, rows, n, shallow, multiprocessors),
         k <= DEEPGEMM_SM100_SHALLOW_K),
        (fewest_waves_columns(m, rows, n, DEEPGEMM_SM100_COLUMNS, multiprocessors), True))
    return rows, cols


def deepgemm_sm100_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                        output_bytes: sp.Expr, rates: GemmRates,
                        resident: sp.Expr = sp.S.Zero) -> sp.Expr:
    """A block-scaled fp8 GEMM as TensorRT-LLM runs it on the SM 100 family: DeepGEMM's
    persistent kernel (no split-K) with the tile its heuristic picks
    (:func:`deepgemm_sm100_tile`), whole (the tensor cores compute every row and column of
    it); up to :data:`DEEPGEMM_SM100_SWAP_MAX_ROWS` rows the faster of that and the swap-AB
    kernel, whose tile puts the weight's rows on its rows. Each main-loop step takes at
    least ``rates.kblock_time`` (:func:`main_loop_time`: the scale factors' copy into tensor
    memory). The fastest of three generic tiles, which the model took before, missed the
    heuristic's narrow tiles (B200, GEMMs >= 1 GFLOP, held out, median / p90: 4.5 / 15.0 %
    with them, 3.9 / 10.0 % with the heuristic's). ``resident`` as in
    :func:`gemm_config_time`."""
    sms = rates.multiprocessors
    normal = gemm_config_time(m, n, k, operand_bytes, output_bytes, rates,
                              deepgemm_sm100_tile(m, n, k, sms), 1, narrow=False,
                              resident=resident)
    swapped_cols = fewest_waves_columns(n, sp.Integer(DEEPGEMM_SM100_SWAP_BLOCK), m,
                                        DEEPGEMM_SM100_SWAP_COLUMNS, sms)
    swapped = gemm_config_time(m, n, k, operand_bytes, output_bytes, rates,
                               (swapped_cols, DEEPGEMM_SM100_SWAP_BLOCK), 1, narrow=False,
                               resident=resident)
    return sp.Piecewise((sp.Min(normal, swapped, evaluate=False),
                         m <= DEEPGEMM_SM100_SWAP_MAX_ROWS),
                        (normal, True), evaluate=False)


def chosen_gemm_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                     output_bytes: sp.Expr, rates: GemmRates,
                     tiles: tuple[tuple[int, int], ...], splits: tuple[int, ...],
                     stream_k: bool = True, kernels: GemmKernels = LIBRARY_KERNELS,
                     resident: sp.Expr = sp.S.Zero) -> sp.Expr:
    """A GEMM as a tuned library runs it: the fastest of its kernel configurations (every
    tile of ``tiles`` with every split-K count of ``splits``, and with ``stream_k`` every
    tile's stream-K kernel), as cuBLAS's heuristics and
    TensorRT-LLM's profiler pick one per shape (a heuristic that picks a slower one shows
    as a residual: docs/calibration.md): ``kernels`` ``"library"``. With
    ``"deepgemm-sm90"``, DeepGEMM's Hopper kernels, the one configuration its heuristic
    picks (:func:`deepgemm_sm90_time`; ``tiles``, ``splits`` and ``stream_k`` unused; a
    choice by the fastest of the heuristic's rows and four column widths, tried first,
    fitted the H100 table worse: loss 0.135 against 0.127); with ``"deepgemm-sm100"`` the
    one DeepGEMM's SM 100 heuristic picks (:func:`deepgemm_sm100_time`). ``resident`` as in
    :func:`gemm_config_time`."""
    if kernels == DEEPGEMM_SM100_KERNELS:
        return deepgemm_sm100_time(m, n, k, operand_bytes, output_bytes, rates, resident)
    if kernels == DEEPGEMM_SM90_KERNELS:
        return deepgemm_sm90_time(m, n, k, operand_bytes, output_bytes, rates, resident)
    configs = [gemm_config_time(m, n, k, operand_bytes, output_bytes, rates, tile, s,
                                resident=resident)
               for tile in tiles for s in splits]
    if stream_k:
        configs += [stream_k_time(m, n, k, operand_bytes, output_bytes, rates, tile, resident)
                    for tile in tiles]
    return sp.Min(*configs, evaluate=False)


#: The partitions of an Ampere or Hopper L2: each caches the memory accesses of the
#: multiprocessors wired to it, so a line that multiprocessors on both sides read may be
#: held twice (NVIDIA's A100 and H100 architecture whitepapers, on the L2 cache).
L2_PARTITIONS = 2


def l2_resident_share(working_set: sp.Expr, capacity: sp.Expr) -> sp.Expr:
    """The share of a ``working_set`` of bytes, written by one kernel and read by the
    next on other multiprocessors, that the next finds in an L2 of ``capacity`` bytes: all
    of it within one partition's share (:data:`L2_PARTITIONS`), none of it beyond the whole
    cache, in proportion between (a line may be held twice, so what stays depends on
    which partitions its readers use)."""
    partition = capacity / L2_PARTITIONS
    return sp.Min(1, sp.Max(0, (capacity - working_set) / (capacity - partition)))


#: Launches of the amax pass before the cast: the reset of the scale (a memset: the
#: reduction takes an atomic maximum into it) and the reduction kernel (TensorRT-LLM's
#: dynamic per-tensor fp8 quantisation, cudaFp8Utils.cu ``invokeComputeScalesAndQuantizeMatrix``,
#: ``QuantizeMode::PER_TENSOR``).
AMAX_PASS_LAUNCHES = 2


def quantised_gemm_time(m: sp.Expr, n: sp.Expr, k: sp.Expr, operand_bytes: sp.Expr,
                        activation_bytes: sp.Expr, rates: GemmRates,
                        tiles: tuple[tuple[int, int], ...], splits: tuple[int, ...],
                        quantised: bool, amax_pass: bool = False,
                        stream_k: bool = True,
                        kernels: GemmKernels = LIBRARY_KERNELS) -> sp.Expr:
    """:func:`chosen_gemm_time` writing ``activation_bytes`` outputs, after the kernel that
    quantises the ``m x k`` activations to the operand format when ``quantised`` (as in
    :func:`low_precision_gemm_time`). With ``amax_pass`` the scale is the tensor's own
    absolute maximum, taken by a reading pass over the activations before the cast
    (dynamic per-tensor scaling; a block-scaled format takes each block's scale inside the
    cast: DeepSeek-V3 Sec. 3.3.2), :data:`AMAX_PASS_LAUNCHES` launches of its own.

    The quantisation kernels stream at ``rates.quantise_efficiency`` of the HBM bandwidth,
    not at the GEMM's rate: they are elementwise kernels of another kind (TensorRT-LLM's
    per-tensor reduction and cast load one element per thread in a grid-stride loop over a
    fixed grid of 1024 blocks, cudaFp8Utils.cu ``computeFP8QuantizeScale`` and
    ``scaleMatrix``, where the GEMM moves whole tiles with TMA copies). One rate for both
    held GEMMs of few columns, whose time is the cast, 20-27 % too fast (H200 fp8, n <= 128)
    and weight-streaming GEMMs of few rows 5-11 % too slow.

    The chain hands its tensors on through the L2 where they fit in ``rates.l2_capacity``
    bytes: the activations (first read from HBM) and their cast, written by one kernel and
    read by the next, stay in the cache between its kernels and move ``rates.l2_gain``
    times faster -- the cast's read of the activations after the amax pass, the cast's
    write and the GEMM's read of the cast. (The L2 is a write-back cache of 50 MB on the
    H100 and H200 and 126 MB on the B200: NVIDIA's Hopper and Blackwell architecture
    whitepapers.) Where they do not fit, every read and write goes to HBM. The tables
    show the step: per-tensor fp8 GEMMs of at most 512 columns, whose time is mostly the
    chain, were predicted 10-24 % too slow with up to 24 MB of bf16 activations and 3-6 %
    too fast from 40 MB on (H100 and H200, one rate for both)."""
    resident = sp.S.Zero
    if quantised and rates.l2_capacity != 0:
        resident = l2_resident_share(m * k * (activation_bytes + operand_bytes),
                                     rates.l2_capacity)
    time = chosen_gemm_time(m, n, k, operand_bytes, activation_bytes, rates, tiles, splits,
                            stream_k, kernels, resident)
    if quantised:
        op = quantise_op(m, k, activation_bytes, operand_bytes)
        nbytes = op.bytes + (m * k * activation_bytes if amax_pass else 0)
        # The cast's write stays in the cache; so does its read where the amax pass read
        # the activations first.
        cached = m * k * (operand_bytes + (activation_bytes if amax_pass else 0))
        kernels = 1 + (AMAX_PASS_LAUNCHES if amax_pass else 0)
        time = (time + hbm_stream(nbytes, resident * cached, rates, rates.quantise_efficiency)
                + kernels * rates.kernel_overhead)
    return time


#: The preprocessing kernel reads each Q, K, V row and writes it back (rotated, cached).
READ_AND_WRITE = 2


def prefill_preprocess_bytes(shape: AttentionShape) -> sp.Expr:
    """HBM bytes of the kernel that prepares Q, K and V for prefill attention."""
    rows = shape.batch * shape.q_len
    return READ_AND_WRITE * rows * (shape.heads * shape.d_qk
                                    + shape.kv_heads * (shape.d_qk + shape.d_v)) * shape.e


def prefill_attention_time(shape: AttentionShape, blocks: Blocks, rates: FlashRates,
                           preprocess_efficiency: sp.Expr) -> sp.Expr:
    """Prefill attention of a serving engine: the preprocessing kernel (at
    ``preprocess_efficiency`` of the HBM peak) and FlashAttention's forward kernel."""
    preprocess = (prefill_preprocess_bytes(shape) / (rates.hbm_bandwidth * preprocess_efficiency)
                  + rates.kernel_overhead)
    return preprocess + flash_forward_time(shape, blocks, rates)


def decode_attention_bytes(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr,
                           kv_heads: sp.Expr, head_dim: sp.Expr, kv_bytes: sp.Expr,
                           activation_bytes: sp.Expr) -> sp.Expr:
    """HBM bytes of one decode step's attention: the cache of ``kv_len`` earlier tokens and
    the new one, and each head's query and output row."""
    cache = batch * kv_heads * (kv_len + 1) * KV_TENSORS * head_dim * kv_bytes
    rows = batch * heads * QUERY_AND_OUTPUT * head_dim * activation_bytes
    return cache + rows


def decode_attention_flops(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr,
                           head_dim: sp.Expr) -> sp.Expr:
    """FLOPs of one decode step's attention: q.k and p.v over ``kv_len + 1`` keys per head."""
    return 2 * FLOPS_PER_MAC * batch * heads * (kv_len + 1) * head_dim


def decode_attention_time(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr, kv_heads: sp.Expr,
                          head_dim: sp.Expr, kv_bytes: sp.Expr, activation_bytes: sp.Expr,
                          hbm_bandwidth: sp.Expr, memory_efficiency: sp.Expr,
                          vector_flops: sp.Expr, vector_efficiency: sp.Expr,
                          multiprocessors: sp.Expr, block_overhead: sp.Expr,
                          kernel_overhead: sp.Expr) -> sp.Expr:
    """One decode step's attention kernel: the roofline of its cache traffic and of its dot
    products on the CUDA cores (``vector_flops``: the fp32 peak; decode kernels such as
    TensorRT-LLM's masked multi-head attention compute one query row per head, too few rows
    for the tensor cores), a fixed cost per wave of (sequence, KV head) blocks, and the
    kernel overhead."""
    nbytes = decode_attention_bytes(batch, kv_len, heads, kv_heads, head_dim, kv_bytes,
                                    activation_bytes)
    flops = decode_attention_flops(batch, kv_len, heads, head_dim)
    waves = sp.ceiling(batch * kv_heads / multiprocessors)
    roofline = sp.Max(nbytes / (hbm_bandwidth * memory_efficiency),
                      flops / (vector_flops * vector_efficiency), evaluate=False)
    return roofline + waves * block_overhead + kernel_overhead


#: TensorRT-LLM's XQA multi-block mode (its decoderXQAConstants.h and computeMultiBlockCount;
#: earlier releases took 512 tokens per block): one block per
#: ``XQA_HISTORY_TOKENS_PER_BLOCK`` tokens of a sequence's cache (kMinHistoryTokensPerBlock),
#: at most ``round(sqrt(XQA_SQRT_FACTOR * n))`` of the ``n`` that gives (the partial results'
#: final reduction would otherwise dominate), and no more blocks in all than
#: ``XQA_TARGET_WAVES`` waves of the multiprocessors (kTargetWaveFactor).
XQA_HISTORY_TOKENS_PER_BLOCK = 128
XQA_SQRT_FACTOR = 8
XQA_TARGET_WAVES = 8
#: Query heads of a group the grouped decode kernel's tensor-core MMA computes at least: the
#: narrow side of the instruction (8 of mma.m16n8k16; Hopper's XQA kernel swaps the operands
#: so that the cache tokens fill the wide side and pads the group to 8). Against padding to
#: 16 rows and against dot products on the CUDA cores it gave the least fitted loss summed
#: over the measured tables of five GPUs (docs/calibration.md).
DECODE_MMA_GROUP_ROWS = 8
#: Head elements of the query row that the grouped kernel's ``row_overhead`` is stated for
#: (:func:`decode_kernel_time`): a row of a 128-wide head, the commonest head size, so that
#: the fitted value reads as the fixed work of one such row.
DECODE_ROW_HEAD_ELEMENTS = 128
#: Head sizes the XQA kernels are compiled for: a head is computed padded to the first of
#: these that holds it (TensorRT-LLM, cpp/kernels/xqa/mha.h: ``headElems`` is 64, 128 or
#: 256 for ``validElemsPerHead`` up to each), while the cache holds and streams only its
#: own elements. A wider head (Blackwell's 512) is computed as it is.
XQA_HEAD_SIZES = (64, 128, 256)
#: The rules by which a decode kernel cuts each (sequence, head) cache into blocks
#: (:func:`decode_kernel_time`'s ``multi_block``).
DECODE_MULTI_BLOCK_RULES = ("fill", "xqa")
#: The query rows a grouped decode block's fixed work counts (:func:`decode_kernel_time`'s
#: ``fixed_rows_of``): the MMA's padded tile, or the group's own rows (Hopper's XQA kernel for
#: an fp8 cache loads the group's bf16 query rows and converts them to fp8, row by row:
#: mha_sm90.cu, ``F16QToF8Converter``, ``headGrpSize`` rows; the padding is only zeros in
#: shared memory).
DECODE_FIXED_ROWS = ("padded", "group")


#: TensorRT-LLM's masked multi-head attention keeps a block's scores in shared memory, 16
#: bytes for every 4 timesteps plus 4 bytes a timestep per byte of the 16-bit logits: 24
#: bytes per 4 timesteps (decoderMaskedMultiheadAttention.h, estimate_min_multi_block_count).
MMHA_TIMESTEPS_PER_ELEMENT = 4
MMHA_SHARED_BYTES_PER_ELEMENT = 24
#: Shared memory the attention op keeps back from a block's opt-in maximum (attentionOp.cpp:
#: ``mMaxSharedMemoryPerBlockOptin - 2048``), and what CUDA reserves of a multiprocessor's
#: shared memory, so that a block may opt in to the rest (CUDA C++ Programming Guide,
#: technical specifications: 1 KB per multiprocessor on compute capability 8.0 to 10.0).
MMHA_SHARED_RESERVE = 2048
CUDA_SHARED_RESERVED = 1024


def filling_chunks(batch: sp.Expr, kv_len: sp.Expr, readers: sp.Expr,
                   multiprocessors: sp.Expr, kv_chunk: sp.Expr) -> sp.Expr:
    """Blocks per (sequence, head) of a multi-block mode that cuts a cache into chunks of at
    least ``kv_chunk`` tokens only as far as they fill the idle multiprocessors (one wave)."""
    return largest(1, smallest(sp.ceiling((kv_len + 1) / kv_chunk),
                               sp.floor(multiprocessors / (batch * readers))))


def mmha_span(shared_memory: sp.Expr) -> sp.Expr:
    """The most timesteps (cached tokens) one block of TensorRT-LLM's masked multi-head
    attention holds the scores of: its opt-in shared memory (a multiprocessor's
    ``shared_memory`` less CUDA's reserve, less the attention op's reserve) over
    :data:`MMHA_SHARED_BYTES_PER_ELEMENT` per :data:`MMHA_TIMESTEPS_PER_ELEMENT` timesteps
    (27,476 on an A100, 38,400 on an H100)."""
    usable = shared_memory - CUDA_SHARED_RESERVED - MMHA_SHARED_RESERVE
    return MMHA_TIMESTEPS_PER_ELEMENT * sp.floor(usable / MMHA_SHARED_BYTES_PER_ELEMENT)


def mmha_chunks(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr, multiprocessors: sp.Expr,
                kv_chunk: sp.Expr, shared_memory: sp.Expr) -> sp.Expr:
    """Blocks per (sequence, query head) of TensorRT-LLM's masked multi-head attention
    (decoderMaskedMultiheadAttentionLaunch.h, multi_block_grid_setup, with the bounds the
    attention op sets, attentionOp.cpp): as many as fill one wave of the multiprocessors,
    ``ceil(SMs / (batch x heads))`` (the op's largest tile count), but no block shorter
    than ``kv_chunk`` tokens (one pass of its loop over the cache), and at least as many as
    keep each block's span within :func:`mmha_span`. The kernel's own target counts its
    resident blocks per multiprocessor too, but the op's largest count caps it, so the
    occupancy drops out."""
    span = sp.ceiling((kv_len + 1) / mmha_span(shared_memory))
    filling = smallest(sp.ceiling(multiprocessors / (batch * heads)),
                       sp.ceiling((kv_len + 1) / kv_chunk))
    return largest(1, span, filling)


def xqa_chunks(batch: sp.Expr, kv_len: sp.Expr, kv_heads: sp.Expr,
               multiprocessors: sp.Expr) -> sp.Expr:
    """Blocks per (sequence, KV head) of TensorRT-LLM's grouped-query XQA kernel: one per
    128 tokens of the ``kv_len + 1`` cached, at most the rounded square root of 8 times that
    many, and at most 8 waves of blocks in all (the constants above). Unlike
    :func:`filling_chunks` it cuts a long cache even where the sequences alone fill the
    multiprocessors: 16 sequences x 8 KV heads (128 blocks on 132 multiprocessors) run a
    1024-token cache as 8 blocks each, and every block pays its fixed work."""
    per_history = sp.floor((kv_len + 1) / XQA_HISTORY_TOKENS_PER_BLOCK)
    capped = smallest(per_history, sp.floor(sp.sqrt(XQA_SQRT_FACTOR * per_history)
                                            + sp.Rational(1, 2)))
    return largest(1, smallest(capped, sp.floor(XQA_TARGET_WAVES * multiprocessors
                                                / (batch * kv_heads))))


def xqa_head_elements(head_dim: sp.Expr) -> sp.Expr:
    """Head elements the grouped decode kernel computes for a head of ``head_dim``: the
    first of :data:`XQA_HEAD_SIZES` that holds it, a wider head as it is."""
    pieces = [(size, head_dim <= size) for size in XQA_HEAD_SIZES]
    return sp.Piecewise(*pieces, (head_dim, True))


def _decode_path_time(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr, kv_heads: sp.Expr,
                      head_dim: sp.Expr, kv_bytes: sp.Expr, activation_bytes: sp.Expr,
                      hbm_bandwidth: sp.Expr, memory_efficiency: sp.Expr,
                      dot_rate: sp.Expr, computed_heads: sp.Expr, multiprocessors: sp.Expr,
                      block_overhead: sp.Expr, chunks: sp.Expr,
                      readers: sp.Expr, block_stream_share: sp.Expr,
                      overlap: sp.Expr, cached_tensors: sp.Expr = KV_TENSORS,
                      token_time: sp.Expr = sp.S.Zero,
                      kv_tile: sp.Expr | None = None,
                      computed_head_dim: sp.Expr | None = None) -> sp.Expr:
    """Roofline and fixed work of a decode kernel whose blocks each serve one of
    ``readers`` heads per sequence (KV heads for a grouped kernel, query heads for the
    per-head fallback), each head's cache cut into ``chunks`` blocks, its dot products for
    ``computed_heads`` query heads per sequence (padding included) at ``dot_rate``;
    ``cached_tensors`` of the cache (K and V) streamed from HBM per token and KV head; a
    block reading its part of the cache in whole tiles of ``kv_tile`` tokens (None: token
    by token) and taking at least ``token_time`` per token it reads; its dot products over
    ``computed_head_dim`` head elements (None: ``head_dim``; a kernel compiled for a wider
    head computes the padding too)."""
    blocks = batch * readers * chunks
    # A tiled kernel loads and multiplies whole tiles, masking the tokens past the end, and
    # deals a sequence's tiles out to its blocks in turn (mha_sm90.cu: a block of
    # sub-sequence i takes tiles i, i + chunks, ...): the longest block takes the ceiling.
    if kv_tile is None:
        tokens, block_tokens = kv_len + 1, (kv_len + 1) / chunks
    else:
        tiles = sp.ceiling((kv_len + 1) / kv_tile)
        tokens, block_tokens = kv_tile * tiles, kv_tile * sp.ceiling(tiles / chunks)
    # The query heads of one KV head read its cache together (the fallback's blocks of one
    # group share it through the L2 cache): HBM streams each KV head's cache once.
    cache = batch * kv_heads * tokens * cached_tensors * head_dim * kv_bytes
    rows = batch * heads * QUERY_AND_OUTPUT * head_dim * activation_bytes
    busy = smallest(1, blocks / multiprocessors)
    # One block keeps only so many loads in flight: it streams at most
    # ``block_stream_share`` of one multiprocessor's share of the HBM bandwidth, so a few
    # blocks per sequence reach less than the occupied multiprocessors' share.
    stream_rate = smallest(hbm_bandwidth * memory_efficiency * busy,
                           blocks * block_stream_share * hbm_bandwidth / multiprocessors)
    flops = decode_attention_flops(batch, tokens - 1, computed_heads,
                                   head_dim if computed_head_dim is None else computed_head_dim)
    bounds = [(cache + rows) / stream_rate, flops / (dot_rate * busy)]
    if token_time != 0:
        # A block steps through its tiles one after another (load, two MMAs, the softmax
        # between them): with few blocks per multiprocessor that chain, not the bandwidth,
        # sets its pace.
        bounds.append(block_tokens * token_time)
    roofline = sp.Max(*bounds, evaluate=False)
    # Blocks finish at different times and the scheduler refills a multiprocessor as soon
    # as one does, so the blocks' fixed work spreads over all multiprocessors rather than
    # being paid per whole wave (the tables' smallest calls: 8 blocks of one sequence take
    # about 2 us less than 128 blocks of 16 sequences, both a single wave).
    fixed = blocks / multiprocessors * block_overhead
    # With several blocks resident on a multiprocessor, one block's fixed work runs while
    # another's loads are in flight: the two overlap in part, between their sum
    # (``overlap`` = 1) and the larger of them (``overlap`` -> infinity).
    return (roofline**overlap + fixed**overlap) ** (1 / overlap)


def decode_kernel_time(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr, kv_heads: sp.Expr,
                       head_dim: sp.Expr, kv_bytes: sp.Expr, activation_bytes: sp.Expr,
                       hbm_bandwidth: sp.Expr, memory_efficiency: sp.Expr,
                       vector_flops: sp.Expr, matmul_efficiency: sp.Expr,
                       fallback_efficiency: sp.Expr, multiprocessors: sp.Expr,
                       block_overhead: sp.Expr, fallback_block_overhead: sp.Expr,
                       kernel_overhead: sp.Expr, group_limit: sp.Expr,
                       kv_chunk: sp.Expr, fallback_kernel_overhead: sp.Expr,
                       block_stream_share: sp.Expr, overlap: sp.Expr,
                       matmul_flops: sp.Expr, multi_block: str = "fill",
                       row_overhead: sp.Expr = sp.S.Zero,
                       shared_memory: sp.Expr | None = None,
                       grouped_cache_tensors: sp.Expr = KV_TENSORS,
                       token_time: sp.Expr = sp.S.Zero,
                       row_token_time: sp.Expr = sp.S.Zero,
                       kv_tile: sp.Expr | None = None,
                       fallback_stream_share: sp.Expr | None = None,
                       rotary_dim: sp.Expr | None = None,
                       rope_kernel_overhead: sp.Expr = sp.S.Zero,
                       fixed_rows_of: str = "padded") -> sp.Expr:
    """One decode step's attention as a serving engine's decode kernels run it
    (TensorRT-LLM's grouped-query "XQA" kernel and its masked multi-head attention
    fallback; FlashDecoding, Dao et al. 2023):

    * a query group of 2 to ``group_limit`` heads per KV head runs the grouped kernel:
      one block per (sequence, KV head) streams that head's cache once for the whole group,
      its dot products on the tensor cores at ``matmul_efficiency`` of ``matmul_flops``
      (the dense bf16 peak), the group's query heads padded to the
      :data:`DECODE_MMA_GROUP_ROWS` of the MMA's narrow side, each block's fixed work taking
      ``block_overhead`` of a multiprocessor plus ``row_overhead`` per query row of
      :data:`DECODE_ROW_HEAD_ELEMENTS` head elements (the block's query tile, rows x head
      size: loading the query rows and converting them to the MMA's operand type,
      normalising the accumulator and writing the output rows, and in multi-block mode its
      partial rows; TensorRT-LLM's XQA kernels mha.cu and mha_sm90.cu), the rows the padded
      tile's (``fixed_rows_of`` "padded") or the group's own ("group"), the kernel
      ``kernel_overhead``; the kernels are compiled for heads of 64, 128 or 256 elements
      and compute a head padded to the first that holds it (:func:`xqa_head_elements`: a
      192-wide head as 256), streaming only its own elements;
    * where the rotary span ``rotary_dim`` is given and wider than the head, the grouped
      kernel cannot rotate the new query and key itself and the QKV preprocessing kernel
      runs before it, ``rope_kernel_overhead`` more (Hopper's kernel for an fp8 cache
      rotates them itself where the span fits; a serving engine's rotary span never
      exceeds its head, so only a measurement with a wider span, the kernel database's,
      sees it);
    * multi-head attention (a group of one) and a larger group run the per-head kernel: one
      block per (sequence, query head), the blocks of one group sharing their KV head's
      cache through the L2 cache, its dot products on the CUDA cores (one query row per
      block, too few for the tensor cores) at ``fallback_efficiency`` of ``vector_flops``
      (the fp32 peak),
      each block's fixed work ``fallback_block_overhead``, the kernel
      ``fallback_kernel_overhead`` (a kernel of its own, with its own set-up: with an fp8
      cache the tables show the grouped kernel's smallest calls 3-4 us faster than the
      per-head kernel's);
    * a long cache is cut into blocks of its own (multi-block mode): the per-head kernel's
      into chunks of at least ``kv_chunk`` tokens as far as they fill one wave of the
      multiprocessors, and into as many as keep a block's span within what its
      ``shared_memory`` (per multiprocessor, bytes) holds the scores of (TensorRT-LLM's
      rule, :func:`mmha_chunks`; None: no such bound, :func:`filling_chunks`); the grouped
      kernel's by filling one wave (``multi_block`` "fill") or by TensorRT-LLM's XQA rule,
      one block per 128 cached tokens up to 8 waves ("xqa", :func:`xqa_chunks`);
    * the grouped kernel streams ``grouped_cache_tensors`` tensors of the cache per token
      and KV head: K and V (2) where the cache holds both, as a serving engine's does; a
      measurement on a K-only cache pool reads its "V" from K's lines, 1 (the kernel
      database's older TensorRT-LLM tables: solver.studies.database_fit.
      grouped_cache_tensors);
    * with fewer blocks than multiprocessors only that fraction of the chip streams and
      computes (occupancy), and no block streams faster than ``block_stream_share`` of one
      multiprocessor's share of the HBM bandwidth (the per-head kernel's blocks no faster
      than ``fallback_stream_share`` of it, where given: a different kernel keeps a
      different number of loads in flight);
    * the grouped kernel reads a block's part of the cache in whole tiles of ``kv_tile``
      tokens where given (the Hopper XQA kernel for an fp8 cache, mha_sm90.cu, loads and
      multiplies 64-token tiles, ``gemm0CtaTileNbTokens``, masking the tokens past the
      end), and a block takes at least ``token_time + row_token_time x padded query rows``
      per token it reads: its tiles run one after another (load, the two MMAs and the
      softmax between them), so a few blocks per sequence are paced by that chain, not by
      the bandwidth. On the H100's fp8 table one sequence of one KV head reads a
      131,072-token cache in 31 us with 64- and with 128-wide heads: per block and token
      the same time for half the bytes;
    * a block's fixed work (query rows, softmax rescale, output rows) spreads over the
      multiprocessors: ``blocks / multiprocessors`` times the cost per block, and overlaps
      the stream in part: the ``overlap``-norm of the two (1: their sum)."""
    common = (batch, kv_len, heads, kv_heads, head_dim, kv_bytes, activation_bytes,
              hbm_bandwidth, memory_efficiency)
    if multi_block not in DECODE_MULTI_BLOCK_RULES:
        raise ValueError(f"multi_block must be one of {DECODE_MULTI_BLOCK_RULES}, "
                         f"not {multi_block!r}")
    if fixed_rows_of not in DECODE_FIXED_ROWS:
        raise ValueError(f"fixed_rows_of must be one of {DECODE_FIXED_ROWS}, "
                         f"not {fixed_rows_of!r}")
    grouped_chunks = (xqa_chunks(batch, kv_len, kv_heads, multiprocessors)
                      if multi_block == "xqa"
                      else filling_chunks(batch, kv_len, kv_heads, multiprocessors, kv_chunk))
    padded_group = DECODE_MMA_GROUP_ROWS * sp.ceiling(heads / (kv_heads * DECODE_MMA_GROUP_ROWS))
    # A grouped block's fixed work grows with its query tile (padded rows x head size): at
    # 16384 blocks of one cached token (H100, fp8 cache, 128-wide heads) groups of 2, 8, 12
    # and 16 heads take 178, 218, 285 and 334 us, 64-wide heads of 2 take 130 us.
    head_elements = xqa_head_elements(head_dim)
    # The block's query tile: padded rows x head size, or, where the kernel loads and
    # converts only the group's own rows (``fixed_rows_of`` "group"), those rows.
    fixed_rows = padded_group if fixed_rows_of == "padded" else heads / kv_heads
    tile_rows = fixed_rows * head_elements / DECODE_ROW_HEAD_ELEMENTS
    grouped = _decode_path_time(*common, matmul_flops * matmul_efficiency,
                                kv_heads * padded_group, multiprocessors,
                                block_overhead + row_overhead * tile_rows, grouped_chunks,
                                kv_heads, block_stream_share, overlap, grouped_cache_tensors,
                                token_time + row_token_time * padded_group, kv_tile,
                                head_elements)
    if rotary_dim is not None:
        # Hopper's grouped kernel rotates the new query and key itself only where the rotary
        # span fits in the head (TensorRT-LLM, decoderXQAImplJIT.cpp: in-kernel RoPE needs
        # rotary_embedding_dim <= head_size); otherwise the QKV preprocessing kernel runs
        # first, a launch of its own.
        grouped += sp.Piecewise((rope_kernel_overhead, rotary_dim > head_dim), (0, True))
    fallback_chunks = (
        filling_chunks(batch, kv_len, heads, multiprocessors, kv_chunk) if shared_memory is None
        else mmha_chunks(batch, kv_len, heads, multiprocessors, kv_chunk, shared_memory))
    fallback = _decode_path_time(*common, vector_flops * fallback_efficiency, heads,
                                 multiprocessors, fallback_block_overhead, fallback_chunks,
                                 heads, (block_stream_share if fallback_stream_share is None
                                         else fallback_stream_share), overlap)
    grouping = sp.And(heads > kv_heads, heads <= group_limit * kv_heads)
    return sp.Piecewise((grouped + kernel_overhead, grouping),
                        (fallback + fallback_kernel_overhead, True))


#: Query rows of one FlashMLA decode tile: a sequence's query heads (all sharing its one
#: latent "KV head") are computed 64 rows at a time, a smaller group padded to 64; and cached
#: tokens per page and per main-loop step of a tile (deepseek-ai/FlashMLA,
#: csrc/sm90/decode/dense/config.h: BLOCK_SIZE_M = 64, PAGE_BLOCK_SIZE = 64; TensorRT-LLM
#: runs its copy, cpp/tensorrt_llm/kernels/flashMLA, with 64-token KV-cache pages).
MLA_QUERY_TILE_ROWS = 64
MLA_KV_BLOCK_TOKENS = 64
#: The MLA decode kernels' query tilings (:func:`mla_decode_time`'s ``tiling``): FlashMLA's
#: 64-row tiles (Hopper), the tile TensorRT-LLM's trtllm-gen kernels pick per call
#: (Blackwell, :func:`trtllm_gen_mla_query_tile`), or fmha_v2's tiled flash-attention kernel
#: with the query heads as its rows (Ampere and Ada).
MLA_TILINGS = ("flashmla", "trtllm-gen", "fmha-v2")
#: Value columns of one fmha_v2 CTA: a value row wider than this is cut into slices, one CTA
#: each, every slice's CTA computing the scores again (cpp/kernels/fmha_v2, the kernel
#: traits' output tile of at most 256 columns, and the launch grid's ``(dv + 255) / 256``
#: CTAs per query tile in fused_multihead_attention_v2.cpp).
FMHA_V2_VALUE_SLICE = 256
#: TensorRT-LLM's choice of trtllm-gen MLA generation kernel (cpp/tensorrt_llm/kernels/
#: trtllmGenKernels/fmha/fmhaKernels.h, selectMlaGenerationKernel and
#: useSwapsMmaAbMlaGenKernel): the low-latency kernel (operands swapped, query tiles of 8
#: rows up to 8 heads, else 16) for up to 32 query heads per KV head, or where its blocks
#: (sequences x 16-row tiles, each cache cut into at most one piece per 256 tokens and no
#: more pieces than fill the multiprocessors) fit in one wave with at most 1,024 cached
#: tokens each; otherwise the high-throughput kernel's 64-row tiles.
TRTLLM_GEN_MLA_NARROW_ROWS = 8
TRTLLM_GEN_MLA_SWAP_ROWS = 16
TRTLLM_GEN_MLA_SWAP_HEADS = 32
TRTLLM_GEN_MLA_STEP_TOKENS = 256
TRTLLM_GEN_MLA_SWAP_SPAN = 1024
TRTLLM_GEN_MLA_WIDE_ROWS = 64


def trtllm_gen_mla_query_tile(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr,
                              multiprocessors: sp.Expr) -> sp.Expr:
    """Query rows per tile of the trtllm-gen MLA generation kernel TensorRT-LLM runs for
    ``batch`` sequences of ``kv_len`` cached tokens (and the new one) and ``heads`` query
    heads sharing the latent cache (the rule of the constants above)."""
    tokens = kv_len + 1
    ctas = batch * sp.ceiling(heads / TRTLLM_GEN_MLA_SWAP_ROWS)
    pieces = smallest(sp.ceiling(tokens / TRTLLM_GEN_MLA_STEP_TOKENS),
                      largest(1, sp.floor(multiprocessors / ctas)))
    swapped = sp.And(sp.ceiling(tokens / pieces) <= TRTLLM_GEN_MLA_SWAP_SPAN,
                     ctas <= multiprocessors)
    return sp.Piecewise((TRTLLM_GEN_MLA_NARROW_ROWS, heads <= TRTLLM_GEN_MLA_NARROW_ROWS),
                        (TRTLLM_GEN_MLA_SWAP_ROWS, heads <= TRTLLM_GEN_MLA_SWAP_HEADS),
                        (TRTLLM_GEN_MLA_SWAP_ROWS, swapped),
                        (TRTLLM_GEN_MLA_WIDE_ROWS, True))


def mla_decode_time(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr, kv_lora: sp.Expr,
                    rope: sp.Expr, kv_bytes: sp.Expr, activation_bytes: sp.Expr,
                    hbm_bandwidth: sp.Expr, memory_efficiency: sp.Expr,
                    matmul_flops: sp.Expr, matmul_efficiency: sp.Expr,
                    multiprocessors: sp.Expr, split_overhead: sp.Expr,
                    kernel_overhead: sp.Expr, tiling: str = "flashmla",
                    tile_reread: sp.Expr = sp.S.Zero,
                    step_time: sp.Expr = sp.S.Zero) -> sp.Expr:
    """One decode step's multi-head latent attention (DeepSeek-V2/V3 MLA in its absorbed
    form) on one rank's ``heads`` query heads, as FlashMLA runs it (deepseek-ai/FlashMLA; the
    copy TensorRT-LLM runs on Hopper, cpp/tensorrt_llm/kernels/flashMLA):

    * every sequence caches one latent row per token, ``kv_lora + rope`` elements of
      ``kv_bytes`` (512 + 64 in DeepSeek-V3): the scores take the whole row, the values its
      first ``kv_lora`` elements, and all query heads of the sequence share it;
    * the query heads run in tiles of :data:`MLA_QUERY_TILE_ROWS` rows (padded); each tile's
      blocks step through the cache one :data:`MLA_KV_BLOCK_TOKENS`-token page at a time,
      both dot products on the tensor cores (``matmul_efficiency`` of ``matmul_flops``);
    * the cache is cut into spans across ``multiprocessors / tiles`` blocks per tile
      ("num_sm_parts", sms // kv_heads // ceil(rows / 64)), the pages of all sequences dealt
      out evenly (get_mla_metadata's tile scheduler: a sequence may be split across blocks,
      a block may take several sequences); each block pays ``split_overhead`` per sequence
      piece it holds (loading its query tile, normalising and writing its partial output for
      the combine kernel); the tiles of one span read the same pages, from L2 after the
      first but for ``tile_reread`` of them (0: every later tile hits L2; 1: each reads
      the cache from HBM again);
    * ``tiling`` "trtllm-gen": Blackwell's TensorRT-LLM runs trtllm-gen kernels instead,
      whose query tile it picks per call (:func:`trtllm_gen_mla_query_tile`: 8 or 16 rows
      for up to 32 heads or a wave of short pieces, 64 otherwise); the rest of the model as
      above, with that tile;
    * ``tiling`` "fmha-v2": on Ampere and Ada, which have neither kernel, TensorRT-LLM runs
      fmha_v2's tiled flash-attention kernel with the query heads as its query rows
      (cpp/tensorrt_llm/common/attentionOp.cpp, mlaGeneration's last branch;
      fmhaRunner.cpp: tiled kernels for the 576 / 512 heads; setup.py: 64 query rows and 64
      cached tokens per step). It does not cut a cache into spans: each CTA (a query tile and
      one :data:`FMHA_V2_VALUE_SLICE`-column slice of the values) walks its sequence's whole
      cache, the slices computing the scores again; the CTAs on the busiest multiprocessor
      share its tensor cores, and one CTA alone takes at least ``step_time`` per page (its
      loop's loads, MMAs and online softmax run one after another: a single sequence's step
      takes the same time for 1 to 64 heads); the CTAs after a sequence's first read its
      pages from L2 but for ``tile_reread`` of them; each CTA pays ``split_overhead`` once.
      The preprocessing (mla_rope_generation) rotates the query rows' rotary part in place;
      the attention reads the query rows and writes the output rows;
    * a page step of a block takes the longer of streaming the page at its share of the HBM
      bandwidth (the blocks with work share it) and its MMAs at one multiprocessor's share of
      the tensor-core rate (FlashMLA overlaps the next page's loads with this page's MMAs);
    * before it, TensorRT-LLM's MLA generation preprocessing (mla_rope_generation) reads the
      query rows in the activations' format and writes them in the cache's; the attention
      kernel reads them and writes ``kv_lora``-wide output rows: memory-bound traffic at the
      same achieved bandwidth; ``kernel_overhead`` covers the step's launches (preprocessing,
      scheduler metadata, attention, combine)."""
    if tiling not in MLA_TILINGS:
        raise ValueError(f"tiling must be one of {MLA_TILINGS}, not {tiling!r}")
    if tiling == "fmha-v2":
        return _fmha_v2_mla_decode_time(batch, kv_len, heads, kv_lora, rope, kv_bytes,
                                        activation_bytes, hbm_bandwidth, memory_efficiency,
                                        matmul_flops, matmul_efficiency, multiprocessors,
                                        split_overhead, kernel_overhead, tile_reread,
                                        step_time)
    tile = (sp.Integer(MLA_QUERY_TILE_ROWS) if tiling == "flashmla"
            else trtllm_gen_mla_query_tile(batch, kv_len, heads, multiprocessors))
    page = sp.Integer(MLA_KV_BLOCK_TOKENS)
    tiles = sp.ceiling(heads / tile)
    parts = largest(1, sp.floor(multiprocessors / tiles))
    pages = sp.ceiling((kv_len + 1) / page)
    # The busiest block's page steps and sequence pieces (the scheduler balances the pages).
    steps = sp.ceiling(batch * pages / parts)
    pieces = sp.ceiling(batch / parts)
    active = smallest(parts, batch * pages)
    row = kv_lora + rope
    page_bytes = page * row * kv_bytes
    page_flops = FLOPS_PER_MAC * tile * page * (row + kv_lora)
    # The tiles of one span read the same pages: the first from HBM, the others from L2 but
    # for ``tile_reread`` of them.
    reads = 1 + tile_reread * (tiles - 1)
    stream = page_bytes * active * reads / (hbm_bandwidth * memory_efficiency)
    mma = page_flops * multiprocessors / (matmul_flops * matmul_efficiency)
    # Query rows: read in the activations' format and written in the cache's by the
    # preprocessing, read again by the attention kernel; output rows written.
    rows = batch * heads * (row * (activation_bytes + 2 * kv_bytes) + kv_lora * activation_bytes)
    return (kernel_overhead + rows / (hbm_bandwidth * memory_efficiency)
            + steps * sp.Max(stream, mma, evaluate=False) + pieces * split_overhead)


def _fmha_v2_mla_decode_time(batch: sp.Expr, kv_len: sp.Expr, heads: sp.Expr,
                             kv_lora: sp.Expr, rope: sp.Expr, kv_bytes: sp.Expr,
                             activation_bytes: sp.Expr, hbm_bandwidth: sp.Expr,
                             memory_efficiency: sp.Expr, matmul_flops: sp.Expr,
                             matmul_efficiency: sp.Expr, multiprocessors: sp.Expr,
                             cta_overhead: sp.Expr, kernel_overhead: sp.Expr,
                             tile_reread: sp.Expr, step_time: sp.Expr) -> sp.Expr:
    """:func:`mla_decode_time`'s "fmha-v2" kernel: one CTA per query tile and value slice
    of a sequence, walking the whole cache one page at a time."""
    tile = sp.Integer(MLA_QUERY_TILE_ROWS)
    page = sp.Integer(MLA_KV_BLOCK_TOKENS)
    slices = sp.ceiling(kv_lora / FMHA_V2_VALUE_SLICE)
    per_sequence = sp.ceiling(heads / tile) * slices
    resident = sp.ceiling(batch * per_sequence / multiprocessors)
    pages = sp.ceiling((kv_len + 1) / page)
    row = kv_lora + rope
    # The busiest multiprocessor's CTAs share its tensor cores: each page step, every one
    # of them computes the scores (the whole row) and its slice of the values.
    mma = (resident * FLOPS_PER_MAC * tile * page * (row + kv_lora / slices) * multiprocessors
           / (matmul_flops * matmul_efficiency))
    # A sequence's first CTA reads a page from HBM, the others from L2 but for
    # ``tile_reread`` of them.
    reads = batch * (1 + tile_reread * (per_sequence - 1))
    stream = page * row * kv_bytes * reads / (hbm_bandwidth * memory_efficiency)
    # The preprocessing reads and writes the query rows' rotary part; the attention reads
    # the query rows and writes the output rows.
    rows = batch * heads * (row + kv_lora + READ_AND_WRITE * rope) * activation_bytes
    return (kernel_overhead + rows / (hbm_bandwidth * memory_efficiency)
            + pages * sp.Max(mma, stream, step_time, evaluate=False)
            + resident * cta_overhead)


def moe_layer_time(tokens: sp.Expr, hidden: sp.Expr, inter: sp.Expr, topk: sp.Expr,
                   experts: sp.Expr, tp: sp.Expr, ep: sp.Expr, matrices: sp.Expr,
                   weight_bytes: sp.Expr, activation_bytes: sp.Expr, tile_rows: sp.Expr,
                   peak_flops: sp.Expr, matmul_efficiency: sp.Expr, hbm_bandwidth: sp.Expr,
                   memory_efficiency: sp.Expr, permute_efficiency: sp.Expr,
                   overhead: sp.Expr) -> sp.Expr:
    """One rank's MoE layer (router output to combined tokens) as serving engines run it.

    ``tokens`` tokens each pick ``topk`` of ``experts`` experts; the rank holds
    ``experts / ep`` of them, each ``inter / tp`` wide, with ``matrices`` weight matrices
    (3 for a gated MLP: gate, up, down; 2 without a gate). With balanced routing the rank's
    experts receive ``tokens * topk / ep`` token copies, spread over as many of its experts
    as there are copies. The grouped GEMMs run each touched expert's rows padded to
    ``tile_rows`` (one tile of rows per group at least: Megablocks, Gale et al. MLSys 2023,
    Sec. 3; the grouped-GEMM kernels of TensorRT-LLM and vLLM), bounded by the compute or by
    streaming the touched experts' weights; the dispatch permutation and the weighted combine
    read and write each token copy's hidden vector; ``overhead`` is the fixed cost of the
    layer's kernels (routing, sorting, launches)."""
    local = experts / ep
    copies = tokens * topk / ep
    touched = sp.Min(local, copies)
    rows = touched * tile_rows * sp.ceiling(copies / touched / tile_rows)
    width = inter / tp
    flops = FLOPS_PER_MAC * matrices * rows * hidden * width
    weights = touched * matrices * hidden * width * weight_bytes
    permute = READ_AND_WRITE * copies * hidden * activation_bytes
    gemms = sp.Max(flops / (peak_flops * matmul_efficiency),
                   weights / (hbm_bandwidth * memory_efficiency), evaluate=False)
    return gemms + permute / (hbm_bandwidth * permute_efficiency) + overhead


def collective_time(op: str, algorithm: str, size: sp.Expr, ranks: sp.Expr,
                    latency: sp.Expr, bandwidth: sp.Expr) -> sp.Expr:
    """Pipelined alpha-beta time of ``algorithm`` of collective ``op`` on one level."""
    return algorithms.pipelined_time(algorithms.find(op, algorithm), size, ranks, latency,
                                      bandwidth)
