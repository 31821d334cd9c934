"""Placement of the parallel groups on the ranks changes what crosses the scale-out fabric."""

from __future__ import annotations

from perfcost.solver.case.schema import load
from perfcost.solver.problem.evaluate import evaluate_case

BASE = ["parallelism.tp=2", "parallelism.pp=4", "parallelism.dp=128",
        "parallelism.virtual_stages=1"]


def test_pipeline_inside_the_node_moves_its_sends_onto_nvlink() -> None:
    megatron = evaluate_case(load("gpt3-175b-a100", BASE)).values
    inner = evaluate_case(load("gpt3-175b-a100", [*BASE, 'parallelism.placement="tp-cp-pp-dp"'])
                          ).values
    # tp*pp = 8 fills the DGX node: stage neighbours talk over NVLink...
    assert inner["pp_communication"] < megatron["pp_communication"] / 5
    # ...and each data-parallel group spans 128 nodes with one rank per node instead of 4 per
    # node sharing the reduction inside first.
    assert inner["dp_communication"] > megatron["dp_communication"]
    # Compute is the same either way.
    assert inner["forward_compute"] == megatron["forward_compute"]


def test_default_placement_is_megatrons() -> None:
    result = evaluate_case(load("gpt3-175b-a100"))
    assert result.config["placement"] == "tp-cp-dp-pp"


def test_tp_all_reduce_takes_the_fastest_algorithm_and_says_which() -> None:
    a100 = evaluate_case(load("gpt3-175b-a100")).to_json()["collectives"]["tp_all_reduce"]
    h100 = evaluate_case(load("llama3-70b-h100")).to_json()["collectives"]["tp_all_reduce"]
    # DGX A100 has no switch-side reduction: large messages take the ring.
    assert a100["algorithm"] == "ring" and "in_network" not in a100["alternatives_s"]
    # DGX H100's NVLink SHARP beats the ring for these messages.
    assert h100["algorithm"] == "in_network"
    assert h100["time_s"] == min(h100["alternatives_s"].values())


def test_a_case_can_fix_the_tp_algorithm() -> None:
    # Without TP overlap, so that the collectives show in full.
    auto = evaluate_case(load("llama3-70b-h100", ["training.tp_overlap=false"]))
    ring = evaluate_case(load("llama3-70b-h100", ['training.tp_algorithm="ring"',
                                                  "training.tp_overlap=false"]))
    assert ring.to_json()["collectives"]["tp_all_reduce"] == {
        **ring.to_json()["collectives"]["tp_all_reduce"], "algorithm": "ring",
        "chosen_by": "case"}
    # The ring is slower than NVLink SHARP on DGX H100, so fixing it costs time.
    assert ring.values["tp_communication"] > auto.values["tp_communication"]
    assert ring.values["forward_compute"] == auto.values["forward_compute"]
