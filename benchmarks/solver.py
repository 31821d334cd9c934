"""Solver benchmark: space size, engine, build and solve time, and whether the optimum equals
enumeration's, from about 10^5 to beyond 10^12 configurations.

    python benchmarks/solver.py            # all rows
    python benchmarks/solver.py --quick    # skip the largest rows

Times are wall seconds on this machine (shared and noisy: compare rows within one run). The
10^12 co-design study is too large to enumerate (5.5 x 10^9 structurally valid
(system, configuration) pairs); its row is checked against the bound engine's own answer
re-evaluated, and the row above it, a sub-space of the same study, against enumeration.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.schema import from_dict, resolve
from perfcost.solver.cost.codesign import build_problem
from perfcost.solver.engines.bound import BoundEngine
from perfcost.solver.engines.enumerate import EnumerateEngine, full_values
from perfcost.solver.engines.milp import MilpEngine
from perfcost.solver.problem.specs import decision_codes

KIMI = "kimi-k2-chiplet-codesign"


def case(model: str, hardware: Any, network: Any, gpus: Any, batch: int,
         parallelism: dict[str, Any] | None = None, tokens: float = 300e9,
         codesign: dict[str, Any] | None = None) -> Any:
    raw = {"model": model, "hardware": hardware, "network": network,
           "cluster": {"gpus": gpus}, "training": {"global_batch": batch, "tokens": tokens},
           "parallelism": parallelism or {}}
    if codesign is not None:
        raw["codesign"] = codesign
    return from_dict(resolve(raw))


def kimi_subspace() -> Any:
    """The Kimi K2 co-design study on 2 GPU counts, 6 designs (``codesign-n3-slice``) and
    shorter lists of stage splits, micro-batches and context splits: small enough to
    enumerate."""
    return case_mod.load(KIMI, ["codesign.design=codesign-n3-slice", "cluster.gpus=[4096,8192]",
                                "parallelism.virtual_stages=[1,2]",
                                "parallelism.micro_batch=[1,2]", "parallelism.cp=[1,2]"])


#: label, case, large (skipped by --quick), enumerable
ROWS: list[tuple[str, Any, bool, bool]] = [
    ("gpt-1.7b, 32 A100, tp/pp/mb choices", lambda: case(
        "gpt-1.7b", "a100-80gb", "dgx-a100", 32, 512,
        {"tp": [1, 2, 4, 8], "pp": [1, 2, 4], "micro_batch": [1, 2, 4, 8, 16],
         "recompute": ["selective", "full"], "zero": [0, 1]}), False, True),
    ("gpt3-175b, 1024 A100, full space", lambda: case(
        "gpt3-175b", "a100-80gb", "dgx-a100", 1024, 1536), False, True),
    ("gpt3-175b, 4096 A100, full space", lambda: case(
        "gpt3-175b", "a100-80gb", "dgx-a100", 4096, 1536), False, True),
    ("llama3-70b, 4 GPU types x 2 networks x 6 sizes", lambda: case(
        "llama3-70b", ["a100-80gb", "h100-sxm", "h200-sxm", "b200"], ["dgx-a100", "dgx-h100"],
        [256, 512, 1024, 2048, 4096, 8192], 1024), True, True),
    ("llama3-70b, 81 chiplet designs x 4 sizes, capex", lambda: case(
        "llama3-70b", "h100-sxm", "dgx-h100", [1024, 2048, 4096, 8192], 1024,
        codesign={"design": "codesign-n5", "capex_budget": "150e6 USD"}), True, True),
    ("kimi-k2 1T MoE co-design, sub-space", kimi_subspace, True, True),
    ("kimi-k2 1T MoE co-design (study), 500M USD", lambda: case_mod.load(KIMI), True, False),
]


def main() -> None:
    quick = "--quick" in sys.argv
    header = (f"{'problem':46s} {'space':>9s} {'systems':>7s} {'valid':>9s} {'engine':>9s} "
              f"{'build s':>8s} {'solve s':>8s} {'objective':>12s} {'equal':>8s}")
    print(header)
    print("-" * len(header))
    for label, make, large, enumerable in ROWS:
        if quick and large:
            continue
        t0 = time.perf_counter()
        problem = build_problem(make())
        build_s = time.perf_counter() - t0
        valid = f"{len(problem.valid()):9.2e}" if enumerable else f"{'--':>9s}"
        reference = None
        engines = [EnumerateEngine()] if enumerable else []
        for engine in [*engines, BoundEngine(), MilpEngine()]:
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
            elif reference is None:
                # Not enumerable: the answer re-evaluated on its system must be the value.
                again = full_values(problem, decision_codes(result.config),
                                    result.system_index)
                equal = "re-eval" if again[problem.quantity] == value else "NO"
            else:
                equal = "yes" if abs(value - reference) <= 1e-9 * abs(reference) else "NO"
            print(f"{label:46s} {problem.space.size:9.2e} {len(problem.space.systems):7d} "
                  f"{valid} {engine.name:>9s} {build_s:8.2f} {solve_s:8.2f} {value:12.6g} "
                  f"{equal:>8s}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
