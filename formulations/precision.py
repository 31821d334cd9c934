"""FP8 training: which GEMMs run in FP8, the kernels that quantise their operands, and the
FP8 weight copies kept in memory.

Mixed-precision FP8 training as Transformer Engine and DeepSeek-V3 run it (Micikevicius et
al., "FP8 Formats for Deep Learning", 2022, Sec. 4; DeepSeek-AI, "DeepSeek-V3 Technical
Report", arXiv:2412.19437, Sec. 3.3):

* the three GEMMs of every linear layer -- forward, input gradient (dgrad) and weight gradient
  (wgrad) -- run on FP8 tensor cores; the attention core, the router, norms, the output layer
  and the loss stay in BF16, and master weights, gradients and optimizer states in FP32
  (DeepSeek-V3 keeps the AdamW moments in BF16, Sec. 3.3.3: the training job's choice);
* each GEMM input is quantised by a memory-bound kernel that reads the BF16 tensor and writes
  FP8 copies -- a row-wise one and, because Hopper's FP8 tensor-core instructions take only
  K-major operands, a transposed (column-wise) one for the backward GEMMs (Transformer Engine
  user guide, "Using FP8 with Transformer Engine"; NVIDIA PTX ISA, ``wgmma`` FP8 operand
  layouts);
* current (just-in-time) per-tensor scaling reads the tensor once more to find its absolute
  maximum before casting; delayed scaling takes the scale from an amax history fused into
  the previous cast; block scaling (1 x 128 activation tiles and 128 x 128 weight blocks,
  DeepSeek-V3 Sec. 3.3.2) and MXFP8 (32-element blocks, OCP Microscaling spec v1.0) compute
  their scales inside the cast;
* the weights are quantised once per optimizer step and both FP8 copies stay resident beside
  the BF16 weight (Transformer Engine caches them across the micro-batches of a step). A
  framework may keep the row-wise copy alone and transpose it before each dgrad, which
  128 x 128 weight blocks allow without requantising: the DeepSeek-V3 training profile
  (github.com/deepseek-ai/profile-data ``train.json``) shows no weight quantisation inside a
  forward/backward chunk pair, and in each backward layer FP8 transposes of exactly the
  weights' sizes (in 512 x 128 tiles: 280 for the two down-projections, 672 for the shared
  expert, 1792 and 896 for the four local experts' fc1 and fc2);
* activations cached for backward in FP8 carry their scales: one FP32 scale per 1 x 128 tile
  with block scaling, one E8M0 byte per 32 elements with MXFP8, one per tensor otherwise;
  DeepSeek-V3 caches the attention output -- the output projection's input, which the
  attention backward reads too -- in a 12-bit E5M6 format instead (Sec. 3.3.4 (1)).

The FP8 GEMM's rate is the hardware entry's FP8 peak times its FP8 GEMM efficiency for the
recipe (block-scaled GEMMs have their own, lower efficiency where the entry gives one).
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .transformer import Op, elementwise

#: Scaling recipes and the extra reads of a GEMM input each needs before its cast.
RECIPE_EXTRA_READS: dict[str, int] = {"delayed": 0, "current": 1, "block": 0, "mxfp8": 0}
RECIPES: tuple[str, ...] = ("none", *RECIPE_EXTRA_READS)
#: Bytes of one FP8 element.
FP8_BYTES = 1
#: FP8 copies written per quantised tensor: row-wise and column-wise (transposed).
FP8_COPIES = 2
#: Bits of the formats an activation is cached in for backward: FP8 (E4M3) and the E5M6 of
#: DeepSeek-V3 Sec. 3.3.4 (1) (1 sign, 5 exponent and 6 mantissa bits).
CACHE_FORMAT_BITS: dict[str, int] = {"fp8": 8, "e5m6": 12}
BITS_PER_BYTE = 8
#: Elements per scale and bytes per scale of the fine-grained recipes: 1 x 128 tiles with an
#: FP32 scale (DeepSeek-V3 Sec. 3.3.2), 32-element blocks with an E8M0 scale (OCP Microscaling
#: Formats spec v1.0). Per-tensor recipes hold one scale per tensor: nothing per element.
SCALE_BLOCKS: dict[str, tuple[int, int]] = {"block": (128, 4), "mxfp8": (32, 1)}
#: GEMMs of the layer region that stay in BF16: the router's scores are kept precise
#: (DeepSeek-V3 Sec. 3.3.1 keeps "the gating module" in higher precision).
HIGH_PRECISION_GEMMS: tuple[str, ...] = ("router",)


def runs_in_fp8(op: Op) -> bool:
    """Whether ``op`` is a linear layer's GEMM (forward, dgrad or wgrad) that FP8 training
    runs on FP8 tensor cores."""
    return (op.kind == "gemm" and op.region == "layer"
            and op.name.split(".")[0] not in HIGH_PRECISION_GEMMS)


def quantised(ops: list[Op], e: sp.Expr, recipe: str,
              transpose_weights: bool = False) -> list[Op]:
    """``ops`` with every linear GEMM in FP8 (operands read at one byte, output written at
    ``e`` bytes) and preceded by the cast of the operand it quantises: the input for a
    forward GEMM, the output gradient for a dgrad (the wgrad reuses both casts' transposed
    copies). With ``transpose_weights`` only the row-wise FP8 weight is kept and each dgrad
    first transposes it (reads and writes one byte per weight)."""
    extra = RECIPE_EXTRA_READS[recipe]
    out: list[Op] = []
    for op in ops:
        if not runs_in_fp8(op):
            out.append(op)
            continue
        name, _, part = op.name.partition(".")
        if transpose_weights and part == "dgrad":
            # The dgrad of C[m,n] = A[m,k] W[k,n] is m x k x n: the weight has k x n elements.
            out.append(elementwise(f"{name}.dgrad.weight_transpose", op.region,
                                   op.batch * op.n * op.k, 2, FP8_BYTES))
        if part != "wgrad":
            # forward: the input is m x k; dgrad of C = A B reads dC, which is its m x k.
            elements = op.batch * op.m * op.k
            out.append(elementwise(f"{name}.{part or 'fwd'}.quantise", op.region, elements,
                                   1 + extra, e, elements * FP8_BYTES * FP8_COPIES))
        operand_bytes = FP8_BYTES * op.batch * (op.m * op.k + op.k * op.n)
        out.append(replace(op, bytes=operand_bytes + e * op.batch * op.m * op.n,
                           fp8=True))
    return out


def weight_cast_bytes_per_parameter(weight_bytes: sp.Expr, copies: int = FP8_COPIES
                                    ) -> sp.Expr:
    """HBM bytes per parameter of quantising the weights once per step: read the BF16
    weight, write the resident FP8 copies."""
    return weight_bytes + FP8_BYTES * copies


def weight_copy_bytes(copies: int = FP8_COPIES) -> int:
    """Bytes per parameter of the resident FP8 weight copies: row-wise and transposed, or the
    row-wise one alone where the backward transposes it per use."""
    return FP8_BYTES * copies


def cached_bytes(recipe: str, fmt: str = "fp8") -> sp.Expr:
    """Bytes per element of an activation cached for backward in ``fmt`` under ``recipe``:
    the format's bits and the recipe's scales (see :data:`SCALE_BLOCKS`)."""
    width = sp.Rational(CACHE_FORMAT_BITS[fmt], BITS_PER_BYTE)
    if recipe in SCALE_BLOCKS:
        elements, scale = SCALE_BLOCKS[recipe]
        width += sp.Rational(scale, elements)
    return width
