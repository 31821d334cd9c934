"""Sweep scaling: one sweep of CPU-bound points run as ``perfcost sweep --workers N`` for
N = 1, 2, 4 (a local Dask cluster of N processes; 1 runs in the command's own process), with
wall and CPU seconds, the speed-up over one worker, and whether the rows are identical to one
worker's.

    python benchmarks/sweep.py [--points 200] [--workers 1,2,4] [--case NAME --vary SPEC]

The default sweep re-solves a serving study at 200 request rates: each point is an exhaustive
search over colocated and disaggregated deployments (0.3 to 0.5 s of pure Python, the size of
point the sweeps that did not scale had), so the points, not the start-up, dominate. Each row
is one run of the command as a user types it (interpreter start, imports, the cluster's start
and its shutdown included); CPU seconds are the command's and its worker
processes' (children's rusage). A busy machine inflates wall time, not CPU time: compare rows
of one run, and run it on a quiet machine. The disk cache is warmed by one point before the
first row, so no row pays for building the formulation cold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

CASE = "serve-llama3-70b-disagg-wins"
#: Request rates (requests/s) to re-solve at; the count comes from --points.
RATES = "1..40"
#: The command, run by this interpreter (so the benchmark measures this installation).
COMMAND = (sys.executable, "-c", "from perfcost.solver.cli.main import main; main()")


def run(args: list[str]) -> tuple[float, float, list[dict[str, object]]]:
    """Wall seconds, CPU seconds (the command and its children) and the JSON rows."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"perfcost {' '.join(args)} failed: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--case", default=CASE)
    parser.add_argument("--vary", default=None,
                        help="one --vary spec (default: serving.rate=1..40:POINTS)")
    opts = parser.parse_args()
    vary = opts.vary or f"serving.rate={RATES}:{opts.points}"
    base = ["sweep", opts.case, "--vary", vary, "--json", "--quiet"]
    first_value = vary.split("=", 1)[0] + "=1"
    run(["sweep", opts.case, "--vary", first_value, "--json", "--quiet"])  # warm the disk cache
    counts = [int(w) for w in opts.workers.split(",")]
    table = Table(title=f"perfcost sweep {opts.case} --vary {vary} (cores: {os.cpu_count()})",
                  title_justify="left")
    for column in ("workers", "points", "wall s", "CPU s", "speed-up vs 1", "rows as 1 worker"):
        table.add_column(column, justify="right")
    reference: list[dict[str, object]] | None = None
    reference_wall = None
    for n in counts:
        wall, cpu, rows = run([*base, "--workers", str(n)])
        if reference is None:
            reference, reference_wall = rows, wall
        table.add_row(str(n), str(len(rows)), f"{wall:.1f}", f"{cpu:.1f}",
                      f"{reference_wall / wall:.2f}x" if reference_wall else "-",
                      "identical" if rows == reference else "DIFFERENT")
    Console().print(table)


if __name__ == "__main__":
    main()
