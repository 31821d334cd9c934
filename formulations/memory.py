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
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .attention import flash_activation_bytes, layer_shape
from .transformer import Dims

#: Tensors kept outside the TP regions per layer: 2 norm inputs, QKV and fc1 inputs.
UNSPLIT_ACTIVATION_TENSORS = 4
#: Dropout masks kept outside the TP regions per layer (after attention and after the MLP).
UNSPLIT_DROPOUT_MASKS = 2


@dataclass(frozen=True)
class ActivationTerms:
    """Bytes of activations one layer keeps for one micro-batch, by part."""

    outside_tp: sp.Expr
    attention_linear: sp.Expr
    attention_core: sp.Expr
    mlp: sp.Expr
    layer_input: sp.Expr


def activation_terms(d: Dims, flash: bool = False,
                     linear_input_bytes: sp.Expr | None = None) -> ActivationTerms:
    """Activation bytes per layer by part; with ``flash`` the attention core keeps only the
    fp32 log-sum-exp per query row (formulations.attention): Korthikanti's 5as/h term is gone.

    ``linear_input_bytes`` is the width the inputs of the linear layers are kept in for their
    weight gradients: one byte in FP8 training, which keeps the quantised copy rather than the
    BF16 tensor (Transformer Engine; DeepSeek-V3 Sec. 3.3.3); ``None`` keeps them at ``e``."""
    tokens = d.tokens
    lin = d.e if linear_input_bytes is None else linear_input_bytes
    # Two norm inputs at e, the QKV and fc1 inputs at the linear-input width.
    half = UNSPLIT_ACTIVATION_TENSORS // 2
    outside = tokens * d.h * d.sigma * (half * d.e + half * lin
                                        + UNSPLIT_DROPOUT_MASKS * d.mask)
    q_width = d.local_heads * d.head_dim
    kv_width = d.local_kv_heads * d.head_dim
    # Q, K, V and the projection's input (the attention output, as wide as Q).
    attention_linear = tokens * (d.e * (q_width + 2 * kv_width) + lin * q_width)
    scores = d.b * d.local_heads * (d.s / d.c) * d.s
    # Softmax output, and with dropout also its mask and the dropped-out probabilities.
    attention_core = scores * (d.e + (d.e + d.mask if d.dropout else 0))
    if flash:
        attention_core = flash_activation_bytes(layer_shape(d))
    mlp_width = d.ffn / d.t
    mlp = tokens * (d.e * d.gate_factor * mlp_width + lin * mlp_width)
    layer_input = tokens * d.h * d.sigma * d.e
    return ActivationTerms(outside, attention_linear, attention_core, mlp, layer_input)


def layer_activation_bytes(terms: ActivationTerms, selective: sp.Expr,
                           full: sp.Expr) -> sp.Expr:
    """Bytes one layer keeps per micro-batch; ``selective``/``full`` are 0/1 indicators."""
    stored = terms.outside_tp + terms.attention_linear + terms.mlp
    kept_core = terms.attention_core * (1 - selective)
    return (1 - full) * (stored + kept_core) + full * terms.layer_input


def in_flight_layers(layers: sp.Expr, p: sp.Expr, v: sp.Expr, m: sp.Expr) -> sp.Expr:
    """Layer-micro-batches whose activations the first stage holds at its peak."""
    interleave = sp.Piecewise((sp.Integer(1), sp.Eq(v, 1)), (1 + (p - 1) / (p * v), True))
    return layers / p * sp.Min(p, m) * interleave


def sharded(count: sp.Expr, dp: sp.Expr, zero: sp.Expr, from_stage: int) -> sp.Expr:
    """``count`` divided over the data-parallel ranks when the ZeRO stage is >= ``from_stage``."""
    return sp.Piecewise((count / dp, zero >= from_stage), (count, True))
