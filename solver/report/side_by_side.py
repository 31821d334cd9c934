"""Cases side by side (``perfcost compare A B ...`` and ``perfcost evaluate --baseline``): the
headline numbers of each, with the change against the first (the baseline) as a ratio and a
percentage, so a what-if reads without diffing two outputs by hand.

A training case with one configuration is evaluated; one whose split is open is solved and its
optimum shown. A serving case is evaluated (one deployment) or solved likewise. All cases of one
comparison must be of one kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.units import format_quantity

#: (key of the --json data, label, unit, whether smaller is better) per kind of case.
TRAINING_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("iteration_time_s", "iteration time", "s", True),
    ("tokens_per_s", "throughput (tokens/s)", "1", False),
    ("mfu", "MFU", "%", False),
    ("memory_per_gpu_bytes", "memory per GPU", "B", True),
    ("time_to_train_s", "time to train", "s", True),
    ("gpu_hours", "GPU-hours to train", "1", True),
    ("cost_usd", "cost of the run", "USD", True),
)
SERVING_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("ttft_s", "TTFT", "s", True),
    ("tpot_s", "TPOT", "s", True),
    ("throughput_tokens_per_s", "throughput (tokens/s)", "1", False),
    ("cost_per_million_tokens_usd", "cost per million tokens", "USD", True),
)


@dataclass(frozen=True)
class Column:
    """One case of the comparison: its name, how it was answered, and its --json data."""

    name: str
    how: str
    data: dict[str, Any]


def column(name: str, case: Any) -> Column:
    """Evaluate (one configuration) or solve (an open split) ``case``."""
    from perfcost.solver.problem.specs import fixed_config

    if case.serving is not None:
        return _serving_column(name, case)
    try:
        fixed_config(case)
    except CaseError:
        from perfcost.solver.engines.solve import solve_case

        solution = solve_case(case)
        if not solution.result.ok:
            raise CaseError("case", name, "expected a feasible case to compare: "
                            + (solution.result.explanation or "no configuration fits")) from None
        data = solution.result.to_json()
        return Column(name, "solved", _with_gpu_hours(data))
    from perfcost.solver.problem.evaluate import evaluate_case

    return Column(name, "evaluated", _with_gpu_hours(evaluate_case(case).to_json()))


def _serving_column(name: str, case: Any) -> Column:
    from perfcost.solver.serving.evaluate import evaluate_serving

    try:
        return Column(name, "evaluated", evaluate_serving(case).to_json())
    except CaseError:
        from perfcost.solver.serving.search import solve_serving

        solution = solve_serving(case, None, 1)
        data = solution.to_json()
        return Column(name, "solved", data.get("best") or data)


def _with_gpu_hours(data: dict[str, Any]) -> dict[str, Any]:
    gpus, time = data.get("gpus"), data.get("time_to_train_s")
    if isinstance(gpus, int | float) and isinstance(time, int | float):
        data["gpu_hours"] = gpus * time / 3600.0
    return data


def metrics_of(columns: Sequence[Column]) -> tuple[tuple[str, str, str, bool], ...]:
    kinds = {"serving" if "ttft_s" in c.data else "training" for c in columns}
    if len(kinds) > 1:
        raise CaseError("compare", [c.name for c in columns],
                        "expected cases of one kind (all training or all serving)")
    return SERVING_METRICS if kinds == {"serving"} else TRAINING_METRICS


def ratio(value: Any, base: Any) -> float | None:
    """``value / base``, or None where either is missing or the base is zero."""
    if not isinstance(value, int | float) or not isinstance(base, int | float):
        return None
    if base == 0 or not math.isfinite(value) or not math.isfinite(base):
        return None
    return float(value) / float(base)


def to_json(columns: Sequence[Column]) -> dict[str, Any]:
    """The comparison in SI units: each case's data, and its ratio to the baseline per
    metric."""
    metrics = metrics_of(columns)
    base = columns[0]
    return {"baseline": base.name, "cases": [
        {"name": c.name, "how": c.how, "config": c.data.get("config"),
         "metrics": {key: c.data.get(key) for key, *_rest in metrics},
         "ratio_to_baseline": {key: ratio(c.data.get(key), base.data.get(key))
                               for key, *_rest in metrics}}
        for c in columns]}


def _cell(value: Any, unit: str) -> str:
    if not isinstance(value, int | float):
        return "--"
    if unit == "%":
        return f"{100 * value:.1f}%"
    if unit == "1":
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return format_quantity(float(value), unit)


def _change(value: Any, base: Any, smaller_is_better: bool) -> str:
    r = ratio(value, base)
    if r is None:
        return ""
    if math.isclose(r, 1.0, rel_tol=1e-9):
        return "same"
    better = (r < 1) == smaller_is_better
    return f"x{r:.3g} ({100 * (r - 1):+.1f}%{', better' if better else ', worse'})"


def table(columns: Sequence[Column]) -> Any:
    """A rich table: one row per metric, one column per case (with its change)."""
    from rich.table import Table

    metrics = metrics_of(columns)
    base = columns[0]
    out = Table(title="side by side (changes against the first)", title_justify="left")
    out.add_column("")
    for c in columns:
        out.add_column(f"{c.name} ({c.how})", justify="right")
    config_row = [" ".join(f"{k}={v}" for k, v in (c.data.get("config") or {}).items())
                  for c in columns]
    out.add_row("configuration", *config_row)
    for key, label, unit, smaller in metrics:
        cells = [_cell(base.data.get(key), unit)]
        for c in columns[1:]:
            change = _change(c.data.get(key), base.data.get(key), smaller)
            cells.append(_cell(c.data.get(key), unit) + (f"  {change}" if change else ""))
        out.add_row(label, *cells)
    return out
