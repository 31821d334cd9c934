"""FLOPs and HBM bytes of every operation of a decoder layer, forward and backward.

The operation list follows Megatron-LM's GPT layer (Narayanan et al., SC'21, Sec. 3 and the
FLOP count of their Appendix; Korthikanti et al., MLSys'23, Sec. 4.1 for which tensors each
kernel reads and writes). GPT uses multi-head attention and a GeLU MLP of width ``ffn``; Llama
uses grouped-query attention (``kv_heads`` < ``heads``) and a SwiGLU MLP (two input GEMMs).

All counts are per GPU for one micro-batch of ``b`` sequences, with tensor parallelism ``t``
splitting heads and the MLP width, context parallelism ``c`` splitting the sequence, and the
sequence-parallel shard factor ``sigma`` (1, or 1/t with sequence parallelism) applying to the
norms, dropouts and residual adds outside the tensor-parallel regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sympy as sp

#: FLOPs of one multiply-accumulate.
FLOPS_PER_MAC = 2
#: Tensors each fused elementwise kernel touches per element (reads + writes), by kernel.
#: layer norm: read x, write y; backward: read x, dy, write dx.
LAYERNORM_ACCESSES = (2, 3)
#: scale-mask-softmax: read scores, write probabilities; backward: read y, dy, write dx.
SOFTMAX_ACCESSES = (2, 3)
#: dropout: read x, write y (+ mask); backward: read dy, write dx (+ mask).
DROPOUT_ACCESSES = (2, 2)
#: bias-dropout-residual-add: read x and the residual, write y (+ mask); backward: read dy,
#: write the branch gradient (+ mask); the residual gradient is dy itself.
BIAS_DROPOUT_ADD_ACCESSES = (3, 2)
#: GeLU (fused with its bias): read x, write y; backward: read x, dy, write dx.
GELU_ACCESSES = (2, 3)
#: RoPE: read and write each query and key element (forward and backward alike).
ROPE_ACCESSES = (2, 2)
#: SwiGLU: read gate and up, write y; backward: read gate, up, dy, write two gradients.
SWIGLU_ACCESSES = (3, 5)
#: Vocabulary-parallel cross entropy in FP32 (Megatron-LM's ``_VocabParallelCrossEntropy``,
#: unfused, as Megatron-Core ran it by default through 2024).
LOSS_FP32_BYTES = 4
#: FP32 accesses per logit forward after the cast from ``e`` bytes: max reduction (read),
#: subtract the max (read, write), exponentiate (read, write), sum reduction (read), normalise
#: to probabilities kept for backward (read, write).
LOSS_FORWARD_FP32_ACCESSES = 1 + 2 + 2 + 1 + 2
#: FP32 accesses per logit backward: subtract the one-hot target and scale by the incoming
#: gradient in place (read, write), read for the cast to ``e`` bytes.
LOSS_BACKWARD_FP32_ACCESSES = 2 + 1

#: "flash": a fused FlashAttention kernel (formulations.attention.FlashOp).
Kind = Literal["gemm", "elementwise", "flash"]
Region = Literal["attention_core", "layer", "head"]


@dataclass(frozen=True)
class Dims:
    """The symbols a layer's operations are written in."""

    b: sp.Expr  # micro-batch (sequences)
    s: sp.Expr  # sequence length
    h: sp.Expr  # hidden size
    a: sp.Expr  # attention heads
    kv: sp.Expr  # key/value heads
    ffn: sp.Expr  # MLP width
    vocab: sp.Expr
    t: sp.Expr  # tensor parallel
    c: sp.Expr  # context parallel
    sigma: sp.Expr  # sequence-parallel shard factor: 1 or 1/t
    e: sp.Expr  # bytes per activation element
    mask: sp.Expr  # bytes per dropout-mask element
    swiglu: bool
    dropout: bool  # dropout after attention probabilities and on both residual branches
    gqa: bool  # fewer KV heads than query heads (else ``kv`` is the symbol ``a`` itself)
    #: Head dimensions of Q.K^T and of V where they are not ``h/a`` (multi-head latent
    #: attention, formulations.mla: 192 and 128 in DeepSeek-V3); None is ``h/a``.
    qk_dim: sp.Expr | None = None
    v_dim: sp.Expr | None = None
    #: Width of one head where ``a`` heads of it are not ``h`` wide (Qwen3, GPT-OSS); None is
    #: ``h/a``. The Q and output projections are then ``h x a*hd`` (``attention_width``).
    hd: sp.Expr | None = None
    #: Rotary position embeddings applied to Q and K by a kernel of their own (Su et al.,
    #: "RoFormer", 2021, eq. 34; Transformer Engine's fused RoPE), forward and backward.
    rope: bool = False

    @property
    def tokens(self) -> sp.Expr:
        """Tokens of one micro-batch held by one context-parallel rank."""
        return self.b * self.s / self.c

    @property
    def head_dim(self) -> sp.Expr:
        return self.h / self.a if self.hd is None else self.hd

    @property
    def attention_width(self) -> sp.Expr:
        """Width of all heads' queries (and of the attention output): ``h``, or ``a * hd``."""
        return self.h if self.hd is None else self.a * self.hd

    @property
    def qk_head_dim(self) -> sp.Expr:
        """Length of the dot product of one query with one key."""
        return self.head_dim if self.qk_dim is None else self.qk_dim

    @property
    def v_head_dim(self) -> sp.Expr:
        """Width of one head's values (and of its attention output)."""
        return self.head_dim if self.v_dim is None else self.v_dim

    @property
    def local_heads(self) -> sp.Expr:
        return self.a / self.t

    @property
    def local_kv_heads(self) -> sp.Expr:
        if not self.gqa:
            return self.kv / self.t
        # With more TP ranks than KV heads, each rank keeps one (replicated) KV head.
        return sp.Max(self.kv / self.t, 1)

    @property
    def gate_factor(self) -> int:
        """Input-GEMM width multiplier of the MLP: SwiGLU has a gate and an up projection."""
        return 2 if self.swiglu else 1


@dataclass(frozen=True)
class Op:
    """One kernel: its FLOPs, its HBM bytes and, for GEMMs, its output shape.

    ``m`` x ``n`` is the output of one GEMM of a batch of ``batch`` GEMMs (for the
    wave-quantisation model of :mod:`compute`); ``k`` is the reduction length.
    """

    name: str
    kind: Kind
    region: Region
    flops: sp.Expr
    bytes: sp.Expr
    m: sp.Expr = sp.S.Zero
    n: sp.Expr = sp.S.Zero
    k: sp.Expr = sp.S.Zero
    batch: sp.Expr = sp.S.One
    #: Runs on the FP8 tensor cores (formulations.precision).
    fp8: bool = False


def gemm(name: str, region: Region, m: sp.Expr, n: sp.Expr, k: sp.Expr, e: sp.Expr,
         batch: sp.Expr = sp.S.One) -> Op:
    """A (batched) GEMM C[m,n] = A[m,k] B[k,n]: reads A and B, writes C once."""
    return Op(
        name=name,
        kind="gemm",
        region=region,
        flops=FLOPS_PER_MAC * batch * m * n * k,
        bytes=e * batch * (m * k + k * n + m * n),
        m=m,
        n=n,
        k=k,
        batch=batch,
    )


def gemm_backward(name: str, region: Region, m: sp.Expr, n: sp.Expr, k: sp.Expr, e: sp.Expr,
                  batch: sp.Expr = sp.S.One) -> list[Op]:
    """The two backward GEMMs of C = A B: dA = dC B^T (m x k) and dB = A^T dC (k x n)."""
    return [
        gemm(f"{name}.dgrad", region, m, k, n, e, batch),
        gemm(f"{name}.wgrad", region, k, n, m, e, batch),
    ]


def elementwise(name: str, region: Region, elements: sp.Expr, accesses: int, e: sp.Expr,
                extra_bytes: sp.Expr = sp.S.Zero) -> Op:
    """A memory-bound kernel touching ``accesses`` tensors of ``elements`` each."""
    return Op(name=name, kind="elementwise", region=region, flops=sp.S.Zero,
              bytes=accesses * elements * e + extra_bytes)


def _shapes(d: Dims) -> dict[str, tuple[sp.Expr, sp.Expr, sp.Expr]]:
    """(m, n, k) of the dense GEMMs of one layer on one GPU."""
    qkv_width = (d.local_heads + 2 * d.local_kv_heads) * d.head_dim
    return {
        "qkv": (d.tokens, qkv_width, d.h),
        "proj": (d.tokens, d.h, d.attention_width / d.t),
        "fc1": (d.tokens, d.gate_factor * d.ffn / d.t, d.h),
        "fc2": (d.tokens, d.h, d.ffn / d.t),
    }


def _attention_core_shapes(d: Dims) -> dict[str, tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]]:
    """(batch, m, n, k) of the two attention GEMMs: Q K^T and P V (materialised softmax)."""
    batch = d.b * d.local_heads
    q_len = d.s / d.c
    return {
        "attn_scores": (batch, q_len, d.s, d.qk_head_dim),
        "attn_values": (batch, q_len, d.v_head_dim, d.s),
    }


def _rope(d: Dims, backward: bool) -> list[Op]:
    """The rotary-embedding kernel on the local queries and keys (none without RoPE)."""
    if not d.rope:
        return []
    elements = d.tokens * (d.local_heads + d.local_kv_heads) * d.qk_head_dim
    name = "rope.bwd" if backward else "rope"
    return [elementwise(name, "layer", elements, ROPE_ACCESSES[int(backward)], d.e)]


def layer_forward(d: Dims) -> list[Op]:
    """Kernels of one layer's forward pass (communication is in :mod:`parallelism`)."""
    dense = _shapes(d)
    core = _attention_core_shapes(d)
    residual = d.tokens * d.h * d.sigma
    scores = d.b * d.local_heads * (d.s / d.c) * d.s
    act_accesses = SWIGLU_ACCESSES[0] if d.swiglu else GELU_ACCESSES[0]
    return [
        elementwise("ln_attention", "layer", residual, LAYERNORM_ACCESSES[0], d.e),
        gemm("qkv", "layer", *dense["qkv"], d.e),
        *_rope(d, backward=False),
        gemm("attn_scores", "attention_core", *core["attn_scores"][1:], d.e,
             core["attn_scores"][0]),
        elementwise("softmax", "attention_core", scores, SOFTMAX_ACCESSES[0], d.e),
        *([elementwise("attn_dropout", "attention_core", scores, DROPOUT_ACCESSES[0], d.e,
                       scores * d.mask)] if d.dropout else []),
        gemm("attn_values", "attention_core", *core["attn_values"][1:], d.e,
             core["attn_values"][0]),
        gemm("proj", "layer", *dense["proj"], d.e),
        elementwise("bias_dropout_add_attention", "layer", residual,
                    BIAS_DROPOUT_ADD_ACCESSES[0], d.e, residual * d.mask),
        elementwise("ln_mlp", "layer", residual, LAYERNORM_ACCESSES[0], d.e),
        gemm("fc1", "layer", *dense["fc1"], d.e),
        elementwise("activation", "layer", d.tokens * d.ffn / d.t, act_accesses, d.e),
        gemm("fc2", "layer", *dense["fc2"], d.e),
        elementwise("bias_dropout_add_mlp", "layer", residual,
                    BIAS_DROPOUT_ADD_ACCESSES[0], d.e, residual * d.mask),
    ]


def layer_backward(d: Dims) -> list[Op]:
    """Kernels of one layer's backward pass (without any recomputation)."""
    dense = _shapes(d)
    core = _attention_core_shapes(d)
    residual = d.tokens * d.h * d.sigma
    scores = d.b * d.local_heads * (d.s / d.c) * d.s
    act_accesses = SWIGLU_ACCESSES[1] if d.swiglu else GELU_ACCESSES[1]
    ops: list[Op] = [
        elementwise("bias_dropout_add_mlp.bwd", "layer", residual,
                    BIAS_DROPOUT_ADD_ACCESSES[1], d.e, residual * d.mask),
        *gemm_backward("fc2", "layer", *dense["fc2"], d.e),
        elementwise("activation.bwd", "layer", d.tokens * d.ffn / d.t, act_accesses, d.e),
        *gemm_backward("fc1", "layer", *dense["fc1"], d.e),
        elementwise("ln_mlp.bwd", "layer", residual, LAYERNORM_ACCESSES[1], d.e),
        elementwise("bias_dropout_add_attention.bwd", "layer", residual,
                    BIAS_DROPOUT_ADD_ACCESSES[1], d.e, residual * d.mask),
        *gemm_backward("proj", "layer", *dense["proj"], d.e),
        *gemm_backward("attn_values", "attention_core", *core["attn_values"][1:], d.e,
                       core["attn_values"][0]),
        *([elementwise("attn_dropout.bwd", "attention_core", scores, DROPOUT_ACCESSES[1],
                       d.e, scores * d.mask)] if d.dropout else []),
        elementwise("softmax.bwd", "attention_core", scores, SOFTMAX_ACCESSES[1], d.e),
        *gemm_backward("attn_scores", "attention_core", *core["attn_scores"][1:], d.e,
                       core["attn_scores"][0]),
        *_rope(d, backward=True),
        *gemm_backward("qkv", "layer", *dense["qkv"], d.e),
        elementwise("ln_attention.bwd", "layer", residual, LAYERNORM_ACCESSES[1], d.e),
    ]
    return ops


def head_forward(d: Dims) -> list[Op]:
    """Output layer (logits, vocabulary split over TP) and loss, on the last pipeline stage."""
    logits = d.tokens * d.vocab / d.t
    return [
        elementwise("ln_final", "head", d.tokens * d.h * d.sigma, LAYERNORM_ACCESSES[0], d.e),
        gemm("logits", "head", d.tokens, d.vocab / d.t, d.h, d.e),
        # The cast reads e bytes and writes FP32; the passes of the loss follow.
        elementwise("loss", "head", logits, 1, d.e,
                    logits * LOSS_FP32_BYTES * (1 + LOSS_FORWARD_FP32_ACCESSES)),
    ]


def head_backward(d: Dims) -> list[Op]:
    logits = d.tokens * d.vocab / d.t
    return [
        elementwise("loss.bwd", "head", logits, 1, d.e,
                    logits * LOSS_FP32_BYTES * LOSS_BACKWARD_FP32_ACCESSES),
        *gemm_backward("logits", "head", d.tokens, d.vocab / d.t, d.h, d.e),
        elementwise("ln_final.bwd", "head", d.tokens * d.h * d.sigma, LAYERNORM_ACCESSES[1],
                    d.e),
    ]


def layer_parameters(d: Dims, biases: bool) -> sp.Expr:
    """Weights of one decoder layer (whole model, before any sharding)."""
    kv_width, q_width = 2 * d.kv * d.head_dim, d.attention_width
    weights = (d.h * (q_width + kv_width) + q_width * d.h
               + (d.gate_factor + 1) * d.h * d.ffn)
    norms = 2 * d.h * (2 if biases else 1)
    bias = (q_width + kv_width + d.h + d.gate_factor * d.ffn + d.h) if biases else 0
    return weights + norms + bias


def attention_parameters(d: Dims, biases: bool) -> sp.Expr:
    """Weights (and biases) of one layer's QKV and output projections, the part that
    multi-head latent attention (formulations.mla) replaces."""
    kv_width, q_width = 2 * d.kv * d.head_dim, d.attention_width
    bias = (q_width + kv_width + d.h) if biases else 0
    return d.h * (q_width + kv_width) + q_width * d.h + bias


def mlp_parameters(d: Dims, biases: bool) -> sp.Expr:
    """Weights (and biases) of one layer's dense MLP, the part an MoE layer replaces."""
    bias = (d.gate_factor * d.ffn + d.h) if biases else 0
    return (d.gate_factor + 1) * d.h * d.ffn + bias


def embedding_parameters(d: Dims, tied: bool, learned_positions: bool) -> sp.Expr:
    """Input embedding, learned positions and (untied) output layer."""
    positions = d.s * d.h if learned_positions else 0
    output = 0 if tied else d.vocab * d.h
    return d.vocab * d.h + positions + output
