"""The compiled form (sums of products of small tables) equals the formulation it came from."""

from __future__ import annotations

import json

import numpy as np
import pytest
from perfcost.solver.case.schema import load
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.compile import MAX_TABLE, SYSTEM, compile_problem
from perfcost.solver.engines.enumerate import evaluate_all
from perfcost.solver.problem.space import candidates


@pytest.fixture(scope="module", params=["gpt3-175b-4096-a100", "llama3-70b-codesign"])
def compiled_problem(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    problem = build_problem(load(request.param))
    return problem, compile_problem(problem)


def test_compiled_terms_equal_the_evaluated_quantities(compiled_problem) -> None:  # type: ignore[no-untyped-def]
    problem, compiled = compiled_problem
    cands = candidates(problem.space)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(cands), size=min(300, len(cands)), replace=False)
    names = [problem.quantity] + [c.quantity for c in problem.constraints]
    values = evaluate_all(problem, cands, names)
    for i in picks:
        config = {name: compiled.variables[name].index(float(col[i]))
                  for name, col in cands.columns.items()}
        if SYSTEM in compiled.variables:
            config[SYSTEM] = int(cands.system[i])
        got = compiled.evaluate(compiled.objective, config)
        assert got == pytest.approx(values[problem.quantity][i], rel=1e-9)
        for c in problem.constraints:
            limit = c.limits[cands.system[i]]
            got = compiled.evaluate(compiled.constraints[c.name], config)
            assert got == pytest.approx(values[c.quantity][i] / limit, rel=1e-9)


def test_compiled_form_is_small_and_json(compiled_problem) -> None:  # type: ignore[no-untyped-def]
    problem, compiled = compiled_problem
    data = json.loads(json.dumps(compiled.to_json()))
    assert set(data) == {"objective", "variables", "factors", "objective_terms", "constraints"}
    # Grows with the sum of the tables, far below the product of the domains (the TP-overlap
    # maxima tabulate the collective and the layer's GEMMs together: ~1/80 of it here).
    cells = sum(len(f.values) for f in compiled.factors)
    assert cells < problem.space.size / 50
    assert all(len(f.values) <= MAX_TABLE for f in compiled.factors)


def test_a_condition_coupling_too_many_decisions_is_declined_not_looped() -> None:
    """An indicator whose condition spans too many decisions cannot be split further: the
    compiler says so (and the MILP engine declines) instead of recursing forever."""
    from perfcost.solver.engines import compile as compile_mod

    problem = build_problem(load("gpt3-175b-a100", ["parallelism={}"]))
    original = compile_mod.MAX_TABLE
    compile_mod.MAX_TABLE = 64
    try:
        with pytest.raises(compile_mod.NotCompilable):
            compile_problem(problem)
    finally:
        compile_mod.MAX_TABLE = original
