"""The attention core: IO-aware FlashAttention and the materialised softmax it replaces.

FlashAttention (Dao et al., NeurIPS 2022, Alg. 1-2) tiles ``softmax(Q K^T) V`` so that the
``s x s`` score matrix never reaches HBM: a block of ``B_r`` query rows stays in on-chip SRAM
while blocks of ``B_c`` key/value rows stream past it; the backward pass recomputes the scores
from Q, K and the saved log-sum-exp instead of reading them back. Block sizes follow Alg. 1:
``B_c = floor(M / 4d)``, ``B_r = min(B_c, d)`` for an SRAM of ``M`` elements, which gives the
HBM traffic of Theorem 2, ``Theta(N^2 d^2 / M)``. The loop order is FlashAttention-2's (Dao 2023,
Sec. 3.1: query blocks outermost, so Q is read and O written once and K, V are re-read per
query block; backward: key blocks outermost with dQ accumulated in fp32).

FlashAttention-2 and FlashAttention-3 (Shah et al. 2024: warp specialisation, ping-pong of
GEMM and softmax, Hopper TMA/WGMMA) differ in the fraction of the tensor-core peak they reach,
so each has its own forward and backward efficiency; the hardware entry says which one its
software stack runs. Every (sequence, head, query block) tile pays a fixed cost per wave of
tiles (forward: loading Q, rescaling and writing O; backward: loading K and V, writing dK and
dV): the ``forward_tile_overhead`` and ``backward_tile_overhead`` parameters.

Heads are generic: ``d_qk`` for queries and keys, ``d_v`` for values, ``kv_heads`` K/V heads
shared by the query heads (MHA, GQA, MQA; multi-head latent attention supplies its own dims).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from .transformer import Dims, Op

#: FLOPs of one multiply-accumulate.
FLOPS_PER_MAC = 2
#: Elements per row of Dao et al.'s SRAM budget in Alg. 1 (Q, K, V and O blocks): B_c = M / 4d.
SRAM_ROW_BLOCKS = 4
#: Smallest useful block: the rows of one tensor-core MMA tile (m16n8k16 on Ampere/Hopper).
MIN_BLOCK = 16
#: Bytes of the fp32 softmax statistics kept per query row (log-sum-exp; backward also D_i).
STAT_BYTES = 4
#: Bytes per element of the fp32 dQ accumulator the backward pass reads and writes per key
#: block (Dao 2023, Alg. 2).
ACCUMULATOR_BYTES = 4
#: Backward GEMMs over forward GEMMs: recomputed S = QK^T, dV = P^T dO, dP = dO V^T,
#: dQ = dS K, dK = dS^T Q (Dao et al. 2022, Alg. 4).
BACKWARD_QK_GEMMS = 3
BACKWARD_V_GEMMS = 2
#: Fraction of the score matrix that causal masking leaves to compute (lower triangle).
CAUSAL_FRACTION = sp.Rational(1, 2)
#: Tensors a pass both reads and writes (K and V read, dK and dV written; the fp32 dQ
#: accumulator read and added back; O and dO read by the pre-pass).
READ_AND_WRITE = 2
#: Codes of the attention implementations a training job can run.
KINDS: tuple[str, ...] = ("materialized", "flash")


class TileDoesNotFit(ValueError):
    """The on-chip SRAM cannot hold one FlashAttention tile of the smallest block size."""


@dataclass(frozen=True)
class Blocks:
    """Query-block rows ``q`` (B_r) and key/value-block rows ``kv`` (B_c)."""

    q: int
    kv: int


def block_sizes(sram_bytes: float, d_qk: int, d_v: int, element_bytes: float) -> Blocks:
    """FlashAttention block sizes from the SRAM per multiprocessor (Dao et al. 2022, Alg. 1).

    ``B_c = floor(M / 4d)`` and ``B_r = min(B_c, d)`` with ``M`` the SRAM in elements and ``d``
    the wider of the two head dims. Raises :class:`TileDoesNotFit` when ``B_c`` would be below
    one MMA tile.
    """
    d = max(d_qk, d_v)
    elements = sram_bytes / element_bytes
    kv = math.floor(elements / (SRAM_ROW_BLOCKS * d))
    if kv < MIN_BLOCK:
        need = SRAM_ROW_BLOCKS * d * MIN_BLOCK * element_bytes
        raise TileDoesNotFit(
            f"one FlashAttention tile of {MIN_BLOCK} rows at head dim {d} needs "
            f"{need / 1024:g} KiB of SRAM; the hardware has {sram_bytes / 1024:g} KiB")
    return Blocks(q=min(kv, d), kv=kv)


@dataclass(frozen=True)
class AttentionShape:
    """One attention call on one GPU: ``batch`` sequences, ``heads`` query heads sharing
    ``kv_heads`` K/V heads, ``q_len`` queries against ``kv_len`` keys, ``e`` bytes per
    element."""

    batch: sp.Expr
    heads: sp.Expr
    kv_heads: sp.Expr
    q_len: sp.Expr
    kv_len: sp.Expr
    d_qk: sp.Expr
    d_v: sp.Expr
    e: sp.Expr
    causal: bool = True


@dataclass(frozen=True)
class FlashRates:
    """Symbols of one accelerator's attention-kernel model."""

    peak_flops: sp.Expr
    forward_efficiency: sp.Expr
    backward_efficiency: sp.Expr
    hbm_bandwidth: sp.Expr
    memory_efficiency: sp.Expr
    multiprocessors: sp.Expr
    forward_tile_overhead: sp.Expr
    backward_tile_overhead: sp.Expr
    kernel_overhead: sp.Expr
    #: L2 cache bytes; 0 takes every K/V re-read from HBM (Dao et al.'s two-level model).
    l2_cache: sp.Expr = sp.S.Zero
    #: Whether the compute time counts the idle multiprocessors of a partial last wave of
    #: tiles (tile and wave quantisation, as formulations.compute does for GEMMs); False
    #: spreads the FLOPs over the whole chip (the model the FlashAttention fits of kernel
    #: files use).
    wave_quantised: bool = False
    #: Scores per second the whole chip's non-tensor units run the online softmax at
    #: (exponential, max, rescale; in fp8 also the requantisation of P): the forward kernel's
    #: elementwise work per score, which the tensor cores do not do. FlashAttention-3 (Shah
    #: et al. 2024, Sec. 3.1) names it: the H100 has 989 TFLOP/s of bf16 matmul but 3.9
    #: TFLOP/s of special functions, so for head dims of 64-128 the exponentials take a
    #: large share of the time -- more the faster the tensor cores (fp8, Blackwell). None:
    #: no such term (the FlashAttention efficiencies fitted as one all-in rate).
    softmax_rate: sp.Expr | None = None


def _masked(shape: AttentionShape) -> sp.Expr:
    return CAUSAL_FRACTION if shape.causal else sp.Integer(1)


def forward_flops(shape: AttentionShape) -> sp.Expr:
    """Model FLOPs of the forward pass: ``Q K^T`` and ``P V``, halved by a causal mask.

    For ``d_qk = d_v = d`` and ``q_len = kv_len = s`` this is ``4 b h s^2 d`` (x 1/2 causal),
    the count of Narayanan et al. 2021 and of Dao et al. 2022, Sec. 4.
    """
    pairs = shape.batch * shape.heads * shape.q_len * shape.kv_len
    return FLOPS_PER_MAC * pairs * (shape.d_qk + shape.d_v) * _masked(shape)


def backward_flops(shape: AttentionShape) -> sp.Expr:
    """Model FLOPs of FlashAttention's backward pass, which recomputes ``S = Q K^T``
    (five GEMMs: 2.5x the forward for equal head dims)."""
    pairs = shape.batch * shape.heads * shape.q_len * shape.kv_len
    return (FLOPS_PER_MAC * pairs * (BACKWARD_QK_GEMMS * shape.d_qk
                                     + BACKWARD_V_GEMMS * shape.d_v) * _masked(shape))


def materialized_backward_flops(shape: AttentionShape) -> sp.Expr:
    """Backward FLOPs without recomputation: dV, dP, dQ, dK (twice the forward)."""
    return backward_flops(shape) - FLOPS_PER_MAC * shape.batch * shape.heads * (
        shape.q_len * shape.kv_len * shape.d_qk * _masked(shape))


def _visited(shape: AttentionShape, blocks: Blocks) -> sp.Expr:
    """Fraction of key blocks a query block visits: all, or with a causal mask the lower
    triangle plus the diagonal blocks, which are computed whole."""
    if not shape.causal:
        return sp.Integer(1)
    return sp.Min(1, CAUSAL_FRACTION * (1 + blocks.q / shape.kv_len))


def query_blocks(shape: AttentionShape, blocks: Blocks) -> sp.Expr:
    """Tiles of the forward kernel: one per (sequence, head, query block)."""
    return shape.batch * shape.heads * sp.ceiling(shape.q_len / blocks.q)


def key_blocks(shape: AttentionShape, blocks: Blocks) -> sp.Expr:
    """Tiles of the backward kernel: one per (sequence, head, key block)."""
    return shape.batch * shape.heads * sp.ceiling(shape.kv_len / blocks.kv)


def forward_bytes(shape: AttentionShape, blocks: Blocks,
                  reread_misses: sp.Expr = sp.S.One) -> sp.Expr:
    """HBM bytes of the FlashAttention-2 forward pass (Dao et al. 2022, Thm. 2 with FA-2's
    loop order): Q read and O written once, the log-sum-exp written, and every query block
    re-reading the K and V blocks it visits: ``Theta(N^2 d^2 / M)``. ``reread_misses`` is the
    fraction of those re-reads that reach HBM (1 in Dao et al.'s model; see
    :func:`reread_misses`)."""
    b, h = shape.batch, shape.heads
    once = shape.e * b * h * shape.q_len * (shape.d_qk + shape.d_v)
    stats = STAT_BYTES * b * h * shape.q_len
    rereads = (shape.e * b * h * sp.ceiling(shape.q_len / blocks.q) * shape.kv_len
               * (shape.d_qk + shape.d_v) * _visited(shape, blocks))
    return once + stats + rereads * reread_misses


def reread_misses(shape: AttentionShape, blocks: Blocks, rates: FlashRates) -> sp.Expr:
    """Fraction of the K/V re-reads that miss a GPU's L2 cache: 0 while the K and V of the
    heads in flight fit in it, else 1.

    FlashAttention-2 runs the query blocks of one head on neighbouring thread blocks (its grid
    has the query block fastest, Dao 2023 Sec. 3.2), so the multiprocessors work on
    ``SMs / query blocks per head`` heads at a time and re-read only their K and V.
    """
    if rates.l2_cache == 0:
        return sp.Integer(1)
    heads_in_flight = sp.Max(1, rates.multiprocessors / sp.ceiling(shape.q_len / blocks.q))
    kv_bytes = heads_in_flight * shape.kv_len * (shape.d_qk + shape.d_v) * shape.e
    return sp.Piecewise((sp.Integer(0), kv_bytes <= rates.l2_cache), (sp.Integer(1), True))


def backward_bytes(shape: AttentionShape, blocks: Blocks,
                   reread_misses: sp.Expr = sp.S.One) -> sp.Expr:
    """HBM bytes of the FlashAttention-2 backward pass: K, V read and dK, dV written once per
    key block; per visited (key block, query block) pair Q, dO and the statistics are read and
    the fp32 dQ accumulator read and written (the part of them that misses L2,
    ``reread_misses``); plus the pre-pass ``D = rowsum(dO * O)``."""
    b, h = shape.batch, shape.heads
    kv_once = READ_AND_WRITE * shape.e * b * h * shape.kv_len * (shape.d_qk + shape.d_v)
    passes = b * h * sp.ceiling(shape.kv_len / blocks.kv) * _visited(shape, blocks)
    per_pass = shape.q_len * (shape.e * (shape.d_qk + shape.d_v) + READ_AND_WRITE * STAT_BYTES
                              + READ_AND_WRITE * ACCUMULATOR_BYTES * shape.d_qk)
    pre_pass = b * h * shape.q_len * (READ_AND_WRITE * shape.e * shape.d_v + STAT_BYTES)
    # The first pass over Q, dO and dQ is compulsory; the others are re-reads.
    rereads = sp.Max(0, passes - b * h) * per_pass
    return kv_once + b * h * per_pass + rereads * reread_misses + pre_pass


def _kernel_time(flops: sp.Expr, bytes_: sp.Expr, efficiency: sp.Expr, tiles: sp.Expr,
                 tile_overhead: sp.Expr, rates: FlashRates,
                 scores: sp.Expr = sp.S.Zero) -> sp.Expr:
    """Roofline of one fused kernel plus its per-wave tile cost and launch overhead; with a
    ``softmax_rate``, the kernel's ``scores`` add their elementwise work to the compute time
    (added, not overlapped: on TensorRT-LLM's tables a maximum or a norm of the two fitted
    no better, and the added rate comes out near the special-function units' throughput)."""
    waves = sp.ceiling(tiles / rates.multiprocessors)
    occupied = sp.Integer(1)
    if rates.wave_quantised:
        # Only ``tiles`` of the ``waves x multiprocessors`` tile slots do work.
        occupied = tiles / (waves * rates.multiprocessors)
    rate = rates.peak_flops * efficiency * occupied
    compute = flops / rate + waves * tile_overhead
    if rates.softmax_rate is not None:
        compute = compute + scores / (rates.softmax_rate * occupied)
    memory = bytes_ / (rates.hbm_bandwidth * rates.memory_efficiency)
    return sp.Max(compute, memory, evaluate=False) + rates.kernel_overhead


def executed(shape: AttentionShape, blocks: Blocks) -> sp.Expr:
    """Executed over model FLOPs: the diagonal blocks of a causal mask are computed whole."""
    return _visited(shape, blocks) / _masked(shape)


def forward_scores(shape: AttentionShape, blocks: Blocks) -> sp.Expr:
    """Scores the forward kernel exponentiates: every (query, key) pair of the key blocks
    it visits (with a causal mask the diagonal blocks whole, like their FLOPs)."""
    return (shape.batch * shape.heads * shape.q_len * shape.kv_len
            * _visited(shape, blocks))


def flash_forward_time(shape: AttentionShape, blocks: Blocks, rates: FlashRates) -> sp.Expr:
    misses = reread_misses(shape, blocks, rates)
    return _kernel_time(forward_flops(shape) * executed(shape, blocks),
                        forward_bytes(shape, blocks, misses), rates.forward_efficiency,
                        query_blocks(shape, blocks), rates.forward_tile_overhead, rates,
                        forward_scores(shape, blocks))


def flash_backward_time(shape: AttentionShape, blocks: Blocks, rates: FlashRates) -> sp.Expr:
    misses = reread_misses(shape, blocks, rates)
    return _kernel_time(backward_flops(shape) * executed(shape, blocks),
                        backward_bytes(shape, blocks, misses), rates.backward_efficiency,
                        key_blocks(shape, blocks), rates.backward_tile_overhead, rates)


def flash_activation_bytes(shape: AttentionShape) -> sp.Expr:
    """Bytes FlashAttention keeps for backward beyond Q, K, V and O: the fp32 log-sum-exp per
    query row and head. The materialised attention keeps the softmax output and, with dropout,
    its mask and output instead (Korthikanti et al. 2022, Table 2: the ``5 a s^2 b`` term;
    formulations.memory)."""
    return STAT_BYTES * shape.batch * shape.heads * shape.q_len


@dataclass(frozen=True)
class FlashOp(Op):
    """One fused FlashAttention kernel in a layer's operation list (``kind = "flash"``).

    ``flops`` are the model FLOPs of the materialised GEMMs it replaces (so utilisation
    figures do not depend on the kernel); its time comes from :func:`flash_forward_time` or
    :func:`flash_backward_time` over ``shape`` and ``blocks``.
    """

    shape: AttentionShape | None = None
    blocks: Blocks | None = None
    backward: bool = False


def layer_shape(d: Dims) -> AttentionShape:
    """The causal self-attention of one decoder layer on one GPU: the local heads, the query
    chunk ``s/c`` of context parallelism against the whole sequence."""
    return AttentionShape(batch=d.b, heads=d.local_heads, kv_heads=d.local_kv_heads,
                          q_len=d.s / d.c, kv_len=d.s, d_qk=d.qk_head_dim, d_v=d.v_head_dim,
                          e=d.e, causal=True)


def use_flash(ops: list[Op], d: Dims, blocks: Blocks, backward: bool) -> list[Op]:
    """``ops`` with the materialised attention core (score GEMMs, softmax, dropout) replaced
    in place by one FlashAttention kernel carrying the same model FLOPs."""
    core = [op for op in ops if op.region == "attention_core"]
    if not core:
        return ops
    shape = layer_shape(d)
    flash = FlashOp(name="flash_attention" + (".bwd" if backward else ""), kind="flash",
                    region="attention_core", flops=sp.Add(*(op.flops for op in core)),
                    bytes=backward_bytes(shape, blocks) if backward
                    else forward_bytes(shape, blocks),
                    shape=shape, blocks=blocks, backward=backward)
    out: list[Op] = []
    for op in ops:
        if op.region != "attention_core":
            out.append(op)
        elif op is core[0]:
            out.append(flash)
    return out


def flash_op_time(op: FlashOp, rates: FlashRates) -> sp.Expr:
    """Time of one :class:`FlashOp`."""
    if op.shape is None or op.blocks is None:
        raise ValueError(f"{op.name}: a FlashAttention op needs its shape and blocks")
    if op.backward:
        return flash_backward_time(op.shape, op.blocks, rates)
    return flash_forward_time(op.shape, op.blocks, rates)
