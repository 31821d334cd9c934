"""Sweeps that scale out, and the Pareto front without a plot.

- ``--scheduler`` alone spreads the points in chunks over every worker of a Dask cluster, and
  each worker builds the formulation once however many chunks it takes;
- without dask, ``--workers N`` runs in this process (with a note) and gives the same rows;
- ``--pareto X,Y`` alone prints the front as a table, ``--csv`` writes the front's rows: the
  points no other point beats on both.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import pytest
from perfcost.solver.cli.main import app
from perfcost.solver.studies import sweep as sw
from typer.testing import CliRunner

CASE = "llama3-70b-h100-split"  # an open split: a point is a real search
GRID = ["--vary", "hardware.hbm_bandwidth=1..8:12 TB/s"]


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def serial_rows() -> list[dict[str, object]]:
    code, text = run(["sweep", CASE, *GRID, "--json"])
    assert code == 0, text
    return json.loads(text)


def test_scheduler_alone_spreads_chunks_and_each_worker_builds_once(
        serial_rows: list[dict[str, object]]) -> None:
    import distributed  # the test extra installs it (perfcost[distributed])

    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None, silence_logs=logging.ERROR
                                  ) as cluster, distributed.Client(cluster) as client:
        code, text = run(["sweep", CASE, *GRID, "--scheduler", cluster.scheduler_address,
                          "--json"])
        assert code == 0, text
        assert json.loads(text) == serial_rows
        built = client.run(sw.built_here)
    assert len(built) == 2
    # Both workers took chunks (no --workers needed: the chunks follow the cluster's
    # threads), and each keeps the numeric form of the sweep's one structure in its cache
    # (built, or read from the disk cache, once; its later chunks reuse it) -- the same
    # forms in both, at most one formulation each.
    sizes = list(built.values())
    assert sizes[0] == sizes[1], built
    assert sizes[0]["numeric"] >= 1 and sizes[0]["formulations"] <= 1, built


def test_chunks_cover_every_point_in_order() -> None:
    points = [(str(i),) for i in range(203)]
    for workers in (1, 2, 4, 64):
        parts = sw.chunks(points, workers)
        assert [p for part in parts for p in part] == points
        assert len(parts) <= max(1, workers * sw.CHUNKS_PER_WORKER)
        assert max(map(len, parts)) - min(map(len, parts[:-1] or parts)) <= 1


def test_without_dask_workers_run_in_this_process(serial_rows: list[dict[str, object]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sw, "has_dask", lambda: False)
    result = CliRunner().invoke(app, ["sweep", CASE, *GRID, "--workers", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "note: --workers needs dask" in result.stderr
    assert json.loads(result.stdout) == serial_rows


def dominated(row: dict[str, float], rows: list[dict[str, float]], x: str, y: str) -> bool:
    return any(r[x] <= row[x] and r[y] <= row[y] and (r[x] < row[x] or r[y] < row[y])
               for r in rows)


def test_pareto_alone_prints_the_front_and_writes_it_as_csv(tmp_path: Path) -> None:
    grid = ["--vary", "cluster.gpus=256,512,1024", "--vary", "training.global_batch=512,1024"]
    code, text = run(["sweep", CASE, *grid, "--json"])
    assert code == 0, text
    every = json.loads(text)
    rows = [r for r in every if r["status"] == "optimal"]
    x, y = "cost", "time_to_train"
    front = [r for r in rows if not dominated(r, rows, x, y)]
    # Several feasible points, some dominated: the front is a real choice among them.
    assert len(rows) >= 3 and 0 < len(front) < len(rows)

    code, text = run(["sweep", CASE, *grid, "--pareto", f"{x},{y}", "--csv",
                      str(tmp_path / "front.csv")])
    assert code == 0, text
    assert f"Pareto front of {x} and {y}" in text
    assert f"{len(front)} of {len(every)} points" in text
    with (tmp_path / "front.csv").open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == len(front)
    key = sorted((r[x], r[y]) for r in front)
    assert sorted((float(r[x]), float(r[y])) for r in written) == key
    assert all(math.isfinite(float(r[x])) for r in written)
    # Sorted by the first quantity, as the table shows them.
    assert [float(r[x]) for r in written] == sorted(float(r[x]) for r in written)
