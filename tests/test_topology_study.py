"""The network topology changes which parallel split wins (study llama3-405b-topology)."""

from __future__ import annotations

from perfcost.solver.case.schema import load
from perfcost.solver.engines.solve import solve_case


def test_a_72_gpu_nvlink_domain_changes_the_optimal_split() -> None:
    nodes = solve_case(load("llama3-405b-topology")).result
    racks = solve_case(load("llama3-405b-topology", ["network=gb200-nvl72"])).result
    assert nodes.status == racks.status == "optimal"
    assert nodes.config != racks.config
    # Same GPUs, same model: the larger NVLink domain is faster...
    assert racks.value < nodes.value
    # ...because the tensor-, context- and data-parallel groups of one pipeline stage fit in
    # one NVLink domain on NVL72 (tp*cp*dp <= 72), while on 8-GPU nodes they must cross
    # InfiniBand.
    r, n = racks.config, nodes.config
    assert r["tp"] * r["cp"] * r["dp"] <= 72
    assert n["tp"] * n["cp"] * n["dp"] > 8


def test_three_topologies_three_optima() -> None:
    """Non-blocking fat tree, tapered dragonfly, NVL72: each has its own best split; the taper
    makes the dragonfly slowest, the 72-GPU NVLink domain fastest."""
    results = {net: solve_case(load("llama3-405b-topology", [f"network={net}"])).result
               for net in ("dgx-b200", "b200-dragonfly", "gb200-nvl72")}
    configs = [tuple(sorted(r.config.items())) for r in results.values()]
    assert len(set(configs)) == 3
    assert (results["gb200-nvl72"].value < results["dgx-b200"].value
            < results["b200-dragonfly"].value)
    # On the dragonfly the data-parallel replicas, whose gradient all-reduce would cross the
    # tapered global links, shrink in favour of context parallelism.
    assert results["b200-dragonfly"].config["dp"] < results["dgx-b200"].config["dp"]
