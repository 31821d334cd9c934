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

from dataclasses import dataclass

import numpy as np

from .database_fit import FIT_MIN_FLOPS, gemm_flops, split
from .kernel_database import Database, Table

#: The shape columns a GEMM table is interpolated over.
SHAPE_COLUMNS = ("m", "n", "k")


@dataclass(frozen=True)
class Floor:
    """The interpolation's held-out errors on one GEMM table's GEMMs of at least
    :data:`~perfcost.solver.studies.database_fit.FIT_MIN_FLOPS`."""

    precision: str
    errors: np.ndarray  # predicted / measured - 1

    def row(self) -> dict[str, object]:
        e = np.abs(self.errors)
        return {"kind": "gemm", "precision": self.precision, "subset": ">= 1 GFLOP",
                "rows": int(e.size), "median_pct": float(np.median(e) * 100),
                "p90_pct": float(np.quantile(e, 0.9) * 100)}


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


def gemm_floor(table: Table) -> Floor:
    """The interpolation floor of one GEMM table, on the fit's own held-out rows."""
    fitted, judged = split(len(table))
    big = judged[gemm_flops(table)[judged] >= FIT_MIN_FLOPS]
    predicted = interpolated_seconds(table, fitted, big)
    return Floor(table.precision, predicted / table.seconds[big] - 1)


def database_floors(database: Database) -> list[Floor]:
    """The interpolation floor of every GEMM table of ``database``."""
    return [gemm_floor(t) for t in database.of("gemm")]
