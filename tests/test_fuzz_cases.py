"""Property tests: random mutations of a valid case never crash the loader or the evaluator.

Whatever goes in -- keys removed or added, values replaced by integers, negative numbers,
floats (inf and nan too), text with and without units, lists, nested tables or booleans --
what comes out is either a :class:`CaseError` whose message is one line naming a field, or an
evaluation whose every number is finite. Never a pydantic ``ValidationError``, ``KeyError``,
``TypeError``, ``ZeroDivisionError`` or a pint exception.

Loading is fast, so the first property runs many examples; an evaluation builds a sympy
formulation (about half a second), so the second runs few. Set ``PERFCOST_FUZZ_EXAMPLES`` to
run more of both (e.g. 2000 before a release).
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError, one_line
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import evaluate_case

#: The smallest valid case, as the dictionary its TOML reads to.
SMALLEST: dict[str, Any] = {
    "model": "gpt3-175b",
    "hardware": "a100-80gb",
    "network": "dgx-a100",
    "cluster": {"gpus": 1024},
    "training": {"global_batch": 1536},
    "parallelism": {"tp": 8, "pp": 8, "dp": 16, "micro_batch": 1},
}
#: The same with the built-in entries inlined: every field of the schema is a target.
RESOLVED: dict[str, Any] = case_mod.resolve(SMALLEST)

EXTRA = int(os.environ.get("PERFCOST_FUZZ_EXAMPLES", "0"))
LOAD_EXAMPLES = max(300, EXTRA)
EVALUATE_EXAMPLES = max(40, EXTRA // 10)

UNITS = ("GiB", "GB", "MiB", "B", "TB/s", "GB/s", "Gbit/s", "Gb/s", "B/s", "TFLOP/s",
         "FLOP/s", "FLOP", "us", "ms", "s", "h", "W", "kW", "USD", "USD/h", "%", "kg", "",
         "furlongs", "TB/s/s")
NAMES = ("gpt3-175b", "llama3-8b", "llama3-70b", "a100-80gb", "h100-sxm", "dgx-a100",
         "dgx-h100", "gpt5", "none", "selective", "full", "bf16", "fp16", "fp32", "gelu",
         "swiglu", "rope", "learned", "adam", "auto", "milp", "")

numbers = st.one_of(
    st.integers(min_value=-3, max_value=2048),
    st.integers(),
    st.floats(),  # nan and inf included
    st.floats(min_value=-2.0, max_value=2.0),
)
with_unit = st.builds(lambda x, u: f"{x} {u}".strip(), numbers, st.sampled_from(UNITS))
scalars = st.one_of(
    numbers,
    st.booleans(),
    with_unit,
    st.sampled_from(NAMES),
    st.text(max_size=12),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in a nested dictionary (tables and leaves)."""
    out = []
    if isinstance(node, dict):
        for key, child in node.items():
            out.append((*prefix, key))
            out.extend(paths(child, (*prefix, key)))
    return out


def tables(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, child in node.items():
            out.extend(tables(child, (*prefix, key)))
    return out


def get(node: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_cases(draw: st.DrawFn) -> dict[str, Any]:
    """The valid case (names or inlined tables) with one to four random edits."""
    d = copy.deepcopy(draw(st.sampled_from([SMALLEST, RESOLVED])))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["delete", "replace", "replace", "add", "nudge"]))
        if op == "add":
            table = get(d, draw(st.sampled_from(tables(d))))
            key = draw(st.one_of(st.text(max_size=8),
                                 st.sampled_from(["base", "kv_heads", "cp", "zero", "sram",
                                                  "virtual_stages", "tokens", "size"])))
            table[key] = draw(values)
            continue
        options = paths(d)
        if not options:
            break
        path = draw(st.sampled_from(options))
        parent = get(d, path[:-1])
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(values)
        else:  # a plausible neighbour of the old value: reaches the deeper rules
            parent[path[-1]] = draw(neighbour(parent[path[-1]]))
    return d


def neighbour(old: Any) -> st.SearchStrategy[Any]:
    """A value of the same kind as ``old``, often valid, sometimes at the edge of validity."""
    if isinstance(old, bool):
        return st.booleans()
    if isinstance(old, int):
        return st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 64, 96,
                                          128, 1024, 10**9, 10**9 + 1]),
                         st.integers(min_value=-1, max_value=4 * max(old, 1)))
    if isinstance(old, float):
        return st.one_of(st.floats(min_value=0.0, max_value=1.0),
                         st.sampled_from([1e-3, 0.999, 1.0, 1.0001, 1e-4]), st.floats())
    if isinstance(old, str) and old[:1].isdigit() and " " in old:
        unit = old.split(" ", 1)[1]
        return st.builds(lambda m, e, u: f"{m}e{e} {u}", st.integers(min_value=-5, max_value=9),
                         st.integers(min_value=-30, max_value=30), st.just(unit))
    if isinstance(old, list):
        return st.lists(st.integers(min_value=-1, max_value=256), max_size=3)
    return values


def check_case_error(err: CaseError) -> None:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text
    assert err.field, text
    assert text.startswith(one_line(err.field)), text
    assert "expected" in text or "unknown" in text or "missing" in text, text


def load(d: dict[str, Any]) -> case_mod.Case:
    return case_mod.from_dict(case_mod.resolve(d))


@settings(max_examples=LOAD_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_cases())
def test_loading_gives_a_case_or_one_line_error(d: dict[str, Any]) -> None:
    try:
        case = load(d)
        problem.specs(case)
        config = problem.fixed_config(case)
        problem.decision_codes(config)
    except CaseError as err:
        check_case_error(err)


@st.composite
def near_valid_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Inlined case with one to three fields moved to plausible or extreme values."""
    d = copy.deepcopy(RESOLVED)
    leaves = [p for p in paths(d) if not isinstance(get(d, p), dict)]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(leaves))
        parent = get(d, path[:-1])
        parent[path[-1]] = draw(neighbour(parent[path[-1]]))
    # Sometimes move the parallel split as well (dp follows from the GPU count).
    if draw(st.booleans()):
        par = d["parallelism"]
        par.pop("dp")
        par["tp"] = draw(st.sampled_from([1, 2, 4, 8]))
        par["pp"] = draw(st.sampled_from([1, 2, 4, 8, 16]))
        par["micro_batch"] = draw(st.sampled_from([1, 2, 4]))
        par["recompute"] = draw(st.sampled_from(["none", "selective", "full"]))
        par["sequence_parallel"] = draw(st.booleans())
        par["zero"] = draw(st.sampled_from([0, 1, 2, 3]))
    return d


@settings(max_examples=EVALUATE_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(near_valid_cases())
def test_evaluation_is_finite_or_one_line_error(d: dict[str, Any]) -> None:
    try:
        case = load(d)
        problem.fixed_config(case)
    except CaseError as err:
        check_case_error(err)
        return
    result = evaluate_case(case)
    bad = {k: v for k, v in result.values.items() if not math.isfinite(v)}
    assert not bad, bad
    assert result.values["iteration_time"] > 0
    assert result.values["memory_per_gpu"] > 0
    assert 0 < result.values["mfu"] <= 1


KEYS = ("parallelism.tp", "parallelism.dp", "model", "model.layers", "model.base",
        "hardware", "hardware.hbm_bandwidth", "hardware.efficiency.matmul.value",
        "network.scale_up.size", "training", "training.tokens", "cluster.gpus", "x.y.z",
        "parallelism.tp.x", "", ".", "model..layers", " model . layers ")
RIGHT = ('"3 TB/s"', "3 TB/s", "80 GB", "[1, 2]", "[]", "{a = 1}", "true", "1e400", "nan",
         "-inf", '"gpt5"', "llama3-8b", "h100-sxm", "4", "0", "-8", "1.5", '"8"', "", "=",
         '"""x\ny"""', "[[[[1]]]]")
settings_text = st.builds(
    lambda k, v: f"{k}={v}",
    st.one_of(st.sampled_from(KEYS), st.text(max_size=12)),
    st.one_of(st.sampled_from(RIGHT), st.text(max_size=12)),
) | st.text(max_size=20)


@settings(max_examples=max(100, EXTRA), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(settings_text, min_size=1, max_size=3))
def test_overrides_give_a_case_or_one_line_error(overrides: list[str]) -> None:
    try:
        case = load(case_mod.apply_overrides(SMALLEST, overrides))
        problem.fixed_config(case)
    except CaseError as err:
        check_case_error(err)
