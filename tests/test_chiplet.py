"""Chiplet cost: dies per wafer, yield models, known-good die, the 814 mm^2 package, the
chiplet-versus-monolithic crossover, the accelerator's die-to-die limit, bad input."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations import accelerator as acc
from perfcost.formulations import chiplet
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cost import case as cost_case
from perfcost.solver.cost import price as cost
from perfcost.solver.problem.evaluate import Evaluator

A, D0, ALPHA = sp.symbols("A D0 alpha", positive=True)


def num(expr: sp.Expr, **values: float) -> float:
    return float(expr.subs({sp.Symbol(k, positive=True): v for k, v in values.items()}))


# -- dies per wafer ---------------------------------------------------------------------------

def test_dies_per_wafer_textbook() -> None:
    # Hennessy & Patterson's example: 1.5 cm x 1.5 cm dies on a 30 cm wafer:
    # pi 15^2 / 2.25 - pi 30 / sqrt(2 x 2.25) = 314.16 - 44.43 = 269.7 ("270 dies").
    dpw = chiplet.dies_per_wafer(sp.Integer(225), sp.Integer(300), sp.Integer(0),
                                 sp.Integer(0))
    assert float(dpw) == pytest.approx(269.73, abs=0.01)
    # 100 mm^2: pi 300^2 / 400 - pi 300 / sqrt(200) = 706.86 - 66.64 = 640.21.
    dpw = chiplet.dies_per_wafer(sp.Integer(100), sp.Integer(300), sp.Integer(0),
                                 sp.Integer(0))
    assert float(dpw) == pytest.approx(640.21, abs=0.01)


def test_dies_per_wafer_edge_and_scribe() -> None:
    # 814 mm^2, 5 mm edge, 0.2 mm scribe: pitch (28.531 + 0.2)^2 = 825.45 mm^2 on a 290 mm
    # usable diameter: pi 290^2 / (4 x 825.45) - pi 290 / sqrt(1650.9) = 80.02 - 22.42 = 57.60.
    dpw = chiplet.dies_per_wafer(sp.Integer(814), sp.Integer(300), sp.Integer(5),
                                 sp.Rational(1, 5))
    assert float(dpw) == pytest.approx(57.60, abs=0.01)
    # The edge and scribe only ever remove dies.
    plain = chiplet.dies_per_wafer(sp.Integer(814), sp.Integer(300), sp.Integer(0),
                                   sp.Integer(0))
    assert float(plain) > float(dpw)


# -- yield models -----------------------------------------------------------------------------

def test_yields_hand_computed() -> None:
    # A = 100 mm^2, D0 = 0.1 / cm^2 = 0.001 / mm^2: A D0 = 0.1.
    x = {"A": 100.0, "D0": 0.001}
    assert num(chiplet.yield_poisson(A, D0), **x) == pytest.approx(0.904837, abs=1e-6)
    assert num(chiplet.yield_murphy(A, D0), **x) == pytest.approx(0.905592, abs=1e-6)
    assert num(chiplet.yield_seeds(A, D0), **x) == pytest.approx(1 / 1.1, abs=1e-9)
    # (1 + 0.1 / 10)^-10 = 1.01^-10 = 0.905287
    assert num(chiplet.yield_negative_binomial(A, D0, ALPHA), alpha=10.0, **x) == (
        pytest.approx(0.905287, abs=1e-6))


def test_seeds_is_negative_binomial_with_alpha_one() -> None:
    nb = chiplet.yield_negative_binomial(A, D0, sp.Integer(1))
    assert sp.simplify(nb - chiplet.yield_seeds(A, D0)) == 0


@settings(max_examples=50, deadline=None)
@given(x=st.floats(0.001, 5.0), alpha=st.floats(0.2, 50.0))
def test_negative_binomial_tends_to_poisson(x: float, alpha: float) -> None:
    poisson = math.exp(-x)
    nb = num(chiplet.yield_negative_binomial(A, D0, ALPHA), A=x, D0=1.0, alpha=alpha)
    nb_more = num(chiplet.yield_negative_binomial(A, D0, ALPHA), A=x, D0=1.0,
                  alpha=alpha * 10)
    nb_far = num(chiplet.yield_negative_binomial(A, D0, ALPHA), A=x, D0=1.0, alpha=1e7)
    # Less clustering, lower yield, down to Poisson.
    assert poisson <= nb_more <= nb + 1e-12
    assert nb_far == pytest.approx(poisson, rel=1e-5)
    # and the symbolic limit
    limit = sp.limit(chiplet.yield_negative_binomial(sp.Float(x), sp.Integer(1), ALPHA), ALPHA,
                     sp.oo)
    assert float(limit) == pytest.approx(poisson, rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(x=st.floats(1e-4, 30.0))
def test_murphy_between_poisson_and_seeds(x: float) -> None:
    poisson = num(chiplet.yield_poisson(A, D0), A=x, D0=1.0)
    murphy = num(chiplet.yield_murphy(A, D0), A=x, D0=1.0)
    seeds = num(chiplet.yield_seeds(A, D0), A=x, D0=1.0)
    assert poisson <= murphy <= seeds


def test_murphy_limits() -> None:
    x = sp.Symbol("x", positive=True)
    murphy = chiplet.yield_murphy(x, sp.Integer(1))
    assert sp.limit(murphy, x, 0) == 1
    # For large A D0 Murphy falls as 1 / (A D0)^2 (the triangular density's tail).
    assert sp.limit(murphy * x**2, x, sp.oo) == 1
    assert sp.limit(chiplet.yield_seeds(x, sp.Integer(1)) * x, x, sp.oo) == 1


def test_known_good_die() -> None:
    raw, test, y = sp.Integer(100), sp.Integer(10), sp.Rational(1, 2)
    full = chiplet.tested_die(raw, test, y, sp.Integer(1))
    assert full.escape == 0 and full.cost == 220 and full.pass_fraction == y
    none = chiplet.tested_die(raw, test, y, sp.Integer(0))
    assert none.pass_fraction == 1 and none.escape == 1 - y and none.cost == 110
    part = chiplet.tested_die(raw, test, y, sp.Rational(9, 10))
    # 0.5 + 0.5 x 0.1 = 0.55 pass; 0.05 / 0.55 of them bad
    assert part.pass_fraction == sp.Rational(11, 20)
    assert part.escape == sp.Rational(1, 11)


# -- the 814 mm^2 package ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def h100_like() -> cost.CostResult:
    return cost.price_case(cost_case.load("h100-like"))


def test_814mm2_die_with_six_hbm3_costs_low_thousands(h100_like: cost.CostResult) -> None:
    v = h100_like.chosen.values
    assert v["chiplet_area"] == 814 and v["hbm_stacks"] == 6
    assert 0.3 < v["die_yield"] < 0.6  # NB, D0 = 0.11 / cm^2, alpha = 10: 0.424
    assert 50 < v["dies_per_wafer"] < 65
    assert 1_000 < v["manufacturing_cost"] < 5_000, v["manufacturing_cost"]
    # The parts add up: the yield loss of assembly is charged on every part.
    parts = (v["silicon_cost"] + v["hbm_cost"] + v["carrier_cost"] + v["substrate_cost"]
             + v["bump_cost"] + v["bridge_cost"])
    assert v["manufacturing_cost"] > parts
    assert v["manufacturing_cost"] == pytest.approx(
        parts + v["assembly_loss"] + h100_case_cost("assembly_cost")
        + h100_case_cost("final_test_cost"), rel=1e-9)


def h100_case_cost(name: str) -> float:
    return getattr(cost_case.load("h100-like").design.packaging, name)


def test_design_reproduces_its_calibration(h100_like: cost.CostResult) -> None:
    v = h100_like.chosen.values
    # The 5 nm-class densities are calibrated on H100: 989 TFLOP/s, 50 MiB L2 + 132 x 256 KiB.
    assert v["peak_flops"] == pytest.approx(989e12, rel=1e-3)
    assert v["sram"] == pytest.approx(50 * 2**20 + 132 * 256 * 2**10, rel=1e-3)
    assert v["hbm_capacity"] == 6 * 16 * 2**30
    hw = cost.designed_hardware(h100_like.case, v)
    assert hw.peak_flops == v["peak_flops"] and hw.price == v["price"]
    assert hw.multiprocessors == 132


# -- chiplets versus one die ------------------------------------------------------------------

@pytest.fixture(scope="module")
def study() -> dict[tuple[str, int], cost.CrossoverRow]:
    rows = cost.crossover_study(["n3", "n5", "n28"], [2, 4])
    return {(r.node, r.chiplets): r for r in rows}


def test_chiplets_cost_more_small_and_less_large(study: dict[Any, cost.CrossoverRow]) -> None:
    for row in study.values():
        assert row.ratio_small > 1, row  # small dies: packaging and PHYs dominate
        assert row.ratio_large < 1, row  # near the reticle: yield dominates
        assert row.crossover_area is not None and 50 < row.crossover_area < 858


def test_crossover_falls_at_advanced_nodes(study: dict[Any, cost.CrossoverRow]) -> None:
    for k in (2, 4):
        assert (study["n3", k].crossover_area < study["n5", k].crossover_area
                < study["n28", k].crossover_area)


def test_crossover_area_interpolates() -> None:
    areas = np.array([100.0, 200.0, 300.0])
    assert cost.crossover_area(areas, np.array([1.0, 2.0, 3.0]),
                               np.array([1.5, 2.5, 2.5])) == pytest.approx(250.0)
    assert cost.crossover_area(areas, np.ones(3), np.full(3, 2.0)) is None


# -- die-to-die bandwidth limit ---------------------------------------------------------------

def test_d2d_limit_caps_hbm_bandwidth() -> None:
    cc = cost_case.load("b200-like")
    inputs = cost.accelerator_inputs(cc.design)
    slow = acc.AcceleratorInputs(**{**inputs.__dict__, "packaging": chiplet.PackagingSpec(
        **{**inputs.packaging.__dict__, "d2d_bandwidth": 1e12})})
    f = acc.build_accelerator(slow)
    config = {"compute_chiplets": 2, "chiplet_area": 800.0, "hbm_stacks": 8,
              "scale_up_links": 18}
    v = Evaluator(f)(config)
    # 2^2 x 1 TB/s / (2 - 1) = 4 TB/s < 8 stacks x 1 TB/s
    assert v["hbm_peak_bandwidth"] == pytest.approx(8e12)
    assert v["hbm_bandwidth"] == pytest.approx(4e12)
    v1 = Evaluator(f)({**config, "compute_chiplets": 1})
    assert v1["hbm_bandwidth"] == pytest.approx(8e12)  # one die: no crossing
    assert v1["d2d_phy_area"] == 0 and v["d2d_phy_area"] > 0


# -- bad input --------------------------------------------------------------------------------

def design_file(tmp_path: Path, **changes: Any) -> Path:
    base = (Path(cost_case.catalog.root()) / "designs" / "h100-like.toml").read_text()
    raw = tomllib.loads(base)
    for dotted, value in changes.items():
        node = raw
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path = tmp_path / "case.toml"
    path.write_text(_toml(raw))
    return path


def _toml(table: dict[str, Any], prefix: str = "") -> str:
    scalars, tables = [], []
    for k, v in table.items():
        if isinstance(v, dict) and not {"value", "source"} <= set(v):
            tables.append((k, v))
        else:
            scalars.append(f"{k} = {_value(v)}")
    out = "\n".join(scalars) + "\n"
    for k, v in tables:
        name = f"{prefix}.{k}" if prefix else k
        out += f"\n[{name}]\n" + _toml(v, name)
    return out


def _value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def error_of(path: Path) -> CaseError:
    with pytest.raises(CaseError) as info:
        cost.price_case(cost_case.load(path))
    text = str(info.value)
    assert "\n" not in text
    return info.value


def test_monolithic_die_beyond_reticle(tmp_path: Path) -> None:
    err = error_of(design_file(tmp_path, design__chiplet_area="900 mm^2"))
    assert err.field == "design.chiplet_area"
    assert "reticle" in str(err) and "858" in str(err) and "900" in str(err)


@pytest.mark.parametrize("value", [0, 0.0, -0.1, 1.2, "0.9"])
def test_yield_outside_unit_interval(tmp_path: Path, value: Any) -> None:
    packaging = tomllib.loads((Path(cost_case.catalog.root()) / "packaging" /
                               "cowos-s.toml").read_text())
    packaging["bonding_yield"] = value
    err = error_of(design_file(tmp_path, design__packaging=packaging))
    assert err.field == "design.packaging.bonding_yield"
    assert "greater than 0 and at most 1" in str(err)


def test_budget_below_cheapest_system(tmp_path: Path) -> None:
    err = error_of(design_file(tmp_path, constraints__budget="1e6 USD"))
    assert err.field == "constraints.budget"
    capex = cost.price_case(cost_case.load("h100-like")).chosen.values["capex"]
    assert f"{capex:,.0f} USD" in str(err)


def test_unknown_node(tmp_path: Path) -> None:
    err = error_of(design_file(tmp_path, design__technology="n2"))
    assert err.field == "design.technology" and "n5" in str(err)


def test_node_without_densities(tmp_path: Path) -> None:
    err = error_of(design_file(tmp_path, design__technology="n28"))
    assert err.field == "design.technology.density"


def test_sourced_constant_needs_source(tmp_path: Path) -> None:
    mem = tomllib.loads((Path(cost_case.catalog.root()) / "packaging" / "memory" /
                         "hbm3.toml").read_text())
    mem["price"] = {"value": "240 USD", "as_of": "2024-01", "source": ""}
    err = error_of(design_file(tmp_path, design__memory=mem))
    assert err.field == "design.memory.price" and "source" in str(err)


# -- the formulation as the co-design search will use it --------------------------------------

def test_node_is_a_swap_of_parameter_values(tmp_path: Path) -> None:
    n5 = cost.accelerator_inputs(cost_case.load("h100-like").design)
    n7 = cost.accelerator_inputs(cost_case.load(
        design_file(tmp_path, design__technology="n7")).design)
    config = {"compute_chiplets": 2, "chiplet_area": 400.0, "hbm_stacks": 4,
              "scale_up_links": 12}
    built = Evaluator(acc.build_accelerator(n7))(config)
    swapped = Evaluator(acc.build_accelerator(n5))(config, acc.parameter_values(n7))
    assert set(built) == set(swapped)
    for k in built:
        assert swapped[k] == pytest.approx(built[k], rel=1e-12), k
    assert built["manufacturing_cost"] < Evaluator(acc.build_accelerator(n5))(config)[
        "manufacturing_cost"]


def test_margin_marks_up_the_price(tmp_path: Path) -> None:
    v = cost.price_case(cost_case.load(design_file(tmp_path, design__margin=0.75))
                        ).chosen.values
    assert v["price"] == pytest.approx(4 * v["unit_cost"], rel=1e-12)


def test_design_decisions_are_symbols() -> None:
    f = acc.build_accelerator(cost.accelerator_inputs(cost_case.load("h100-like").design))
    assert set(f.decisions) == {"compute_chiplets", "chiplet_area", "hbm_stacks",
                                "scale_up_links"}
    symbols = {d.symbol for d in f.decisions.values()}
    for name in ("manufacturing_cost", "peak_flops", "hbm_bandwidth", "power", "price"):
        assert f.expressions[name].free_symbols & symbols, name
