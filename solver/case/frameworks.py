"""Framework profiles (``cases/frameworks/*.toml``): which parallel layouts a training
framework runs, its memory reserve and its fixed costs.

``training.framework`` names one (``megatron-core`` by default). The search keeps only the
layouts the profile allows (solver/problem/space.py); ``evaluate`` reports the rules a fixed
layout breaks. Every number carries its source, as the hardware entries' do.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from perfcost.solver.case.catalog import entries, load_entry
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.fields import Bytes, Duration, Flag, Strict, Text
from pydantic import Field, ValidationError

Schedule = Literal["1f1b", "zb-h1", "dualpipe", "dualpipev"]
Recipe = Literal["delayed", "current", "block", "mxfp8"]


class FrameworkRules(Strict):
    """The combinations the framework runs."""

    zero_stages: list[Literal[0, 1, 2, 3]]
    #: ZeRO stages the framework runs together with pipeline parallelism (pp > 1).
    zero_stages_with_pipeline: list[Literal[0, 1, 2, 3]]
    interleaving: Flag
    #: The interleaved schedule needs the micro-batches to be a multiple of pp.
    interleaving_needs_micro_batch_multiple: Flag
    context_parallel: Flag
    expert_parallel: Flag
    schedules: list[Schedule]
    fp8_recipes: list[Recipe]
    source: Text


class FrameworkMemory(Strict):
    """What the framework's process holds beside the model and its activations."""

    reserve: Bytes
    fragmentation: float = Field(ge=0.0, le=1.0)
    source: Text


class FrameworkCosts(Strict):
    """Fixed time per optimizer step and per micro-batch (and model chunk)."""

    step: Duration
    micro_batch: Duration
    source: Text


class FrameworkBehaviour(Strict):
    """How the framework runs what it runs."""

    #: Tensor-parallel communication overlapped with the linear GEMMs by default.
    tp_overlap: Flag
    #: ZeRO-2/3 reduce-scatter gradients after every micro-batch (else once per step).
    zero_reduce_per_micro_batch: Flag
    #: ZeRO-3/FSDP gathers FP8 weights when the job trains in FP8.
    fp8_weight_gather: Flag
    #: Format the attention output (the output projection's input, read by the attention
    #: backward too) is cached in for backward in FP8 training; left out: the linear-input one.
    attention_output_format: Literal["fp8", "e5m6"] | None = None
    #: The MoE dispatch sends each token once per expert-parallel rank, listing its experts
    #: there (DeepEP), rather than once per routed expert.
    dispatch_per_rank: Flag = False
    #: FP8 weight copies kept through a step in FP8 training: row-wise and transposed (2), or
    #: the row-wise one, transposed before each backward GEMM that needs it (1).
    fp8_weight_copies: Literal[1, 2] = 2
    source: Text


class FrameworkSection(Strict):
    name: Text
    description: Text
    as_of: Text
    rules: FrameworkRules
    memory: FrameworkMemory
    costs: FrameworkCosts
    behaviour: FrameworkBehaviour


def names() -> list[str]:
    return list(entries("frameworks"))


@cache
def profile(name: str) -> FrameworkSection:
    """The built-in framework profile ``name`` (a one-line error when unknown or invalid)."""
    raw = load_entry("frameworks", name, "training.framework")
    try:
        return FrameworkSection.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CaseError(f"framework {name}: {where}", first.get("input"), first["msg"]
                        ) from None
