"""Fleet-planning benchmark: the built-in study (cases/fleets/llm-org-2025: 20 workloads,
6 SKUs including the in-house b200-like design, 12 months) -- option generation, model size,
and the MILP's time (wall and CPU seconds) and branch-and-bound nodes to a proven optimum.

    python benchmarks/plan.py                    # the built-in study
    python benchmarks/plan.py FLEET [FLEET ...]  # other fleets

Wall seconds on a shared machine are noisy; CPU seconds count this process only (HiGHS runs on
one thread here). The MILP solves with relative and absolute gap 0: 'optimal' is a proof.
"""

from __future__ import annotations

import sys
import time

from perfcost.solver.fleet import case as fleet_case
from perfcost.solver.fleet import milp
from perfcost.solver.fleet.options import OptionCache, build_fleet
from rich.console import Console
from rich.table import Table

STUDY = "llm-org-2025"


def measure(name: str) -> dict[str, str]:
    t0, c0 = time.perf_counter(), time.process_time()
    cache = OptionCache()
    fleet = build_fleet(fleet_case.load(name), cache)
    options_s, options_cpu = time.perf_counter() - t0, time.process_time() - c0
    t1 = time.perf_counter()
    model = milp.FleetModel(fleet)
    build_s = time.perf_counter() - t1
    plan = model.solve()
    size = model.size()
    stats = plan.stats
    options = (sum(len(r.options) for r in fleet.trainings)
               + sum(len(s.options) for s in fleet.services))
    return {
        "workloads (training + serving)": f"{len(fleet.trainings)} + {len(fleet.services)}",
        "SKUs / periods": f"{len(fleet.skus)} / {fleet.periods}",
        "options (Pareto) / engine searches": f"{options} / {cache.searches}",
        "option generation wall / CPU s": f"{options_s:.1f} / {options_cpu:.1f}",
        "variables (integer) x rows": f"{size['variables']} ({size['integer_variables']}) x "
                                      f"{size['constraints']}",
        "model build wall s": f"{build_s:.2f}",
        "MILP solve wall / CPU s": f"{stats['wall_s']:.2f} / {stats['cpu_s']:.2f}",
        "branch-and-bound nodes": str(stats["nodes"]),
        "status (gap 0)": plan.status,
        "objective": f"{plan.objective_value:,.0f}" if plan.status == "optimal" else "-"}


def main(names: list[str]) -> None:
    console = Console()
    for name in names:
        table = Table(title=f"fleet MILP (pyomo + HiGHS, gap 0): {name}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for key, value in measure(name).items():
            table.add_row(key, value)
        console.print(table)


if __name__ == "__main__":
    main(sys.argv[1:] or [STUDY])
