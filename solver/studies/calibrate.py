"""Fit a hardware entry's compute-efficiency parameters to measured kernel times.

The kernel file (docs/kernels.md; ``benchmarks/kernels.py`` measures one) lists GEMM times by
shape, FlashAttention forward and forward+backward times, and optionally the bandwidth of a
device-to-device copy. The predictions are the formulations' own expressions
(:func:`formulations.compute.op_time` of a :func:`formulations.transformer.gemm`,
:func:`formulations.attention.flash_forward_time` and ``flash_backward_time``), turned into
numpy functions once; this module only chooses parameter values.

* Memory efficiency: where the file measured a device-to-device copy, the copy's rate over
  the HBM peak -- the streaming ceiling every memory-bound kernel shares (a GEMM fit of it
  would also absorb whatever fixed time the file's timings carry). Otherwise it is fitted.
* GEMMs: ``matmul_efficiency``, ``wave_overhead`` and the fixed time per call for each
  candidate output tile; the tile with the best objective wins. The objective is the median
  plus a tenth of the 90th percentile plus a hundredth of the worst absolute log error over
  the GEMMs of at least :data:`FIT_MIN_FLOPS`: the median is what a model of many shapes is
  judged by, the tail terms keep most shapes close without letting one outlier kernel set the
  parameters, and the small worst term lets every row count (a parameter only a few rows
  determine, like a fitted memory efficiency, stays identified).
* The fixed time per call is ``kernel_overhead`` (what kernels pay back to back) plus
  ``measurement_floor`` (the dispatch latency an isolated eager timing adds:
  :func:`formulations.compute.isolated_op_time`). One file of isolated timings cannot tell
  them apart: given the back-to-back overhead from another source (``kernel_overhead=``), the
  fit finds the floor; without it the file is taken as back-to-back timings (floor 0).
* GEMMs of fewer rows than a tile use narrow tiles of :data:`ROW_GRANULE` rows.
* FlashAttention: forward and backward efficiency of the generation the rows ran, and the
  fixed costs per wave of forward and backward tiles, by least squares on the log errors of
  the forward and the forward+backward times, with the GEMM fit's launch overhead, floor and
  memory efficiency.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from perfcost.solver.case import files
from perfcost.solver.case.errors import MISSING, CaseError

#: GEMMs below this many FLOPs are printed but not fitted: their time is mostly the launch
#: and synchronisation latency of the measurement, not the kernel.
FIT_MIN_FLOPS = 1e9
#: Candidate GEMM output tiles (rows x columns of C per thread block): those of the CUTLASS
#: and cuBLAS kernels for Ampere and Hopper tensor cores.
TILE_CANDIDATES: tuple[tuple[int, int], ...] = (
    (64, 64), (64, 128), (128, 64), (128, 128), (128, 256), (256, 128))
#: Search ranges of the fitted GEMM parameters (physically plausible values).
GEMM_BOUNDS: dict[str, tuple[float, float]] = {
    "matmul_efficiency": (0.3, 1.0),
    "memory_efficiency": (0.3, 1.0),
    "kernel_overhead": (0.0, 50e-6),
    "measurement_floor": (0.0, 50e-6),
    "wave_overhead": (0.0, 10e-6),
}
ATTENTION_BOUNDS: dict[str, tuple[float, float]] = {
    "forward": (0.05, 1.0),
    "backward": (0.05, 1.0),
    "forward_tile_overhead": (0.0, 100e-6),
    "backward_tile_overhead": (0.0, 100e-6),
}
#: Weight of the tail of the log errors next to the median in the GEMM objective, and the
#: quantile that measures the tail. Not the worst row: in the H200 file one GEMM
#: (128x28672x8192, 266 TFLOP/s where the same weights at m = 512 reach 654, and as slow
#: back to back: a kernel choice of cuBLAS, not a shape effect) would alone set the fixed time.
TAIL_WEIGHT = 0.1
TAIL_QUANTILE = 0.9
WORST_WEIGHT = 0.01
#: Rows of the narrow tiles of GEMMs with fewer rows than a tile: the smallest N of the
#: Hopper and Ampere MMA instructions that small-M kernels map the rows onto
#: (formulations.compute.gemm_tile_rows).
ROW_GRANULE = 8
#: Bytes per element of the kernel file's measurements (bf16).
ELEMENT_BYTES = 2.0
#: Kernel-file backends and the FlashAttention generation they ran.
FLASH_BACKENDS = {"flash": "fa2", "fa2": "fa2", "fa3": "fa3"}
MATERIALIZED_BACKENDS = ("math", "materialized")
#: Bytes per TB, for the copy bandwidth the kernel file gives in TB/s.
TERA = 1e12
#: Seed of the global optimiser, so that a fit is reproducible.
SEED = 1
#: Largest matrix or batch dimension a row may give (beyond any kernel that runs on one GPU).
MAX_DIM = 10**9
#: Largest attention head dimension a row may give: FlashAttention kernels take at most 256
#: (FA2, FA3); 1024 leaves room for latent attention without admitting absurd tiles.
MAX_HEAD_DIM = 1024
#: A row's absolute log error counts at most this much in the GEMM objective (a factor of 4):
#: a row off by more is a measurement gone wrong, not a shape effect, and must not move the
#: parameters; it is reported as rejected. No row of the shipped kernel files comes close.
OUTLIER_LOG_ERROR = math.log(4.0)


# -- the kernel file -------------------------------------------------------------------------

@dataclass(frozen=True)
class GemmRow:
    op: str
    m: int
    n: int
    k: int
    seconds: float

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k


@dataclass(frozen=True)
class AttentionRow:
    backend: str
    b: int
    heads: int
    kv_heads: int
    s: int
    d: int
    d_v: int
    causal: bool
    fwd_s: float
    fwdbwd_s: float


@dataclass(frozen=True)
class Kernels:
    source: str
    device: dict[str, Any]
    gemm: tuple[GemmRow, ...]
    attention: tuple[AttentionRow, ...]
    copy_bandwidth: float | None  # bytes read + written per second, or None
    what: str = ""  # how the times were taken, as the file says


def _field(row: dict[str, Any], where: str, key: str, kind: str) -> Any:
    if key not in row:
        raise CaseError(f"{where}.{key}", MISSING, _EXPECT[kind])
    value = row[key]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIM:
            raise CaseError(f"{where}.{key}", value, _EXPECT[kind])
    elif kind in ("time", "bandwidth"):
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            raise CaseError(f"{where}.{key}", value, _EXPECT[kind])
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise CaseError(f"{where}.{key}", value, _EXPECT[kind])
    elif kind == "text" and not isinstance(value, str):
        raise CaseError(f"{where}.{key}", value, _EXPECT[kind])
    return value


_EXPECT = {
    "int": f"expected a positive integer of at most {MAX_DIM:.0e}",
    "time": "expected a positive time in seconds",
    "bandwidth": "expected a positive bandwidth in TB/s",
    "bool": "expected true or false",
    "text": "expected text",
}


def read_kernels(path: str | Path) -> Kernels:
    """Read and check a kernel file (format: docs/kernels.md)."""
    path = Path(path)
    try:
        data = json.loads(files.read_text(path, "kernels"))
    except OSError as exc:
        raise CaseError("kernels", str(path), f"expected a readable file: {exc.strerror}"
                        ) from None
    except ValueError as exc:
        raise CaseError("kernels", str(path), f"expected JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CaseError("kernels", str(path), "expected a JSON object with a 'gemm' list")
    gemm_rows = data.get("gemm", MISSING)
    if gemm_rows is MISSING or not isinstance(gemm_rows, list) or not gemm_rows:
        raise CaseError("gemm", gemm_rows, "expected a non-empty list of GEMM measurements")
    gemm = []
    for i, row in enumerate(gemm_rows):
        where = f"gemm[{i}]"
        if not isinstance(row, dict):
            raise CaseError(where, row, "expected an object with m, n, k and s")
        gemm.append(GemmRow(str(row.get("op", "")), _field(row, where, "m", "int"),
                            _field(row, where, "n", "int"), _field(row, where, "k", "int"),
                            _field(row, where, "s", "time")))
    attention = []
    attention_rows = data.get("attention", [])
    if not isinstance(attention_rows, list):
        raise CaseError("attention", attention_rows, "expected a list of measurements")
    for i, row in enumerate(attention_rows):
        where = f"attention[{i}]"
        if not isinstance(row, dict):
            raise CaseError(where, row, "expected an object with backend, b, heads, s, d")
        backend = _field(row, where, "backend", "text")
        if backend not in FLASH_BACKENDS and backend not in MATERIALIZED_BACKENDS:
            known = ", ".join([*FLASH_BACKENDS, *MATERIALIZED_BACKENDS])
            raise CaseError(f"{where}.backend", backend, f"expected one of {known}")
        heads = _field(row, where, "heads", "int")
        d = _head_dim(_field(row, where, "d", "int"), f"{where}.d")
        kv_heads = _field(row, where, "kv_heads", "int") if "kv_heads" in row else heads
        if heads % kv_heads:
            raise CaseError(f"{where}.kv_heads", kv_heads,
                            f"expected a divisor of heads = {heads}")
        fwd_s = _field(row, where, "fwd_s", "time")
        fwdbwd_s = _field(row, where, "fwdbwd_s", "time")
        if fwdbwd_s < fwd_s:
            raise CaseError(f"{where}.fwdbwd_s", fwdbwd_s,
                            f"expected at least fwd_s = {fwd_s:g} (it includes the forward)")
        attention.append(AttentionRow(
            backend, _field(row, where, "b", "int"), heads, kv_heads,
            _field(row, where, "s", "int"), d,
            _head_dim(_field(row, where, "d_v", "int"), f"{where}.d_v") if "d_v" in row
            else d,
            _field(row, where, "causal", "bool") if "causal" in row else True,
            fwd_s, fwdbwd_s))
    ceilings = data.get("ceilings", {})
    copy = None
    if isinstance(ceilings, dict) and "copy_TBps_rw" in ceilings:
        copy = _field(ceilings, "ceilings", "copy_TBps_rw", "bandwidth") * TERA
    device = data.get("device", {})
    what = data.get("what", "")
    return Kernels(str(path), device if isinstance(device, dict) else {}, tuple(gemm),
                   tuple(attention), copy, what if isinstance(what, str) else "")


def _head_dim(d: int, where: str) -> int:
    if d > MAX_HEAD_DIM:
        raise CaseError(where, d, f"expected a head dimension of at most {MAX_HEAD_DIM}")
    return d


def attention_flops(row: AttentionRow) -> float:
    """FLOPs of the forward pass's two matrix products, QK^T and PV (half of them under a
    causal mask): a lower bound on the work any attention kernel does."""
    full = 2.0 * row.b * row.heads * row.s * row.s * (row.d + row.d_v)
    return full / 2 if row.causal else full


def check_physical(kernels: Kernels, machine: Machine) -> None:
    """Every row is physically possible on ``machine``: no GEMM or attention forward runs
    faster than the peak FLOP rate allows, no copy beats the HBM bandwidth. A row that does is
    a wrong timing (a unit slip, a kernel that never ran) and the file is refused with that
    row named -- fitting it would move every parameter."""
    from perfcost.formulations import attention

    for i, a in enumerate(kernels.attention):
        if a.backend in FLASH_BACKENDS:
            try:
                attention.block_sizes(machine.shared_memory, a.d, a.d_v, ELEMENT_BYTES)
            except attention.TileDoesNotFit:
                raise CaseError(f"attention[{i}].d", a.d,
                                f"expected head dimensions (d = {a.d}, d_v = {a.d_v}) whose "
                                f"FlashAttention tiles fit the shared memory of "
                                f"{machine.name}") from None
    for i, r in enumerate(kernels.gemm):
        rate = r.flops / r.seconds
        if rate > machine.peak_flops:
            raise CaseError(f"gemm[{i}].s", r.seconds,
                            f"expected at least {r.flops / machine.peak_flops:.3g} s: "
                            f"{_shape(r)} would run at {rate / 1e12:.4g} TFLOP/s, above the "
                            f"peak of {machine.name} ({machine.peak_flops / 1e12:.4g} TFLOP/s)")
    for i, a in enumerate(kernels.attention):
        rate = attention_flops(a) / a.fwd_s
        if rate > machine.peak_flops:
            raise CaseError(f"attention[{i}].fwd_s", a.fwd_s,
                            f"expected at least {attention_flops(a) / machine.peak_flops:.3g}"
                            f" s: the forward would run at {rate / 1e12:.4g} TFLOP/s, above "
                            f"the peak of {machine.name} "
                            f"({machine.peak_flops / 1e12:.4g} TFLOP/s)")
    if kernels.copy_bandwidth is not None and kernels.copy_bandwidth > machine.hbm_bandwidth:
        raise CaseError("ceilings.copy_TBps_rw", kernels.copy_bandwidth / TERA,
                        f"expected at most the HBM bandwidth of {machine.name} "
                        f"({machine.hbm_bandwidth / TERA:.4g} TB/s)")


# -- predictions from the formulations ---------------------------------------------------------

@dataclass(frozen=True)
class Machine:
    """The datasheet values of the hardware entry that the fit keeps fixed."""

    name: str
    peak_flops: float
    hbm_bandwidth: float
    multiprocessors: int
    shared_memory: float
    l2_cache: float = 0.0


@functools.cache
def _gemm_function(tile_m: int, tile_n: int, row_granule: int | None) -> Callable[..., Any]:
    """The lambdified isolated GEMM time of one tile (built once: fit and residuals share it)."""
    import sympy as sp
    from perfcost.formulations import compute, transformer

    m, n, k, e = sp.symbols("m n k e", positive=True)
    names = ("peak", "eta", "bw", "eta_mem", "sms", "k_oh", "w_oh", "floor")
    peak, eta, bw, eta_mem, sms, k_oh, w_oh, floor = sp.symbols(" ".join(names),
                                                                positive=True)
    hw = compute.ComputeParams(peak, eta, bw, eta_mem, sms, sp.Integer(tile_m),
                               sp.Integer(tile_n), k_oh, w_oh,
                               row_granule=None if row_granule is None
                               else sp.Integer(row_granule),
                               measurement_floor=floor)
    expr = compute.isolated_op_time(transformer.gemm("gemm", "layer", m, n, k, e), hw)
    return sp.lambdify((m, n, k, e, peak, eta, bw, eta_mem, sms, k_oh, w_oh, floor), expr,
                       "numpy")


def gemm_predictor(tile: tuple[int, int], row_granule: int | None = ROW_GRANULE
                   ) -> Callable[..., np.ndarray]:
    """``f(m, n, k, machine, params) -> seconds`` of an isolated call, from
    :func:`formulations.compute.isolated_op_time` (``params`` without a
    ``measurement_floor``: 0)."""
    fn = _gemm_function(int(tile[0]), int(tile[1]),
                        None if row_granule is None else int(row_granule))

    def predict(mm: np.ndarray, nn: np.ndarray, kk: np.ndarray, machine: Machine,
                params: dict[str, float]) -> np.ndarray:
        return np.asarray(fn(mm, nn, kk, ELEMENT_BYTES, machine.peak_flops,
                             params["matmul_efficiency"], machine.hbm_bandwidth,
                             params["memory_efficiency"], machine.multiprocessors,
                             params["kernel_overhead"], params["wave_overhead"],
                             params.get("measurement_floor", 0.0)), dtype=float)

    return predict


@functools.cache
def attention_predictor(machine: Machine, d_qk: int, d_v: int,
                        causal: bool) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``f(b, heads, kv_heads, s, params) -> (forward, backward) seconds`` from
    :mod:`formulations.attention`, with block sizes from the machine's shared memory."""
    import sympy as sp
    from perfcost.formulations import attention

    blocks = attention.block_sizes(machine.shared_memory, d_qk, d_v, ELEMENT_BYTES)
    b, h, kvh, s = sp.symbols("b h kvh s", positive=True)
    fwd_eff, bwd_eff, tile_f, tile_b, k_oh, eta_mem = sp.symbols(
        "fwd bwd tile_f tile_b k_oh eta_mem", positive=True)
    shape = attention.AttentionShape(b, h, kvh, s, s, sp.Integer(d_qk), sp.Integer(d_v),
                                     sp.Float(ELEMENT_BYTES), causal)
    rates = attention.FlashRates(sp.Float(machine.peak_flops), fwd_eff, bwd_eff,
                                 sp.Float(machine.hbm_bandwidth), eta_mem,
                                 sp.Integer(machine.multiprocessors), tile_f, tile_b, k_oh,
                                 sp.Float(machine.l2_cache))
    args = (b, h, kvh, s, fwd_eff, bwd_eff, tile_f, tile_b, k_oh, eta_mem)
    fwd = sp.lambdify(args, attention.flash_forward_time(shape, blocks, rates), "numpy")
    bwd = sp.lambdify(args, attention.flash_backward_time(shape, blocks, rates), "numpy")

    def predict(bb: np.ndarray, hh: np.ndarray, kk: np.ndarray, ss: np.ndarray,
                params: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        values = (bb, hh, kk, ss, params["forward"], params["backward"],
                  params["forward_tile_overhead"], params["backward_tile_overhead"],
                  params["kernel_overhead"],
                  params["memory_efficiency"])
        # Each timed call (forward; forward+backward) is one isolated eager call: it pays
        # the measurement floor once, before its first kernel.
        floor = params.get("measurement_floor", 0.0)
        return (np.asarray(fwd(*values), dtype=float) * np.ones_like(bb, dtype=float) + floor,
                np.asarray(bwd(*values), dtype=float) * np.ones_like(bb, dtype=float))

    return predict


def materialized_predictor(machine: Machine, row: AttentionRow,
                           params: dict[str, float]) -> tuple[float, float]:
    """Forward and forward+backward time of the materialised attention core (score GEMMs,
    softmax, value GEMMs) with the fitted GEMM parameters: the model the training formulation
    uses with ``attention = "materialized"``."""
    import sympy as sp
    from perfcost.formulations import compute, transformer

    dims = transformer.Dims(
        b=sp.Integer(row.b), s=sp.Integer(row.s), h=sp.Integer(row.heads * row.d),
        a=sp.Integer(row.heads), kv=sp.Integer(row.heads), ffn=sp.Integer(1),
        vocab=sp.Integer(1), t=sp.Integer(1), c=sp.Integer(1), sigma=sp.Integer(1),
        e=sp.Float(ELEMENT_BYTES), mask=sp.Integer(0), swiglu=False, dropout=False,
        gqa=False)
    hw = compute.ComputeParams(
        sp.Float(machine.peak_flops), sp.Float(params["matmul_efficiency"]),
        sp.Float(machine.hbm_bandwidth), sp.Float(params["memory_efficiency"]),
        sp.Integer(machine.multiprocessors), sp.Integer(params["tile_m"]),
        sp.Integer(params["tile_n"]), sp.Float(params["kernel_overhead"]),
        sp.Float(params["wave_overhead"]), row_granule=sp.Integer(ROW_GRANULE))
    fwd = [op for op in transformer.layer_forward(dims) if op.region == "attention_core"]
    bwd = [op for op in transformer.layer_backward(dims) if op.region == "attention_core"]
    floor = params.get("measurement_floor", 0.0)
    t_fwd = float(compute.ops_time(fwd, hw)) + floor
    return t_fwd, t_fwd + float(compute.ops_time(bwd, hw))


# -- the fit ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Residual:
    kind: str  # "gemm", "attention fwd", "attention fwd+bwd", ...
    shape: str
    measured: float
    predicted: float
    fitted: bool  # whether the row took part in the fit (and the acceptance figures)

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1.0


@dataclass
class Fit:
    machine: Machine
    kernels: Kernels
    gemm: dict[str, float]
    attention: dict[str, dict[str, float]]  # generation -> rates and tile overheads
    memory_source: str
    #: Where a given back-to-back kernel overhead comes from ("" when it was fitted).
    kernel_overhead_source: str = ""
    residuals: list[Residual] = field(default_factory=list)
    #: Rows left out of the figures as outliers (off by more than OUTLIER_LOG_ERROR), named.
    rejected: list[str] = field(default_factory=list)

    def errors(self, kind: str) -> np.ndarray:
        return np.array([abs(r.error) for r in self.residuals if r.kind == kind and r.fitted])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("gemm", "attention fwd", "attention fwd+bwd"):
            errs = self.errors(kind)
            if errs.size:
                out[kind] = {"rows": int(errs.size), "median_pct": float(np.median(errs) * 100),
                             "max_pct": float(errs.max() * 100),
                             "within_10pct": int((errs <= 0.10).sum())}
        if self.rejected:
            out["rejected"] = list(self.rejected)
        return out

    def summary_line(self) -> str:
        parts = []
        for kind, s in self.summary().items():
            if kind == "rejected":
                parts.append(f"rejected as outliers (off by more than "
                             f"{math.exp(OUTLIER_LOG_ERROR):g}x): {', '.join(s)}")
                continue
            parts.append(f"{kind}: {s['rows']} rows, median {s['median_pct']:.1f} %, worst "
                         f"{s['max_pct']:.1f} %, {s['within_10pct']} within 10 %")
        return "; ".join(parts)


def _gemm_arrays(rows: Sequence[GemmRow]) -> tuple[np.ndarray, ...]:
    return (np.array([r.m for r in rows], float), np.array([r.n for r in rows], float),
            np.array([r.k for r in rows], float), np.array([r.seconds for r in rows]))


def copy_efficiency(kernels: Kernels, machine: Machine) -> float | None:
    """The file's copy rate over the HBM peak (the streaming ceiling), or None."""
    if kernels.copy_bandwidth is None:
        return None
    ratio = kernels.copy_bandwidth / machine.hbm_bandwidth
    low, high = GEMM_BOUNDS["memory_efficiency"]
    if not low <= ratio <= high:
        raise CaseError("ceilings.copy_TBps_rw", kernels.copy_bandwidth / TERA,
                        f"expected between {low} and {high} of the hardware's HBM bandwidth "
                        f"({machine.hbm_bandwidth / TERA:.2f} TB/s)")
    return ratio


def fit_gemm(kernels: Kernels, machine: Machine,
             tiles: Sequence[tuple[int, int]] = TILE_CANDIDATES,
             kernel_overhead: float | None = None) -> dict[str, float]:
    """GEMM parameters and tile minimising the median plus tail terms of the log errors.

    ``kernel_overhead``: the back-to-back overhead from another source; the fit then finds
    the measurement floor of the file's isolated timings."""
    from scipy.optimize import differential_evolution

    rows = [r for r in kernels.gemm if r.flops >= FIT_MIN_FLOPS]
    if not rows:
        raise CaseError("gemm", len(kernels.gemm),
                        f"expected at least one GEMM of {FIT_MIN_FLOPS:.0e} FLOPs or more")
    m, n, k, measured = _gemm_arrays(rows)
    fixed: dict[str, float] = {}
    pinned = copy_efficiency(kernels, machine)
    if pinned is not None:
        fixed["memory_efficiency"] = pinned
    if kernel_overhead is None:
        fixed["measurement_floor"] = 0.0
    else:
        fixed["kernel_overhead"] = kernel_overhead
    names = [name for name in GEMM_BOUNDS if name not in fixed]
    bounds = [GEMM_BOUNDS[name] for name in names]
    best: tuple[float, dict[str, float]] | None = None
    for tile in tiles:
        predict = gemm_predictor(tile)

        def objective(x: np.ndarray, predict: Callable[..., np.ndarray] = predict) -> float:
            params = {**fixed, **dict(zip(names, x, strict=True))}
            err = np.minimum(np.abs(np.log(predict(m, n, k, machine, params) / measured)),
                             OUTLIER_LOG_ERROR)
            return float(np.median(err) + TAIL_WEIGHT * np.quantile(err, TAIL_QUANTILE)
                         + WORST_WEIGHT * err.max())

        result = differential_evolution(objective, bounds, seed=SEED,
                                        tol=1e-10, maxiter=300, polish=True)
        params = {**fixed, **dict(zip(names, (float(v) for v in result.x), strict=True))}
        params.update(tile_m=tile[0], tile_n=tile[1])
        if best is None or result.fun < best[0]:
            best = (float(result.fun), params)
    if best is None:
        raise CaseError("tiles", list(tiles), "expected at least one candidate GEMM tile")
    return best[1]


def fit_attention(kernels: Kernels, machine: Machine, gemm: dict[str, float]
                  ) -> dict[str, dict[str, float]]:
    """Forward/backward efficiency and tile overheads per FlashAttention generation."""
    from scipy.optimize import least_squares

    rates: dict[str, dict[str, float]] = {}
    generations = sorted({FLASH_BACKENDS[r.backend] for r in kernels.attention
                          if r.backend in FLASH_BACKENDS})
    names = list(ATTENTION_BOUNDS)
    for gen in generations:
        rows = [r for r in kernels.attention if FLASH_BACKENDS.get(r.backend) == gen]
        groups: dict[tuple[int, int, bool], list[AttentionRow]] = {}
        for r in rows:
            groups.setdefault((r.d, r.d_v, r.causal), []).append(r)
        # Each group's predictor and its rows as arrays, built once (not per residual call).
        predictors = [(attention_predictor(machine, *key),
                       [np.array([getattr(r, f) for r in group], float)
                        for f in ("b", "heads", "kv_heads", "s")],
                       np.array([r.fwd_s for r in group]),
                       np.array([r.fwdbwd_s for r in group]))
                      for key, group in groups.items()]
        lo = [v[0] for v in ATTENTION_BOUNDS.values()]
        hi = [v[1] for v in ATTENTION_BOUNDS.values()]

        def residuals(x: np.ndarray, predictors: list = predictors) -> np.ndarray:
            params = dict(zip(names, x, strict=True))
            params.update(kernel_overhead=gemm["kernel_overhead"],
                          memory_efficiency=gemm["memory_efficiency"],
                          measurement_floor=gemm["measurement_floor"])
            out = []
            for predict, arrays, fwd_s, fwdbwd_s in predictors:
                fwd, bwd = predict(*arrays, params)
                out.append(np.log(fwd / fwd_s))
                out.append(np.log((fwd + bwd) / fwdbwd_s))
            return np.concatenate(out)

        # Start from half the peak and no tile overhead.
        x0 = [(a + b) / 2 if name in ("forward", "backward") else a
              for name, (a, b) in ATTENTION_BOUNDS.items()]
        # Huber loss: quadratic (plain least squares) for rows within OUTLIER_LOG_ERROR,
        # linear beyond, so one wrong row cannot pull the rates far.
        result = least_squares(residuals, x0, bounds=(lo, hi), loss="huber",
                               f_scale=OUTLIER_LOG_ERROR)
        rates[gen] = dict(zip(names, (float(v) for v in result.x), strict=True))
    return rates


def _shape(r: GemmRow) -> str:
    name = f"{r.op} " if r.op else ""
    return f"{name}{r.m}x{r.n}x{r.k}"


def calibrate(kernels: Kernels, machine: Machine, kernel_overhead: float | None = None,
              kernel_overhead_source: str = "") -> Fit:
    """Fit every parameter the kernel file determines and compute every row's residual.

    ``kernel_overhead``: the back-to-back overhead per kernel, from ``kernel_overhead_source``
    (the fit then finds the measurement floor of the file's isolated timings)."""
    if kernel_overhead is not None and not (
            math.isfinite(kernel_overhead)
            and GEMM_BOUNDS["kernel_overhead"][0] <= kernel_overhead
            <= GEMM_BOUNDS["kernel_overhead"][1]):
        raise CaseError("--kernel-overhead", kernel_overhead,
                        "expected a time between 0 and 50 us")
    if kernel_overhead is not None and not kernel_overhead_source.strip():
        raise CaseError("--kernel-overhead-source", kernel_overhead_source,
                        "expected where the back-to-back kernel overhead comes from")
    check_physical(kernels, machine)
    gemm = fit_gemm(kernels, machine, kernel_overhead=kernel_overhead)
    if kernels.copy_bandwidth is not None:
        memory_source = (f"device-to-device copy of the kernel file: "
                         f"{kernels.copy_bandwidth / TERA:.2f} TB/s = "
                         f"{kernels.copy_bandwidth / machine.hbm_bandwidth:.3f} of peak "
                         f"(the streaming ceiling; not fitted)")
    else:
        memory_source = "fit to the GEMM rows (memory-bound shapes); the file has no copy rate"
    rates = fit_attention(kernels, machine, gemm)
    fit = Fit(machine, kernels, gemm, rates, memory_source, kernel_overhead_source)
    predict = gemm_predictor((int(gemm["tile_m"]), int(gemm["tile_n"])))
    m, n, k, measured = _gemm_arrays(kernels.gemm)
    predicted = predict(m, n, k, machine, gemm)
    for row, meas, pred in zip(kernels.gemm, measured, predicted, strict=True):
        fit.residuals.append(Residual("gemm", _shape(row), float(meas), float(pred),
                                      row.flops >= FIT_MIN_FLOPS))
    for row in kernels.attention:
        shape = f"b{row.b} h{row.heads} s{row.s} d{row.d}" + ("" if row.causal else " full")
        if row.backend in FLASH_BACKENDS:
            gen = FLASH_BACKENDS[row.backend]
            params = {**rates[gen], "kernel_overhead": gemm["kernel_overhead"],
                      "memory_efficiency": gemm["memory_efficiency"],
                      "measurement_floor": gemm["measurement_floor"]}
            one = np.array([1.0])
            fwd, bwd = attention_predictor(machine, row.d, row.d_v, row.causal)(
                one * row.b, one * row.heads, one * row.kv_heads, one * row.s, params)
            t_fwd, t_all = float(fwd[0]), float(fwd[0] + bwd[0])
            kind = "attention"
            label = f"{gen} {shape}"
        else:
            t_fwd, t_all = materialized_predictor(machine, row, gemm)
            kind = "materialized"
            label = f"{row.backend} {shape}"
        fit.residuals.append(Residual(f"{kind} fwd", label, row.fwd_s, t_fwd,
                                      kind == "attention"))
        fit.residuals.append(Residual(f"{kind} fwd+bwd", label, row.fwdbwd_s, t_all,
                                      kind == "attention"))
    _reject_outliers(fit)
    return fit


def _reject_outliers(fit: Fit) -> None:
    """Rows the robust fit could not follow (off by more than OUTLIER_LOG_ERROR): out of the
    acceptance figures, and named."""
    for i, r in enumerate(fit.residuals):
        if r.fitted and abs(math.log(r.predicted / r.measured)) > OUTLIER_LOG_ERROR:
            fit.residuals[i] = replace(r, fitted=False)
            fit.rejected.append(f"{r.kind} {r.shape} ({r.error * 100:+.0f}%)")


# -- the hardware entry ----------------------------------------------------------------------

def machine_of(hardware: Any, precision: str) -> Machine:
    """The fixed datasheet values of a validated hardware section."""
    if precision not in hardware.peak_flops:
        raise CaseError("--precision", precision,
                        f"expected a precision of hardware {hardware.name}: "
                        f"{', '.join(hardware.peak_flops)}")
    if hardware.shared_memory is None:
        raise CaseError("hardware.shared_memory", MISSING,
                        "expected the on-chip shared memory per multiprocessor, like "
                        "'228 KiB': FlashAttention's tiles are sized from it")
    return Machine(hardware.name, hardware.peak_flops[precision], hardware.hbm_bandwidth,
                   hardware.multiprocessors, hardware.shared_memory, hardware.sram or 0.0)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_tables(prefix: str, table: dict[str, Any]) -> list[str]:
    """TOML text of ``table`` under ``[prefix]``: scalars first, then sub-tables."""
    lines = [f"[{prefix}]"]
    lines += [f"{key} = {_toml_value(v)}" for key, v in table.items() if not isinstance(v, dict)]
    for key, v in table.items():
        if isinstance(v, dict):
            lines += ["", *_toml_tables(f"{prefix}.{key}", v)]
    return lines


def efficiency_table(fit: Fit, old: dict[str, Any], as_of: str) -> dict[str, Any]:
    """The ``[efficiency]`` table of the fitted hardware entry, with provenance."""
    g = fit.gemm
    source = f"perfcost calibrate {Path(fit.kernels.source).name} ({as_of})"
    if fit.kernel_overhead_source:
        overhead_source = (f"{fit.kernel_overhead_source} (given to {source}; back-to-back "
                           f"kernels, as in a training step or a CUDA graph)")
        floor_source = (f"{source}: GEMM fit, the fixed time per isolated eager call above "
                        f"the back-to-back kernel_overhead (not paid by any workload)")
    else:
        overhead_source = f"{source}: GEMM fit (the file's timings taken as back-to-back)"
        floor_source = f"{source}: none fitted (no back-to-back overhead given)"
    table: dict[str, Any] = {
        "gemm_tile": [int(g["tile_m"]), int(g["tile_n"])],
        "gemm_row_granule": ROW_GRANULE,
        "gemm_row_granule_source": (
            "GEMMs with fewer rows than a tile run narrow tiles (cuBLAS small-M kernels, rows on "
            "the MMA instruction's N dimension, N = 8..256 in steps of 8: PTX ISA, wgmma shapes)"),
        "kernel_overhead": f"{g['kernel_overhead'] * 1e6:.3f} us",
        "kernel_overhead_source": overhead_source,
        "measurement_floor": f"{g['measurement_floor'] * 1e6:.3f} us",
        "measurement_floor_source": floor_source,
        "wave_overhead": f"{g['wave_overhead'] * 1e6:.3f} us",
        "flash_attention": old.get("flash_attention", "fa2"),
        "fit_source": f"kernel timings {Path(fit.kernels.source).name}: "
                      f"{fit.kernels.what or 'no description'}",
        "fit_as_of": as_of,
        "fit_residuals": fit.summary_line(),
        "matmul": {"value": round(g["matmul_efficiency"], 4),
                   "source": f"{source}: GEMM fit, tile {int(g['tile_m'])}x{int(g['tile_n'])}"},
        "memory": {"value": round(g["memory_efficiency"], 4),
                   "source": f"{source}: {fit.memory_source}"},
    }
    for gen in ("fa2", "fa3"):
        if gen in fit.attention:
            rates = fit.attention[gen]
            table[gen] = {"forward": round(rates["forward"], 4),
                          "backward": round(rates["backward"], 4),
                          "forward_tile_overhead":
                              f"{rates['forward_tile_overhead'] * 1e6:.3f} us",
                          "backward_tile_overhead":
                              f"{rates['backward_tile_overhead'] * 1e6:.3f} us",
                          "source": f"{source}: {gen} forward and forward+backward rows"}
        elif isinstance(old.get(gen), dict):
            table[gen] = old[gen]
    return table


def hardware_toml(original: str, raw: dict[str, Any], fit: Fit, as_of: str) -> str:
    """The hardware entry's text with its ``[efficiency]`` tables replaced by the fit.

    The text before the first efficiency table is kept as written (comments included) when
    the efficiency tables come last, as in the built-in entries."""
    table = efficiency_table(fit, raw.get("efficiency", {}), as_of)
    lines = original.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.strip().startswith("[efficiency")), None)
    later = start is not None and all(
        line.strip().startswith("[efficiency") for line in lines[start:]
        if line.strip().startswith("["))
    head = lines[:start] if later else _toml_head(raw)
    while head and not head[-1].strip():
        head.pop()
    return "\n".join([*head, "", *_toml_tables("efficiency", table)]) + "\n"


def _toml_head(raw: dict[str, Any]) -> list[str]:
    lines = [f"{key} = {_toml_value(v)}" for key, v in raw.items() if not isinstance(v, dict)]
    for key, v in raw.items():
        if isinstance(v, dict) and key != "efficiency":
            lines += ["", *_toml_tables(key, v)]
    return lines


def today() -> str:
    return date.today().isoformat()
