"""A measured collective's curve cut into size ranges, each with its own alpha-beta constants.

NCCL picks an algorithm (ring, tree, NVLS, ...) and a protocol (LL, LL128, Simple) per message
size from its tuning model, and the time jumps where the choice switches (NCCL's
``src/graph/tuning.cc``; on the B200 tables an 8-GPU all-gather of 8 MiB takes 44 us, of 16 MiB
104 us, of 32 MiB 114 us). One smooth alpha-beta form per op and rank count cannot follow such
a curve; a few size ranges, each with the pipelined alpha-beta form of
:func:`formulations.kernels.collective_time` and constants of its own, can.

* **One range** is fitted by linear least squares: the pipelined time
  ``T = (sqrt(steps * latency) + sqrt(volume / bandwidth))^2`` is, in its square root, linear
  in ``sqrt(latency)`` and ``1 / sqrt(bandwidth)``; the residual minimised is the relative
  error of ``sqrt(T)`` (about half the log error of ``T``), within the constants' bounds.
* **Given a number of ranges**, the breakpoints are the ones of least total fitted loss
  (dynamic programming over the fitted rows sorted by size), each range holding at least
  :data:`MIN_RANGE_ROWS` rows and starting at a measured size.
* **The number of ranges** (1 to :data:`MAX_RANGES`) is the one of least leave-one-out error
  on the fitted rows: each row is predicted by the breakpoints and constants fitted on the
  others. Nothing outside the rows it is given is seen.
* **The gap rule**: a range covers its fitted sizes (the first one also every smaller size,
  the last one every larger size). A size between one range's largest fitted size and the
  next range's smallest is interpolated in log time over log size between the two ranges'
  times at those sizes: where in the gap NCCL switches is not known from the fitted rows, so
  the rule takes neither side. (On the five GPUs' tables its leave-one-out error on the
  fitted rows is below that of letting the lower range run up to the next one: 4.7-6.8 %
  against 6.1-7.3 %, averaged over the NCCL tables and rank counts.) Every size has one
  prediction, continuous at both ends of a gap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Ranges a curve is cut into at most: NCCL's tables switch algorithm and protocol a few
#: times over 512 B to 512 MiB (LL, LL128, Simple; ring or NVLS), and about fifteen fitted
#: rows per op and rank count cannot pin more.
MAX_RANGES = 4
#: Fitted rows a range needs at least: its two constants and one row more, so that no range
#: passes exactly through its rows.
MIN_RANGE_ROWS = 3


@dataclass(frozen=True)
class SizeRange:
    """One range of a curve: fitted on sizes from ``start`` to ``end`` bytes."""

    start: float
    end: float
    latency: float
    bandwidth: float
    fit_rows: int


@dataclass(frozen=True)
class RangeChoice:
    """The chosen ranges, and the leave-one-out error (mean |log error|) of each count tried."""

    ranges: tuple[SizeRange, ...]
    leave_one_out: tuple[tuple[int, float], ...]


@functools.cache
def root_terms(op: str, algorithm: str) -> Callable[..., Any]:
    """``(size, ranks) -> (a, b)`` with ``sqrt(T) = a sqrt(latency) + b / sqrt(bandwidth)`` for
    the pipelined alpha-beta time of ``algorithm`` (formulations.kernels.collective_time)."""
    import sympy as sp
    from perfcost.formulations import kernels

    size, ranks, x, y = sp.symbols("size ranks x y", positive=True)
    time = kernels.collective_time(op, algorithm, size, ranks, x**2, 1 / y**2)
    a = sp.sqrt(time.subs({x: 1, y: 0}))
    b = sp.sqrt(time.subs({x: 0, y: 1}))
    if sp.simplify(sp.expand(time - (a * x + b * y) ** 2)) != 0:
        raise ValueError(f"the {algorithm} {op} time is not of the pipelined alpha-beta form")
    return sp.lambdify((size, ranks), (a, b), "numpy")


def fit_range(a: np.ndarray, b: np.ndarray, seconds: np.ndarray,
              bounds: dict[str, tuple[float, float]]) -> tuple[float, float, float]:
    """``(latency, bandwidth, loss)`` of one range: least squares on the relative error of
    ``sqrt(T)``; ``loss`` is the sum of the squared relative errors."""
    from scipy.optimize import lsq_linear

    root = np.sqrt(seconds)
    # Unknowns sqrt(latency) and 1/sqrt(bandwidth), each in units of its upper bound so
    # that the two columns are of comparable size.
    x_lo, x_hi = (math.sqrt(v) for v in bounds["latency"])
    y_lo, y_hi = (1 / math.sqrt(v) for v in reversed(bounds["bandwidth"]))
    matrix = np.column_stack([a * x_hi / root, b * y_hi / root])
    result = lsq_linear(matrix, np.ones(root.size), bounds=([x_lo / x_hi, y_lo / y_hi], [1, 1]),
                        method="bvls")
    x, y = result.x[0] * x_hi, result.x[1] * y_hi
    return x * x, 1 / (y * y), float(2 * result.cost)


def _best_cut(costs: Callable[[int, int], float], positions: np.ndarray,
              sizes: np.ndarray, count: int) -> list[int] | None:
    """Start indices (into ``positions``) of ``count`` ranges of least total loss, or None
    when the rows cannot hold that many. Dynamic programming over the sorted rows."""
    n = positions.size
    if count * MIN_RANGE_ROWS > n:
        return None
    # A range may start only where the size changes: equal sizes share a range.
    can_start = np.r_[True, sizes[positions][1:] != sizes[positions][:-1]]
    inf = math.inf
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    back = [[-1] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for c in range(1, count + 1):
        for end in range(c * MIN_RANGE_ROWS, n + 1):
            if end < n and not can_start[end]:
                continue
            for start in range((c - 1) * MIN_RANGE_ROWS, end - MIN_RANGE_ROWS + 1):
                if best[c - 1][start] == inf or not can_start[start]:
                    continue
                total = best[c - 1][start] + costs(start, end)
                if total < best[c][end]:
                    best[c][end], back[c][end] = total, start
    if best[count][n] == inf:
        return None
    starts, end = [], n
    for c in range(count, 0, -1):
        end = back[c][end]
        starts.append(end)
    return starts[::-1]


class _RangeFitter:
    """Fits of contiguous runs of rows, each computed once (leave-one-out reuses them)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, seconds: np.ndarray,
                 bounds: dict[str, tuple[float, float]]) -> None:
        self.a, self.b, self.seconds, self.bounds = a, b, seconds, bounds
        self.cache: dict[tuple[int, ...], tuple[float, float, float]] = {}

    def fit(self, rows: np.ndarray) -> tuple[float, float, float]:
        key = tuple(int(r) for r in rows)
        if key not in self.cache:
            self.cache[key] = fit_range(self.a[rows], self.b[rows], self.seconds[rows],
                                        self.bounds)
        return self.cache[key]

    def ranges(self, positions: np.ndarray, sizes: np.ndarray,
               count: int) -> tuple[SizeRange, ...] | None:
        starts = _best_cut(lambda i, j: self.fit(positions[i:j])[2], positions, sizes, count)
        if starts is None:
            return None
        out = []
        for i, j in zip(starts, [*starts[1:], positions.size], strict=True):
            latency, bandwidth, _ = self.fit(positions[i:j])
            out.append(SizeRange(float(sizes[positions[i]]), float(sizes[positions[j - 1]]),
                                 latency, bandwidth, j - i))
        return tuple(out)


def _alpha_beta(a: np.ndarray, b: np.ndarray, latency: np.ndarray | float,
                bandwidth: np.ndarray | float) -> np.ndarray:
    return (a * np.sqrt(latency) + b / np.sqrt(bandwidth)) ** 2


def predict(ranges: tuple[SizeRange, ...], terms: Callable[..., Any], sizes: np.ndarray,
            ranks: float) -> np.ndarray:
    """Seconds of each size: by the range it lies in, or interpolated across the gap between
    two ranges (the gap rule of the module docstring)."""
    sizes = np.asarray(sizes, dtype=float)
    a, b = (np.asarray(v, dtype=float) * np.ones(sizes.size) for v in terms(sizes, ranks))
    lower, upper, weight = gap_position(np.array([r.start for r in ranges]),
                                        np.array([r.end for r in ranges]), sizes)
    latency = np.array([r.latency for r in ranges])
    bandwidth = np.array([r.bandwidth for r in ranges])
    inside = _alpha_beta(a, b, latency[lower], bandwidth[lower])
    gap = weight > 0
    if not gap.any():
        return inside
    ends = np.array([r.end for r in ranges])[lower[gap]]
    starts = np.array([r.start for r in ranges])[upper[gap]]
    a_end, b_end = (np.asarray(v, dtype=float) * np.ones(ends.size) for v in terms(ends, ranks))
    a_start, b_start = (np.asarray(v, dtype=float) * np.ones(starts.size)
                        for v in terms(starts, ranks))
    left = _alpha_beta(a_end, b_end, latency[lower[gap]], bandwidth[lower[gap]])
    right = _alpha_beta(a_start, b_start, latency[upper[gap]], bandwidth[upper[gap]])
    w = weight[gap]
    out = inside.copy()
    out[gap] = np.exp((1 - w) * np.log(left) + w * np.log(right))
    return out


def gap_position(starts: np.ndarray, ends: np.ndarray,
                 sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each size: the range below (or containing) it, the range above, and its position
    between the two in log size (0: inside the lower range, or beyond either end)."""
    lower = np.maximum(np.searchsorted(starts, sizes, side="right") - 1, 0)
    upper = np.minimum(lower + 1, starts.size - 1)
    low_end, high_start = ends[lower], starts[upper]
    in_gap = (sizes > low_end) & (upper > lower)
    weight = np.zeros(sizes.size)
    weight[in_gap] = (np.log(sizes[in_gap] / low_end[in_gap])
                      / np.log(high_start[in_gap] / low_end[in_gap]))
    return lower, upper, weight


def choose_ranges(sizes: np.ndarray, ranks: float, terms: Callable[..., Any],
                  seconds: np.ndarray, bounds: dict[str, tuple[float, float]],
                  max_ranges: int = MAX_RANGES) -> RangeChoice:
    """Ranges of the rows given (all of them fitted), their count by leave-one-out;
    ``terms`` is :func:`root_terms` of the collective."""
    sizes = np.asarray(sizes, dtype=float)
    a, b = (np.asarray(v, dtype=float) * np.ones(sizes.size) for v in terms(sizes, ranks))
    order = np.argsort(sizes, kind="stable")
    fitter = _RangeFitter(a, b, seconds, bounds)
    if order.size <= MIN_RANGE_ROWS:  # too few rows to leave one out of a range: one range
        latency, bandwidth, _ = fitter.fit(order)
        return RangeChoice((SizeRange(float(sizes[order[0]]), float(sizes[order[-1]]),
                                      latency, bandwidth, int(order.size)),), ())
    scores: list[tuple[int, float]] = []
    for count in range(1, max_ranges + 1):
        errors = []
        for left in range(order.size):
            rest = np.delete(order, left)
            ranges = fitter.ranges(rest, sizes, count)
            if ranges is None:
                break
            row = order[left:left + 1]
            predicted = predict(ranges, terms, sizes[row], ranks)[0]
            errors.append(abs(math.log(predicted / seconds[row][0])))
        else:
            scores.append((count, float(np.mean(errors))))
            continue
        break  # too few rows for this many ranges: more would not fit either
    chosen = min(scores, key=lambda s: s[1])[0]  # the first of equal scores: fewer ranges
    ranges = fitter.ranges(order, sizes, chosen)
    assert ranges is not None  # every fold of one row fewer held this many
    return RangeChoice(ranges, tuple(scores))
