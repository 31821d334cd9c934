"""The bound engine (solver/engines/bound.py): branch and bound over systems on the compiled
tables.

The shared conformance suite (tests/test_conformance.py) already runs it against enumeration
on 200 generated problems. Checked here beyond that: co-design spaces (hundreds of designed
systems), the ``--top`` ranking, which constraints bind and by how much, the infeasibility
explanation, the engine ``auto`` picks, and the 10^12-configuration Kimi K2 co-design study
against enumeration on a sub-space small enough to enumerate.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import test_conformance as conformance
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.units import format_quantity
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.bound import OBJECTIVE, BoundEngine, _Solver
from perfcost.solver.engines.enumerate import EnumerateEngine, full_values
from perfcost.solver.engines.pick import pick
from perfcost.solver.problem.result import Result
from perfcost.solver.problem.search import SearchProblem
from perfcost.solver.problem.space import candidates, count_candidates
from perfcost.solver.problem.specs import decision_codes
from test_codesign import small_case

KIMI = "kimi-k2-chiplet-codesign"


def _agree(problem: SearchProblem, top: int = 1, explain: bool = False
           ) -> tuple[Result, Result]:
    ref = EnumerateEngine().solve(problem, top=top, explain=explain)
    got = BoundEngine().solve(problem, top=top, explain=explain)
    assert got.status == ref.status, (got.explanation, ref.explanation)
    if ref.ok:
        assert got.value == pytest.approx(ref.value, rel=1e-9)
        # The answer is the evaluator's, on the system and configuration reported.
        assert got.value == got.values[problem.quantity]
    return ref, got


def test_codesign_optimum_and_ranking_equal_enumeration() -> None:
    p = build_problem(small_case(60e6))
    assert len(p.space.systems) > 50
    ref, got = _agree(p, top=5)
    assert p.codesign.systems[got.system_index].values["capex"] <= 60e6
    assert [r.objective for r in got.top] == pytest.approx(
        [r.objective for r in ref.top[:5]], rel=1e-9)
    assert got.stats["exact_values"] < len(p.valid()) / 10  # most pairs never evaluated


@pytest.mark.parametrize("seed", [s for s in range(conformance.N_PROBLEMS)
                                  if s % 7 == 0][:20])
def test_binding_constraints_match_enumeration(seed: int) -> None:
    p = conformance.problem(seed)
    ref, got = _agree(p, explain=True)
    if not ref.ok:
        return
    for a, b in zip(ref.constraints, got.constraints, strict=True):
        assert (a.name, a.binding) == (b.name, b.binding), (a, b)
        if a.binding:
            assert b.better_if_relaxed == pytest.approx(a.better_if_relaxed, rel=1e-9)


def test_infeasible_names_the_constraint_and_the_least_needed() -> None:
    raw = {"model": "gpt3-175b", "hardware": "a100-80gb", "network": "dgx-a100",
           "cluster": {"gpus": 64}, "training": {"global_batch": 64},
           "parallelism": {"tp": [1, 2], "pp": [1, 2], "recompute": "none"}}
    p = build_problem(case_mod.from_dict(case_mod.resolve(raw)))
    ref, got = _agree(p)
    assert got.status == "infeasible"
    assert len(got.explanation) == 1 and "no configuration satisfies memory" in got.explanation[0]
    # Same least memory as enumeration finds (it looks at every configuration).
    assert got.explanation[0].split(" at ")[0] == ref.explanation[0].split(" at ")[0]


def test_auto_picks_bound_for_several_systems() -> None:
    p = build_problem(small_case(60e6))
    engine, why = pick(p)
    assert engine.name == "bound" and "systems" in why
    single = build_problem(case_mod.load("gpt3-175b-4096-a100"))
    assert pick(single)[0].name == "enumerate"


def test_kimi_k2_study_is_a_10_to_the_12_space() -> None:
    p = build_problem(case_mod.load(KIMI))
    assert p.space.size >= 1e12
    assert len(p.space.systems) > 1000


def test_kimi_k2_subspace_equals_enumeration() -> None:
    """The 10^12 study on a sub-space enumeration does in seconds: two GPU counts, six
    designs, both networks, every parallelism knob but shorter lists of stage splits,
    micro-batches and context splits."""
    p = build_problem(case_mod.load(KIMI, [
        "codesign.design=codesign-n3-slice", "cluster.gpus=[4096,8192]",
        "parallelism.virtual_stages=[1,2]", "parallelism.micro_batch=[1,2]",
        "parallelism.cp=[1,2]"]))
    assert len(p.space.systems) == 6 * 2 * 2
    ref, got = _agree(p)
    assert ref.ok
    again = full_values(p, decision_codes(got.config), got.system_index)
    assert again[p.quantity] == got.value


# -- the bounds themselves ------------------------------------------------------------------

@functools.cache
def _solver() -> _Solver:
    p = build_problem(small_case(60e6))
    compiled = BoundEngine().compiled(p)
    assert not isinstance(compiled, str)
    return _Solver(p, compiled)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_set_bound_is_below_every_member_and_exact_on_one(data: st.DataObject) -> None:
    """Over any set of system classes, the bound at each configuration is at most the value on
    every class of the set (the evaluator's), and equals it on a set of one class."""
    s = _solver()
    li = data.draw(st.integers(0, len(s.layouts) - 1))
    layout = s.layouts[li]
    classes = np.array(sorted(data.draw(st.sets(st.sampled_from(list(layout.classes)),
                                                 min_size=1, max_size=8))))
    cores = np.arange(0, len(layout.cores), max(1, len(layout.cores) // 50))
    configs = s._expand(layout, li, cores)
    idx = np.arange(len(configs))
    idx = idx[configs.columns["tp"] <= s.scale_up[classes].min()]
    for block in (OBJECTIVE, "memory"):
        pos, lo = layout.blocks[block].lower(configs.codes, idx, classes, np.inf)
        for cls in classes:
            system = layout.system_of[int(cls)]
            exact = s.evaluate(configs, idx[pos], system)
            if block == OBJECTIVE:
                value = exact[s.problem.quantity]
            else:
                value = exact["memory_per_gpu"] / s.problem.constraints[0].limits[system]
            assert np.all(lo <= value * (1 + 1e-12)), block
            if len(classes) == 1:
                assert lo == pytest.approx(value, rel=1e-9)
    # The bound over the cores (modes left out) is below the bound of each of their configs.
    pos_c, lo_c = layout.relaxed[OBJECTIVE].lower(layout.codes, cores, classes, np.inf)
    pos_w, lo_w = layout.blocks[OBJECTIVE].lower(configs.codes, np.arange(len(configs)),
                                                 classes, np.inf)
    core_of = {tuple(layout.cores.columns[k][c] for k in ("tp", "pp", "dp", "cp", "ep",
                                                          "micro_batch", "virtual_stages",
                                                          "recompute")): b
               for c, b in zip(cores[pos_c], lo_c, strict=True)}
    for w, b in zip(pos_w, lo_w, strict=True):
        key = tuple(configs.columns[k][w] for k in ("tp", "pp", "dp", "cp", "ep",
                                                     "micro_batch", "virtual_stages",
                                                     "recompute"))
        assert core_of[key] <= b * (1 + 1e-12)


def test_counted_candidates_equal_the_built_ones() -> None:
    """``auto`` counts a system's configurations without building them; the count is the
    length of the candidate list on every conformance problem."""
    for seed in range(0, conformance.N_PROBLEMS, 5):
        space = conformance.problem(seed).space
        assert count_candidates(space) == len(candidates(space)), seed


def test_least_needed_budget_is_the_cheapest_run_that_fits_in_memory() -> None:
    """A budget below every run that fits: the least budget needed is reported where the
    other constraint (memory) holds, so it is the cost optimum of the same search -- not the
    price of a cheaper configuration that does not fit."""
    case = case_mod.load("llama3-70b-codesign", ["constraints.budget='1e6 USD'"])
    got = BoundEngine().solve(build_problem(case), explain=True)
    assert got.status == "infeasible"
    (line,) = got.explanation
    assert "no configuration satisfies budget" in line and "(where memory holds)" in line
    cheapest = BoundEngine().solve(build_problem(case_mod.load("llama3-70b-codesign"),
                                                 objective="cost"))
    needed = f"the least needed is {format_quantity(cheapest.value, 'USD')} against"
    assert needed in line, (line, cheapest.value)
