"""alpha-beta collectives and their placement on a two-level network.

Reference formulas: Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication
Operations in MPICH" (IJHPCA 2005), Sec. 4 (ring algorithms), with ``n`` bytes, ``p`` ranks,
link bandwidth ``B`` and per-step latency ``alpha``; nccl-tests' PERFORMANCE.md for bus
bandwidth (``busbw = algbw * 2 (p-1)/p`` for all-reduce).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp
from perfcost.formulations import collectives as col
from perfcost.formulations import parallelism as par
from perfcost.solver.case import schema as case_mod
from perfcost.solver.problem import specs as problem

n, p, B, alpha, eta = sp.symbols("n p B alpha eta", positive=True)
k, N = sp.symbols("k N", positive=True, integer=True)
IDEAL = col.Link(B, alpha, sp.Integer(1))
REAL = col.Link(B, alpha, eta)


def _same(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.simplify(a - b) == 0


def test_ring_all_reduce() -> None:
    assert _same(col.ring_all_reduce(n, p, IDEAL), 2 * (p - 1) / p * n / B + 2 * (p - 1) * alpha)


def test_ring_all_reduce_with_link_efficiency() -> None:
    expected = 2 * (p - 1) / p * n / (B * eta) + 2 * (p - 1) * alpha
    assert _same(col.ring_all_reduce(n, p, REAL), expected)


@pytest.mark.parametrize("op", [col.ring_reduce_scatter, col.ring_all_gather])
def test_ring_reduce_scatter_and_all_gather(op) -> None:
    assert _same(op(n, p, IDEAL), (p - 1) / p * n / B + (p - 1) * alpha)
    assert _same(op(n, p, REAL), (p - 1) / p * n / (B * eta) + (p - 1) * alpha)


def test_all_reduce_is_reduce_scatter_then_all_gather() -> None:
    rs_ag = col.ring_reduce_scatter(n, p, REAL) + col.ring_all_gather(n, p, REAL)
    assert _same(col.ring_all_reduce(n, p, REAL), rs_ag)


def test_point_to_point() -> None:
    assert _same(col.point_to_point(n, REAL), alpha + n / (B * eta))


def test_single_rank_collectives_cost_nothing() -> None:
    for t in (col.ring_all_reduce(n, 1, REAL), col.ring_reduce_scatter(n, 1, REAL),
              col.ring_all_gather(n, 1, REAL)):
        assert sp.simplify(t) == 0


def test_all_reduce_bus_bandwidth_tends_to_link_rate() -> None:
    """nccl-tests: busbw = (n / time) * 2 (p-1)/p tends to the link's achievable rate."""
    busbw = n / col.ring_all_reduce(n, p, REAL) * 2 * (p - 1) / p
    assert _same(sp.limit(busbw, n, sp.oo), B * eta)
    # Latency only lowers it: at finite size the bus bandwidth is below the link rate.
    at = {n: 2**27, p: 8, B: 450e9, alpha: 10e-6, eta: 0.8}
    assert float(busbw.subs(at)) < 450e9 * 0.8


def test_hierarchical_all_reduce_with_one_domain_is_a_ring() -> None:
    up = col.Link(*sp.symbols("B_up alpha_up eta_up", positive=True))
    out = col.Link(*sp.symbols("B_out alpha_out eta_out", positive=True))
    one_domain = col.hierarchical_all_reduce(n, p, 1, up, out)
    assert _same(one_domain, col.ring_all_reduce(n, p, up))
    # One rank per domain: a ring over the scale-out fabric only.
    assert _same(col.hierarchical_all_reduce(n, 1, p, up, out), col.ring_all_reduce(n, p, out))


def test_hierarchical_all_reduce_moves_the_bytes_of_a_flat_ring() -> None:
    """On one link type, reduce-scatter inside + all-reduce of n/k across + all-gather inside
    moves 2 (kN-1)/(kN) n bytes per rank, exactly as a flat ring over k N ranks, in
    2 (k-1) + 2 (N-1) latency steps instead of 2 (kN - 1)."""
    hier = col.hierarchical_all_reduce(n, k, N, REAL, REAL)
    flat = col.ring_all_reduce(n, k * N, REAL)
    assert _same(hier.subs(alpha, 0), flat.subs(alpha, 0))
    assert _same(hier.subs(n, 0), 2 * ((k - 1) + (N - 1)) * alpha)
    assert _same(flat.subs(n, 0), 2 * (k * N - 1) * alpha)


def test_ring_all_reduce_grows_with_ranks() -> None:
    link = col.Link(sp.Float(50e9), sp.Float(8e-6), sp.Float(0.9))
    times = [float(col.ring_all_reduce(sp.Integer(2**30), r, link)) for r in (2, 4, 8, 64, 512)]
    assert times == sorted(times) and len(set(times)) == len(times)


# -- placement of parallel groups (parallelism) ----------------------------------------------

UP = col.Link(sp.Float(450e9), sp.Float(10e-6), sp.Float(0.8))
OUT = col.Link(sp.Float(50e9), sp.Float(8e-6), sp.Float(0.96))
SIZE = sp.Integer(2**30)


@pytest.mark.parametrize(("size", "stride", "domain", "inside"), [
    (8, 1, 8, 8),  # TP group of 8 in a DGX: all inside
    (4, 1, 8, 4),  # smaller than the domain
    (16, 1, 8, 8),  # spans two domains
    (16, 8, 8, 1),  # DP across nodes when TP fills the node: one member per domain
    (4, 2, 8, 4),  # CP with TP = 2: 4 members, 2 apart, fit in 8
    (8, 2, 8, 4),  # ... 8 members 2 apart: 4 per domain
])
def test_ranks_per_domain(size: int, stride: int, domain: int, inside: int) -> None:
    got = par.ranks_per_domain(sp.Integer(size), sp.Integer(stride), sp.Integer(domain))
    assert got == inside


def test_group_inside_one_domain_all_reduces_on_the_scale_up_link() -> None:
    got = par.group_all_reduce(SIZE, sp.Integer(8), sp.Integer(1), sp.Integer(8), UP, OUT)
    assert float(got) == pytest.approx(float(col.ring_all_reduce(SIZE, 8, UP)), rel=1e-12)


def test_group_one_per_domain_all_reduces_on_the_scale_out_link() -> None:
    got = par.group_all_reduce(SIZE, sp.Integer(16), sp.Integer(8), sp.Integer(8), UP, OUT)
    assert float(got) == pytest.approx(float(col.ring_all_reduce(SIZE, 16, OUT)), rel=1e-12)


def test_group_spanning_domains_is_slower_than_inside_but_faster_than_flat_scale_out() -> None:
    spanning = float(par.group_all_reduce(SIZE, sp.Integer(16), sp.Integer(1), sp.Integer(8),
                                          UP, OUT))
    assert spanning > float(col.ring_all_reduce(SIZE, 8, UP))
    assert spanning < float(col.ring_all_reduce(SIZE, 16, OUT))


def test_tensor_parallel_all_reduce_per_algorithm() -> None:
    """Megatron's f/g operators: two all-reduces of the layer's activations per pass
    (Narayanan et al. 2021 Sec. 3.3; Korthikanti et al. 2022 Sec. 4.2.2); each takes the
    fastest algorithm, and without switch reduction that entry is the ring."""
    t = sp.Symbol("t", positive=True, integer=True)
    assert par.TP_ALL_REDUCES_PER_PASS == 2
    reduction = col.Link(sp.Symbol("B_r", positive=True), sp.Symbol("a_r", positive=True), 1)
    times = par.tensor_parallel_all_reduces(n, t, REAL, reduction, 0)
    assert _same(times["ring"], col.ring_all_reduce(n, t, REAL))
    assert _same(times["in_network"], times["ring"])
    with_red = par.tensor_parallel_all_reduces(n, t, REAL, reduction, 1)
    assert _same(with_red["in_network"], 2 * reduction.latency + n / reduction.bandwidth)


def test_pipeline_bubble_slots() -> None:
    pp, v = sp.symbols("p v", positive=True, integer=True)
    assert _same(par.bubble_slots(pp, 1), pp - 1)
    assert _same(par.bubble_slots(pp, v), (pp - 1) / v)
    assert par.bubble_slots(sp.Integer(1), sp.Integer(1)) == 0


# -- the DGX H100 scale-up level against nccl-tests ------------------------------------------

PUBLISHED = Path(__file__).parent / "data" / "published.json"  # copy of the shared file


def test_dgx_h100_scale_up_all_reduce_matches_nccl_tests_at_128_mib() -> None:
    """The network's own efficiency_source: nccl-tests all_reduce busbw at 128 MiB on 8 GPUs."""
    if not PUBLISHED.is_file():
        pytest.skip(f"published measurements not found at {PUBLISHED}")
    entries = {e["id"]: e for e in json.loads(PUBLISHED.read_text(encoding="utf-8"))}
    measured = entries["nccl_allreduce_dgxh100_8gpu_134217728B"]["measured"][
        "busbw_GBps_out_of_place"] * 1e9
    case = case_mod.from_dict(case_mod.resolve({
        "model": "llama3-8b", "hardware": "h100-sxm", "network": "dgx-h100",
        "training": {"global_batch": 8}}))
    level = problem.specs(case).network.scale_up
    link = col.Link(sp.Float(level.bandwidth), sp.Float(level.latency),
                    sp.Float(level.efficiency))
    size, ranks = 134217728, 8
    busbw = size / float(col.ring_all_reduce(sp.Integer(size), ranks, link)) * 2 * (
        ranks - 1) / ranks
    assert busbw == pytest.approx(measured, rel=0.10)
