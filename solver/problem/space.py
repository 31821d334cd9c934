"""The search space of a case: decision domains and the structural rules between decisions.

Domains come from the case: a list is a choice, a scalar is fixed, a field left out is searched
over its full valid domain. Values that break a rule of their own (tp not dividing the heads,
...) are pruned with a note. Rules between decisions are derived from the model, the batch and
the systems, not listed per case:

* ``tp * pp * dp * cp`` is one of the allowed GPU counts;
* ``global_batch % (dp * micro_batch) == 0`` and at least ``pp`` micro-batches (fewer leaves
  more than half of the pipeline idle; the memory model then holds ``pp`` in flight exactly);
* ``layers % (pp * virtual_stages) == 0`` and ``virtual_stages == 1`` when ``pp == 1``;
* ``tp`` at most the scale-up domain of the chosen network;
* ZeRO only with ``dp > 1`` and sequence parallelism only with ``tp > 1`` (otherwise they are
  the same configuration spelled twice);
* ``ep`` divides the model's experts and ``ep * expert_tp`` divides ``tp * cp * dp``, the ranks
  of one pipeline stage (Megatron-Core's expert data parallelism
  ``tp * cp * dp / (ep * expert_tp)``; formulations/moe.py); ``ep = 1`` for a dense model;
* with ``parallelism.uneven_stages``, ``pp * virtual_stages <= layers`` replaces the
  divisibility of the layers.

Rules are vectorised numpy masks, so the enumeration engine and the candidate generator share
them; :mod:`compile` writes the same rules as linear relations for the MILP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from perfcost.formulations.specs import PLACEMENTS, RECOMPUTE_MODES
from perfcost.solver.case import frameworks
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case
from perfcost.solver.problem import rules
from perfcost.solver.problem.specs import tp_problem

#: Order of the decision variables in every configuration array.
DECISIONS: tuple[str, ...] = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages",
                              "recompute", "sequence_parallel", "zero", "placement")
#: Largest context-parallel size searched when the case leaves ``cp`` out.
DEFAULT_MAX_CP = 32


@dataclass(frozen=True)
class System:
    """One hardware + network pair a search may choose."""

    hardware: str
    network: str
    scale_up_size: int
    hbm_capacity: float
    #: The GPU count this system is priced for (co-design: the cluster's bill of materials
    #: depends on it), or None when the system takes any of the case's GPU counts.
    gpus: int | None = None

    @property
    def label(self) -> str:
        return f"{self.hardware} + {self.network}"


@dataclass(frozen=True)
class Space:
    """Finite domains (numeric codes) of every decision, and what the rules need to know."""

    domains: dict[str, tuple[float, ...]]
    gpus: tuple[int, ...]
    systems: tuple[System, ...]
    global_batch: int
    layers: int
    notes: tuple[str, ...] = field(default=())
    #: Expert tensor parallelism (fixed by the case) and whether stages may be uneven.
    expert_tp: int = 1
    uneven_stages: bool = False
    #: The framework profile's rules (solver/case/frameworks.py): ZeRO stages it runs with a
    #: pipeline, and whether interleaving needs the micro-batches to be a multiple of pp.
    zero_with_pipeline: tuple[int, ...] = (0, 1, 2, 3)
    interleave_multiple: bool = False
    #: With Ulysses context parallelism, the heads that tp*cp must divide (else None).
    heads_over_cp: int | None = None

    @property
    def size(self) -> int:
        """Configurations in the product of the domains (before rules)."""
        fixed = all(s.gpus is not None for s in self.systems)
        # A system that fixes its GPU count already counts each count once.
        n = len(self.systems) * (1 if fixed else len(self.gpus))
        for values in self.domains.values():
            n *= len(values)
        return n


def divisors(n: int, limit: int | None = None) -> list[int]:
    """The divisors of ``n`` (at most ``limit``), ascending: pairs found up to sqrt(n), so a
    GPU count of 10^9 takes 31,623 steps, not 10^9."""
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    out = sorted(set(small) | {n // k for k in small})
    return [k for k in out if limit is None or k <= limit]


def _choice(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return list(value) if isinstance(value, list) else [value]


def build_space(case: Case, systems: Sequence[System]) -> Space:
    """Domains of every decision for ``case``, pruned by the rules each value has alone."""
    m, par, job = case.model, case.parallelism, case.training
    framework = frameworks.profile(job.framework)
    fw_rules = framework.rules
    gpus = _choice(case.cluster.gpus)
    if gpus is None:
        raise CaseError("cluster.gpus", None,
                        "missing: the search needs a GPU count (or a list to choose from)")
    max_gpus = max(gpus)
    notes: list[str] = []
    max_tp = max(s.scale_up_size for s in systems)

    def tp_ok(t: int) -> str | None:
        if t > max_tp:
            return f"exceeds the largest scale-up domain ({max_tp})"
        return tp_problem(m, t)

    def pruned(name: str, given: list[Any] | None, default: list[Any],
               check: Any = None) -> list[Any]:
        values = default if given is None else given
        kept = []
        for v in values:
            why = check(v) if check else None
            if why:
                if given is not None:
                    notes.append(f"parallelism.{name} = {v} pruned: {why}")
            else:
                kept.append(v)
        if not kept:
            raise CaseError(f"parallelism.{name}", given,
                            "no value is valid for this model and cluster" +
                            (f" ({notes[-1].split(': ', 1)[1]})" if notes else ""))
        return sorted(set(kept), key=float)

    def layer_splits(layers: int, limit: int | None) -> list[int]:
        """Stage (or chunk) counts the layers allow: divisors, or any count up to the layers
        when stages may be uneven."""
        if par.uneven:
            return list(range(1, min(layers, limit or layers) + 1))
        return divisors(layers, limit)

    def layer_split_problem(n: int) -> str | None:
        if par.uneven:
            return None if n <= m.layers else f"exceeds model.layers = {m.layers}"
        return None if m.layers % n == 0 else f"does not divide model.layers = {m.layers}"

    domains: dict[str, list[Any]] = {
        "tp": pruned("tp", _choice(par.tp), list(range(1, max_tp + 1)), tp_ok),
        "pp": pruned("pp", _choice(par.pp), [p for p in layer_splits(m.layers, max_gpus)
                                             if not par.uneven
                                             or any(g % p == 0 for g in gpus)],
                     lambda p: layer_split_problem(p)),
        "cp": pruned("cp", _choice(par.cp),
                     [c for c in divisors(m.seq_len, DEFAULT_MAX_CP) if c & (c - 1) == 0],
                     lambda c: (f"{framework.name} runs no context parallelism"
                                if c > 1 and not fw_rules.context_parallel else
                                None if m.seq_len % c == 0 else
                                f"does not divide model.seq_len = {m.seq_len}")),
        "dp": pruned("dp", _choice(par.dp),
                     sorted(set().union(*(divisors(g) for g in gpus))),
                     lambda d: None if job.global_batch % d == 0 else
                     f"does not divide training.global_batch = {job.global_batch}"),
        "micro_batch": pruned("micro_batch", _choice(par.micro_batch),
                              divisors(job.global_batch),
                              lambda b: None if job.global_batch % b == 0 else
                              f"does not divide training.global_batch = {job.global_batch}"),
        "virtual_stages": pruned("virtual_stages", _choice(par.virtual_stages),
                                 layer_splits(m.layers, None),
                                 lambda v: (f"{framework.name} runs no interleaved schedule"
                                            if v > 1 and not fw_rules.interleaving
                                            else layer_split_problem(v))),
        "ep": pruned("ep", _choice(par.ep), divisors(m.experts, max_gpus) if m.experts else [1],
                     lambda e: None if e == 1 else
                     f"{framework.name} runs no expert parallelism"
                     if not fw_rules.expert_parallel else
                     None if (m.experts and m.experts % e == 0) else
                     f"does not divide model.experts = {m.experts or 0}"),
    }
    recompute = _choice(par.recompute) or list(RECOMPUTE_MODES)
    seqpar = _choice(par.sequence_parallel)
    zero = pruned("zero", _choice(par.zero), list(fw_rules.zero_stages),
                  lambda z: None if z in fw_rules.zero_stages else
                  f"{framework.name} runs ZeRO stages {fw_rules.zero_stages}")
    codes: dict[str, tuple[float, ...]] = {k: tuple(float(v) for v in vals)
                                           for k, vals in domains.items()}
    codes["recompute"] = tuple(float(RECOMPUTE_MODES.index(r)) for r in recompute)
    codes["sequence_parallel"] = tuple(float(v) for v in sorted(set(
        seqpar if seqpar is not None else [False, True])))
    codes["zero"] = tuple(float(v) for v in sorted(set(zero if zero is not None else
                                                       [0, 1, 2, 3])))
    placement = _choice(par.placement) or list(PLACEMENTS)
    codes["placement"] = tuple(sorted({float(PLACEMENTS.index(p)) for p in placement}))
    ordered = {name: codes[name] for name in DECISIONS}
    return Space(ordered, tuple(sorted(set(gpus))), tuple(systems), job.global_batch,
                 m.layers, tuple(notes), par.expert_tp, par.uneven,
                 tuple(fw_rules.zero_stages_with_pipeline),
                 fw_rules.interleaving_needs_micro_batch_multiple,
                 m.heads if job.cp_algorithm == "a2a" else None)


@dataclass
class Candidates:
    """Configurations that satisfy every structural rule, as parallel arrays."""

    columns: dict[str, np.ndarray]
    system: np.ndarray
    counts: list[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.system)


#: Most candidate configurations held at once while the space is generated. Each is a row of
#: about 14 float columns (8*10^6 rows: ~0.9 GB, within the 24 GiB machines this runs on) and
#: is evaluated later in chunks; the largest built-in search
#: (cases/studies/kimi-k2-chiplet-codesign.toml) peaks at ~7*10^5, and enumerating its
#: sub-space in tests/test_bound.py at ~2*10^6.
MAX_ROWS = 8_000_000


def _cross(columns: dict[str, np.ndarray], name: str, values: Sequence[float]
           ) -> dict[str, np.ndarray]:
    n, k = len(next(iter(columns.values()))), len(values)
    if n * k > MAX_ROWS:  # checked before the arrays are made
        raise CaseError("search space", f"{n * k:,} configurations",
                        f"expected at most {MAX_ROWS:,} at once (after crossing {name} over "
                        f"{k} values); fix some decisions, e.g. --set parallelism.{name}=..., "
                        "or search fewer GPU counts or systems")
    out = {key: np.repeat(col, k) for key, col in columns.items()}
    out[name] = np.tile(np.asarray(values, dtype=float), n)
    return out


def _keep(columns: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in columns.items()}


#: Decisions crossed last, after the rules between group sizes: each core configuration (the
#: other decisions) takes every combination of them (bar equivalent spellings).
MODES: tuple[str, ...] = ("recompute", "sequence_parallel", "zero", "placement")


def candidates(space: Space) -> Candidates:
    """Every configuration of ``space`` that satisfies the structural rules.

    Generated stage by stage so that the product rule prunes before the large crossings.
    """
    cols, counts = _cores(space)
    cols, count = _with_modes(space, cols, MODES)
    counts.append(count)
    system = cols.pop("system").astype(int)
    cols.pop("gpus")
    return Candidates({name: cols[name] for name in DECISIONS}, system, counts)


def count_candidates(space: Space) -> int:
    """``len(candidates(space))`` without building them: how many mode combinations the
    last rule keeps depends on a core only through ``tp > 1``, ``pp > 1`` and ``dp > 1``, so
    one representative core of each kind is crossed with the modes and counted."""
    cols, _counts = _cores(space)
    kind = ((cols["tp"] > 1).astype(int) * 4 + (cols["pp"] > 1).astype(int) * 2
            + (cols["dp"] > 1).astype(int))
    total = 0
    for k, n in zip(*np.unique(kind, return_counts=True), strict=True):
        first = int(np.flatnonzero(kind == k)[0])
        one = {name: v[first:first + 1] for name, v in cols.items()}
        total += int(n) * len(_with_modes(space, one, MODES)[0]["tp"])
    return total


def core_candidates(space: Space, left_out: tuple[str, ...] = MODES) -> Candidates:
    """The configurations of ``space`` without the decisions ``left_out`` (some of the
    :data:`MODES`; their columns hold each one's first value): the rules between the others
    hold."""
    cols, counts = _cores(space)
    cols, _count = _with_modes(space, cols, tuple(m for m in MODES if m not in left_out))
    system = cols.pop("system").astype(int)
    cols.pop("gpus")
    for name in left_out:
        cols[name] = np.full(len(system), space.domains[name][0])
    return Candidates({name: cols[name] for name in DECISIONS}, system, counts)


def with_modes(space: Space, cores: Candidates, left_out: tuple[str, ...] = MODES
               ) -> Candidates:
    """Every configuration of ``space`` on the given core configurations (which leave the
    decisions ``left_out`` out)."""
    cols = {k: v for k, v in cores.columns.items() if k not in left_out}
    cols["system"] = cores.system.astype(float)
    cols, count = _with_modes(space, cols, left_out)
    system = cols.pop("system").astype(int)
    return Candidates({name: cols[name] for name in DECISIONS}, system, [*cores.counts, count])


def _cores(space: Space) -> tuple[dict[str, np.ndarray], list[tuple[str, int]]]:
    d = space.domains
    counts: list[tuple[str, int]] = []
    cols: dict[str, np.ndarray] = {"system": np.arange(len(space.systems), dtype=float)}
    cols = _cross(cols, "gpus", [float(g) for g in space.gpus])
    fixed_gpus = np.array([s.gpus or 0 for s in space.systems], dtype=float)
    if fixed_gpus.any():
        own = fixed_gpus[cols["system"].astype(int)]
        cols = _keep(cols, (own == 0) | (own == cols["gpus"]))
    for name in ("tp", "pp", "cp"):
        cols = _cross(cols, name, d[name])
    sizes = np.array([s.scale_up_size for s in space.systems], dtype=float)
    cols = _keep(cols, (cols["tp"] <= sizes[cols["system"].astype(int)])
                 & (rules.heads_split(space.heads_over_cp, cols["tp"], cols["cp"])
                    if space.heads_over_cp is not None else True))
    counts.append(("tp within the scale-up domain", len(cols["tp"])))
    dp = cols["gpus"] / (cols["tp"] * cols["pp"] * cols["cp"])
    allowed_dp = np.asarray(d["dp"])
    ok = (dp == np.round(dp)) & np.isin(np.round(dp), allowed_dp) & rules.product_is_gpus(
        cols["tp"], cols["pp"], np.round(dp), cols["cp"], cols["gpus"])
    cols = _keep(cols, ok)
    cols["dp"] = np.round(dp[ok])
    counts.append(("tp*pp*dp*cp = gpus", len(cols["tp"])))
    cols = _cross(cols, "micro_batch", d["micro_batch"])
    cols = _keep(cols, rules.batch_splits(space.global_batch, cols["dp"], cols["micro_batch"])
                 & rules.enough_micro_batches(space.global_batch, cols["dp"],
                                              cols["micro_batch"], cols["pp"]))
    counts.append(("global_batch % (dp*micro_batch) = 0 with >= pp micro-batches",
                   len(cols["tp"])))
    cols = _cross(cols, "virtual_stages", d["virtual_stages"])
    cols = _keep(cols, rules.layers_split(space.layers, cols["pp"], cols["virtual_stages"],
                                          space.uneven_stages)
                 & (rules.interleaving_micro_batches(space.global_batch, cols["dp"],
                                                     cols["micro_batch"], cols["pp"],
                                                     cols["virtual_stages"])
                    if space.interleave_multiple else True))
    counts.append(("pp*virtual_stages <= layers" if space.uneven_stages else
                   "layers % (pp*virtual_stages) = 0", len(cols["tp"])))
    cols = _cross(cols, "ep", d["ep"])
    cols = _keep(cols, rules.experts_split(cols["tp"], cols["cp"], cols["dp"], cols["ep"],
                                           space.expert_tp))
    counts.append(("ep*expert_tp divides tp*cp*dp", len(cols["tp"])))
    return cols, counts


def _with_modes(space: Space, cols: dict[str, np.ndarray], modes: tuple[str, ...]
                ) -> tuple[dict[str, np.ndarray], tuple[str, int]]:
    """``cols`` crossed with the decisions ``modes`` (in :data:`MODES` order), keeping one
    spelling of equivalent configurations among the modes crossed."""
    d = space.domains
    for name in MODES:
        if name in modes:
            cols = _cross(cols, name, d[name])
    # Equivalent spellings of one configuration are kept once: ZeRO shards nothing over one
    # data-parallel rank, sequence parallelism splits nothing over one tensor-parallel rank.
    keep = np.ones(len(cols["tp"]), dtype=bool)
    if 0.0 in d["placement"] and "placement" in modes:
        # Without pipeline or data parallelism both orders are the same layout.
        keep &= (cols["placement"] == 0) | ((cols["pp"] > 1) & (cols["dp"] > 1))
    if 0.0 in d["zero"] and "zero" in modes:
        keep &= (cols["zero"] == 0) | (cols["dp"] > 1)
    if "zero" in modes:
        # The framework's ZeRO stages with a pipeline (DeepSpeed: ZeRO-2/3 only without one).
        keep &= (cols["pp"] == 1) | np.isin(cols["zero"], space.zero_with_pipeline)
    if 0.0 in d["sequence_parallel"] and "sequence_parallel" in modes:
        keep &= (cols["sequence_parallel"] == 0) | (cols["tp"] > 1)
    cols = _keep(cols, keep)
    return cols, ("no equivalent duplicates (ZeRO needs dp > 1, sequence parallelism tp > 1)",
                  len(cols["tp"]))
