"""What a group of ranks sees of the scale-out fabric: bandwidth per rank, latency, hops.

The scale-out fabric joins scale-up domains. Each kind has a *unit* inside which every rank
keeps its full injection bandwidth, and a *taper* -- the fraction of it left once a group
spans several units, because all groups of one parallel dimension cross the same upper links
at once (their contention):

* ``fat-tree``: a unit is the GPUs under one leaf switch (radix/2 nodes' worth of ports);
  above the leaves the tree is oversubscribed by ``oversubscription`` (taper = 1/o).
  Hops: 2 inside a leaf, 4 through the spine (Leiserson 1985; Al-Fares et al. SIGCOMM 2008).
* ``rail-optimised``: every GPU's NIC goes to the rail switch of its local index, a unit is
  one rail group of nodes; beyond it, the spine's oversubscription applies. Hops: 2 and 4.
* ``dragonfly``: a unit is one router group, fully connected inside; groups are joined by
  global links whose bandwidth per GPU is ``global_taper`` of the injection bandwidth
  (Kim et al. ISCA 2008). Hops: 2 inside a group, 3 across (local, global, local).
* ``torus`` levels are handled by :func:`perfcost.formulations.algorithms.torus_all_reduce`.

``span`` is the number of GPUs a group's extent covers (members x their stride), so a group
whose members are spread out crosses more of the fabric than its size alone says.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .collectives import Link
from .specs import HOPS  # noqa: F401  (the hops per topology, named here as well)


@dataclass(frozen=True)
class Fabric:
    """Symbols of a scale-out fabric (the kind enters through ``extra_hops``, so fabrics of
    different kinds share one formulation)."""

    unit: sp.Expr  # GPUs that keep the full bandwidth among themselves
    taper: sp.Expr  # bandwidth fraction per rank beyond one unit
    hop_latency: sp.Expr  # latency added by each switch hop
    extra_hops: sp.Expr  # hops added when a path leaves its unit (HOPS: across - inside)


@dataclass(frozen=True)
class GroupView:
    """What a group sees beyond its scale-up domain."""

    bandwidth_factor: sp.Expr  # of the per-GPU injection bandwidth
    hops: sp.Expr  # switch hops a message adds by leaving its unit
    extra_latency: sp.Expr  # added to the fabric's in-unit latency when crossing units


def group_view(fabric: Fabric, span: sp.Expr) -> GroupView:
    """Bandwidth factor, hop count and added latency for a group covering ``span`` GPUs."""
    crosses = sp.Piecewise((0, span <= fabric.unit), (1, True))
    hops = crosses * fabric.extra_hops
    factor = 1 + crosses * (fabric.taper - 1)
    return GroupView(factor, hops, hops * fabric.hop_latency)


def link_for(out: Link, fabric: Fabric | None, span: sp.Expr) -> Link:
    """The scale-out link as a group covering ``span`` GPUs sees it."""
    if fabric is None:
        return out
    view = group_view(fabric, span)
    return Link(out.bandwidth * view.bandwidth_factor, out.latency + view.extra_latency,
                out.efficiency)


def bisection_bandwidth(fabric: Fabric, gpus: sp.Expr, injection: sp.Expr) -> sp.Expr:
    """Bandwidth across the fabric's bisection for ``gpus`` GPUs injecting ``injection`` each:
    half the GPUs send across, at the tapered rate once the job spans more than one unit."""
    view = group_view(fabric, gpus)
    return gpus / 2 * injection * view.bandwidth_factor
