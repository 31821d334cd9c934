"""How closely any smooth function of the shape can predict a measured GEMM table.

The held-out rows of a GEMM table (:func:`perfcost.solver.studies.database_fit.split`) are
predicted by interpolating the fitted rows themselves: linearly over the Delaunay
simplices of the fitted shapes in ``(log m, log n, log k)``, the time's logarithm
interpolated (equivalently the throughput's: the FLOP count's logarithm is linear in those
coordinates, so linear interpolation reproduces it exactly), the nearest fitted shape
outside their hull. No parameter is fitted and nothing physical is assumed, so the errors
are a floor set by the table's own scatter between neighbouring shapes: where the library's
kernel choice jumps between shapes a few rows or columns apart, neither this nor any model
that is a smooth function of the shape follows it. ``perfcost calibrate --database GPU
--floor`` prints it beside the model's held-out errors (docs/calibration.md).

A second floor needs no interpolation at all: where another framework's collector timed the
same operation on the same GPU (:data:`SAME_CALL_PRECISIONS`), its table is a second
measurement of the held-out shapes, and :func:`remeasured` says how far the two lie apart.
Where the other frameworks' measurements are taken as the reference instead
(:func:`against_others`), the model and the table it was fitted on are judged on the same
footing: a model whose misses were the table's own scatter would lie as close to the
others as the table does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .database_fit import FIT_MIN_FLOPS, Judged, Machine, gemm_flops, predict_gemm, split
from .kernel_database import Database, Table

#: The shape columns a GEMM table is interpolated over.
SHAPE_COLUMNS = ("m", "n", "k")


def interpolated_seconds(table: Table, fitted: np.ndarray, judged: np.ndarray) -> np.ndarray:
    """Times of the rows ``judged`` interpolated from the rows ``fitted`` (module docstring)."""
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    shapes = np.log2(np.stack([table.columns[c].astype(float) for c in SHAPE_COLUMNS], axis=1))
    times = np.log(table.seconds)
    inside = LinearNDInterpolator(shapes[fitted], times[fitted])(shapes[judged])
    outside = np.isnan(inside)
    if outside.any():
        nearest = NearestNDInterpolator(shapes[fitted], times[fitted])
        inside[outside] = nearest(shapes[judged][outside])
    return np.exp(inside)


def held_out_gemms(table: Table) -> np.ndarray:
    """The rows the model's GEMMs are judged on: the fit's held-out rows of at least
    :data:`~perfcost.solver.studies.database_fit.FIT_MIN_FLOPS`."""
    _, judged = split(len(table))
    return judged[gemm_flops(table)[judged] >= FIT_MIN_FLOPS]


def gemm_floor(table: Table) -> Judged:
    """The interpolation floor of one GEMM table, on the fit's own held-out GEMMs of at least
    :data:`~perfcost.solver.studies.database_fit.FIT_MIN_FLOPS` (judged as the model's are)."""
    fitted, _ = split(len(table))
    big = held_out_gemms(table)
    predicted = interpolated_seconds(table, fitted, big)
    return Judged("gemm", table.precision, ">= 1 GFLOP", predicted / table.seconds[big] - 1)


def database_floors(database: Database) -> list[Judged]:
    """The interpolation floor of every GEMM table of ``database``."""
    return [gemm_floor(t) for t in database.of("gemm")]


#: The GEMM precisions every framework's collector times through the same call, PyTorch's
#: linear (cuBLAS): another framework's table of them is a second measurement of the same
#: operation, on its own PyTorch and cuBLAS build. The other precisions run each framework's
#: own kernels (CUTLASS, DeepGEMM, FlashInfer), so their tables differ by kernel, not by
#: measurement.
SAME_CALL_PRECISIONS = ("bf16",)


def remeasured(table: Table, other: Table, framework: str) -> Judged:
    """The fit's held-out GEMMs of at least
    :data:`~perfcost.solver.studies.database_fit.FIT_MIN_FLOPS` of ``table`` as ``other``
    (``framework``'s table of the same GPU and precision) measured them, on the shapes both
    hold: how far two measurements of the same operation lie apart, a floor no model of one
    table can be trusted to beat by much."""
    big = held_out_gemms(table)
    ours, [theirs] = _matched(table, big, [other])
    return Judged("gemm", table.precision, f">= 1 GFLOP, {framework}",
                  other.seconds[theirs] / table.seconds[big[ours]] - 1)


def against_others(table: Table, framework: str, others: list[Table],
                   predicted: np.ndarray) -> list[Judged]:
    """The model's times ``predicted`` of :func:`held_out_gemms` of ``table`` (the table of
    ``framework``, which the model was fitted on), and that table's own measurements, both
    against the same reference: the geometric mean of ``others`` (other frameworks' tables
    of the same GPU and precision), on the shapes every one of them holds. The table's row
    is how far one measurement lies from the others; the model's, how far the model does.
    Two rows, labelled ``model`` and ``framework``; none where there is no other table or
    no shape is shared."""
    big = held_out_gemms(table)
    ours, theirs = _matched(table, big, others)
    if not others or ours.size == 0:
        return []
    reference = np.exp(np.mean([np.log(other.seconds[rows])
                                for other, rows in zip(others, theirs, strict=True)], axis=0))
    return [Judged("gemm", table.precision, label, seconds / reference - 1)
            for label, seconds in (("model", predicted[ours]),
                                   (framework, table.seconds[big[ours]]))]


def _shapes(table: Table, rows: np.ndarray) -> list[tuple[int, ...]]:
    """The ``(m, n, k)`` of ``rows`` of ``table``, as tuples of Python ints."""
    return list(zip(*(table.columns[c][rows].tolist() for c in SHAPE_COLUMNS), strict=True))


def _matched(table: Table, rows: np.ndarray,
             others: list[Table]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Positions in ``rows`` of the shapes of ``table`` that every one of ``others`` holds,
    and each other table's row of those shapes (in the same order)."""
    positions = [{shape: i for i, shape in enumerate(_shapes(other, np.arange(len(other))))}
                 for other in others]
    shared = [(at, [p[shape] for p in positions])
              for at, shape in enumerate(_shapes(table, rows))
              if all(shape in p for p in positions)]
    ours = np.array([at for at, _ in shared], dtype=np.int64)
    theirs = [np.array([r[j] for _, r in shared], dtype=np.int64) for j in range(len(others))]
    return ours, theirs


def _same_precision(database: Database, precision: str) -> Table | None:
    """``database``'s GEMM table of ``precision``, if it holds one."""
    return next((t for t in database.of("gemm") if t.precision == precision), None)


def remeasured_floors(database: Database, others: list[Database]) -> list[Judged]:
    """:func:`remeasured` for each GEMM table of ``database`` in
    :data:`SAME_CALL_PRECISIONS` against each of ``others`` (other frameworks' tables of the
    same GPU) that holds it, where they share at least one held-out shape."""
    out = []
    for table in database.of("gemm"):
        if table.precision not in SAME_CALL_PRECISIONS:
            continue
        for other in others:
            match = _same_precision(other, table.precision)
            if match is not None:
                judged = remeasured(table, match, other.framework)
                if judged.errors.size:
                    out.append(judged)
    return out


def against_others_floors(database: Database, others: list[Database], machine: Machine,
                          params: dict[str, dict[str, Any]]) -> list[Judged]:
    """:func:`against_others` for each GEMM table of ``database`` in
    :data:`SAME_CALL_PRECISIONS` that ``params`` (the fitted GEMM parameters per precision,
    predicted on ``machine``) holds, against every one of ``others`` with a table of it."""
    out = []
    for table in database.of("gemm"):
        if table.precision not in SAME_CALL_PRECISIONS or table.precision not in params:
            continue
        tables = [t for t in (_same_precision(o, table.precision) for o in others)
                  if t is not None]
        if tables:
            predicted = predict_gemm(table, held_out_gemms(table), machine,
                                     params[table.precision])
            out.extend(against_others(table, database.framework, tables, predicted))
    return out
