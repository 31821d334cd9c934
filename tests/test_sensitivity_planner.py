"""Sensitivities a planner can use: quantised parameters by re-evaluation at their neighbouring
legal values (with a physical sign), a planner's parameters first, stability ranges within
physical limits (solver/studies/sensitivity.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.solver.case import schema as case_mod
from perfcost.solver.problem.evaluate import evaluate_case
from perfcost.solver.problem.specs import decision_codes
from perfcost.solver.studies import sensitivity as sens

CASE = "llama3-70b-h100"


@pytest.fixture(scope="module")
def evaluation() -> Any:
    return evaluate_case(case_mod.load(CASE))


@pytest.fixture(scope="module")
def rows(evaluation: Any) -> list[sens.Sensitivity]:
    return sens.evaluation_sensitivities(evaluation)


def by_name(rows: list[sens.Sensitivity]) -> dict[str, sens.Sensitivity]:
    return {r.parameter: r for r in rows}


# -- quantised parameters ---------------------------------------------------------------------

def test_more_sms_are_never_slower(rows: list[sens.Sensitivity]) -> None:
    sm = by_name(rows)["multiprocessors"]
    assert sm.method == "finite" and sm.neighbours is not None
    assert sm.neighbour_values is not None
    low, high = sm.neighbours
    slower, faster = sm.neighbour_values
    assert low < sm.value < high
    print(f"iteration time at {low:g} / {high:g} SMs: {slower:.4g} / {faster:.4g} s; "
          f"finite elasticity {sm.elasticity:+.4f}")
    assert faster <= slower and sm.elasticity <= 0


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=8, max_value=400))
def test_iteration_time_never_rises_with_the_sm_count(evaluation: Any, sms: int) -> None:
    """Over any SM count, one more SM (the peak scaled with it) is never slower."""
    f = evaluation.formulation
    values = {n: p.value for n, p in f.parameters.items()}
    codes = decision_codes(evaluation.config)

    def time_at(x: float) -> float:
        return sens._value_at(f, codes, values, "multiprocessors", x, "iteration_time")

    assert time_at(sms + 1) <= time_at(sms) * (1 + 1e-12)


def test_tiles_and_domains_move_to_the_next_power_of_two() -> None:
    assert sens.neighbours("gemm_tile_m", "1", 64) == (32, 128)
    assert sens.neighbours("scale_up_size", "1", 8) == (4, 16)
    assert sens.neighbours("bytes_per_element", "B", 2) == (1, 4)
    # other counts: 10 % either way, at least 1, never below 1
    assert sens.neighbours("multiprocessors", "1", 132) == (119, 145)
    assert sens.neighbours("global_batch", "1", 4) == (3, 5)
    assert sens.neighbours("layers", "1", 1) == (1, 2)


def test_quantised_rows_are_finite_and_the_rest_derivatives(
        rows: list[sens.Sensitivity]) -> None:
    named = by_name(rows)
    for name in ("multiprocessors", "gemm_tile_m", "global_batch", "layers"):
        if name in named:
            assert named[name].method == "finite", name
    for name in ("peak_flops", "hbm_bandwidth", "matmul_efficiency"):
        assert named[name].method == "derivative", name
    # A quantised parameter's figure is never a local derivative at a fixed wave count: the
    # tile sizes do not all move by the same amount as the peak, as a derivative said.
    assert named["multiprocessors"].elasticity != -named["peak_flops"].elasticity


def test_planner_controls_come_first(rows: list[sens.Sensitivity]) -> None:
    planner = [r.planner for r in rows]
    assert planner == sorted(planner, reverse=True)
    named = by_name(rows)
    for fixed in ("layers", "hidden", "heads", "ffn", "vocab"):
        if fixed in named:
            assert not named[fixed].planner, fixed
    for chosen in ("peak_flops", "global_batch", "hbm_bandwidth", "seq_len"):
        assert named[chosen].planner, chosen
    data = named["multiprocessors"].to_json()
    assert data["method"] == "finite" and data["planner_controls"] is True
    assert data["neighbours"]["values"] == list(named["multiprocessors"].neighbours or ())


# -- physical limits of stability ranges ------------------------------------------------------

def test_limits_by_kind() -> None:
    assert sens.physical_limits("matmul_efficiency", "1", "achievable fraction", 0.8) == (
        0.0, 1.0)
    assert sens.physical_limits("scale_out_taper", "1", "bandwidth fraction", 0.5) == (0.0, 1.0)
    assert sens.physical_limits("hbm_bandwidth", "B/s", "HBM bandwidth", 3e12) == (
        0.0, math.inf)
    assert sens.physical_limits("load_imbalance", "1", "slowest expert over mean", 1.2) == (
        1.0, math.inf)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.01, max_value=1.0), st.floats(min_value=1e-3, max_value=1e3))
def test_efficiency_ranges_never_pass_one(value: float, threshold: float) -> None:
    """An optimum that holds for efficiencies up to ``threshold``: the range ends there or at
    1, whichever is lower, and says clipped exactly when 1 is the end."""
    limits = sens.physical_limits("matmul_efficiency", "1", "fraction of peak", value)
    low, high, _low_open, high_open, low_clipped, high_clipped = sens._scaled_range(
        value, lambda f: value * f <= threshold, limits)
    assert 0.0 < low <= value <= high <= 1.0 + 1e-12
    assert not low_clipped  # no lower limit above 0 for an efficiency
    if high_clipped:
        assert high == pytest.approx(1.0)
    # the nearer of the search limit (16x) and the physical one (1)
    cap = min(1.0, value * sens.RANGE_FACTOR)
    if threshold > cap * (1 + 1e-9):
        assert high == pytest.approx(cap)
        assert high_clipped == (value * sens.RANGE_FACTOR >= 1.0)
        assert high_open == (not high_clipped)
    elif value <= threshold < cap * (1 - 1e-9):
        assert not high_clipped and not high_open
        assert high == pytest.approx(threshold, rel=2 * sens.RANGE_TOLERANCE)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1.0, max_value=5.0))
def test_factors_at_least_one_stay_at_least_one(value: float) -> None:
    limits = sens.physical_limits("load_imbalance", "1", "", value)
    low, high, low_open, high_open, low_clipped, high_clipped = sens._scaled_range(
        value, lambda f: True, limits)
    assert low == pytest.approx(1.0) and low_clipped and not low_open
    assert high == pytest.approx(value * sens.RANGE_FACTOR) and high_open
    assert not high_clipped


def test_unbounded_quantities_keep_the_search_limit() -> None:
    low, high, low_open, high_open, low_clipped, high_clipped = sens._scaled_range(
        3e12, lambda f: True, sens.physical_limits("hbm_bandwidth", "B/s", "", 3e12))
    assert (low_open, high_open, low_clipped, high_clipped) == (True, True, False, False)
    assert low == pytest.approx(3e12 / sens.RANGE_FACTOR) and low > 0
    assert high == pytest.approx(3e12 * sens.RANGE_FACTOR)


def test_clipped_ends_in_json_and_table() -> None:
    from perfcost.solver.report.tables import console, sensitivities

    row = sens.Sensitivity("matmul_efficiency", "1", "fraction of peak", 0.8, -0.5,
                           low=0.4, high=1.0, high_clipped=True, quantity="iteration_time")
    assert row.to_json()["optimum_unchanged"]["high_is_physical_limit"] is True
    out = console()
    with out.capture() as captured:
        out.print(sensitivities([row]))
    assert "clipped" in captured.get()
