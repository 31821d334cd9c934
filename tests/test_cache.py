"""The disk cache (solver/problem/cache.py): a cached numeric formulation gives the values of
a freshly built one, a damaged entry is a miss, the cache can be turned off, and it never
grows past its bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from perfcost.solver.case import schema
from perfcost.solver.problem import cache, evaluate, numeric
from perfcost.solver.problem.evaluate import training_numeric
from perfcost.solver.problem.specs import decision_codes, fixed_config


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERFCOST_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PERFCOST_NO_CACHE", raising=False)
    # The process keeps one numeric formulation per structure; these tests read the disk.
    monkeypatch.setattr(evaluate, "_BY_STRUCTURE", {})
    return tmp_path


def test_a_cached_formulation_gives_the_values_of_a_fresh_one(folder: Path) -> None:
    case = schema.load("gpt3-175b-a100")
    codes = decision_codes(fixed_config(case))
    fresh = training_numeric(case)  # built and lambdified, then stored
    stored = list((folder / "numeric").glob("*.json"))
    assert len(stored) == 1
    evaluate._BY_STRUCTURE.clear()
    again = training_numeric(case)  # read back: its source compiled again
    assert again is not fresh and again.source == fresh.source
    # Equal to the freshly lambdified functions, value for value; that those equal the sympy
    # formulation substituted exactly is tests/test_formulations.py's
    # test_evaluation_equals_substitution (a full substitution costs tens of seconds).
    assert again(codes) == fresh(codes)


def test_a_damaged_entry_is_a_miss(folder: Path) -> None:
    case = schema.load("gpt3-175b-a100")
    training_numeric(case)
    (entry,) = (folder / "numeric").glob("*.json")
    entry.write_text('{"key": "not this one"')  # cut short
    evaluate._BY_STRUCTURE.clear()
    rebuilt = training_numeric(case)
    assert rebuilt.source  # built again, and stored again
    assert cache.read("numeric", entry.stem) is not None


def test_the_cache_can_be_turned_off(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFCOST_NO_CACHE", "1")
    assert cache.cache_dir() is None
    training_numeric(schema.load("gpt3-175b-a100"))
    assert not any(folder.iterdir())


def test_the_cache_keeps_at_most_its_bound(folder: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 8)
    for i in range(20):
        cache.write("parameters", f"{i:04d}", {"systems": [{"x": float(i)}]})
    kept = sorted(p.stem for p in (folder / "parameters").glob("*.json"))
    assert len(kept) <= 8
    assert "0019" in kept  # the newest stays
    assert cache.read("parameters", "0019") == {"systems": [{"x": 19.0}], "key": "0019"}


def test_keys_depend_on_every_part() -> None:
    assert cache.key("a", "b") != cache.key("a", "c")
    assert cache.key("a", "b") != cache.key("ab")
    assert numeric._global_names("def _lambdifygenerated(x):\n    return ceil(x)\n") == (
        "ceil",)
