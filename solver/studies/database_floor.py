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
"""

from __future__ import annotations

import numpy as np

from .database_fit import FIT_MIN_FLOPS, Judged, gemm_flops, split
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


def gemm_floor(table: Table) -> Judged:
    """The interpolation floor of one GEMM table, on the fit's own held-out GEMMs of at least
    :data:`~perfcost.solver.studies.database_fit.FIT_MIN_FLOPS` (judged as the model's are)."""
    fitted, judged = split(len(table))
    big = judged[gemm_flops(table)[judged] >= FIT_MIN_FLOPS]
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
    _, judged = split(len(table))
    big = judged[gemm_flops(table)[judged] >= FIT_MIN_FLOPS]
    position = {shape: i for i, shape in enumerate(_shapes(other, np.arange(len(other))))}
    pairs = [(row, position[shape]) for row, shape in
             zip(big.tolist(), _shapes(table, big), strict=True) if shape in position]
    ours = np.array([p[0] for p in pairs], dtype=np.int64)
    theirs = np.array([p[1] for p in pairs], dtype=np.int64)
    return Judged("gemm", table.precision, f">= 1 GFLOP, {framework}",
                  other.seconds[theirs] / table.seconds[ours] - 1)


def _shapes(table: Table, rows: np.ndarray) -> list[tuple[int, ...]]:
    """The ``(m, n, k)`` of ``rows`` of ``table``, as tuples of Python ints."""
    return list(zip(*(table.columns[c][rows].tolist() for c in SHAPE_COLUMNS), strict=True))


def remeasured_floors(database: Database, others: list[Database]) -> list[Judged]:
    """:func:`remeasured` for each GEMM table of ``database`` in
    :data:`SAME_CALL_PRECISIONS` against each of ``others`` (other frameworks' tables of the
    same GPU) that holds it, where they share at least one held-out shape."""
    out = []
    for table in database.of("gemm"):
        if table.precision not in SAME_CALL_PRECISIONS:
            continue
        for other in others:
            match = [t for t in other.of("gemm") if t.precision == table.precision]
            if match:
                judged = remeasured(table, match[0], other.framework)
                if judged.errors.size:
                    out.append(judged)
    return out
