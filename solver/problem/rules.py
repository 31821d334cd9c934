"""The structural rules that tie parallel degrees together, written once for both callers: the
search space (solver/problem/space.py) applies them to numpy columns of candidates, and
``evaluate`` (solver/problem/specs.py ``check_config``) to the one configuration a case fixes,
so the two can never disagree about what is a valid configuration.

Each predicate takes scalars or numpy arrays alike (only arithmetic and comparisons, combined
with ``&`` and ``|``) and returns a bool or a boolean array.
"""

from __future__ import annotations

from typing import Any


def product_is_gpus(tp: Any, pp: Any, dp: Any, cp: Any, gpus: Any) -> Any:
    """Every GPU runs one rank: tp*pp*dp*cp = gpus."""
    return tp * pp * dp * cp == gpus


def batch_splits(global_batch: int, dp: Any, micro_batch: Any) -> Any:
    """Each data-parallel replica runs whole micro-batches: dp*micro_batch divides the global
    batch."""
    return global_batch % (dp * micro_batch) == 0


def enough_micro_batches(global_batch: int, dp: Any, micro_batch: Any, pp: Any) -> Any:
    """At least one micro-batch per pipeline stage (global_batch / (dp*micro_batch) >= pp):
    with fewer, the 1F1B schedule the formulations model (Narayanan et al. 2021, sec. 2.2) has
    stages that never run, and its bubble term no longer describes the step."""
    return global_batch >= pp * dp * micro_batch


def layers_split(layers: int, pp: Any, virtual_stages: Any, uneven: bool) -> Any:
    """The layers split into pp*virtual_stages chunks (evenly unless stages may be uneven), and
    model chunks (virtual stages) only with a pipeline."""
    chunks = pp * virtual_stages
    split = chunks <= layers if uneven else layers % chunks == 0
    return split & ((virtual_stages == 1) | (pp > 1))


def interleaving_micro_batches(global_batch: int, dp: Any, micro_batch: Any, pp: Any,
                               virtual_stages: Any) -> Any:
    """The interleaved schedule (virtual_stages > 1) runs a multiple of pp micro-batches
    (Megatron-Core's interleaved 1F1B: global_batch / (dp*micro_batch) divisible by pp)."""
    return (virtual_stages == 1) | (global_batch % (dp * micro_batch * pp) == 0)


def heads_split(heads: int, tp: Any, cp: Any) -> Any:
    """Ulysses context parallelism splits each rank's heads over cp: tp*cp divides the heads."""
    return heads % (tp * cp) == 0


def experts_split(tp: Any, cp: Any, dp: Any, ep: Any, expert_tp: int) -> Any:
    """ep*expert_tp divides the ranks of one pipeline stage (tp*cp*dp)."""
    return (tp * cp * dp) % (ep * expert_tp) == 0
