"""Which built-in cases the per-case tests run: every study, and of the validation cases one
per validation suite and model structure -- cases alike in both share their formulation's
structure, so the others add run time, not coverage (the suites themselves evaluate every case:
tests/test_validation.py, tests/test_serving_validation.py)."""

from __future__ import annotations

from perfcost.solver.case import catalog
from perfcost.solver.case.schema import load


def representative_cases() -> list[str]:
    studies = list(catalog.entries("studies"))
    by_suite: dict[str, str] = {}
    for name in catalog.entries("validation"):
        case = load(name)
        suite = case.validation.suite if case.validation is not None else name
        # The first case of each suite and structure (dense or MoE, latent attention, MLP
        # kind, positions, number format).
        m = case.model
        key = (suite, m.experts is not None, m.kv_lora_rank is not None, m.ffn_kind,
               m.positions, case.training.precision if case.training is not None else "serving")
        by_suite.setdefault(str(key), name)
    return sorted(studies + list(by_suite.values()))
