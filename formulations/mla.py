"""Multi-head latent attention (MLA): the projections of DeepSeek-V2/V3 attention.

MLA (DeepSeek-AI, "DeepSeek-V2", arXiv:2405.04434, Sec. 2.1.2, Eq. 9-19; DeepSeek-V3,
arXiv:2412.19437, Sec. 2.1.1, Eq. 1-11) compresses keys and values of each token into a latent
vector ``c_KV`` of ``kv_lora_rank`` elements plus one shared decoupled RoPE key of
``qk_rope_head_dim`` elements, and queries into a latent ``c_Q`` of ``q_lora_rank`` elements:

* ``c_Q = W_DQ h``                      (h -> q_lora_rank; Eq. 7 of V3)
* ``q = W_UQ c_Q``                      (q_lora_rank -> heads (nope + rope); Eq. 8-9)
* ``[c_KV, k_rope] = W_DKV h``          (h -> kv_lora_rank + rope; Eq. 1, 3)
* ``[k_nope, v] = W_UKV c_KV``          (kv_lora_rank -> heads (nope + v); Eq. 2, 5)
* ``u = W_O o``                         (heads v -> h; Eq. 11)

with RMS norms on both latents. Attention itself is multi-head with query/key head dimension
``qk_nope + qk_rope`` (192 in V3) and value head dimension ``v_head_dim`` (128): the core of
:mod:`transformer` (or the FlashAttention model) takes those dimensions from ``Dims``.

With tensor parallelism the up-projections and the output projection split their heads over
``t`` ranks; the down-projections are small and replicated (Megatron-Core's MLA does the
same), so every tensor-parallel rank computes them on all of its tokens.

In inference only ``c_KV`` and ``k_rope`` are cached: ``kv_lora_rank + qk_rope_head_dim``
elements per token and layer (:func:`kv_cache_elements_per_token`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .transformer import (
    FLOPS_PER_MAC,
    LAYERNORM_ACCESSES,
    Dims,
    Op,
    elementwise,
    gemm,
    gemm_backward,
)

#: Names of the dense attention projections that MLA replaces (:mod:`transformer`).
REPLACED_OPS: tuple[str, ...] = ("qkv", "proj")
#: Up-projections that selective recomputation redoes in backward (their outputs Q, K, V are
#: then not kept): DeepSeek-V3 Sec. 3.2.3, "Recomputation of RMSNorm and MLA Up-Projection".
RECOMPUTED_UP_PROJECTIONS: tuple[str, ...] = ("q_up", "kv_up")


@dataclass(frozen=True)
class LatentDims:
    """Symbols of one MLA layer's sizes. ``q_lora`` is None when queries are not compressed
    (DeepSeek-V2-Lite): then ``W_Q`` maps ``h`` to the query heads directly."""

    q_lora: sp.Expr | None
    kv_lora: sp.Expr
    nope: sp.Expr
    rope: sp.Expr
    v: sp.Expr

    @property
    def q_latent(self) -> sp.Expr:
        """Elements of the query latent (0 when queries are not compressed)."""
        return sp.S.Zero if self.q_lora is None else self.q_lora

    @property
    def qk(self) -> sp.Expr:
        """Query/key head dimension of the attention core."""
        return self.nope + self.rope


def _gemm_shapes(d: Dims, m: LatentDims) -> dict[str, tuple[sp.Expr, sp.Expr, sp.Expr]]:
    """(m, n, k) of the MLA projections on one GPU for one micro-batch."""
    heads = d.local_heads
    shapes: dict[str, tuple[sp.Expr, sp.Expr, sp.Expr]] = {}
    if m.q_lora is None:
        shapes["q_proj"] = (d.tokens, heads * m.qk, d.h)
    else:
        shapes["q_down"] = (d.tokens, m.q_lora, d.h)
        shapes["q_up"] = (d.tokens, heads * m.qk, m.q_lora)
    shapes["kv_down"] = (d.tokens, m.kv_lora + m.rope, d.h)
    shapes["kv_up"] = (d.tokens, heads * (m.nope + m.v), m.kv_lora)
    shapes["proj"] = (d.tokens, d.h, heads * m.v)
    return shapes


def _latent_elements(d: Dims, m: LatentDims) -> sp.Expr:
    """Elements of the two latents of one micro-batch (what the latent norms touch)."""
    return d.tokens * (m.q_latent + m.kv_lora)


def projections_forward(d: Dims, m: LatentDims) -> list[Op]:
    """Kernels of the MLA projections, forward (in place of ``qkv`` and ``proj``)."""
    shapes = _gemm_shapes(d, m)
    ops = [gemm(name, "layer", *shape, d.e) for name, shape in shapes.items()
           if name != "proj"]
    ops.append(elementwise("latent_norms", "layer", _latent_elements(d, m),
                           LAYERNORM_ACCESSES[0], d.e))
    return ops


def output_projection_forward(d: Dims, m: LatentDims) -> list[Op]:
    return [gemm("proj", "layer", *_gemm_shapes(d, m)["proj"], d.e)]


def projections_backward(d: Dims, m: LatentDims) -> list[Op]:
    shapes = _gemm_shapes(d, m)
    ops: list[Op] = [elementwise("latent_norms.bwd", "layer", _latent_elements(d, m),
                                 LAYERNORM_ACCESSES[1], d.e)]
    for name, shape in shapes.items():
        if name != "proj":
            ops.extend(gemm_backward(name, "layer", *shape, d.e))
    return ops


def output_projection_backward(d: Dims, m: LatentDims) -> list[Op]:
    return gemm_backward("proj", "layer", *_gemm_shapes(d, m)["proj"], d.e)


def replace_projections(ops: list[Op], d: Dims, m: LatentDims, backward: bool) -> list[Op]:
    """``ops`` of a dense layer with its QKV and output projections replaced by MLA's, in
    place (the attention core between them is kept as it is)."""
    out: list[Op] = []
    for op in ops:
        base = op.name.split(".")[0]
        if base not in REPLACED_OPS:
            out.append(op)
            continue
        first = op.name.endswith(".dgrad") or not backward
        if not first:
            continue  # the wgrad of the same projection: emitted with its dgrad
        if base == "qkv":
            out.extend(projections_backward(d, m) if backward else projections_forward(d, m))
        else:
            out.extend(output_projection_backward(d, m) if backward
                       else output_projection_forward(d, m))
    return out


def parameters(h: sp.Expr, heads: sp.Expr, m: LatentDims) -> sp.Expr:
    """Weights of one MLA block (whole model, before sharding), latent norms included."""
    q = h * heads * m.qk if m.q_lora is None else h * m.q_lora + m.q_lora * heads * m.qk
    kv = h * (m.kv_lora + m.rope) + m.kv_lora * heads * (m.nope + m.v)
    return q + kv + heads * m.v * h + _norm_weights(m)


def _norm_weights(m: LatentDims) -> sp.Expr:
    """Weights of the latent RMS norms: one per latent element."""
    return m.kv_lora + m.q_latent


def forward_flops_per_token(h: sp.Expr, heads: sp.Expr, m: LatentDims) -> sp.Expr:
    """Projection FLOPs per token, forward: one multiply-accumulate per weight (norms have
    no GEMM)."""
    return FLOPS_PER_MAC * (parameters(h, heads, m) - _norm_weights(m))


def activation_bytes(d: Dims, m: LatentDims, recompute_up: sp.Expr = sp.S.Zero,
                     output_bytes: sp.Expr | None = None) -> sp.Expr:
    """Bytes the projections keep for backward per micro-batch on one GPU: the latents (inputs
    of the up-projections), Q, K, V of the local heads -- unless ``recompute_up`` (a 0/1
    indicator) has the up-projections recomputed -- and the output projection's input, at
    ``output_bytes`` per element (default ``e``)."""
    heads = d.local_heads
    latents = m.q_latent + m.kv_lora + m.rope
    qkv = heads * (2 * m.qk + m.v)
    out_w = d.e if output_bytes is None else output_bytes
    output = d.tokens * out_w * heads * m.v
    if m.q_lora is None:  # Q comes straight from the layer input and is kept
        return d.tokens * d.e * (latents + heads * m.qk + (1 - recompute_up) * heads * (
            m.qk + m.v)) + output
    return d.tokens * d.e * (latents + (1 - recompute_up) * qkv) + output


def kv_cache_elements_per_token(m: LatentDims) -> sp.Expr:
    """Elements cached per token and layer in inference: the KV latent and the RoPE key
    (DeepSeek-V2 Sec. 2.1.2 and Table 1: (d_c + d_h^R) per layer)."""
    return m.kv_lora + m.rope
