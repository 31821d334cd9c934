"""Single-kernel times that a measured kernel database tabulates, from the shared models.

``perfcost calibrate --database`` fits these to NVIDIA's measured tables
(solver/studies/database_fit.py); the expressions are the formulations' own:

* a GEMM in a precision below the activations' (fp8, block-scaled fp8, fp4): the GEMM of
  :func:`formulations.compute.op_time` on ``operand_bytes`` elements, after a quantisation
  kernel that reads the ``m x k`` activations at ``activation_bytes`` and writes them at
  ``operand_bytes`` (per-tensor and block-scaled FP8 recipes quantise the activations on
  the fly: Micikevicius et al., "FP8 Formats for Deep Learning", 2022, Sec. 4; DeepSeek-V3
  Sec. 3.3.2 for 1x128 block scales); a bf16 GEMM has no such kernel;
* prefill attention: FlashAttention's causal forward (:func:`formulations.attention.
  flash_forward_time`) with query and key length the prompt, after the memory-bound
  preprocessing kernel a serving engine runs first (TensorRT-LLM's attention op applies the
  rotary embedding to Q and K and writes K and V into the paged cache before its fused
  multi-head attention kernel): it reads the Q, K, V rows and writes them back;
* decode attention (one new token per sequence): the KV cache of ``kv_len + 1`` tokens
  streamed once from HBM, plus the query and output rows -- the memory-bound regime of
  decoding (FlashDecoding, Dao et al. 2023; "Efficient Memory Management for LLM Serving
  with PagedAttention", Kwon et al. SOSP 2023, Sec. 2.3), or its dot products on the CUDA
  cores where a large query group per KV head makes them the bound, plus fixed costs;
* an MoE layer on one rank: grouped GEMMs over the touched experts (rows padded to a tile)
  and the token permutation around them (:func:`moe_layer_time`);
* a collective on one scale-up level: the pipelined alpha-beta form of one algorithm of
  :mod:`formulations.algorithms` (the buffer cut into optimally sized chunks that flow
  through the algorithm's steps, as NCCL runs them: ``(sqrt(steps alpha) + sqrt(volume /
  B))^2``), the form ``perfcost collective`` uses.
"""

from __future__ import annotations

import sympy as sp

from . import algorithms
from .attention import AttentionShape, Blocks, FlashRates, flash_forward_time
from .compute import ComputeParams, op_time
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
