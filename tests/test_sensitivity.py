"""Elasticities against finite differences of the evaluator, for every built-in case, and the
stability ranges of ``perfcost solve --sensitivities`` against re-solving."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.sections import ParallelismSection
from perfcost.solver.cli.main import app
from perfcost.solver.engines.solve import solve_case
from perfcost.solver.export import closed_form as export
from perfcost.solver.problem.evaluate import Evaluator
from perfcost.solver.problem.search import systems_of
from perfcost.solver.problem.space import build_space, candidates
from perfcost.solver.studies.sensitivity import (
    SERVING_QUANTITIES,
    elasticities,
    finite_difference,
    solution_sensitivities,
    stability_range,
)
from typer.testing import CliRunner

RTOL = 1e-6
#: Finite differences of a float64 evaluator resolve elasticities to a few 1e-10 (a 1e-6
#: relative step of a quantity summed from terms 10^6 apart in size); below that a relative
#: comparison measures rounding, not the derivative.
ATOL = 3e-10
#: One-sided differences that disagree by more than this mark a kink (a ceil or a max
#: switching exactly at the value): there the derivative does not exist.
KINK = 1e-4


def builtin_cases() -> list[str]:
    from case_selection import representative_cases

    # The studies span every formulation structure a planner asks about (dense, MoE, latent
    # attention, co-design, serving); the validation cases' elasticities add CI minutes, not
    # structures (tests/test_export.py checks one validation case per suite).
    return [n for n in representative_cases(validation=False)
            if n != "kimi-k2-chiplet-codesign"]  # llama3-70b-chiplet-codesign's structure


def configuration(case: Any) -> dict[str, float]:
    """The case's own configuration, or (a case that leaves it to solve) the middle one of
    its valid configurations."""
    try:
        return export.case_decisions(case)
    except Exception:
        open_case = case.model_copy(update={"parallelism": ParallelismSection()})
        cands = candidates(build_space(open_case, [systems_of(open_case)[0][1]]))
        i = len(cands) // 2
        return {k: float(v[i]) for k, v in cands.columns.items()}


def near(a: float, b: float) -> bool:
    return abs(a - b) <= RTOL * abs(b) + ATOL


def is_kink(backward: float, forward: float) -> bool:
    return abs(backward - forward) > KINK * max(abs(backward), abs(forward), 1.0)


#: Where a parameter sits exactly on a kink, the check moves it by the first of these
#: (relative) that lands where the model is smooth.
SHIFTS = (-1e-5, 1e-5, -3e-4, 3e-4)


#: Quantities whose elasticities are checked: time, memory and money.
QUANTITIES = ("iteration_time", "memory_per_gpu", "cost")


@pytest.mark.parametrize("name", builtin_cases())
def test_elasticities_match_finite_differences(name: str) -> None:
    loaded = case_mod.load(name)
    kind = export.case_kind(loaded)  # a kind sensitivities do not know fails here, loudly
    case = systems_of(loaded)[0][0] if len(systems_of(loaded)) > 1 else loaded
    if kind == "serving":  # every deployment kind the case offers
        modes = case.serving.disaggregated
        for mode in modes if isinstance(modes, list) else [modes]:
            one = case.model_copy(update={"serving": case.serving.model_copy(
                update={"disaggregated": mode})})
            check_configuration(name, export.case_formulation(one), serving_configuration(one),
                                SERVING_QUANTITIES)
        return
    check_configuration(name, export.case_formulation(case), configuration(case), QUANTITIES)


def serving_configuration(case: Any) -> dict[str, float]:
    """The middle one of the deployments the serving search accepts (the SLOs met), or of
    those it would accept but for the SLOs where none meets them."""
    cands = export.serving_candidates(case, slos=True)
    if not len(next(iter(cands.values()))):
        cands = export.serving_candidates(case)
    i = len(next(iter(cands.values()))) // 2
    return {k: float(v[i]) for k, v in cands.items()}


def check_configuration(name: str, formulation: Any, codes: dict[str, float],
                        quantities: tuple[str, ...]) -> None:
    evaluator = Evaluator(formulation, list(quantities))
    values = {n: p.value for n, p in formulation.parameters.items()}
    checked = 0
    for quantity in quantities:
        if evaluator(codes)[quantity] == 0:  # no price: the elasticity of 0 is undefined
            continue
        check_quantity(name, formulation, codes, values, quantity,
                       lambda ps, q=quantity: evaluator(codes, ps)[q])
        checked += 1
    assert checked >= 2, name


def check_quantity(name: str, formulation: Any, codes: dict[str, float],
                   values: dict[str, float], quantity: str, value: Any) -> None:
    every = elasticities(formulation, quantity, codes)
    assert every, (name, quantity)
    # Quantised parameters get finite figures at their neighbouring legal values
    # (tests/test_sensitivity_planner.py); the derivatives are checked here.
    rows = [r for r in every if r.method == "derivative"]
    kinks = 0
    for row in rows:
        c, b, f = finite_difference(value, values, row.parameter)
        if not is_kink(b, f):
            assert near(row.elasticity, c), (name, quantity, row.parameter, row.elasticity, c)
            continue
        # No derivative exists here (a ceil jumps or a max switches exactly at this value):
        # the reported figure lies between the one-sided ones, and just beside the kink,
        # where the model is smooth, the elasticity matches the differences again.
        kinks += 1
        low, high = min(b, f), max(b, f)
        assert (low - RTOL * abs(low) - ATOL <= row.elasticity
                <= high + RTOL * abs(high) + ATOL), (name, quantity, row, b, f)
        for shift in SHIFTS:
            moved = {**values, row.parameter: values[row.parameter] * (1 + shift)}
            c, b, f = finite_difference(value, moved, row.parameter)
            if not is_kink(b, f):
                break
        assert not is_kink(b, f), (name, quantity, row.parameter, "no smooth point nearby")
        there = {r.parameter: r.elasticity for r in elasticities(formulation, quantity, codes,
                                                                  moved)}
        assert near(there.get(row.parameter, 0.0), c), (name, quantity, row.parameter, c)
    # Kinks are the integer counts and tile sizes sitting on a ceil's jump, never most.
    assert kinks <= max(1, len(rows) // 2), (name, quantity, kinks)
    # Parameters left out have no effect from below: the value does not move when they do.
    listed = {r.parameter for r in every}
    for n in formulation.parameters:
        if n not in listed and values[n] != 0:
            c, b, f = finite_difference(value, values, n)
            assert abs(b) <= ATOL * 10 or is_kink(b, f), (name, quantity, n, c, b, f)


def test_rates_scale_inversely() -> None:
    """Time is homogeneous of degree -1 in the compute and memory rates together."""
    case = case_mod.load("llama3-70b-h100")
    formulation = export.case_formulation(case)
    codes = export.case_decisions(case)
    rows = {r.parameter: r.elasticity for r in elasticities(formulation, "iteration_time",
                                                                 codes)}
    assert rows["peak_flops"] == pytest.approx(rows["matmul_efficiency"], rel=1e-9)
    assert rows["hbm_bandwidth"] == pytest.approx(rows["memory_efficiency"], rel=1e-9)
    assert -1.0 < rows["peak_flops"] < 0.0


@pytest.fixture(scope="module")
def small_solution() -> Any:
    case = case_mod.load("llama3-70b-h100", [
        "parallelism.tp=[2,4,8]", "parallelism.pp=[2,4,8]", "parallelism.dp=[8,16,32,64]",
        "parallelism.micro_batch=[1,2]"])
    return solve_case(case)


def test_stability_range_brackets_a_change(small_solution: Any) -> None:
    from dataclasses import replace

    from perfcost.solver.engines.enumerate import EnumerateEngine

    problem, result = small_solution.problem, small_solution.result
    name = "peak_flops"
    low, high, low_open, high_open, *_clipped = stability_range(small_solution, name)
    value = problem.system_parameters[0][name]
    assert low <= value <= high

    def optimum(v: float) -> dict[str, Any]:
        systems = [dict(p, **{name: v}) for p in problem.system_parameters]
        return EnumerateEngine().solve(replace(problem, system_parameters=systems)).config

    assert optimum(low) == result.config and optimum(high) == result.config
    if not low_open:
        assert optimum(low * 0.98) != result.config
    if not high_open:
        assert optimum(high * 1.02) != result.config
    assert not (low_open and high_open), "expected the optimum to move within 16x"


def test_solution_sensitivities_rank_and_range(small_solution: Any) -> None:
    rows = solution_sensitivities(small_solution, ranged=2)
    # A planner's parameters first, each group largest magnitude first.
    planner = [r.planner for r in rows]
    assert planner == sorted(planner, reverse=True)
    for group in (True, False):
        magnitudes = [abs(r.elasticity) for r in rows if r.planner is group]
        assert magnitudes == sorted(magnitudes, reverse=True)
    ranged = [r for r in rows if r.low is not None]
    assert len(ranged) == 2
    assert all(r.unit != "1" or not float(r.value).is_integer() for r in ranged)


def test_cli_json_carries_the_table() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", "llama3-70b-h100", "--sensitivities", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    top = data["sensitivities"][0]
    assert top["quantity"] == "iteration_time" and math.isfinite(top["elasticity"])
    text = runner.invoke(app, ["evaluate", "llama3-70b-h100", "--sensitivities"])
    assert "most sensitive parameters" in text.output
    solved = runner.invoke(app, ["solve", "llama3-70b-h100", "--sensitivities", "--json"])
    assert solved.exit_code == 0, solved.output
    rows = json.loads(solved.output)["sensitivities"]
    assert any("optimum_unchanged" in r for r in rows)


SERVE = "serve-llama3-8b-h100"
SERVE_SETS = ["--set", "hardware=h100-sxm", "--set", "serving.batch=1", "--set",
              "serving.precision='bf16'"]


def test_serving_cli_json_and_tables() -> None:
    """``evaluate --sensitivities`` on a serving case: the objective's table, then TTFT's and
    TPOT's; batch-1 decode streams the weights, so TPOT moves against the HBM rate."""
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", SERVE, *SERVE_SETS, "--sensitivities", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["sensitivities"]
    assert list(dict.fromkeys(r["quantity"] for r in rows)) == list(SERVING_QUANTITIES)
    tpot = {r["parameter"]: r["elasticity"] for r in rows if r["quantity"] == "tpot"}
    # The HBM rate enters only as products with the fractions of it each kernel reaches (the
    # streaming ceiling; the decode kernels' stream and their per-block share), so its
    # elasticity is theirs summed.
    shares = ("memory_efficiency", "decode_memory_efficiency", "decode_block_stream_share")
    assert tpot["hbm_bandwidth"] == pytest.approx(sum(tpot.get(k, 0.0) for k in shares),
                                                  rel=1e-9)
    assert -1.0 < tpot["hbm_bandwidth"] < -0.5  # mostly weight reads, some fixed overheads
    text = runner.invoke(app, ["evaluate", SERVE, *SERVE_SETS, "--sensitivities"])
    assert text.exit_code == 0, text.output
    assert text.output.count("most sensitive parameters") == len(SERVING_QUANTITIES)


def test_serving_solve_reports_the_optimum_elasticities() -> None:
    from perfcost.solver.serving.search import solve_serving
    from perfcost.solver.studies.sensitivity import serving_sensitivities

    runner = CliRunner()
    out = runner.invoke(app, ["solve", "serve-llama3-70b-disagg-wins", "--sensitivities",
                              "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    best = solve_serving(case_mod.load("serve-llama3-70b-disagg-wins")).best
    assert data["config"] == best.config
    want = [r.to_json() for r in serving_sensitivities(best)]
    got = data["sensitivities"]
    assert [{k: v for k, v in r.items() if k != "optimum_unchanged"} for r in got] == want
    assert any("optimum_unchanged" in r for r in got)  # the ranges of `solve`
    # The price of a GPU-second moves the cost per token in proportion to its share.
    cost = {r["parameter"]: r["elasticity"] for r in want
            if r["quantity"] == "cost_per_million_tokens"}
    prices = [v for k, v in cost.items() if k.endswith("gpu_price")]
    assert sum(prices) == pytest.approx(1.0, rel=1e-12)


def test_serving_stability_range_against_the_solve_path() -> None:
    """The request-rate range of the disaggregation-wins optimum, checked by solving the case
    with ``serving.rate`` set (the loader and search, not the scaled re-solve)."""
    from perfcost.solver.serving.search import solve_serving
    from perfcost.solver.studies.sensitivity import serving_solution_sensitivities

    name = "serve-llama3-70b-disagg-wins"
    solution = solve_serving(case_mod.load(name))
    rows = serving_solution_sensitivities(solution, ranged=2)
    ranged = {r.parameter: r for r in rows if r.low is not None}
    assert "request_rate" in ranged and len(ranged) == 2
    rate = ranged["request_rate"]
    assert rate.low is not None and rate.high is not None
    assert rate.low <= rate.value <= rate.high
    assert not (rate.low_open and rate.high_open)

    def optimum(value: float) -> Any:
        best = solve_serving(case_mod.load(name, [f"serving.rate={value!r}"])).best
        return best.config if best is not None else None

    assert optimum(rate.low) == solution.best.config == optimum(rate.high)
    if not rate.low_open:
        assert optimum(rate.low * 0.98) != solution.best.config
    if not rate.high_open:
        assert optimum(rate.high * 1.02) != solution.best.config
