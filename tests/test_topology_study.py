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
    # ...because a tensor-parallel group may span more than one 8-GPU node there: NVLink
    # carries its collectives, which Transformer Engine hides behind the GEMMs.
    assert 8 < racks.config["tp"] <= 72
    assert nodes.config["tp"] <= 8


def test_three_topologies_and_what_the_taper_costs() -> None:
    """Non-blocking fat tree, tapered dragonfly, NVL72: the 72-GPU NVLink domain has its own,
    fastest split; the taper never makes a fabric faster. Under Megatron-Core's rules the best
    split on 8-GPU nodes keeps data parallelism small (its gradient reduction hides behind
    the last backward), so the dragonfly's tapered global links cost it nothing."""
    results = {net: solve_case(load("llama3-405b-topology", [f"network={net}"])).result
               for net in ("dgx-b200", "b200-dragonfly", "gb200-nvl72")}
    configs = {net: tuple(sorted(r.config.items())) for net, r in results.items()}
    assert configs["gb200-nvl72"] not in (configs["dgx-b200"], configs["b200-dragonfly"])
    assert (results["gb200-nvl72"].value < results["dgx-b200"].value
            <= results["b200-dragonfly"].value)
