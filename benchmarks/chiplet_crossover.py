"""Chiplets versus one die: where splitting starts to pay, per node and packaging.

Prints, for each process node of the Chiplet Actuary parameter set and each packaging of the
split design, the logic area beyond which n chiplets (each carrying its share of the logic
plus 10 % die-to-die PHY area) cost less to manufacture than one die on an organic substrate,
and the cost ratio split / monolithic at 50 mm^2 and at the reticle limit; then the cost of
800 mm^2 of 5 nm-class logic as 1, 2, 4 and 8 dies.

    python benchmarks/chiplet_crossover.py
"""

from __future__ import annotations

import numpy as np
from perfcost.solver.cost import price as cost

NODES = ["n3", "n5", "n7", "n10", "n14", "n20", "n28", "n40", "n55"]
PACKAGINGS = ["organic", "info", "cowos-s"]
COUNTS = [2, 4]
#: Logic area of the per-count table (mm^2).
LOGIC_AREA = 800.0


def crossover_table() -> None:
    print("| packaging | node | chiplets | crossover (mm^2 of logic) | ratio at 50 mm^2 |"
          " ratio at reticle |")
    print("| --- | --- | --- | --- | --- | --- |")
    for packaging in PACKAGINGS:
        for row in cost.crossover_study(NODES, COUNTS, packaging):
            area = "never" if row.crossover_area is None else f"{row.crossover_area:.0f}"
            print(f"| {packaging} | {row.node} | {row.chiplets} | {area} | "
                  f"{row.ratio_small:.3f} | {row.ratio_large:.3f} |")


def split_table() -> None:
    print(f"\n{LOGIC_AREA:.0f} mm^2 of n5 logic as n dies, manufacturing cost per good package "
          "(USD; one die is on an organic substrate):")
    print("| dies | " + " | ".join(PACKAGINGS) + " |")
    print("| --- |" + " --- |" * len(PACKAGINGS))
    areas = np.array([LOGIC_AREA])
    specs = {p: cost.study_specs("n5", p) for p in PACKAGINGS}
    for k in (1, 2, 4, 8):
        cells = []
        for p in PACKAGINGS:
            s = specs[p]
            mono, split = cost.crossover(s.technology, s.monolithic, s.split, s.memory,
                                         max(k, 2), areas)
            cells.append(f"{(mono if k == 1 else split)[0]:,.0f}")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    crossover_table()
    split_table()
