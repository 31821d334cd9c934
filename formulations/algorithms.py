"""Collective algorithms as closed forms: latency steps and bytes per rank, per algorithm.

Each algorithm of a collective ``op`` over ``n`` ranks on a buffer of ``S`` bytes is described
by ``steps`` (sequential message latencies on its critical path) and ``volume`` (bytes one rank
must move through its link in one direction). On a link of latency ``alpha`` and achieved
bandwidth ``B``:

* textbook alpha-beta time (Thakur, Rabenseifner & Gropp, IJHPCA 2005, Sec. 4; Chan et al.,
  "Collective communication: theory, practice, and experience", 2007):
  ``T = steps * alpha + volume / B``;
* pipelined time, as NCCL runs them -- the buffer cut into chunks that flow through the
  ``steps`` stages; with the best chunk size (Johnsson & Ho, IEEE TC 1989; Traeff, "Optimal
  segmentation", 2009): ``T = (sqrt(steps * alpha) + sqrt(volume / B))^2``.

``BUS_FACTOR`` converts nccl-tests' algorithm bandwidth ``S / T`` into its bus bandwidth
(nccl-tests doc/PERFORMANCE.md), so predictions compare with ``busbw`` columns directly.

| op | algorithm | steps | volume |
| --- | --- | --- | --- |
| all_reduce | ring | 2(n-1) | 2(n-1)/n S |
| all_reduce | halving_doubling (Rabenseifner) | 2 log2 n | 2(n-1)/n S |
| all_reduce | double_binary_tree (NCCL) | 2 log2 n | 2 S |
| all_reduce | in_network (NVLink SHARP / IB SHARP) | 2 | S |
| reduce_scatter, all_gather | ring | n-1 | (n-1)/n S |
| reduce_scatter, all_gather | halving_doubling | log2 n | (n-1)/n S |
| all_to_all | pairwise | n-1 | (n-1)/n S |
| all_to_all | bruck | log2 n | S/2 log2 n |
| broadcast | ring (pipelined chain) | n-1 | S |
| broadcast | binomial_tree | log2 n | S log2 n |
| p2p | direct | 1 | S |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

#: nccl-tests bus-bandwidth factors: busbw = algbw * factor(n).
BUS_FACTOR: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "broadcast": lambda n: sp.Integer(1),
    "p2p": lambda n: sp.Integer(1),
}


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of one collective."""

    op: str
    name: str
    steps: Callable[[sp.Expr], sp.Expr]
    volume: Callable[[sp.Expr, sp.Expr], sp.Expr]
    power_of_two: bool = False
    in_network: bool = False
    nccl: bool = True  # NCCL implements it (ring, trees, NVLS/CollNet, pairwise, chain)
    doc: str = ""


def _log2(n: sp.Expr) -> sp.Expr:
    return sp.log(n, 2)


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm("all_reduce", "ring", lambda n: 2 * (n - 1), lambda s, n: 2 * (n - 1) / n * s,
              doc="reduce-scatter then all-gather around a ring"),
    Algorithm("all_reduce", "halving_doubling", lambda n: 2 * _log2(n),
              lambda s, n: 2 * (n - 1) / n * s, power_of_two=True, nccl=False,
              doc="Rabenseifner: recursive halving reduce-scatter, doubling all-gather"),
    Algorithm("all_reduce", "double_binary_tree", lambda n: 2 * _log2(n), lambda s, n: 2 * s,
              doc="NCCL's two complementary binary trees, each carrying half the data"),
    Algorithm("all_reduce", "in_network", lambda n: sp.Integer(2), lambda s, n: s,
              in_network=True, doc="switch-side reduction (NVLink SHARP, InfiniBand SHARP)"),
    Algorithm("reduce_scatter", "ring", lambda n: n - 1, lambda s, n: (n - 1) / n * s),
    Algorithm("reduce_scatter", "halving_doubling", lambda n: _log2(n),
              lambda s, n: (n - 1) / n * s, power_of_two=True, nccl=False),
    Algorithm("all_gather", "ring", lambda n: n - 1, lambda s, n: (n - 1) / n * s),
    Algorithm("all_gather", "halving_doubling", lambda n: _log2(n),
              lambda s, n: (n - 1) / n * s, power_of_two=True, nccl=False),
    Algorithm("all_to_all", "pairwise", lambda n: n - 1, lambda s, n: (n - 1) / n * s),
    Algorithm("all_to_all", "bruck", lambda n: sp.ceiling(_log2(n)),
              lambda s, n: s / 2 * sp.ceiling(_log2(n)), nccl=False),
    Algorithm("broadcast", "ring", lambda n: n - 1, lambda s, n: s,
              doc="pipelined chain"),
    Algorithm("broadcast", "binomial_tree", lambda n: sp.ceiling(_log2(n)),
              lambda s, n: s * sp.ceiling(_log2(n)), nccl=False),
    Algorithm("p2p", "direct", lambda n: sp.Integer(1), lambda s, n: s),
)

OPERATIONS: tuple[str, ...] = tuple(BUS_FACTOR)


def algorithms(op: str) -> list[Algorithm]:
    return [a for a in ALGORITHMS if a.op == op]


def find(op: str, name: str) -> Algorithm:
    """The algorithm ``name`` of collective ``op``."""
    for a in ALGORITHMS:
        if a.op == op and a.name == name:
            return a
    raise KeyError(f"no {op} algorithm named {name!r}")


def alpha_beta_time(algorithm: Algorithm, size: sp.Expr, n: sp.Expr, latency: sp.Expr,
                    bandwidth: sp.Expr) -> sp.Expr:
    """Textbook time: latency per step plus volume over bandwidth."""
    return algorithm.steps(n) * latency + algorithm.volume(size, n) / bandwidth


def pipelined_time(algorithm: Algorithm, size: sp.Expr, n: sp.Expr, latency: sp.Expr,
                   bandwidth: sp.Expr) -> sp.Expr:
    """Time with the buffer pipelined through the steps in optimally sized chunks."""
    return (sp.sqrt(algorithm.steps(n) * latency)
            + sp.sqrt(algorithm.volume(size, n) / bandwidth)) ** 2


def torus_all_reduce(size: sp.Expr, dims: tuple[sp.Expr, ...], wraps: tuple[bool, ...],
                     latency: sp.Expr, bandwidth: sp.Expr) -> sp.Expr:
    """All-reduce on a (sub-)torus, dimension by dimension (TPU v4 paper, Jouppi et al. ISCA
    2023, Sec. 3; Chan et al. 2007 for multi-dimensional meshes).

    A reduce-scatter runs along each dimension in turn on the shrinking buffer, then the
    all-gathers in reverse. A dimension with wraparound is a bidirectional ring (two links,
    ``2 B`` per rank); one without (a slice of a longer dimension) is a line (``B``):

        T = 2 * sum_i [ (d_i - 1) alpha + (d_i - 1)/d_i * S_i / B_i ],  S_{i+1} = S_i / d_i
    """
    total = sp.Integer(0)
    share = size
    for d, wrap in zip(dims, wraps, strict=True):
        rate = 2 * bandwidth if wrap else bandwidth
        total += 2 * ((d - 1) * latency + (d - 1) / d * share / rate)
        share = share / d
    return total


def torus_group(ranks: int, dims: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """The sub-torus a group of ``ranks`` occupies when laid along the dimensions in order:
    whole dimensions first (they keep their wraparound), then a slice of the next one."""
    group: list[int] = []
    wraps: list[bool] = []
    left = ranks
    for d in dims:
        if left == 1:
            break
        if left % d == 0:
            group.append(d)
            wraps.append(True)
            left //= d
        elif left < d:
            group.append(left)
            wraps.append(False)
            left = 1
        else:
            break
    if left != 1:
        raise ValueError(f"{ranks} ranks do not fit the torus {dims}")
    return tuple(group), tuple(wraps)


def bus_bandwidth(op: str, size: sp.Expr, n: sp.Expr, time: sp.Expr) -> sp.Expr:
    """nccl-tests' busbw for a collective that took ``time``."""
    return size / time * BUS_FACTOR[op](n)
