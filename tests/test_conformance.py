"""The shared engine conformance suite: every registered engine against enumeration.

Enumeration evaluates every configuration that satisfies the structural rules, so it is the
oracle. Each of ``N_PROBLEMS`` seeded-random search problems (small GPT-like and Llama-like
models, one or several hardware and network entries, one or several GPU counts, memory
headroom from tight to loose, sometimes a cost budget) is solved by every other engine of
:func:`perfcost.solver.engines.pick.registry`, which must

* report the same status (``optimal`` or ``infeasible``), or ``not_accepted`` exactly when its
  ``accepts()`` gives a reason;
* when optimal, reach the same objective value (relative 1e-9) with a configuration that is
  feasible: inside the domains, meeting every structural rule, and meeting every constraint
  when it is evaluated again;
* report ``value == values[quantity]`` (to a rounding here; bit for bit is
  ``test_value_is_exactly_the_reported_quantity``, which enumeration does not meet yet).

The suite iterates the registry, so a newly registered engine is tested without editing this
file; ``test_registry_is_covered`` checks that every registered engine has the interface the
suite drives. ``test_problem_mix`` keeps the generated set honest: some problems infeasible,
some with a binding memory or budget constraint, every objective represented.

Each space is kept small (at most ``MAX_CANDIDATES`` structurally valid configurations) so the
MILP solves in well under a second; run with ``-s`` to see the mix.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from perfcost.formulations.specs import RECOMPUTE_MODES
from perfcost.solver.case import schema as case_mod
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.enumerate import EnumerateEngine, evaluate_all, full_values
from perfcost.solver.engines.pick import registry
from perfcost.solver.problem.result import Result
from perfcost.solver.problem.search import SearchProblem
from perfcost.solver.problem.space import DECISIONS, candidates

N_PROBLEMS = 200
ORACLE = "enumerate"
#: Largest number of structurally valid configurations of a generated problem.
MAX_CANDIDATES = 1500
REL_TOL = 1e-9
HARDWARE = ("a100-80gb", "h100-sxm", "h200-sxm", "b200")
NETWORKS = ("dgx-a100", "dgx-h100")


# -- the generated problems ----------------------------------------------------------------

def _subset(rng: random.Random, values: list[Any]) -> list[Any]:
    return sorted(rng.sample(values, rng.randint(1, len(values))), key=str)


def _model(rng: random.Random, large: bool) -> dict[str, Any]:
    if rng.random() < 0.25:
        heads = rng.choice([8, 16, 32])
        hidden = heads * (128 if large else rng.choice([32, 64, 128]))
        return {"base": "llama3-8b", "layers": rng.randint(8 if large else 2, 16),
                "hidden": hidden, "heads": heads,
                "kv_heads": rng.choice([k for k in (1, 2, 4, 8) if heads % k == 0]),
                "ffn": hidden * rng.choice([2, 3, 4]), "seq_len": rng.choice([1024, 2048])}
    heads = rng.choice([16, 32] if large else [4, 8, 16, 32])
    hidden = heads * (128 if large else rng.choice([32, 64, 128]))
    return {"base": "gpt-1.7b", "layers": rng.randint(8 if large else 2, 16), "hidden": hidden,
            "heads": heads, "ffn": 4 * hidden}


def raw_case(seed: int) -> dict[str, Any]:
    """The case of problem ``seed``, as the dictionary a TOML file reads to.

    Three regimes: plain (loose memory), tight (a larger model, little sharding allowed,
    memory headroom 2-10%: memory binds or nothing fits) and priced (a GPU-hour price, a small
    token budget, often a cost budget that binds or cannot be met).
    """
    rng = random.Random(seed)
    regime = rng.choices(["plain", "tight", "priced"], weights=[50, 25, 25])[0]
    tight = regime == "tight"
    par: dict[str, Any] = {
        "micro_batch": [rng.choice([2, 4])] if tight else _subset(rng, [1, 2, 4]),
        "cp": rng.choice([[1], [1], [1, 2]]),
        "virtual_stages": rng.choice([[1], [1, 2]]),
        "zero": _subset(rng, [0, 1] if tight else [0, 1, 2, 3]),
        "recompute": _subset(rng, ["none", "selective"] if tight else list(RECOMPUTE_MODES)),
    }
    if rng.random() < 0.5:
        par["sequence_parallel"] = rng.choice([False, True, [False, True]])
    raw: dict[str, Any] = {
        "model": _model(rng, large=tight),
        "hardware": (rng.choice(HARDWARE) if rng.random() < 0.6 else
                     sorted(rng.sample(HARDWARE, rng.randint(2, 3)))),
        "network": rng.choice([*NETWORKS, list(NETWORKS)]),
        "cluster": {"gpus": rng.choice([8, 16, 32, [8, 16], [16, 32], [4, 8]])},
        # The engines must agree on every layout, not only on what one framework runs, and
        # on a framework's rules (DeepSpeed: no ZeRO-2/3 with a pipeline, no interleaving, no
        # context parallelism). Both profiles share one formulation structure, so the suite
        # builds no more formulations than before; Megatron-Core's interleaving rule is
        # checked across engines in tests/test_training_modern.py.
        "training": {"global_batch": rng.choice([8, 16, 32, 64]),
                     "framework": rng.choice(["unrestricted", "unrestricted", "deepspeed"])},
        "parallelism": par,
        # Fractions of HBM the search may fill; the framework's reserve (3 GiB + 10 %) is
        # inside the memory it counts, so the tightest leaves a few GiB beyond it.
        "constraints": {"memory_headroom": (rng.choice([0.07, 0.07, 0.12]) if tight else
                                            rng.choice([0.07, 0.12, 0.3, 1.0]))},
    }
    objectives = ["iteration_time", "time_to_train"]
    if regime == "priced":
        # A choice of GPU counts: with one count the fastest configuration is the cheapest,
        # and a budget could not bind without making the problem infeasible.
        raw["cluster"] = {"gpus": rng.choice([[4, 8], [8, 16], [16, 32], [8, 16, 32]]),
                          "gpu_hour_price": "2 USD/h"}
        raw["training"]["tokens"] = rng.choice([1e8, 1e9])
        objectives.append("cost")
    raw["search"] = {"objective": rng.choice(objectives)}
    if regime == "priced" and rng.random() < 0.8:
        budget = _budget(raw, rng.choice(["binding", "binding", "too small", "loose"]))
        if budget is not None:
            raw["constraints"]["budget"] = f"{budget:.6g} USD"
    # Keep the space small: drop choices (deterministically) until few enough remain.
    while len(candidates(_build(raw).space)) > MAX_CANDIDATES:
        name = rng.choice([k for k, v in par.items() if isinstance(v, list) and len(v) > 1])
        par[name] = par[name][:-1]
    return raw


def _budget(raw: dict[str, Any], kind: str) -> float | None:
    """A budget placed against the costs this case can reach: between the cheapest and the
    otherwise optimal configuration's cost (``binding``, when they differ), below the cheapest
    (``too small``) or above both (``loose``). ``None`` when memory alone leaves nothing."""
    p = _build(raw)
    cands = candidates(p.space)
    if not len(cands):
        return None
    values = evaluate_all(p, cands, list(dict.fromkeys(["cost", p.quantity, "memory_per_gpu"])))
    fits = values["memory_per_gpu"] <= np.asarray(p.constraints[0].limits)[cands.system]
    if not fits.any():
        return None
    cheapest = float(values["cost"][fits].min())
    at_best = float(values["cost"][np.flatnonzero(fits)[
        np.argmin(values[p.quantity][fits])]])
    if kind == "binding" and at_best > 1.02 * cheapest:
        return math.sqrt(cheapest * at_best)
    return 0.8 * cheapest if kind == "too small" else 1.5 * at_best


def _build(raw: dict[str, Any]) -> SearchProblem:
    return build_problem(case_mod.from_dict(case_mod.resolve(raw)))


@functools.cache
def problem(seed: int) -> SearchProblem:
    return _build(raw_case(seed))


@functools.cache
def oracle(seed: int) -> Result:
    return EnumerateEngine().solve(problem(seed))


def engines_under_test() -> dict[str, Any]:
    return {name: engine for name, engine in registry().items() if name != ORACLE}


#: Problems each engine accepted, and the problems run (filled by ``test_engines_agree``).
ACCEPTED: Counter[str] = Counter()
RAN: set[int] = set()


# -- checks --------------------------------------------------------------------------------

def system_index(p: SearchProblem, result: Result) -> int:
    names = [f"{s.hardware} + {s.network}" for s in p.space.systems]
    assert result.system in names, f"unknown system {result.system!r}, expected one of {names}"
    return names.index(result.system)


def codes_of(p: SearchProblem, config: dict[str, Any]) -> dict[str, float]:
    """The numeric decision codes of a user-facing configuration (each inside its domain)."""
    assert set(config) == set(DECISIONS)
    decisions = p.formulation.decisions
    codes = {}
    for name in DECISIONS:
        labels = {code: decisions[name].label(code) for code in p.space.domains[name]}
        if name == "sequence_parallel":
            labels = {code: label == "true" for code, label in labels.items()}
        found = [code for code, label in labels.items() if label == config[name]]
        assert found, f"{name} = {config[name]!r} is outside its domain {list(labels.values())}"
        codes[name] = found[0]
    return codes


def check_feasible(p: SearchProblem, result: Result) -> None:
    """``result``'s configuration meets the structural rules and every constraint."""
    cfg = result.config
    i = system_index(p, result)
    tp, pp, dp, cp = (cfg[k] for k in ("tp", "pp", "dp", "cp"))
    mb, vs = cfg["micro_batch"], cfg["virtual_stages"]
    gb, layers = p.space.global_batch, p.space.layers
    assert tp * pp * dp * cp in p.space.gpus, cfg
    assert gb % (dp * mb) == 0, cfg
    assert gb // (dp * mb) >= pp, f"fewer micro-batches than stages: {cfg}"
    assert layers % (pp * vs) == 0, cfg
    assert vs == 1 or pp > 1, cfg
    assert tp <= p.space.systems[i].scale_up_size, cfg
    values = full_values(p, codes_of(p, cfg), i)
    assert result.value is not None
    assert math.isfinite(result.value)
    # Exactly equal is asked of the engines (see test_value_is_exactly_the_reported_quantity);
    # here one rounding apart is let through so the rest is still checked.
    assert result.value == pytest.approx(result.values[p.quantity], rel=1e-14, abs=0)
    assert values[p.quantity] == pytest.approx(result.value, rel=REL_TOL)
    for c in p.constraints:
        limit = c.limits[i]
        assert result.values[c.quantity] <= limit * (1 + REL_TOL), c.name
        assert values[c.quantity] <= limit * (1 + REL_TOL), c.name


# -- the suite -----------------------------------------------------------------------------

def test_registry_is_covered() -> None:
    """Every registered engine has the interface the suite drives, under its own name; the
    suite tests all of them (the oracle against itself in ``test_engines_agree``)."""
    engines = registry()
    assert ORACLE in engines
    tested = set(engines_under_test()) | {ORACLE}
    assert tested == set(engines)
    for name, engine in engines.items():
        assert engine.name == name
        for method in ("accepts", "solve"):
            assert callable(getattr(engine, method, None)), f"{name} lacks {method}()"
        params = inspect.signature(engine.solve).parameters
        assert {"problem", "top", "explain"} <= set(params), f"{name}.solve{tuple(params)}"


@pytest.mark.parametrize("seed", range(N_PROBLEMS))
def test_engines_agree(seed: int) -> None:
    p = problem(seed)
    ref = oracle(seed)
    assert ref.status in ("optimal", "infeasible"), ref.explanation
    if ref.status == "optimal":
        check_feasible(p, ref)
    else:
        assert ref.explanation and ref.value is None
    for name, engine in engines_under_test().items():
        reason = engine.accepts(p)
        result = engine.solve(p, explain=False)
        assert result.engine == name
        assert result.objective == p.objective
        if reason is not None:
            assert result.status == "not_accepted", (name, reason)
            continue
        ACCEPTED[name] += 1
        assert result.status == ref.status, (name, result.explanation, ref.explanation)
        if ref.status == "optimal":
            assert result.value == pytest.approx(ref.value, rel=REL_TOL), (
                name, result.config, ref.config)
            check_feasible(p, result)
    RAN.add(seed)


def test_problem_mix() -> None:
    """The generated set covers infeasible problems, binding constraints and every objective
    (deterministic: the problems are seeded)."""
    mix: Counter[str] = Counter()
    for seed in range(N_PROBLEMS):
        p, ref = problem(seed), oracle(seed)
        assert len(candidates(p.space)) <= MAX_CANDIDATES
        mix[ref.status] += 1
        mix[f"objective {p.objective}"] += 1
        mix[f"{len(p.space.systems)} system(s)"] += 1
        if len(p.constraints) > 1:
            mix["with a budget"] += 1
        for c in ref.constraints:
            if c.binding:
                mix[f"{c.name} binds"] += 1
        if ref.status == "infeasible":
            mix["infeasible: " + ("no structurally valid configuration"
                                  if not ref.stats["candidates"] else
                                  " & ".join(c.name for c in p.constraints
                                             if f"satisfies {c.name}" in " ".join(
                                                 ref.explanation)) or "jointly")] += 1
    print("\nconformance problem mix:", dict(sorted(mix.items())))
    print("accepted by engine (this session):", dict(ACCEPTED))
    assert 0.10 * N_PROBLEMS <= mix["infeasible"] <= 0.30 * N_PROBLEMS, mix
    assert mix["memory binds"] >= 0.08 * N_PROBLEMS, mix
    assert mix["budget binds"] >= 5, mix
    assert mix["infeasible: memory"] >= 5, mix
    assert mix["infeasible: budget"] >= 5, mix
    for objective in ("iteration_time", "time_to_train", "cost"):
        assert mix[f"objective {objective}"] >= 10, mix
    if len(RAN) == N_PROBLEMS:  # every conformance test ran (and passed) in this session
        for name in engines_under_test():
            assert ACCEPTED[name] >= 0.9 * N_PROBLEMS, (name, ACCEPTED)


def test_value_is_exactly_the_reported_quantity() -> None:
    """``value`` is ``values[quantity]``, bit for bit, for every engine."""
    mismatched = []
    for seed in range(N_PROBLEMS):
        p, ref = problem(seed), oracle(seed)
        if ref.status == "optimal" and ref.value != ref.values[p.quantity]:
            mismatched.append((seed, ref.value, ref.values[p.quantity]))
    assert not mismatched, f"{len(mismatched)} problems, e.g. {mismatched[:3]}"
