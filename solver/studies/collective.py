"""``perfcost collective``: one collective on a built-in network, nccl-tests style.

Every algorithm of :mod:`perfcost.formulations.algorithms` that applies is timed with the
pipelined alpha-beta form on the level the ranks occupy; like NCCL, the fastest is the
prediction. Groups larger than one scale-up domain run hierarchically (inside each domain, then
one rank per domain across the scale-out fabric, then inside again).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from perfcost.formulations import algorithms as alg
from perfcost.formulations.topology import Fabric, group_view
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.sections import NetworkSection
from perfcost.solver.case.units import UnitError, check_range, parse
from perfcost.solver.problem.specs import fabric_spec


@dataclass(frozen=True)
class Prediction:
    op: str
    algorithm: str
    size: float
    ranks: int
    time: float
    algbw: float
    busbw: float
    level: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "algorithm": self.algorithm, "bytes": self.size,
                "ranks": self.ranks, "time_s": self.time, "algbw_Bps": self.algbw,
                "busbw_Bps": self.busbw, "level": self.level}


def parse_size(text: str, field: str = "--bytes") -> float:
    try:
        value = parse(text, "bytes")
    except UnitError as exc:
        raise CaseError(field, text, str(exc)) from None
    if value <= 0:
        raise CaseError(field, text, "expected a positive size, like '64 MiB'")
    try:
        return check_range(value, "bytes", positive=True)
    except UnitError as exc:
        raise CaseError(field, text, str(exc)) from None


def parse_sweep(text: str) -> list[float]:
    """``"1MiB..16GiB"``: sizes doubling from the first to the last (as nccl-tests -f 2)."""
    parts = re.split(r"\.\.", text)
    # '1MiB...2GiB' would split into '1MiB' and '.2GiB': three dots are a typo, not a range.
    if len(parts) != 2 or "..." in text:
        raise CaseError("--sweep", text, "expected FROM..TO, like '1MiB..16GiB'")
    low, high = (parse_size(p.strip(), "--sweep") for p in parts)
    if high < low:
        raise CaseError("--sweep", text, "expected FROM no larger than TO")
    sizes = []
    size = low
    while size <= high * (1 + 1e-12) and len(sizes) < 64:
        sizes.append(size)
        size *= 2
    return sizes


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def predict(op: str, size: float, ranks: int, network: NetworkSection,
            algorithm: str | None = None) -> list[Prediction]:
    """Predictions for every applicable algorithm (or the one asked for), fastest first.

    The first row is the prediction: the fastest algorithm NCCL implements, as NCCL's tuner
    picks; the others are listed for comparison.
    """
    if op not in alg.OPERATIONS:
        raise CaseError("OP", op, f"expected one of {', '.join(alg.OPERATIONS)}")
    pair = 2
    if ranks < pair:
        raise CaseError("--ranks", ranks, "expected at least 2 ranks")
    if op == "p2p" and ranks != pair:
        raise CaseError("--ranks", ranks, "expected 2 for p2p")
    candidates = alg.algorithms(op)
    if algorithm is not None:
        names = [a.name for a in candidates]
        if algorithm not in names:
            raise CaseError("--algorithm", algorithm,
                            f"expected one of {', '.join(names)} for {op}")
        candidates = [a for a in candidates if a.name == algorithm]
    up = network.scale_up
    domain = up.size or 1
    if up.topology == "torus":
        return [_torus(op, size, ranks, network, algorithm)]
    if ranks > domain and ranks % domain:
        raise CaseError("--ranks", ranks,
                        f"expected at most {domain} (one {network.name} scale-up domain) or a "
                        f"multiple of {domain}")
    rows = []
    for a in candidates:
        if a.power_of_two and not _is_power_of_two(ranks):
            if algorithm is not None:
                raise CaseError("--algorithm", algorithm,
                                f"needs a power-of-two number of ranks, got {ranks}")
            continue
        if a.in_network and (up.reduction_bandwidth is None or ranks > domain):
            if algorithm is not None:
                raise CaseError("--algorithm", algorithm,
                                f"{network.name} has no switch-side reduction for {ranks} ranks")
            continue
        time, level = _time(a, size, ranks, network)
        busbw = float(alg.bus_bandwidth(op, sp.Float(size), sp.Integer(ranks), sp.Float(time)))
        rows.append(Prediction(op, a.name, size, ranks, time, size / time, busbw, level))
    if not rows:
        raise CaseError("--ranks", ranks, f"no {op} algorithm applies to {ranks} ranks")
    nccl = {a.name for a in alg.algorithms(op) if a.nccl}
    ranked = sorted(rows, key=lambda r: (r.algorithm not in nccl, r.time))
    measured = _measured(op, size, ranks, network, algorithm)
    if measured is None:
        return ranked
    row, inside = measured
    # Inside the measured sizes the measurement is the prediction; beyond them it is a bound
    # (the collective run in measured-size pieces), the prediction only where it is faster.
    if inside or row.time < ranked[0].time:
        return [row, *ranked]
    return ranked


def _measured(op: str, size: float, ranks: int, network: NetworkSection,
              algorithm: str | None) -> tuple[Prediction, bool] | None:
    """The network's measured NCCL collective for this op and rank count
    ('perfcost calibrate --database'), and whether ``size`` lies in the measured range.

    The entries of one op and rank count are size ranges, each with its own constants
    (NCCL switches algorithm and protocol with the size); a size between two ranges is
    interpolated between them, as the fit judged it (solver/studies/collective_ranges.py).
    The constants are not extrapolated: beyond the largest measured size the collective is
    timed as ``ceil(size / max_bytes)`` pieces run one after another, each of a measured size
    -- an upper bound on the time, since a larger buffer is never slower per byte than the
    pieces it could be cut into."""
    from perfcost.solver.studies import collective_ranges

    entries = [e for e in network.scale_up.collectives
               if e.implementation == "nccl" and e.op == op and e.ranks == ranks
               and algorithm in (None, e.algorithm)]
    # One algorithm's ranges (a hand-written entry may list several algorithms).
    entries = sorted((e for e in entries if e.algorithm == entries[0].algorithm),
                     key=lambda e: e.min_bytes) if entries else []
    if not entries or size < entries[0].min_bytes:
        return None
    ranges = tuple(collective_ranges.SizeRange(e.min_bytes, e.max_bytes, e.latency,
                                               e.bandwidth, 0) for e in entries)
    top = entries[-1].max_bytes
    pieces = max(1, math.ceil(size / top))
    terms = collective_ranges.root_terms(op, entries[0].algorithm)
    piece = float(collective_ranges.predict(ranges, terms, np.array([size / pieces]),
                                            float(ranks))[0])
    time = pieces * piece
    busbw = float(alg.bus_bandwidth(op, sp.Float(size), sp.Integer(ranks), sp.Float(time)))
    inside = pieces == 1
    level = "scale-up (measured)" if inside else f"scale-up (measured, {pieces} pieces)"
    return Prediction(op, f"{entries[0].algorithm} (measured)", size, ranks, time,
                      size / time, busbw, level), inside


def _torus(op: str, size: float, ranks: int, network: NetworkSection,
           algorithm: str | None) -> Prediction:
    """Dimension-ordered rings on the sub-torus the group occupies."""
    up = network.scale_up
    dims = tuple(up.dims or ())
    if op not in ("all_reduce", "reduce_scatter", "all_gather"):
        raise CaseError("OP", op, f"expected all_reduce, reduce_scatter or all_gather on the "
                        f"torus of {network.name} (other collectives are not modelled there)")
    if algorithm not in (None, "torus"):
        raise CaseError("--algorithm", algorithm, f"expected 'torus' on {network.name}")
    if ranks > (up.size or 0):
        raise CaseError("--ranks", ranks, f"expected at most the {up.size} chips of the torus "
                        f"{'x'.join(map(str, dims))}")
    try:
        group, wraps = alg.torus_group(ranks, dims)
    except ValueError:
        raise CaseError("--ranks", ranks, f"expected a group that tiles the torus "
                        f"{'x'.join(map(str, dims))} dimension by dimension") from None
    t = alg.torus_all_reduce(sp.Float(size), tuple(sp.Integer(g) for g in group), wraps,
                             sp.Float(up.latency), sp.Float(up.bandwidth * up.efficiency))
    time = float(t) if op == "all_reduce" else float(t) / 2
    busbw = float(alg.bus_bandwidth(op, sp.Float(size), sp.Integer(ranks), sp.Float(time)))
    shape = "x".join(f"{g}{'' if w else ' (line)'}" for g, w in zip(group, wraps, strict=True))
    return Prediction(op, "torus", size, ranks, time, size / time, busbw, f"torus {shape}")


def _time(a: alg.Algorithm, size: float, ranks: int, network: NetworkSection
          ) -> tuple[float, str]:
    up, out = network.scale_up, network.scale_out
    domain = up.size or 1
    if a.in_network:
        t = alg.pipelined_time(a, sp.Float(size), sp.Integer(ranks),
                               sp.Float(up.reduction_latency or 0.0),
                               sp.Float(up.reduction_bandwidth or 1.0))
        return float(t), "scale-up (switch reduction)"
    if ranks <= domain:
        t = alg.pipelined_time(a, sp.Float(size), sp.Integer(ranks), sp.Float(up.latency),
                               sp.Float(up.bandwidth * up.efficiency))
        return float(t), "scale-up"
    # Hierarchical: the algorithm across domains on the scale-out link (one rank per domain
    # and per NIC, each carrying 1/domain of the data), bracketed by a ring reduce-scatter and
    # all-gather inside each domain for the reducing collectives.
    across = sp.Integer(ranks // domain)
    share = sp.Float(size) / domain
    fabric = fabric_spec(network)
    view = group_view(Fabric(sp.Float(fabric.unit), sp.Float(fabric.taper),
                             sp.Float(fabric.hop_latency), sp.Integer(fabric.extra_hops)),
                      sp.Integer(ranks))
    rate_out = sp.Float(out.bandwidth * out.efficiency) * view.bandwidth_factor
    t = alg.pipelined_time(a, share, across, sp.Float(out.latency) + view.extra_latency,
                           rate_out)
    if a.op in ("all_reduce", "reduce_scatter", "all_gather"):
        ring = alg.find("reduce_scatter", "ring")
        inside = alg.pipelined_time(ring, sp.Float(size), sp.Integer(domain),
                                    sp.Float(up.latency), sp.Float(up.bandwidth * up.efficiency))
        t = t + (2 if a.op == "all_reduce" else 1) * inside
    return float(t), "hierarchical"
