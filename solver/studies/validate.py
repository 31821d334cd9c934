"""Predictions against published measurements: every case under ``cases/validation/``."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from functools import cache

from perfcost.solver.case import catalog, units
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case, load
from perfcost.solver.problem.evaluate import evaluate_case

#: Formulation units -> (dimension of the measured value, scale from SI to the unit).
METRIC_UNITS: dict[str, tuple[str, float]] = {
    "s": ("time", 1.0),
    "B": ("bytes", 1.0),
    "TFLOP/s": ("flop_rate", 1e-12),
}


@dataclass(frozen=True)
class Row:
    case: str
    suite: str
    source: str
    metric: str
    unit: str
    measured: float
    predicted: float
    error_pct: float
    tolerance_pct: float

    @property
    def ok(self) -> bool:
        return abs(self.error_pct) <= self.tolerance_pct

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        del out["unit"]
        return out


@dataclass(frozen=True)
class SuiteSummary:
    suite: str
    cases: int
    mean_abs_error_pct: float
    max_abs_error_pct: float
    mean_tolerance_pct: float
    failures: int

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.mean_abs_error_pct <= self.mean_tolerance_pct


@cache
def suite_tolerances() -> dict[str, float]:
    data = tomllib.loads((catalog.root() / "suites.toml").read_text(encoding="utf-8"))
    return {name: float(v["mean_tolerance_pct"]) for name, v in data.items()}


def suites() -> list[str]:
    return sorted(suite_tolerances())


def run(suite: str | None = None) -> list[Row]:
    """Evaluate every validation case (of one suite, if given)."""
    if suite is not None and suite not in suite_tolerances():
        raise CaseError("SUITE", suite, f"unknown suite; known: {', '.join(suites())}")
    rows: list[Row] = []
    rows += _collective_rows(suite)
    for name in catalog.entries("validation"):
        case = load(name)
        val = case.validation
        if val is None or (suite is not None and val.suite != suite):
            continue
        result = (_serving_result(case, tuple(val.metrics)) if case.serving is not None
                  else evaluate_case(case))
        for metric, spec in val.metrics.items():
            unit = result.unit(metric)
            dimension, scale = METRIC_UNITS.get(unit, ("count", 1.0))
            measured = units.parse(spec.measured, dimension) * scale
            predicted = result.values[metric]
            rows.append(Row(
                case=name, suite=val.suite, source=val.source, metric=metric, unit=unit,
                measured=measured, predicted=predicted,
                error_pct=(predicted - measured) / measured * 100.0,
                tolerance_pct=spec.tolerance_pct,
            ))
    return rows


@dataclass(frozen=True)
class _ServingResult:
    """A serving deployment's values and units, shaped as the training evaluation's."""

    values: dict[str, float]
    units: dict[str, str]

    def unit(self, metric: str) -> str:
        return self.units.get(metric, "1")


def _serving_result(case: Case, metrics: tuple[str, ...]) -> _ServingResult:
    """The measured quantities of the one deployment a serving validation case fixes
    (solver/serving/evaluate.py)."""
    from perfcost.solver.serving.evaluate import ServingModel, fixed_config

    model = ServingModel(case)
    config = fixed_config(case)
    units = model.formulation_of(config).units
    return _ServingResult(model.quantities(config, metrics), dict(units))


def _collective_rows(suite: str | None) -> list[Row]:
    """nccl-tests points under ``cases/validation/collectives/``: predicted vs measured busbw."""
    from perfcost.solver.case.sections import NetworkSection
    from perfcost.solver.studies.collective import predict

    rows = []
    for path in sorted((catalog.root() / "validation" / "collectives").glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if suite is not None and data["suite"] != suite:
            continue
        network = NetworkSection.model_validate(
            catalog.load_entry("networks", data["network"], "network"))
        for point in data["points"]:
            size = units.parse(point["bytes"], "bytes")
            measured = units.parse(point["busbw"], "bandwidth")
            best = predict(data["op"], size, int(data["ranks"]), network)[0]
            rows.append(Row(
                case=point["published_id"], suite=data["suite"], source=data["source"],
                metric="busbw", unit="B/s", measured=measured, predicted=best.busbw,
                error_pct=(best.busbw - measured) / measured * 100.0,
                tolerance_pct=float(point["tolerance_pct"]),
            ))
    return rows


def summarise(rows: list[Row]) -> list[SuiteSummary]:
    out = []
    tolerances = suite_tolerances()
    for suite in sorted({r.suite for r in rows}):
        errors = [abs(r.error_pct) for r in rows if r.suite == suite]
        out.append(SuiteSummary(
            suite=suite, cases=len({r.case for r in rows if r.suite == suite}),
            mean_abs_error_pct=sum(errors) / len(errors), max_abs_error_pct=max(errors),
            mean_tolerance_pct=tolerances[suite],
            failures=sum(not r.ok for r in rows if r.suite == suite),
        ))
    return out
