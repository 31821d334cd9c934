"""Start-up cost of the command line: CPU seconds (user + system, interpreter start included)
and wall seconds of a few commands, with the disk cache cold (a fresh, empty folder) and warm
(the same command again); then two heavier serving commands, cold.

    python benchmarks/startup.py [--repeat 3] [--perfcost PATH/TO/perfcost]

Each row is the median of ``--repeat`` runs. CPU time is the children's rusage, so a busy
machine inflates wall time more than CPU time; compare rows of one run, not across machines.
``--perfcost`` measures another installation (e.g. an older version in another virtual
environment) with the same commands.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

#: (label, arguments, whether the cache is emptied before each run)
COMMANDS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("perfcost --help", ("--help",), False),
    ("perfcost evaluate gpt3-175b-a100 (cold cache)", ("evaluate", "gpt3-175b-a100"), True),
    ("perfcost evaluate gpt3-175b-a100 (warm cache)", ("evaluate", "gpt3-175b-a100"), False),
    ("perfcost solve gpt3-175b-4096-a100 (cold cache)", ("solve", "gpt3-175b-4096-a100"), True),
    ("perfcost solve gpt3-175b-4096-a100 (warm cache)", ("solve", "gpt3-175b-4096-a100"),
     False),
    # Heavier: a serving formulation compiled, its closed forms printed as C, and a serving
    # optimum's elasticities and stability ranges (re-solves with one parameter moved).
    ("perfcost export serve-llama3.1-70b-eagle-h200 --format c",
     ("export", "serve-llama3.1-70b-eagle-h200", "--format", "c"), True),
    ("perfcost solve serve-llama3-70b-disagg-wins --sensitivities",
     ("solve", "serve-llama3-70b-disagg-wins", "--sensitivities"), True),
)
#: The targets of issue 13, CPU seconds with the cache warm.
TARGETS = {"perfcost --help": 0.3, "perfcost evaluate gpt3-175b-a100 (warm cache)": 0.6,
           "perfcost solve gpt3-175b-4096-a100 (warm cache)": 1.0}


def run_once(executable: str, args: tuple[str, ...], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([executable, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--perfcost", default=shutil.which("perfcost") or "perfcost")
    options = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="perfcost-startup-"))
    env = {**os.environ, "PERFCOST_CACHE_DIR": str(cache), "COLUMNS": "120"}
    width = max(len(label) for label, _args, _cold in COMMANDS)
    print(f"{'command':<{width}} {'CPU s':>7} {'wall s':>7} {'target':>7}")
    try:
        for label, args, cold in COMMANDS:
            samples = []
            for _ in range(options.repeat):
                if cold:
                    shutil.rmtree(cache, ignore_errors=True)
                samples.append(run_once(options.perfcost, args, env))
            cpu = statistics.median(s[0] for s in samples)
            wall = statistics.median(s[1] for s in samples)
            target = TARGETS.get(label)
            mark = "" if target is None else f"<= {target:.1f}" + ("" if cpu <= target else " !")
            print(f"{label:<{width}} {cpu:>7.2f} {wall:>7.2f} {mark:>7}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
