"""Scale-out fabrics: what a group sees inside and beyond one unit (formulations/topology)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp
from perfcost.formulations.collectives import Link
from perfcost.formulations.topology import HOPS, Fabric, bisection_bandwidth, group_view, link_for
from perfcost.solver.case.catalog import load_entry
from perfcost.solver.case.sections import NetworkSection
from perfcost.solver.cli.main import app
from perfcost.solver.problem.specs import fabric_spec
from typer.testing import CliRunner

FABRIC = Fabric(sp.Integer(256), sp.Rational(1, 4), sp.Float(3e-7), sp.Integer(1))


def test_inside_a_unit_a_group_keeps_the_full_bandwidth() -> None:
    view = group_view(FABRIC, sp.Integer(256))
    assert view.bandwidth_factor == 1 and view.hops == 0 and view.extra_latency == 0


def test_beyond_a_unit_the_taper_and_extra_hops_apply() -> None:
    view = group_view(FABRIC, sp.Integer(257))
    assert view.bandwidth_factor == sp.Rational(1, 4)
    assert view.hops == 1
    link = link_for(Link(sp.Integer(50), sp.Float(8e-6), sp.Float(0.96)), FABRIC,
                    sp.Integer(1024))
    assert float(link.bandwidth) == pytest.approx(12.5)
    assert float(link.latency) == pytest.approx(8.3e-6)


def test_bisection_bandwidth_tapers_with_the_job() -> None:
    small = bisection_bandwidth(FABRIC, sp.Integer(128), sp.Integer(50))
    large = bisection_bandwidth(FABRIC, sp.Integer(1024), sp.Integer(50))
    assert small == 64 * 50
    assert float(large) == 512 * 50 / 4


def test_network_entries_map_to_fabrics() -> None:
    dragonfly = fabric_spec(NetworkSection.model_validate(
        load_entry("networks", "b200-dragonfly", "network")))
    assert (dragonfly.unit, dragonfly.taper) == (256, 0.25)
    assert dragonfly.extra_hops == HOPS["dragonfly"][1] - HOPS["dragonfly"][0]
    flat = fabric_spec(NetworkSection.model_validate(
        load_entry("networks", "dgx-a100", "network")))
    assert flat.kind == "non-blocking" and flat.taper == 1.0


@pytest.mark.parametrize("scale_out, field", [
    ('topology = "dragonfly"\nglobal_taper = 0.5', "network.scale_out.unit"),
    ('topology = "dragonfly"\nunit = 256', "network.scale_out.global_taper"),
    ('topology = "fat-tree"\noversubscription = 2.0', "network.scale_out.unit"),
    ('topology = "mesh"\nunit = 64', "network.scale_out.topology"),
])
def test_incomplete_fabrics_are_one_line_errors(tmp_path: Path, scale_out: str,
                                                field: str) -> None:
    case = tmp_path / "fabric.toml"
    case.write_text(f'''
model = "gpt3-175b"
hardware = "a100-80gb"
[network]
base = "dgx-a100"
[network.scale_out]
{scale_out}
[cluster]
gpus = 1024
[training]
global_batch = 1536
[parallelism]
tp = 8
pp = 8
''')
    res = CliRunner().invoke(app, ["evaluate", str(case)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), res.output


def test_an_oversubscribed_fat_tree_slows_data_parallelism_only_beyond_a_leaf() -> None:
    from perfcost.solver.case.schema import load
    from perfcost.solver.problem.evaluate import evaluate_case

    base = ["network.scale_out.topology=\"fat-tree\""]
    flat = evaluate_case(load("gpt3-175b-a100", base)).values
    tapered = evaluate_case(load("gpt3-175b-a100", [
        *base, "network.scale_out.oversubscription=4.0", "network.scale_out.unit=64"])).values
    assert tapered["dp_communication"] > 2 * flat["dp_communication"]
    assert tapered["tp_communication"] == flat["tp_communication"]
