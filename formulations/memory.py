"""Memory per GPU on the first pipeline stage: model states and activations.

Model states (Rajbhandari et al., "ZeRO", SC'20, Sec. 3 and 5): per parameter ``weight_bytes``
(bf16/fp16 weights), ``grad_bytes`` (fp32 main gradients in Megatron-LM) and
``optimizer_state_bytes`` (fp32 master weight, Adam m and v: 12 B). ZeRO stage 1 (Megatron's
distributed optimizer) shards the optimizer states over the data-parallel ranks, stage 2 also
the gradients, stage 3 also the weights.

Activations per layer (Korthikanti et al., MLSys'23, Sec. 4, Table 2), written as the sum of
the tensors kept for backward so each term is visible:

* norm inputs (2 x 2 B), QKV and fc1 inputs (2 x 2 B), two dropout masks (2 x 1 B) -- these sit
  outside the tensor-parallel regions and shrink by ``t`` only with sequence parallelism;
* Q, K, V and the projection input, the MLP's activation input and fc2 input -- split by ``t``;
* the attention core: softmax output (2 B), its dropout mask (1 B) and the dropout output
  (2 B) per score -- dropped by selective recomputation;
* with full recomputation only each layer's input (2 B per element) is kept.

Elements per token are ``h`` for the first group, which gives Korthikanti's
``sbh(10 + 24/t + 5as/(ht))`` for GPT (ffn = 4h) and generalises to GQA and SwiGLU.

In flight on the first stage: ``min(p, m)`` micro-batches of ``L/p`` layers for 1F1B, times
``1 + (p-1)/(p v)`` for the interleaved schedule (Korthikanti et al. Sec. 4.2.3).

Selective recomputation redoes a set of *modules* in backward instead of keeping their outputs
(the names of Megatron-Core's ``--recompute-modules``; :data:`RECOMPUTE_MODULES`):

* ``core_attn``: the attention core (Korthikanti et al. Sec. 4.2.2) -- the default;
* ``mla_up_proj``: MLA's up-projections, whose outputs Q, K, V are then not kept (formulations.mla);
* ``layernorm``: the norms, whose outputs -- the inputs of the linear layers that follow them,
  QKV (or MLA's down-projections) and fc1 (or the router, the shared experts and the dispatch)
  -- are then not kept; the norm inputs are kept anyway (DeepSeek-V3, arXiv:2412.19437,
  Sec. 3.2.3: "We recompute all RMSNorm operations and MLA up-projections");
* ``moe_act``: the experts' SwiGLU, whose output (the fc2 input) is then not kept, its input
  being cached in FP8 in FP8 training (DeepSeek-V3 Sec. 3.3.4 (2)).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .attention import flash_activation_bytes, layer_shape
from .mla import RECOMPUTED_UP_PROJECTIONS
from .specs import DEFAULT_RECOMPUTE_MODULES
from .transformer import Dims, Op

#: Tensors kept outside the TP regions per layer: 2 norm inputs, QKV and fc1 inputs.
UNSPLIT_ACTIVATION_TENSORS = 4
#: Dropout masks kept outside the TP regions per layer (after attention and after the MLP).
UNSPLIT_DROPOUT_MASKS = 2
#: Modules selective recomputation may redo, with the forward kernels it reruns for each
#: (kernel names of formulations.transformer, .mla and .moe; ``core_attn`` is the
#: ``attention_core`` region).
RECOMPUTE_MODULES: dict[str, tuple[str, ...]] = {
    "core_attn": (),
    "mla_up_proj": RECOMPUTED_UP_PROJECTIONS,
    "layernorm": ("ln_attention", "ln_mlp", "latent_norms"),
    "moe_act": ("expert_activation", "shared_activation"),
}
#: The linear layers whose inputs each module's recomputed outputs are: in FP8 training
#: their input casts run again too (the weight gradient needs the quantised copy).
RECOMPUTE_CONSUMERS: dict[str, tuple[str, ...]] = {
    "core_attn": (),
    "mla_up_proj": (),
    "layernorm": ("qkv", "q_proj", "q_down", "kv_down", "fc1", "shared_fc1", "q_up", "kv_up"),
    "moe_act": ("expert_fc2", "shared_fc2"),
}


@dataclass(frozen=True)
class ActivationTerms:
    """Bytes of activations one layer keeps for one micro-batch, by part."""

    outside_tp: sp.Expr
    attention_linear: sp.Expr
    attention_core: sp.Expr
    mlp: sp.Expr
    layer_input: sp.Expr
    #: Bytes of the terms above that selective recomputation does not keep, beyond the
    #: attention core (the outputs of the recomputed modules).
    selective_drop: sp.Expr = sp.S.Zero
    #: Whether selective recomputation redoes the attention core (``core_attn``).
    recompute_core: bool = True


def recompute_ops(ops: list[Op], modules: tuple[str, ...]) -> list[Op]:
    """The forward kernels selective recomputation with ``modules`` reruns, with the FP8
    casts of the recomputed tensors that feed linear layers (formulations.precision names
    them ``<gemm>.fwd.quantise``)."""
    names = {name for module in modules for name in RECOMPUTE_MODULES[module]}
    names |= {f"{gemm}.fwd.quantise" for module in modules
              for gemm in RECOMPUTE_CONSUMERS[module]}
    core = "core_attn" in modules
    return [op for op in ops if op.name in names or (core and op.region == "attention_core")]


def activation_terms(d: Dims, flash: bool = False,
                     linear_input_bytes: sp.Expr | None = None,
                     modules: tuple[str, ...] = DEFAULT_RECOMPUTE_MODULES,
                     output_bytes: sp.Expr | None = None) -> ActivationTerms:
    """Activation bytes per layer by part; with ``flash`` the attention core keeps only the
    fp32 log-sum-exp per query row (formulations.attention): Korthikanti's 5as/h term is gone.

    ``linear_input_bytes`` is the width the inputs of the linear layers are kept in for their
    weight gradients: one byte in FP8 training, which keeps the quantised copy rather than the
    BF16 tensor (Transformer Engine; DeepSeek-V3 Sec. 3.3.3); ``None`` keeps them at ``e``.
    ``output_bytes`` is the width of the attention output (the projection's input; default the
    linear-input width); ``modules`` what selective recomputation redoes."""
    tokens = d.tokens
    lin = d.e if linear_input_bytes is None else linear_input_bytes
    # Two norm inputs at e, the QKV and fc1 inputs at the linear-input width.
    half = UNSPLIT_ACTIVATION_TENSORS // 2
    outside = tokens * d.h * d.sigma * (half * d.e + half * lin
                                        + UNSPLIT_DROPOUT_MASKS * d.mask)
    # Recomputed norms: their outputs, the QKV and fc1 inputs, are made again from the kept
    # norm inputs.
    drop = (tokens * d.h * d.sigma * half * lin if "layernorm" in modules else sp.S.Zero)
    q_width = d.local_heads * d.head_dim
    kv_width = d.local_kv_heads * d.head_dim
    out_w = lin if output_bytes is None else output_bytes
    # Q, K, V and the projection's input (the attention output, as wide as Q).
    attention_linear = tokens * (d.e * (q_width + 2 * kv_width) + out_w * q_width)
    scores = d.b * d.local_heads * (d.s / d.c) * d.s
    # Softmax output, and with dropout also its mask and the dropped-out probabilities.
    attention_core = scores * (d.e + (d.e + d.mask if d.dropout else 0))
    if flash:
        attention_core = flash_activation_bytes(layer_shape(d))
    mlp_width = d.ffn / d.t
    mlp = tokens * (d.e * d.gate_factor * mlp_width + lin * mlp_width)
    layer_input = tokens * d.h * d.sigma * d.e
    return ActivationTerms(outside, attention_linear, attention_core, mlp, layer_input,
                           selective_drop=drop, recompute_core="core_attn" in modules)


def layer_activation_bytes(terms: ActivationTerms, selective: sp.Expr,
                           full: sp.Expr) -> sp.Expr:
    """Bytes one layer keeps per micro-batch; ``selective``/``full`` are 0/1 indicators."""
    stored = terms.outside_tp + terms.attention_linear + terms.mlp
    kept_core = terms.attention_core * (1 - selective * int(terms.recompute_core))
    return ((1 - full) * (stored + kept_core - selective * terms.selective_drop)
            + full * terms.layer_input)


def recomputed_bytes(terms: ActivationTerms, selective: sp.Expr, full: sp.Expr) -> sp.Expr:
    """The recompute working set: what one layer's recomputation materialises again while its
    backward runs -- all of its activations (full) or the recomputed modules' outputs
    (selective)."""
    everything = (terms.outside_tp + terms.attention_linear + terms.mlp
                  + terms.attention_core)
    return full * everything + selective * (terms.attention_core * int(terms.recompute_core)
                                            + terms.selective_drop)


def in_flight_layers(layers: sp.Expr, p: sp.Expr, v: sp.Expr, m: sp.Expr) -> sp.Expr:
    """Layer-micro-batches whose activations the first stage holds at its peak."""
    interleave = sp.Piecewise((sp.Integer(1), sp.Eq(v, 1)), (1 + (p - 1) / (p * v), True))
    return layers / p * sp.Min(p, m) * interleave


def sharded(count: sp.Expr, dp: sp.Expr, zero: sp.Expr, from_stage: int) -> sp.Expr:
    """``count`` divided over the data-parallel ranks when the ZeRO stage is >= ``from_stage``."""
    return sp.Piecewise((count / dp, zero >= from_stage), (count, True))



def largest_rank(per_rank: list[dict[str, sp.Expr]]) -> dict[str, sp.Expr]:
    """The first rank's memory terms, and ``largest_rank_excess``: what the rank holding the
    most holds beyond it (zero where the first rank is the largest), so that the terms add up
    to the largest rank's total. A maximum, not a choice of breakdown, keeps the expression
    free of comparisons between totals (a comparison of two large expressions is what sympy
    is slowest at, and a vectorised choice would need one per term)."""
    first = dict(per_rank[0])
    totals = [sp.Add(*terms.values()) for terms in per_rank]
    first["largest_rank_excess"] = (sp.Max(*totals, evaluate=False) - totals[0]
                                    if len(totals) > 1 else sp.Integer(0))
    return first
