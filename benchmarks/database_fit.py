"""What the GEMM fit's search length buys and costs (solver.studies.database_fit).

``perfcost calibrate --database`` fits each GEMM table by differential evolution for
``GEMM_GENERATIONS`` generations. This script fits the same tables at several lengths, in one
run, and prints per table and length: the fitted loss (it can only fall as the seeded search
runs longer), the held-out errors of the GEMMs of at least 1 GFLOP (median / 90th percentile),
and the CPU and wall seconds of the fit, with their ratio to the shortest length. Compare
within one run only: the machine is shared.

By default it reads the measured extract in tests/data (no extra needed); ``--database GPU``
reads aiconfigurator-core's full tables (``pip install ".[kernels]"``), as the command does.

    python benchmarks/database_fit.py
    python benchmarks/database_fit.py --database b200_sxm --generations 30,100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from perfcost.solver.case.sections import HardwareSection
from perfcost.solver.cli.calibrate_database import HARDWARE_OF, _entry
from perfcost.solver.studies import database_fit as fitting
from perfcost.solver.studies import kernel_database as kdb

EXTRACT = Path(__file__).parents[1] / "tests" / "data" / "kernel-database-h200_sxm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a GPU of aiconfigurator-core (default: the extract)")
    parser.add_argument("--generations", default=f"30,{fitting.GEMM_GENERATIONS}",
                        help="comma-separated search lengths")
    args = parser.parse_args()
    database = (kdb.read_database(args.database) if args.database
                else kdb.read_extract(EXTRACT))
    _, raw = _entry("hardware", "hardware", HARDWARE_OF[database.gpu], "--hardware")
    machine = fitting.machine_of(HardwareSection.model_validate(raw))
    lengths = [int(g) for g in args.generations.split(",")]
    print(f"{database.gpu}: GEMM fits by search length (held out: GEMMs >= 1 GFLOP)")
    print(f"{'precision':<10} {'generations':>11} {'fitted loss':>11} {'median %':>9} "
          f"{'p90 %':>7} {'CPU s':>7} {'wall s':>7} {'CPU x':>6}")
    for table in (t for t in database.tables if t.kind == "gemm"):
        if machine.peak(table.precision) is None:
            continue
        first_cpu = None
        for generations in lengths:
            cpu, wall = time.process_time(), time.perf_counter()
            fit = fitting.fit_gemm(table, machine, generations=generations,
                                   sm_version=database.sm_version)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            first_cpu = first_cpu or cpu
            errors = np.abs(next(j for j in fit.judged if j.subset == ">= 1 GFLOP").errors)
            print(f"{table.precision:<10} {generations:>11} {fit.loss:>11.4f} "
                  f"{np.median(errors) * 100:>9.2f} {np.quantile(errors, 0.9) * 100:>7.2f} "
                  f"{cpu:>7.1f} {wall:>7.1f} {cpu / first_cpu:>6.2f}")


if __name__ == "__main__":
    main()
