"""Hardware-software co-design in ``perfcost solve`` and ``perfcost pareto``.

A co-design case offers the search the accelerator designs of a cost case x its GPU counts
(solver/cost/codesign.py). Checked here: every kept system is buildable and within the capex budget
and power limit, the optimum equals a brute-force minimum over the systems' own optima, the
MILP agrees with enumeration on a co-design problem small enough for it, the Pareto front is
monotone and each point is the optimum of a solve at that budget, and bad budgets fail with
one line naming the cheapest system.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.cli.main import app
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.enumerate import EnumerateEngine
from perfcost.solver.engines.milp import MilpEngine
from perfcost.solver.studies.pareto import capex_of, system_minima
from typer.testing import CliRunner

runner = CliRunner()
STUDY = "llama3-70b-chiplet-codesign"


def small_case(budget: float | None = 150e6, gpus: list[int] | None = None,
               design: str = "codesign-n5") -> case_mod.Case:
    """The built-in co-design study on fewer GPU counts (faster)."""
    raw = case_mod.read_toml(catalog.find_case(STUDY))
    raw["cluster"]["gpus"] = gpus or [1024, 2048]
    raw["codesign"]["design"] = design
    if budget is None:
        raw["codesign"].pop("capex_budget", None)
    else:
        raw["codesign"]["capex_budget"] = f"{budget} USD"
    return case_mod.from_dict(case_mod.resolve(raw))


def test_kept_systems_are_within_budget_and_fixed_gpu_counts() -> None:
    p = build_problem(small_case(40e6))
    cd = p.codesign
    assert cd.considered == 2 * 81  # 3 x 3 x 3 x 3 designs x 2 GPU counts x 1 network
    assert 0 < len(cd.systems) < cd.considered  # the budget drops the dearest
    for s in cd.systems:
        assert s.values["capex"] <= 40e6
        assert s.system.gpus == s.gpus
    cands = p.valid()
    gpus = cands.columns["tp"] * cands.columns["pp"] * cands.columns["dp"] * cands.columns["cp"]
    own = np.array([s.gpus for s in p.space.systems])[cands.system]
    assert np.array_equal(gpus, own)  # each system runs only at the count it was priced for


def test_optimum_is_the_best_system_optimum() -> None:
    p = build_problem(small_case(60e6))
    result = EnumerateEngine().solve(p, explain=False)
    assert result.ok
    best, _where = system_minima(p)
    assert result.value == pytest.approx(float(best.min()), rel=1e-12)
    chosen = p.codesign.systems[result.system_index]
    assert chosen.values["capex"] <= 60e6
    # A dearer budget never makes the optimum worse.
    richer = EnumerateEngine().solve(build_problem(small_case(120e6)), explain=False)
    assert richer.value <= result.value * (1 + 1e-12)


def test_milp_agrees_with_enumeration_on_a_small_codesign(tmp_path: Path) -> None:
    design = case_mod.read_toml(catalog.root() / "designs" / "codesign-n5.toml")
    design["design"]["compute_chiplets"] = [1, 2]
    design["design"]["chiplet_area"] = ["800 mm^2"]
    design["design"]["hbm_stacks"] = [6]
    design["design"]["scale_up_links"] = 18
    path = tmp_path / "two-designs.toml"
    path.write_text(_toml(design), encoding="utf-8")
    case = small_case(None, gpus=[1024], design=str(path))
    case = case.model_copy(update={"parallelism": case.parallelism.model_copy(
        update={"recompute": "selective", "zero": 1})})
    p = build_problem(case)
    assert len(p.space.systems) == 2
    ref = EnumerateEngine().solve(p, explain=False)
    milp = MilpEngine()
    assert milp.accepts(p) is None
    got = milp.solve(p, explain=False)
    assert got.status == ref.status == "optimal"
    assert got.value == pytest.approx(ref.value, rel=1e-9)


def test_pareto_front_is_monotone_and_each_point_is_a_solve() -> None:
    out = runner.invoke(app, ["pareto", STUDY, "--budgets", "8", "--json",
                              "--set", "cluster.gpus=[1024,2048]"])
    assert out.exit_code == 0, out.output
    points = json.loads(out.output)["points"]
    assert len(points) == 8
    values = [p["value"] for p in points]
    assert all(v is not None for v in values)
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(values))
    for p in points:
        assert p["capex_usd"] <= p["budget_usd"] * (1 + 1e-9)
    mid = points[4]
    solved = EnumerateEngine().solve(build_problem(small_case(mid["budget_usd"])),
                                     explain=False)
    assert solved.value == pytest.approx(mid["value"], rel=1e-12)


def test_solve_reports_the_design_and_its_capex() -> None:
    out = runner.invoke(app, ["solve", STUDY, "--json", "--set", "cluster.gpus=[1024]"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    cd = data["codesign"]
    assert cd["gpus"] == 1024
    assert cd["capex"] <= 150e6
    assert set(cd["design"]) >= {"technology", "compute_chiplets", "chiplet_area",
                                 "hbm_stacks", "scale_up_links"}
    text = runner.invoke(app, ["solve", STUDY, "--set", "cluster.gpus=[1024]"]).output
    assert "co-design: the chosen accelerator and cluster" in text


def test_budget_below_the_cheapest_system_names_it() -> None:
    p = build_problem(small_case(None))
    cheapest = float(capex_of(p.codesign, p).min())
    out = runner.invoke(app, ["solve", STUDY, "--set", "codesign.capex_budget=1e6 USD",
                              "--set", "cluster.gpus=[1024,2048]"])
    assert out.exit_code == 2
    line = out.output.strip()
    assert line.count("\n") == 0 and line.startswith("error: codesign.capex_budget")
    assert f"{cheapest:,.0f} USD" in line


def test_power_limit_and_unknown_design_are_one_line_errors() -> None:
    out = runner.invoke(app, ["solve", STUDY, "--set", "codesign.power_limit=1 kW"])
    assert out.exit_code == 2 and out.output.startswith("error: codesign.power_limit")
    out = runner.invoke(app, ["solve", STUDY, "--set", "codesign.design=no-such-design"])
    assert out.exit_code == 2 and "no-such-design" in out.output
    assert out.output.count("\n") == 1


def test_capex_grows_with_the_gpu_count() -> None:
    p = build_problem(small_case(None))
    by = {}
    for s in p.codesign.systems:
        by.setdefault(s.system.hardware, {})[s.gpus] = s.values["capex"]
    for counts in by.values():
        assert counts[2048] > counts[1024] > 0
        assert math.isfinite(counts[2048])


def _toml(data: dict) -> str:
    """A minimal TOML writer for a cost case: top-level scalars, tables, one level of
    sub-tables; a dict with a ``value`` (a sourced constant) is written inline."""

    def value(v: object) -> str:
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return repr(v)

    def is_table(v: object) -> bool:
        return isinstance(v, dict) and "value" not in v

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not is_table(v)]
    for name, section in data.items():
        if not is_table(section):
            continue
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in section.items() if not is_table(v)]
        for sub, table in section.items():
            if is_table(table):
                lines.append(f"[{name}.{sub}]")
                lines += [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
