"""alpha-beta time of collectives on one link level (ring and tree algorithms).

A level is described by the bandwidth one rank can drive in one direction (``bandwidth``),
the fraction of it a collective kernel reaches (``efficiency``, as measured by nccl-tests'
bus bandwidth) and the per-step latency (``latency``). Formulas after Thakur, Rabenseifner &
Gropp, "Optimization of Collective Communication Operations in MPICH" (IJHPCA 2005), Sec. 4,
with ``S`` the size of the whole buffer in bytes and ``n`` the ranks:

* ring reduce-scatter / all-gather: (n-1) alpha + (n-1)/n * S / B
* ring all-reduce (reduce-scatter then all-gather): 2 (n-1) alpha + 2 (n-1)/n * S / B
* point-to-point: alpha + S / B
* hierarchical all-reduce over k ranks per scale-up domain and N domains: reduce-scatter
  inside, all-reduce of S/k across, all-gather inside (as NCCL's tree/ring hierarchy does).

nccl-tests reports ``busbw = algbw * 2 (n-1)/n`` for all-reduce, so ``efficiency`` equals
measured busbw over link bandwidth at large sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import algorithms


@dataclass(frozen=True)
class Link:
    """Symbols of one level of the network."""

    bandwidth: sp.Expr
    latency: sp.Expr
    efficiency: sp.Expr

    @property
    def rate(self) -> sp.Expr:
        return self.bandwidth * self.efficiency


def _on(op: str, name: str, size: sp.Expr, n: sp.Expr, link: Link) -> sp.Expr:
    """Textbook time of one algorithm of :mod:`algorithms` on ``link``."""
    return algorithms.alpha_beta_time(algorithms.find(op, name), size, n, link.latency,
                                      link.rate)


def ring_reduce_scatter(size: sp.Expr, n: sp.Expr, link: Link) -> sp.Expr:
    return _on("reduce_scatter", "ring", size, n, link)


def ring_all_gather(size: sp.Expr, n: sp.Expr, link: Link) -> sp.Expr:
    return _on("all_gather", "ring", size, n, link)


def ring_all_reduce(size: sp.Expr, n: sp.Expr, link: Link) -> sp.Expr:
    return _on("all_reduce", "ring", size, n, link)


def point_to_point(size: sp.Expr, link: Link) -> sp.Expr:
    return _on("p2p", "direct", size, sp.Integer(2), link)


def hierarchical_all_reduce(size: sp.Expr, per_domain: sp.Expr, domains: sp.Expr,
                            up: Link, out: Link) -> sp.Expr:
    """All-reduce of ``size`` bytes over ``per_domain`` x ``domains`` ranks on two levels."""
    inside = 2 * ring_reduce_scatter(size, per_domain, up)
    across = ring_all_reduce(size / per_domain, domains, out)
    return inside + across
