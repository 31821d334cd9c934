"""What-if sweeps: a 100-point sweep of a built-in training case writes CSV and PNG, and gives
identical rows in this process, over two worker processes and on a local Dask cluster; a
serving case sweeps through the serving search, the same rows with two workers."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.main import app
from perfcost.solver.engines.solve import solve_case
from perfcost.solver.export import closed_form as export
from perfcost.solver.studies import sweep as sw
from typer.testing import CliRunner

CASE = "llama3-70b-h100"  # a small space: the split is fixed but for ZeRO, cp and placement
GRID = ["--vary", "hardware.hbm_bandwidth=1..8:10 TB/s",
        "--vary", "training.global_batch=256,512,768,1024,1280,1536,1792,2048,2304,2560"]


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    code, text = run(["sweep", CASE, *GRID, "--csv", str(out / "rows.csv"), "--plot",
                      str(out / "plot.png"), "--quiet"])
    assert code == 0, text
    return out


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_hundred_points_write_csv_and_png(serial: Path) -> None:
    rows = read(serial / "rows.csv")
    assert len(rows) == 100
    assert {r["status"] for r in rows} == {"optimal"}
    png = (serial / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # Every row is the optimum `perfcost solve --set` finds at that point.
    for r in rows[::37]:
        bandwidth = float(r["hardware.hbm_bandwidth"])
        case = case_mod.load(CASE, [f"hardware.hbm_bandwidth='{bandwidth!r} B/s'",
                                    f"training.global_batch={r['training.global_batch']}"])
        result = solve_case(case).result
        assert float(r["value"]) == result.value
        assert r["configuration"] == " ".join(f"{k}={v}" for k, v in result.config.items())
    # More HBM bandwidth never makes the optimum slower (same batch).
    by_batch: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by_batch.setdefault(r["training.global_batch"], []).append(
            (float(r["hardware.hbm_bandwidth"]), float(r["value"])))
    for points in by_batch.values():
        times = [t for _b, t in sorted(points)]
        assert all(a >= b for a, b in itertools.pairwise(times))


def test_two_workers_give_identical_rows(serial: Path, tmp_path: Path) -> None:
    code, text = run(["sweep", CASE, *GRID, "--workers", "2", "--csv",
                      str(tmp_path / "rows.csv"), "--quiet"])
    assert code == 0, text
    assert (tmp_path / "rows.csv").read_text() == (serial / "rows.csv").read_text()


def test_dask_cluster_gives_identical_rows(serial: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="dask[distributed] not installed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        code, text = run(["sweep", CASE, *GRID, "--scheduler", cluster.scheduler_address,
                          "--csv", str(tmp_path / "rows.csv")])
    assert code == 0, text
    assert (tmp_path / "rows.csv").read_text() == (serial / "rows.csv").read_text()


def test_zip_and_pareto(tmp_path: Path) -> None:
    code, text = run(["sweep", CASE, "--vary", "cluster.gpus=256,512", "--vary",
                      "parallelism.dp=8,16", "--zip", "--pareto", "cost,time_to_train",
                      "--plot", str(tmp_path / "front.svg"), "--json", "--quiet"])
    assert code == 0, text
    assert (tmp_path / "front.svg").read_text().lstrip().startswith("<?xml")
    rows = [{"status": "optimal", "cost": c, "time_to_train": t}
            for c, t in ((1.0, 9.0), (2.0, 5.0), (3.0, 6.0), (4.0, 1.0), (2.5, math.nan))]
    assert sw.pareto_front(rows, "cost", "time_to_train") == [0, 1, 3]


def test_ranges_and_lists() -> None:
    (axis,) = sw.parse_vary(["hardware.hbm_bandwidth=2..8:4 TB/s"])
    assert axis.values == ('"2 TB/s"', '"4 TB/s"', '"6 TB/s"', '"8 TB/s"')
    (axis,) = sw.parse_vary(["cluster.gpus=1..1000:4:log"])
    assert [float(v) for v in axis.values] == pytest.approx([1, 10, 100, 1000])
    (axis,) = sw.parse_vary(["cluster.gpus=[256,512],1024"])
    assert axis.values == ("[256,512]", "1024")
    axes = sw.parse_vary(["cluster.gpus=1,2,3", "training.global_batch=4,5"])
    assert len(sw.grid(axes)) == 6
    with pytest.raises(CaseError, match="same number of values"):
        sw.grid(axes, zipped=True)


def test_every_builtin_case_kind_is_swept() -> None:
    """Sweeps re-solve any case of a kind they know; a new kind fails here, loudly."""
    for folder in catalog.CASE_FOLDERS:
        for name in catalog.entries(folder):
            assert export.case_kind(case_mod.load(name)) in export.KINDS, name


@pytest.mark.parametrize(("args", "message"), [
    (["--vary", "hardware.hbm_bandwith=1,2"], "did you mean hardware.hbm_bandwidth"),
    (["--vary", "network.scale_up.bandwidht=1"], "did you mean network.scale_up.bandwidth"),
    (["--vary", "hardware.hbm_bandwidth="], "expected at least one value"),
    (["--vary", "hardware.hbm_bandwidth=,"], "expected at least one value"),
    (["--vary", "hardware.hbm_bandwidth=8..2:0"], "expected 1 to"),
    (["--vary", "hardware.hbm_bandwidth=-1"], "hardware.hbm_bandwidth"),
    (["--vary", "cluster.gpus=512", "--scheduler", "tcp://127.0.0.1:9"],
     "expected a reachable Dask scheduler"),
    (["--vary", "cluster.gpus=512", "--pareto", "cost"], "expected two quantities"),
    # bad input found inside a worker process still ends as one line
    (["--vary", "cluster.gpus=512,1024", "--objective", "speed", "--workers", "2"],
     "expected one of iteration_time"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    code, text = run(["sweep", CASE, *args, "--quiet"])
    assert code == 2, text
    assert message in text
    assert text.count("\n") == 1 and text.startswith("error: ")


SERVE = "serve-llama3-8b-h100"  # two accelerators, two formats, the batch left open
SERVE_GRID = ["--vary", "serving.rate=2.5,5,10,20,40,80", "--vary",
              "serving.slo_tpot='15 ms','30 ms'"]


@pytest.fixture(scope="module")
def serving_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serving-sweep")
    code, text = run(["sweep", SERVE, *SERVE_GRID, "--csv", str(out / "rows.csv"), "--plot",
                      str(out / "plot.png"), "--quiet"])
    assert code == 0, text
    return out


def test_serving_sweep_rows_are_the_serving_optimum(serving_rows: Path) -> None:
    from perfcost.solver.serving.search import solve_serving

    rows = read(serving_rows / "rows.csv")
    assert len(rows) == 12
    png = (serving_rows / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    for r in rows:
        case = case_mod.load(SERVE, [f"serving.rate={r['serving.rate']}",
                                     f"serving.slo_tpot='{r['serving.slo_tpot']} s'"])
        solution = solve_serving(case)
        assert r["status"] == solution.status
        if solution.best is None:
            assert r["value"] == "nan"
            continue
        values = solution.best.values
        assert float(r["value"]) == values["cost_per_million_tokens"]
        assert float(r["ttft"]) == values["ttft"] and float(r["tpot"]) == values["tpot"]
        assert r["configuration"] == " ".join(f"{k}={v}" for k, v in
                                              solution.best.config.items())
        assert float(r["tpot"]) <= float(r["serving.slo_tpot"])
        parts = [float(v) for k, v in r.items() if k.startswith("tpot_") and v]
        assert sum(parts) == pytest.approx(float(r["tpot"]), rel=1e-9)
    # A higher rate never needs fewer GPUs (same SLO).
    for slo in {r["serving.slo_tpot"] for r in rows}:
        gpus = [int(r["gpus"]) for r in rows if r["serving.slo_tpot"] == slo
                and r["status"] == "optimal"]
        assert gpus == sorted(gpus) and len(set(gpus)) > 1


def test_serving_sweep_two_workers_identical(serving_rows: Path, tmp_path: Path) -> None:
    code, text = run(["sweep", SERVE, *SERVE_GRID, "--workers", "2", "--csv",
                      str(tmp_path / "rows.csv"), "--quiet"])
    assert code == 0, text
    assert (tmp_path / "rows.csv").read_text() == (serving_rows / "rows.csv").read_text()


def test_serving_sweep_bad_engine_is_one_line() -> None:
    code, text = run(["sweep", SERVE, "--vary", "serving.rate=5", "--engine", "milp",
                      "--quiet"])
    assert code == 2, text
    assert "expected auto or enumerate for a serving case" in text
    assert text.count("\n") == 1 and text.startswith("error: ")
