"""Reproduce the fit of the shared A100 efficiency parameters (docs/calibration.md).

Five physical parameters of the a100-80gb hardware entry and the dgx-a100 network are not
pinned down by a datasheet: the GEMM efficiency Megatron-LM's kernels reached, the HBM
efficiency of its elementwise kernels, the fixed cost per kernel, and NVLink's per-step
latency and bus efficiency. This script fits them, once for all A100 cases, by minimising the
worst ratio of each validation suite's error to its tolerance, and prints the per-suite errors
before and after. It prints; it does not write the case files.

The kernel-level parameters of a GPU with kernel measurements (the per-wave GEMM overhead,
the FlashAttention rates) come from ``perfcost calibrate`` instead (docs/kernels.md). The A100
entry has no such measurements: its ``wave_overhead`` is 0, so the GEMM model this script fits
is the plain tile- and wave-quantised roofline, unchanged by that addition.

    python benchmarks/calibration_fit.py
"""

from __future__ import annotations

import time

import numpy as np
from perfcost.solver.case import catalog, units
from perfcost.solver.case.schema import load
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import Evaluator, training_formulation
from perfcost.solver.studies.validate import METRIC_UNITS, suite_tolerances
from scipy.optimize import minimize

#: Fitted parameters, their bounds (physically plausible ranges) and display scale.
PARAMETERS = {
    "matmul_efficiency": (0.6, 0.9, 1.0),
    "memory_efficiency": (0.5, 0.9, 1.0),
    "kernel_overhead": (0.0, 10e-6, 1e-6),
    "scale_up_latency": (1e-6, 30e-6, 1e-6),
    "scale_up_efficiency": (0.5, 0.8, 1.0),
}


def prepared() -> list[tuple[str, str, Evaluator, dict[str, float], list[tuple[float, float]]]]:
    out = []
    for name in catalog.entries("validation"):
        case = load(name)
        if case.validation is None or case.hardware.name != "a100-80gb":
            continue
        metrics = list(case.validation.metrics)
        evaluator = Evaluator(training_formulation(case), metrics)
        config = problem.decision_codes(problem.fixed_config(case))
        targets = []
        for metric in metrics:
            dimension, scale = METRIC_UNITS.get(evaluator.formulation.units[metric],
                                                 ("count", 1.0))
            spec = case.validation.metrics[metric]
            targets.append((units.parse(spec.measured, dimension) * scale, spec.tolerance_pct))
        out.append((name, case.validation.suite, evaluator, config, targets))
    return out


def suite_errors(cases: list, overrides: dict[str, float]) -> dict[str, list[float]]:
    errors: dict[str, list[float]] = {}
    for _name, suite, evaluator, config, targets in cases:
        values = evaluator(config, overrides)
        for metric, (measured, _tol) in zip(evaluator.names, targets, strict=True):
            errors.setdefault(suite, []).append(100 * (values[metric] - measured) / measured)
    return errors


def score(errors: dict[str, list[float]], per_case: dict[str, float]) -> float:
    """Worst ratio of (mean |error|, max |error|) to the suite's (mean, per-case) tolerance."""
    worst = 0.0
    for suite, errs in errors.items():
        a = np.abs(errs)
        worst = max(worst, a.mean() / suite_tolerances()[suite], a.max() / per_case[suite])
    return worst


def table(errors: dict[str, list[float]]) -> str:
    lines = [f"{'suite':28s} {'n':>3s} {'mean |err| %':>13s} {'max |err| %':>12s}"]
    for suite, errs in sorted(errors.items()):
        a = np.abs(errs)
        lines.append(f"{suite:28s} {len(a):3d} {a.mean():13.2f} {a.max():12.2f}")
    return "\n".join(lines)


def main() -> None:
    start = time.perf_counter()
    cases = prepared()
    per_case = {}
    for _n, suite, _e, _c, targets in cases:
        per_case[suite] = min(per_case.get(suite, 1e9), min(t for _m, t in targets))
    base = {k: cases[0][2].formulation.parameters[k].value for k in PARAMETERS}
    lo = np.array([b[0] for b in PARAMETERS.values()])
    hi = np.array([b[1] for b in PARAMETERS.values()])
    span = hi - lo

    def objective(x: np.ndarray) -> float:
        values = lo + np.clip(x, 0, 1) * span
        return score(suite_errors(cases, dict(zip(PARAMETERS, values, strict=True))), per_case)

    x0 = (np.array(list(base.values())) - lo) / span
    result = minimize(objective, x0, method="Nelder-Mead",
                      options={"maxiter": 400, "xatol": 1e-4, "fatol": 1e-4})
    fitted = dict(zip(PARAMETERS, lo + np.clip(result.x, 0, 1) * span, strict=True))
    print("parameter               case files      fitted")
    for name, (_l, _h, scale) in PARAMETERS.items():
        print(f"{name:22s} {base[name] / scale:11.4g} {fitted[name] / scale:11.4g}")
    print("\nwith the case files' values:\n" + table(suite_errors(cases, {})))
    print("\nwith the fitted values:\n" + table(suite_errors(cases, fitted)))
    print(f"\nscore (worst error/tolerance) {objective(x0):.3f} -> {result.fun:.3f}; "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
