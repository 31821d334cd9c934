"""Solver benchmark: space size, engine, build and solve time, and whether the optimum equals
enumeration's, from about 10^3 to beyond 10^12 configurations.

    python benchmarks/solver.py            # all rows
    python benchmarks/solver.py --quick    # skip the largest rows

Times are wall seconds on this machine (shared and noisy: compare rows within one run).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from perfcost.solver.case import from_dict, resolve
from perfcost.solver.engine_enumerate import EnumerateEngine
from perfcost.solver.engine_milp import MilpEngine
from perfcost.solver.problem_search import build_problem


def case(model: str, hardware: Any, network: Any, gpus: Any, batch: int,
         parallelism: dict[str, Any] | None = None, tokens: float = 300e9,
         codesign: dict[str, Any] | None = None) -> Any:
    raw = {"model": model, "hardware": hardware, "network": network,
           "cluster": {"gpus": gpus}, "training": {"global_batch": batch, "tokens": tokens},
           "parallelism": parallelism or {}}
    if codesign is not None:
        raw["codesign"] = codesign
    return from_dict(resolve(raw))


ROWS: list[tuple[str, Any, bool]] = [
    ("gpt-1.7b, 32 A100, tp/pp/mb choices", lambda: case(
        "gpt-1.7b", "a100-80gb", "dgx-a100", 32, 512,
        {"tp": [1, 2, 4, 8], "pp": [1, 2, 4], "micro_batch": [1, 2, 4, 8, 16],
         "recompute": ["selective", "full"], "zero": [0, 1]}), False),
    ("gpt3-175b, 1024 A100, full space", lambda: case(
        "gpt3-175b", "a100-80gb", "dgx-a100", 1024, 1536), False),
    ("gpt3-175b, 4096 A100, full space", lambda: case(
        "gpt3-175b", "a100-80gb", "dgx-a100", 4096, 1536), False),
    ("llama3-70b, 4 GPU types x 2 networks x 6 sizes", lambda: case(
        "llama3-70b", ["a100-80gb", "h100-sxm", "h200-sxm", "b200"], ["dgx-a100", "dgx-h100"],
        [256, 512, 1024, 2048, 4096, 8192], 1024), True),
    ("llama3-70b, 81 chiplet designs x 4 sizes, capex", lambda: case(
        "llama3-70b", "h100-sxm", "dgx-h100", [1024, 2048, 4096, 8192], 1024,
        codesign={"design": "codesign-n5", "capex_budget": "150e6 USD"}), True),
]


def main() -> None:
    quick = "--quick" in sys.argv
    header = (f"{'problem':48s} {'space':>9s} {'valid':>9s} {'engine':>9s} {'build s':>8s} "
              f"{'solve s':>8s} {'objective':>12s} {'equal':>6s}")
    print(header)
    print("-" * len(header))
    for label, make, large in ROWS:
        if quick and large:
            continue
        t0 = time.perf_counter()
        problem = build_problem(make())
        build_s = time.perf_counter() - t0
        valid = len(problem.valid())
        reference = None
        for engine in (EnumerateEngine(), MilpEngine()):
            t1 = time.perf_counter()
            result = engine.solve(problem, explain=False)
            solve_s = time.perf_counter() - t1
            value = result.value if result.ok else float("nan")
            if engine.name == "enumerate":
                reference = value
                equal = "oracle"
            elif result.status == "not_accepted":
                equal = "declined"
            elif not result.ok:
                equal = result.status  # stopped without proving an optimum
            else:
                equal = ("yes" if reference is not None and result.ok
                         and abs(value - reference) <= 1e-9 * abs(reference) else "NO")
            print(f"{label:48s} {problem.space.size:9.2e} {valid:9.2e} {engine.name:>9s} "
                  f"{build_s:8.2f} {solve_s:8.2f} {value:12.6g} {equal:>6s}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
