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
