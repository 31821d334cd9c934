"""Cluster bill of materials, power and TCO; ``perfcost cost`` and ``chiplet-crossover``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sympy as sp
from perfcost.formulations import system
from perfcost.solver.cli.main import app
from perfcost.solver.cost import case as cost_case
from perfcost.solver.cost import price as cost
from typer.testing import CliRunner

runner = CliRunner()


def counts(endpoints: int, radix: int, oversubscription: float = 1) -> tuple[int, int, int]:
    f = system.fat_tree(sp.Integer(endpoints), sp.Integer(radix),
                        sp.nsimplify(oversubscription))
    return int(f.tiers), int(f.switches), int(f.optical_links)


def test_fat_tree_counts_by_hand() -> None:
    # one switch holds all 64 ports
    assert counts(64, 64) == (1, 1, 0)
    assert counts(40, 64) == (1, 1, 0)
    # 128 endpoints: 4 leaves of 32 down / 32 up, 128 uplinks into 2 spines of 64 ports
    assert counts(128, 64) == (2, 6, 128)
    # the largest two-tier tree, 64 x 32 = 2048: 64 leaves + 32 spines
    assert counts(2048, 64) == (2, 96, 2048)
    # 4096 needs three tiers: 128 leaves, 128 aggregation, 64 cores = 5 N / k (Al-Fares 2008)
    assert counts(4096, 64) == (3, 320, 8192)
    # a full three-tier tree of radix 8: k^3/4 = 128 hosts, 5 k^2 / 4 = 80 switches
    assert counts(128, 8) == (3, 80, 256)
    # 3:1 oversubscribed leaves of 64 ports: 48 down, 16 up; 96 endpoints -> 2 leaves,
    # 32 uplinks -> 1 spine
    assert counts(96, 64, 3) == (2, 3, 32)


def test_fat_tree_beyond_three_tiers_is_nan() -> None:
    fabric = system.fat_tree(sp.Integer(10**6), sp.Integer(16), sp.Integer(1))
    assert fabric.tiers is sp.nan and fabric.switches is sp.nan


@pytest.fixture(scope="module")
def h100_like() -> cost.CostResult:
    return cost.price_case(cost_case.load("h100-like"))


def test_capex_and_power_by_hand(h100_like: cost.CostResult) -> None:
    cc = h100_like.case
    v = h100_like.chosen.values
    f, d = cc.system.fabric, cc.system.datacenter
    n = 1024
    # 1024 NIC ports on radix 64: 32 leaves + 16 spines; 1024 uplinks, all optical
    assert (v["fabric_tiers"], v["scale_out_switches"], v["optical_links"]) == (2, 48, 1024)
    # 8 x 18 links per domain on 64-port switches: 3 per domain, 128 domains
    assert v["scale_up_switches"] == 384
    capex = (n * v["price"] + n * d.host_price + n * f.nic_price + 48 * f.switch_price
             + 384 * f.scale_up_switch_price + n * f.copper_cable_price
             + 1024 * f.fibre_price + 2048 * f.transceiver_price)
    assert v["capex"] == pytest.approx(capex, rel=1e-12)
    it = (n * (v["power"] * d.utilisation + d.host_power) + n * f.nic_power
          + 48 * f.switch_power + 384 * f.scale_up_switch_power + 2048 * f.transceiver_power)
    assert v["it_power"] == pytest.approx(it, rel=1e-12)
    assert v["facility_power"] == pytest.approx(it * d.pue, rel=1e-12)


def test_run_cost(h100_like: cost.CostResult) -> None:
    cc = h100_like.case
    v = h100_like.chosen.values
    d = cc.system.datacenter
    # run time = FLOPs / (N peak MFU)
    assert v["run_time"] == pytest.approx(6.3e24 / (1024 * v["peak_flops"] * 0.4), rel=1e-12)
    year = 365.25 * 86400
    rate = (v["capex"] / d.amortisation + v["facility_power"] * d.energy_price
            + v["capex"] * d.operations_fraction / year)
    assert v["run_cost"] == pytest.approx(rate * v["run_time"], rel=1e-12)
    assert v["run_cost_rental"] == pytest.approx(1024 * d.rental_price * v["run_time"],
                                                 rel=1e-12)
    assert v["cost_per_token"] == pytest.approx(v["run_cost"] / 15e12, rel=1e-12)


def test_training_case_prices_the_model_time(tmp_path: Path) -> None:
    text = (Path(cost_case.catalog.root()) / "designs" / "h100-like.toml").read_text()
    text = text.replace("accelerators = 1024\n", "")
    head, _run = text.split("[run]")
    path = tmp_path / "run.toml"
    path.write_text(head + '[run]\ncase = "llama3-70b-h100"\n')
    result = cost.price_case(cost_case.load(path))
    v = result.chosen.values
    assert v["accelerators"] == 512  # the training case's tp x pp x dp
    t = result.training
    assert t is not None and t["time_to_train_s"] == pytest.approx(v["run_time"], rel=1e-12)
    # the designed part has more HBM bandwidth than H100 SXM and the same peak: a little faster
    from perfcost.solver.case import schema as case_mod
    from perfcost.solver.problem.evaluate import evaluate_case

    h100 = evaluate_case(case_mod.load("llama3-70b-h100")).values["time_to_train"]
    assert 0.8 * h100 < v["run_time"] <= h100 * 1.0001


# -- the command line -------------------------------------------------------------------------

def run_cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_json() -> None:
    code, out, _ = run_cli("cost", "h100-like", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"chiplet", "package", "accelerator", "cluster", "design", "units"}
    assert data["design"] == {"compute_chiplets": 1, "chiplet_area": 814.0, "hbm_stacks": 6,
                              "scale_up_links": 18, "accelerators": 1024, "scale_up_size": 8}
    assert 1000 < data["package"]["manufacturing_cost"] < 5000
    assert data["units"]["capex"] == "USD" and data["units"]["chiplet_area"] == "mm^2"
    assert data["cluster"]["capex"] > data["cluster"]["accelerators_capex"]


def test_cli_table() -> None:
    code, out, _ = run_cli("cost", "b200-like")
    assert code == 0
    for title in ("chiplet", "package", "accelerator"):
        assert f"b200-like: {title}" in out
    assert "known-good die" in out and "bridges" in out


def test_cli_choices_and_budget() -> None:
    code, out, _ = run_cli("cost", "chiplet-choices", "--json")
    assert code == 0
    data = json.loads(out)
    rows = data["alternatives"]
    assert len(rows) == 27
    infeasible = [r for r in rows if "infeasible" in r]
    assert infeasible and all("carrier" in r["infeasible"] for r in infeasible)
    assert data["cluster"]["capex"] <= 11e6
    assert any("budget" in n for n in data["notes"])


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_cli_errors(tmp_path: Path) -> None:
    text = (Path(cost_case.catalog.root()) / "designs" / "h100-like.toml").read_text()
    cases = {
        "reticle": (text.replace('"814 mm^2"', '"900 mm^2"'), "reticle"),
        "yield": (text.replace('packaging = "cowos-s"',
                               'packaging = { base = "cowos-s", bonding_yield = 1.5 }'),
                  "bonding_yield"),
        "budget": (text + '\n[constraints]\nbudget = "2e6 USD"\n', "cheapest feasible"),
        "area unit": (text.replace('"814 mm^2"', '"814 GB"'), "design.chiplet_area"),
        "unknown key": (text.replace("hbm_stacks = 6", "hbm_stacks = 6\nhbm = 3"),
                        "unknown key"),
    }
    for name, (body, fragment) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.toml"
        path.write_text(body)
        code, _out, err = run_cli("cost", str(path))
        assert fragment in one_line_error(code, err), (name, err)
    code, _out, err = run_cli("cost", "no-such-design")
    assert "h100-like" in one_line_error(code, err)


def test_cli_crossover_json() -> None:
    code, out, _ = run_cli("chiplet-crossover", "--nodes", "n5,n28", "--chiplets", "2",
                           "--json")
    assert code == 0
    rows = {r["node"]: r for r in json.loads(out)}
    assert rows["n5"]["crossover_area_mm2"] < rows["n28"]["crossover_area_mm2"]
    assert rows["n5"]["cost_ratio_at_50mm2"] > 1 > rows["n5"]["cost_ratio_at_reticle"]
    code, _out, err = run_cli("chiplet-crossover", "--chiplets", "1")
    one_line_error(code, err)


def test_json_is_finite() -> None:
    code, out, _ = run_cli("cost", "chiplet-choices", "--json")
    assert code == 0
    data = json.loads(out)
    for row in data["alternatives"]:
        for value in row.get("values", {}).values():
            assert value is None or math.isfinite(value)


# -- the network of a training case supplies the fabric's shape -------------------------------

def test_network_supplies_scale_up_size(tmp_path: Path) -> None:
    v = cost.price_case(cost_case.load("h100-like")).chosen.values
    assert v["scale_up_size"] == 8  # dgx-h100
    text = (Path(cost_case.catalog.root()) / "designs" / "h100-like.toml").read_text()
    path = tmp_path / "nvl72.toml"
    path.write_text(text.replace('network = "dgx-h100"', 'network = "gb200-nvl72"'))
    v72 = cost.price_case(cost_case.load(path)).chosen.values
    assert v72["scale_up_size"] == 72
    # 72 x 18 links on 64-port switches: 21 per domain, 15 domains for 1024
    assert v72["scale_up_switches"] == 15 * 21
    path.write_text(text.replace('network = "dgx-h100"', 'network = "dgx-h100"\n'
                                 'scale_up_size = 4'))
    assert cost.price_case(cost_case.load(path)).chosen.values["scale_up_size"] == 4


def test_run_case_supplies_the_network() -> None:
    v = cost.price_case(cost_case.load("h100-like-llama3-70b")).chosen.values
    assert v["scale_up_size"] == 8 and v["accelerators"] == 512


def test_non_fat_tree_fabric_is_refused(tmp_path: Path) -> None:
    text = (Path(cost_case.catalog.root()) / "designs" / "h100-like.toml").read_text()
    path = tmp_path / "dragonfly.toml"
    path.write_text(text.replace('network = "dgx-h100"', 'network = "b200-dragonfly"'))
    code, _out, err = run_cli("cost", str(path))
    assert "system.network" in one_line_error(code, err) and "dragonfly" in err


def test_design_too_small_for_the_training_case(tmp_path: Path) -> None:
    text = (Path(cost_case.catalog.root()) / "designs" / "h100-like-llama3-70b.toml").read_text()
    path = tmp_path / "one-stack.toml"
    path.write_text(text.replace("hbm_stacks = 6", "hbm_stacks = 1"))
    code, _out, err = run_cli("cost", str(path))
    assert "design.hbm_stacks = 1" in one_line_error(code, err) and "GiB" in err
    path.write_text(text.replace("hbm_stacks = 6", "hbm_stacks = [1, 4]"))
    data = json.loads(run_cli("cost", str(path), "--json")[1])
    assert data["design"]["hbm_stacks"] == 4
    assert "HBM" in data["alternatives"][0]["infeasible"]
    assert data["cluster"]["training_memory"] <= data["accelerator"]["hbm_capacity"]
