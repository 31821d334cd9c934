"""Mapping of the parallel groups onto a two-level network, and what each group communicates.

Ranks are laid out tensor-parallel innermost, then context, data and pipeline parallel
(Megatron-LM's default order, Narayanan et al. SC'21 Sec. 3.3): a group of ``n`` ranks whose
members are ``stride`` ranks apart has ``min(n, domain/stride)`` members in each scale-up
domain (at least one) and spans the rest across the scale-out fabric.

Communication per micro-batch (Narayanan et al. 2021 Sec. 3; Korthikanti et al. 2022 Sec. 4.2):

* tensor parallel: two all-reduces of the layer's activations forward and two backward;
  with sequence parallelism each becomes an all-gather plus a reduce-scatter of the same
  volume, so the time is the same and only the memory and the elementwise work shrink;
* context parallel: ring exchange of the K/V chunks, overlapped with the attention kernels;
* pipeline parallel: one send of the stage's output forward and one of its gradient backward
  per model chunk (``v`` chunks when interleaved), split over the TP ranks (the scatter/gather
  optimisation of Narayanan et al. Sec. 4.1);
* data parallel: one all-reduce of the gradients per iteration, optionally overlapped with
  the last micro-batch's backward pass.

The pipeline bubble is ``(p-1)/v`` micro-batch slots (Narayanan et al. Sec. 2.2.2).
"""

from __future__ import annotations

import sympy as sp

from . import algorithms
from .collectives import Link, hierarchical_all_reduce, point_to_point
from .topology import Fabric, link_for


def ranks_per_domain(size: sp.Expr, stride: sp.Expr, domain: sp.Expr) -> sp.Expr:
    """Members of a group of ``size`` ranks, ``stride`` apart, inside one scale-up domain."""
    return sp.Max(1, sp.Min(size, domain / stride))


def group_all_reduce(size_bytes: sp.Expr, ranks: sp.Expr, stride: sp.Expr, domain: sp.Expr,
                     up: Link, out: Link, fabric: Fabric | None = None) -> sp.Expr:
    """All-reduce within a group placed with ``stride`` on a two-level network."""
    inside = ranks_per_domain(ranks, stride, domain)
    across = link_for(out, fabric, ranks * stride)
    return hierarchical_all_reduce(size_bytes, inside, ranks / inside, up, across)


#: All-reduces of the layer's activations per pass: after attention and after the MLP.
TP_ALL_REDUCES_PER_PASS = 2


def tensor_parallel_all_reduces(activation_bytes: sp.Expr, t: sp.Expr, up: Link,
                                reduction: Link, has_reduction: sp.Expr) -> dict[str, sp.Expr]:
    """One tensor-parallel all-reduce (or all-gather + reduce-scatter pair, same volume) of a
    layer's activations, per algorithm (formulations.algorithms, textbook alpha-beta form).

    Switch-side reduction applies only where the fabric has it (``has_reduction`` = 1); without
    it that entry equals the ring so that the minimum is unaffected.
    """
    times = {}
    for name in ("ring", "double_binary_tree", "in_network"):
        algorithm = algorithms.find("all_reduce", name)
        link = reduction if algorithm.in_network else up
        times[name] = algorithms.alpha_beta_time(algorithm, activation_bytes, t, link.latency,
                                                 link.rate)
    times["in_network"] = has_reduction * times["in_network"] + (1 - has_reduction) * times[
        "ring"]
    return times


def context_parallel_time(kv_chunk_bytes: sp.Expr, c: sp.Expr, t: sp.Expr, domain: sp.Expr,
                          up: Link, out: Link, fabric: Fabric | None = None) -> sp.Expr:
    """Ring pass of the K/V chunk through the c - 1 other context-parallel ranks."""
    inside = ranks_per_domain(c, t, domain)
    link_time_up = point_to_point(kv_chunk_bytes, up)
    link_time_out = point_to_point(kv_chunk_bytes, link_for(out, fabric, c * t))
    # A ring crossing domains is paced by its slowest hop.
    step = sp.Piecewise((link_time_up, sp.Eq(inside, c)), (link_time_out, True))
    return (c - 1) * step


#: Context-parallel attention algorithms (Megatron-Core's cp_comm_type): the K/V ring
#: overlapped with attention (Liu et al., "Ring Attention", 2023), an all-gather of K and V
#: before attention, and all-to-alls that trade the sequence split for a head split
#: (Jacobs et al., "DeepSpeed Ulysses", 2023).
CP_ALGORITHMS: tuple[str, ...] = ("ring", "all_gather", "a2a")


def context_parallel_all_to_all(size_bytes: sp.Expr, c: sp.Expr, t: sp.Expr, domain: sp.Expr,
                                up: Link, out: Link, fabric: Fabric | None = None
                                ) -> sp.Expr:
    """Pairwise all-to-all of ``size_bytes`` per rank over the ``c`` context-parallel ranks,
    ``t`` apart: the share for peers in the same domain over the scale-up links, the rest
    over the scale-out links, concurrently (formulations.algorithms: (n-1)/n S)."""
    inside = ranks_per_domain(c, t, domain)
    across = link_for(out, fabric, c * t)
    up_time = (inside - 1) * up.latency + (inside - 1) / c * size_bytes / up.rate
    out_time = (c - inside) * across.latency + (c - inside) / c * size_bytes / across.rate
    return sp.Max(up_time, out_time, evaluate=False)


def pipeline_p2p_time(stage_output_bytes: sp.Expr, t: sp.Expr, v: sp.Expr,
                      neighbour_stride: sp.Expr, domain: sp.Expr, up: Link,
                      out: Link, fabric: Fabric | None = None) -> sp.Expr:
    """Sends per micro-batch on one stage: forward and backward, once per model chunk."""
    share = stage_output_bytes / t
    across = link_for(out, fabric, 2 * neighbour_stride)
    step = sp.Piecewise((point_to_point(share, up), neighbour_stride < domain),
                        (point_to_point(share, across), True))
    return 2 * v * step


def bubble_slots(p: sp.Expr, v: sp.Expr) -> sp.Expr:
    """Idle micro-batch slots of the 1F1B (v = 1) or interleaved (v > 1) schedule."""
    return (p - 1) / v
