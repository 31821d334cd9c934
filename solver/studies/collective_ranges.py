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
* **The saturation rule**: the last range is applied up to the table's largest size
  (``cover_to``), which the seeded split may have kept out of the fit. There its time is at
  least :func:`saturation_floor`: the bus bandwidth gains per doubling of the size no more
  than it gained between the two largest fitted sizes (in any alpha-beta form the gain per
  doubling only shrinks as the bandwidth saturates). A last range fitted on few rows, the
  smallest of them still on the slow side of a protocol or algorithm switch, otherwise
  reaches an asymptote above anything measured: on the B200 tables 512 MiB ran 10-13 %
  slower than such ranges said. The rule is a constraint of the least-squares fit of the
  last range (in the dynamic programming and in every leave-one-out fold), so the
  constants written into a network entry carry it; nothing is added at prediction time.
* **The gap rule**: a range covers its fitted sizes (the first one also every smaller size,
  the last one every larger size). A size between one range's largest fitted size and the
  next range's smallest lies on the *bridge*: the pipelined alpha-beta form through the two
  ranges' times at the gap's ends (two equations, linear in ``sqrt(latency)`` and
  ``1 / sqrt(bandwidth)``), when it has a non-negative latency and a positive bandwidth;
  otherwise (a jump too steep for any such curve) the time is interpolated in log time over
  log size between the two ends. Where in the gap NCCL switches is not known from the
  fitted rows, so the rule takes neither range's side; but a smooth stretch of the curve
  bends (its slope in log-log rises from 0 towards 1), which the bridge follows and a
  straight log-log line cuts (too slow in the middle). On the five GPUs' NCCL tables the
  bridge's leave-one-out error on the fitted rows, averaged over ops and rank counts, is
  5.8-6.3 % (gb200 4.4 %) against 6.2-6.7 % (4.7 %) with the straight line, and the
  straight line's was below letting the lower range run up to the next one. Every size has
  one prediction, continuous at both ends of a gap and monotone across it.
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
              bounds: dict[str, tuple[float, float]],
              floor: tuple[float, float, float] | None = None) -> tuple[float, float, float]:
    """``(latency, bandwidth, loss)`` of one range: least squares on the relative error of
    ``sqrt(T)``; ``loss`` is the sum of the squared relative errors.

    ``floor = (a, b, seconds)``: the range must take at least ``seconds`` at the size whose
    root terms are ``a, b`` (the saturation rule of :func:`saturation_floor`). In the
    unknowns the constraint is one half-plane, so where the unconstrained optimum lies
    outside it the optimum lies on its edge: a one-dimensional least squares along it."""
    from scipy.optimize import lsq_linear

    root = np.sqrt(seconds)
    # Unknowns sqrt(latency) and 1/sqrt(bandwidth), each in units of its upper bound so
    # that the two columns are of comparable size.
    x_lo, x_hi = (math.sqrt(v) for v in bounds["latency"])
    y_lo, y_hi = (1 / math.sqrt(v) for v in reversed(bounds["bandwidth"]))
    matrix = np.column_stack([a * x_hi / root, b * y_hi / root])
    lower, upper = np.array([x_lo / x_hi, y_lo / y_hi]), np.ones(2)
    result = lsq_linear(matrix, np.ones(root.size), bounds=(lower, upper), method="bvls")
    unknowns = result.x
    if floor is not None:
        edge = np.array([floor[0] * x_hi, floor[1] * y_hi])
        target = math.sqrt(floor[2])
        if edge @ unknowns < target:
            unknowns = _on_edge(matrix, edge, target, lower, upper, unknowns)
    x, y = unknowns[0] * x_hi, unknowns[1] * y_hi
    loss = float(np.sum((matrix @ unknowns - 1) ** 2))
    return x * x, 1 / (y * y), loss


def _on_edge(matrix: np.ndarray, edge: np.ndarray, target: float, lower: np.ndarray,
             upper: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Least squares of ``matrix @ z = 1`` on the line ``edge @ z = target`` inside the box
    (the fallback, the unconstrained optimum, where the line misses the box)."""
    # The line: z = point + t * direction; the box bounds t to an interval.
    point = edge * target / (edge @ edge)
    direction = np.array([-edge[1], edge[0]])
    low, high = -math.inf, math.inf
    for i in range(2):
        if direction[i] == 0:
            if not lower[i] <= point[i] <= upper[i]:
                return fallback
            continue
        ends = sorted(((lower[i] - point[i]) / direction[i], (upper[i] - point[i]) / direction[i]))
        low, high = max(low, ends[0]), min(high, ends[1])
    if low > high:
        return fallback
    along, residual = matrix @ direction, 1 - matrix @ point
    t = float(along @ residual / (along @ along)) if along @ along > 0 else low
    return point + min(max(t, low), high) * direction


def saturation_floor(sizes: np.ndarray, seconds: np.ndarray, cover_to: float) -> float | None:
    """The least time at ``cover_to`` (beyond the largest of ``sizes``, the rows a last range
    is fitted on) that keeps the bus bandwidth's growth per doubling of the size no faster
    than between the two largest fitted sizes; None when ``cover_to`` is not beyond them.

    Why: the bus bandwidth of a large message saturates: in any alpha-beta form its gain
    per doubling only shrinks with the size. A last range fitted on few rows, some of them
    before a protocol or algorithm switch, can reach an asymptote above anything measured
    (the B200 tables' 512 MiB ran 10-13 % slower than such a range said); the floor keeps
    it to what its largest rows show. Times of equal sizes are averaged in log."""
    distinct = np.unique(sizes)
    if distinct.size < 2 or cover_to <= distinct[-1]:
        return None
    last, before = (float(np.exp(np.mean(np.log(seconds[sizes == s]))))
                    for s in distinct[-1:-3:-1])
    # Slope of log time over log size: 1 holds the bus bandwidth, 0 would hold the time.
    slope = math.log(last / before) / math.log(distinct[-1] / distinct[-2])
    slope = min(max(slope, 0.0), 1.0)
    return last * (cover_to / distinct[-1]) ** slope


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
    """Fits of contiguous runs of rows, each computed once (leave-one-out reuses them).

    ``cover = (size, a, b)``: the size up to which the last range is applied and its root
    terms; the last range is fitted under :func:`saturation_floor` at that size."""

    def __init__(self, a: np.ndarray, b: np.ndarray, seconds: np.ndarray, sizes: np.ndarray,
                 bounds: dict[str, tuple[float, float]],
                 cover: tuple[float, float, float] | None = None) -> None:
        self.a, self.b, self.seconds, self.sizes = a, b, seconds, sizes
        self.bounds, self.cover = bounds, cover
        self.cache: dict[tuple[bool, tuple[int, ...]], tuple[float, float, float]] = {}

    def fit(self, rows: np.ndarray, last: bool = False) -> tuple[float, float, float]:
        key = (last, tuple(int(r) for r in rows))
        if key not in self.cache:
            floor = None
            if last and self.cover is not None:
                least = saturation_floor(self.sizes[rows], self.seconds[rows], self.cover[0])
                floor = None if least is None else (self.cover[1], self.cover[2], least)
            self.cache[key] = fit_range(self.a[rows], self.b[rows], self.seconds[rows],
                                        self.bounds, floor)
        return self.cache[key]

    def ranges(self, positions: np.ndarray, sizes: np.ndarray,
               count: int) -> tuple[SizeRange, ...] | None:
        n = positions.size
        starts = _best_cut(lambda i, j: self.fit(positions[i:j], j == n)[2], positions, sizes,
                           count)
        if starts is None:
            return None
        out = []
        for i, j in zip(starts, [*starts[1:], n], strict=True):
            latency, bandwidth, _ = self.fit(positions[i:j], j == n)
            out.append(SizeRange(float(sizes[positions[i]]), float(sizes[positions[j - 1]]),
                                 latency, bandwidth, j - i))
        return tuple(out)


def _alpha_beta(a: np.ndarray, b: np.ndarray, latency: np.ndarray | float,
                bandwidth: np.ndarray | float) -> np.ndarray:
    return (a * np.sqrt(latency) + b / np.sqrt(bandwidth)) ** 2


def predict(ranges: tuple[SizeRange, ...], terms: Callable[..., Any], sizes: np.ndarray,
            ranks: float) -> np.ndarray:
    """Seconds of each size: by the range it lies in, or across the gap between two ranges
    by the bridge through both ends (the gap rule of the module docstring)."""
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
    interpolated = np.exp((1 - w) * np.log(left) + w * np.log(right))
    # The bridge: the alpha-beta constants (in their roots x, y) through both gap ends.
    det = a_end * b_start - a_start * b_end
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (np.sqrt(left) * b_start - np.sqrt(right) * b_end) / det
        y = (a_end * np.sqrt(right) - a_start * np.sqrt(left)) / det
    bridged = (x >= 0) & (y > 0) & (det > 0)
    out = inside.copy()
    out[gap] = np.where(bridged, (a[gap] * np.where(bridged, x, 0)
                                  + b[gap] * np.where(bridged, y, 0)) ** 2, interpolated)
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
                  max_ranges: int = MAX_RANGES, cover_to: float | None = None) -> RangeChoice:
    """Ranges of the rows given (all of them fitted), their count by leave-one-out;
    ``terms`` is :func:`root_terms` of the collective. ``cover_to``: the largest size the
    last range will be applied to (the measured table's largest), where it is held to
    :func:`saturation_floor`; None: no such rule."""
    sizes = np.asarray(sizes, dtype=float)
    a, b = (np.asarray(v, dtype=float) * np.ones(sizes.size) for v in terms(sizes, ranks))
    order = np.argsort(sizes, kind="stable")
    cover = None
    if cover_to is not None:
        a_c, b_c = (float(np.asarray(v, dtype=float)) for v in terms(float(cover_to), ranks))
        cover = (float(cover_to), a_c, b_c)
    fitter = _RangeFitter(a, b, seconds, sizes, bounds, cover)
    if order.size <= MIN_RANGE_ROWS:  # too few rows to leave one out of a range: one range
        latency, bandwidth, _ = fitter.fit(order, last=True)
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
