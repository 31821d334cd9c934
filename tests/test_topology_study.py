"""The network topology changes which parallel split wins (study llama3-405b-topology)."""

from __future__ import annotations

from perfcost.solver.case import load
from perfcost.solver.solve import solve_case


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
