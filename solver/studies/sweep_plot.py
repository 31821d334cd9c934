"""Plots of a sweep (``perfcost sweep --plot``): the objective against the first varied field
with the points where the optimal configuration changes marked and labelled, and the Pareto
front of two quantities. Rows are those of :mod:`solver.sweep`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.studies.sweep import (
    QUANTITY_UNITS,
    Axis,
    changed_columns,
    decision_columns,
    pareto_front,
)

#: Lines of an objective plot up to which each line's first point is labelled.
MAX_LABELLED_LINES = 4
#: Vertical distances (points) of successive change labels from their point, alternating so
#: that neighbouring labels on the same side do not cover each other.
LABEL_OFFSETS = (34, 64)
#: Characters per line of a plot's configuration-change labels.
CHANGE_LABEL_WIDTH = 44

_PREFIXES = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def scale_for(values: Sequence[float], unit: str | None) -> tuple[float, str]:
    """A divisor and unit label that make ``values`` (SI) readable on an axis."""
    finite = [abs(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    top = max(finite, default=1.0)
    if not unit or unit == "1":
        return 1.0, ""
    if unit == "s":
        for label, scale in (("days", 86400.0), ("h", 3600.0), ("s", 1.0), ("ms", 1e-3)):
            if top >= 2 * scale or label == "ms":
                return scale, label
    if unit == "B":
        for label, scale in (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20)):
            if top >= scale:
                return scale, label
        return 1.0, "B"
    if unit == "USD":
        for label, scale in (("billion USD", 1e9), ("million USD", 1e6), ("thousand USD", 1e3)):
            if top >= scale:
                return scale, label
        return 1.0, "USD"
    if unit == "USD/s":
        return 1 / 3600.0, "USD/h"
    for prefix, scale in _PREFIXES:
        if top >= scale:
            return scale, prefix + unit
    return 1.0, unit


def axis_label(name: str, unit: str) -> str:
    text = name.split(".")[-1].replace("_", " ") if "." in name else name.replace("_", " ")
    if "." in name:
        text = f"{name.split('.')[0]} {text}"
    return f"{text} [{unit}]" if unit else text


def _short(row: dict[str, Any], keys: Sequence[str]) -> str:
    """``512 GPUs tp=2 mb=1 v=20``: the configuration in few characters (decisions the row
    has no value for -- a colocated deployment's prefill pool -- left out)."""
    names = {"micro_batch": "mb", "virtual_stages": "v"}
    return " ".join(f"{row.get(k)} GPUs" if k == "gpus" else f"{names.get(k, k)}={row.get(k)}"
                    for k in keys if row.get(k) != "")


def _change(previous: dict[str, Any], row: dict[str, Any], keys: Sequence[str]) -> str:
    """``tp 2→4, batch 32→16``: what changed between two optima. A serving deployment that
    turns disaggregated says so once; the prefill pool's values it gains or loses follow
    from that and are left out."""
    parts = []
    for k in keys:
        before, after = str(previous.get(k)), str(row.get(k))
        if before == after or "" in (before, after):
            continue
        if k == "disaggregated":
            parts.append("colocated→disaggregated" if after == "True"
                         else "disaggregated→colocated")
        else:
            parts.append(f"{k} {before}→{after}")
    return textwrap.fill(", ".join(parts), CHANGE_LABEL_WIDTH)


def plot_objective(rows: Sequence[dict[str, Any]], axes: Sequence[Axis], path: Path,
                   units: dict[str, str | None]) -> None:
    """Objective against the first varied field (one line per value of the others), each
    change of the optimal configuration marked and labelled with what changed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = axes[0].key
    ok = [r for r in rows if r.get("status") == "optimal"
          and isinstance(r.get(x_key), int | float) and not isinstance(r.get(x_key), bool)]
    if not ok:
        raise CaseError("--plot", str(path), "expected numeric values of the first --vary "
                        "field and at least one feasible point")
    decision_keys = decision_columns(rows)
    x_div, x_unit = scale_for([r[x_key] for r in ok], units.get(x_key))
    y_div, y_unit = scale_for([r["value"] for r in ok], ok[0].get("unit"))
    others = [a.key for a in axes[1:]]
    series: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in ok:
        series.setdefault(tuple(r.get(k) for k in others), []).append(r)
    fig, ax = plt.subplots(figsize=(10, 6), dpi=120)
    changed = changed_columns(ok, decision_keys)
    # Decisions no point has (a colocated optimum's prefill pool) are left out.
    steady = [k for k in decision_keys if k not in changed and ok[0].get(k) != ""]
    # The start of each line is labelled with what varies only while that stays legible.
    label_starts = bool(changed) and len(series) <= MAX_LABELLED_LINES
    placed = 0
    for label, members in series.items():
        members.sort(key=lambda r: r[x_key])
        xs = [r[x_key] / x_div for r in members]
        ys = [r["value"] / y_div for r in members]
        name = ", ".join(f"{axis_label(k, '')} = {_legend_value(v, units.get(k))}"
                         for k, v in zip(others, label, strict=True))
        line, = ax.plot(xs, ys, marker="o", markersize=3, label=name or None)
        previous = None
        for n, (r, x, y) in enumerate(zip(members, xs, ys, strict=True)):
            if previous is not None and r["configuration"] == previous["configuration"] and (
                    r.get("system") == previous.get("system")):
                previous = r
                continue
            if previous is None:
                if not label_starts:
                    previous = r
                    continue
                text = textwrap.fill(_short(r, changed), CHANGE_LABEL_WIDTH)
            else:
                text = _change(previous, r, changed)
                ax.axvline(x, color=line.get_color(), linestyle=":", linewidth=0.8)
            ax.plot([x], [y], marker="D", color="crimson", markersize=6, zorder=3)
            placed += 1
            right = x > (min(xs) + max(xs)) / 2  # labels on the right half point leftwards
            # Away from the line: above a point that lies above its neighbours, else below.
            near = ys[max(0, n - 1):n] + ys[n + 1:n + 2]
            side = 1 if not near or y >= sum(near) / len(near) else -1
            if len(set(ys)) > 1 and y in (max(ys), min(ys)):  # inwards at the extremes
                side = 1 if y == min(ys) else -1
            # The nearer distance at a line's ends, whose labels have no neighbour outside.
            reach = LABEL_OFFSETS[0 if n in (0, len(xs) - 1) else placed % len(LABEL_OFFSETS)]
            ax.annotate(text, (x, y), xytext=(-8 if right else 8, side * reach),
                        textcoords="offset points", ha="right" if right else "left",
                        fontsize=8, arrowprops={"arrowstyle": "-", "color": "0.5"},
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7"})
            previous = r
    ax.margins(y=0.15)  # room for the labels above the highest and below the lowest point
    ax.set_xlabel(axis_label(x_key, x_unit))
    quantity = ok[0]["objective"]
    ax.set_ylabel(axis_label(quantity, y_unit) + " (optimum)")
    ax.set_title(f"{quantity.replace('_', ' ')} of the optimal configuration; "
                 + ("◆ = the optimal configuration changes" if changed else
                    "the optimal configuration never changes"), fontsize=10)
    ax.grid(True, alpha=0.3)
    if others:
        ax.legend(fontsize=8)
    if steady:
        fig.text(0.01, 0.01, textwrap.fill("the same at every point: " + _short(ok[0], steady),
                                           150), fontsize=7, color="0.3", va="bottom")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
    else:
        fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _legend_value(value: Any, unit: str | None) -> str:
    from perfcost.solver.case.units import format_quantity

    if unit and isinstance(value, int | float) and not isinstance(value, bool):
        return format_quantity(float(value), unit)
    return str(value)


def plot_pareto(rows: Sequence[dict[str, Any]], x: str, y: str, path: Path,
                label_keys: Sequence[str]) -> None:
    """Every point's (x, y) and the Pareto front of both minimised, front points labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = QUANTITY_UNITS
    front = pareto_front(rows, x, y)
    if not front:
        raise CaseError("--pareto", f"{x},{y}", "expected feasible points with both values")
    ok = [r for r in rows if r.get("status") == "optimal"]
    x_div, x_unit = scale_for([r[x] for r in ok], units.get(x))
    y_div, y_unit = scale_for([r[y] for r in ok], units.get(y))
    fig, ax = plt.subplots(figsize=(10, 6), dpi=120)
    ax.scatter([r[x] / x_div for r in ok], [r[y] / y_div for r in ok], color="0.6", s=14,
               label="optimum at each sweep point")
    fx = [rows[i][x] / x_div for i in front]
    fy = [rows[i][y] / y_div for i in front]
    ax.step(fx, fy, where="post", color="tab:blue", linewidth=1.5)
    ax.scatter(fx, fy, color="tab:blue", s=30, zorder=3, label="Pareto front")
    decision_keys = decision_columns(rows)
    changed = changed_columns([rows[i] for i in front], decision_keys)
    middle = (min(fx) + max(fx)) / 2
    for n, i in enumerate(front):
        text = _short(rows[i], changed)
        right = fx[n] > middle  # labels on the right half point leftwards
        ax.annotate(text, (fx[n], fy[n]), xytext=(-8 if right else 8, 10 if n % 2 else -16),
                    textcoords="offset points", fontsize=8, ha="right" if right else "left",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7"})
    ax.set_xlabel(axis_label(x, x_unit))
    ax.set_ylabel(axis_label(y, y_unit))
    from matplotlib.ticker import ScalarFormatter

    for values, axis, setter in ((fx, ax.xaxis, ax.set_xscale), (fy, ax.yaxis, ax.set_yscale)):
        if min(values) > 0 and max(values) > 10 * min(values):  # log only over a decade
            setter("log")
            axis.set_major_formatter(ScalarFormatter())
    ax.margins(0.08)
    ax.set_title(f"Pareto front: {y.replace('_', ' ')} vs {x.replace('_', ' ')} "
                 f"(swept: {', '.join(label_keys)})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig: Any, path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CaseError("--plot", str(path), "expected a .png, .svg or .pdf file name")
    try:
        fig.savefig(path)
    except OSError as exc:
        raise CaseError("--plot", str(path), f"cannot be written ({exc.strerror or exc})"
                        ) from None
