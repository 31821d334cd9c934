"""``perfcost calibrate --database GPU``: fit a hardware entry's per-precision rates and a
network's scale-up collectives to NVIDIA's measured kernel database (the optional ``kernels``
extra), and print the residuals on the held-out 30 % of every table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.cli.app import print_json

if TYPE_CHECKING:  # the studies load lazily: the CLI starts without them
    from perfcost.solver.studies.kernel_database import Database

#: The database's GPU names -> the built-in hardware and network entries they calibrate.
HARDWARE_OF = {"a100_sxm": "a100-80gb", "h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm",
               "b200_sxm": "b200", "gb200": "gb200"}
NETWORK_OF = {"a100_sxm": "dgx-a100", "h100_sxm": "dgx-h100", "h200_sxm": "dgx-h200",
              "b200_sxm": "dgx-b200", "gb200": "gb200-nvl72"}


def _entry(folder: str, kind: str, name: str, option: str) -> tuple[str, dict[str, Any]]:
    """Text and parsed TOML of a built-in entry or a TOML file."""
    import tomllib

    from perfcost.solver.case import catalog

    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            return text, tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise CaseError(option, name, f"expected a readable {kind} TOML file: {exc}"
                            ) from None
    raw = catalog.load_entry(folder, name, option)
    return catalog.entries(folder)[name].read_text(encoding="utf-8"), raw


def _write(path: str, text: str, option: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CaseError(option, path, f"expected a writable path: {exc.strerror}") from None


def run(database: str, framework: str, hardware: str | None, output: str | None,
        network: str | None, network_output: str | None, as_json: bool,
        check: str | None = None, quiet: bool = False, kinds: str | None = None,
        floor: bool = False) -> None:
    import tomllib

    from perfcost.solver.case.sections import HardwareSection, NetworkSection
    from perfcost.solver.report.progress import spinner
    from perfcost.solver.studies import calibrate as cal
    from perfcost.solver.studies import database_fit as fitting
    from perfcost.solver.studies import database_toml
    from perfcost.solver.studies import kernel_database as kdb

    chosen = _kinds(kinds, fitting.KIND_GROUPS)
    if output is not None and chosen is not None and "gemm" not in chosen:
        raise CaseError("--kinds", kinds, "expected gemm among the kinds when -o writes the "
                        "hardware entry (its precision tables hang on the GEMM fits)")
    with spinner(f"reading the {database} kernel database", quiet or as_json) as stage:
        data = kdb.read_database(database, framework)
        hardware = hardware or HARDWARE_OF.get(database)
        if hardware is None:
            raise CaseError("--hardware", MISSING, f"expected the hardware entry that "
                            f"database {database} calibrates (no built-in entry matches it)")
        original, raw = _entry("hardware", "hardware", hardware, "--hardware")
        section = HardwareSection.model_validate(raw)
        stage(f"fitting {hardware} to the {database} kernel database")
        machine = fitting.machine_of(section)
        fit = fitting.fit_database(data, machine, kinds=chosen)
    as_of = cal.today()
    text = database_toml.hardware_text(original, fit, as_of)
    HardwareSection.model_validate(tomllib.loads(text))  # the written entry must load again
    if output is not None:
        _write(output, text, "--output")
    if network_output is not None:
        name = network or NETWORK_OF.get(database)
        if name is None:
            raise CaseError("--network", MISSING, "expected the network entry to write into")
        net_text, _ = _entry("networks", "network", name, "--network")
        net_text = database_toml.network_text(net_text, fit, as_of)
        NetworkSection.model_validate(tomllib.loads(net_text))
        _write(network_output, net_text, "--network-output")
    checked = _check(fit, check) if check is not None else None
    floors = remeasured = against = None
    if floor:
        from perfcost.solver.studies import database_floor

        floors = [f.row() for f in database_floor.database_floors(data)]
        others = _other_frameworks(database, data.framework)
        remeasured = [{**judged.row(), "framework": other.framework}
                      for other in others
                      for judged in database_floor.remeasured_floors(data, [other])]
        gemm_params = {f.precision: f.params for f in fit.fits if f.kind == "gemm"}
        # The reference's frameworks are the remeasured rows' of the same precision.
        against = [{**judged.row(), "judged": judged.subset}
                   for judged in database_floor.against_others_floors(data, others, machine,
                                                                      gemm_params)]
    if as_json:
        print_json({"database": data.gpu, "check": checked, "framework": data.framework,
                    "package": f"aiconfigurator-core {data.package_version}",
                    "hardware": section.name, "held_out": fitting.HELD_OUT,
                    "fits": [{"kind": f.kind, "precision": f.precision, "params": f.params,
                              "source": f.source, "fit_rows": f.fit_rows} for f in fit.fits],
                    "residuals": fit.summary(), "skipped": fit.skipped,
                    "floor": floors, "remeasured": remeasured,
                    "against_others": against})
        return
    _print(fit, output, network_output)
    if floors is not None:
        _print_floor(floors, FLOOR_TITLE)
    if remeasured:
        _print_floor(remeasured, REMEASURED_TITLE)
    if against:
        _print_floor(against, AGAINST_OTHERS_TITLE)
    if checked is not None:
        _print_check(checked, check or "")


def _other_frameworks(database: str, framework: str) -> list[Database]:
    """The other frameworks' kernel databases of GPU ``database``, those the package holds."""
    from perfcost.solver.studies import kernel_database as kdb

    out = []
    for other in kdb.FRAMEWORKS:
        if other == framework:
            continue
        try:
            out.append(kdb.read_database(database, other))
        except CaseError:  # the package has no tables of that framework for this GPU
            continue
    return out


def _kinds(text: str | None, known: tuple[str, ...]) -> frozenset[str] | None:
    """The kinds of ``--kinds`` (None: all)."""
    if text is None:
        return None
    chosen = frozenset(k.strip() for k in text.split(","))
    if not chosen or not chosen <= set(known):
        raise CaseError("--kinds", text, f"expected a comma-separated list of {', '.join(known)}")
    return chosen


#: GEMMs of at least this many FLOPs take more than about 15 us on a Hopper GPU, clear of the
#: host dispatch time an eagerly timed call adds (the shared H200 file's calls of 2-9 GFLOP
#: all take about 24 us): the check reports them apart as well.
ABOVE_DISPATCH_FLOPS = 10e9


def _check(fit: Any, path: str) -> dict[str, Any]:
    """Predictions of an independent kernel file (docs/kernels.md) from the database fit."""
    import numpy as np
    from perfcost.solver.studies import calibrate as cal
    from perfcost.solver.studies import database_fit as fitting

    kernels = cal.read_kernels(path)
    flops = {f"{r.m}x{r.n}x{r.k}": r.flops for r in kernels.gemm}
    rows = [{"kind": kind, "shape": shape, "measured_s": measured, "predicted_s": predicted,
             "error": predicted / measured - 1}
            for kind, shape, measured, predicted in fitting.predict_kernel_file(fit, kernels)]
    summary = {}
    gemms = [r for r in rows if r["kind"] == "gemm"]
    for label, chosen in (
            (">= 1 GFLOP GEMMs", [r for r in gemms
                                  if flops[r["shape"]] >= fitting.FIT_MIN_FLOPS]),
            # An eager call's host dispatch sets a floor under a short GEMM's measured time
            # that no GPU model predicts (docs/calibration.md); these GEMMs are clear of it.
            (">= 10 GFLOP GEMMs", [r for r in gemms
                                   if flops[r["shape"]] >= ABOVE_DISPATCH_FLOPS]),
            ("FlashAttention forward", [r for r in rows if r["kind"] == "flash forward"])):
        errors = np.abs([r["error"] for r in chosen])
        if errors.size:
            summary[label] = {"rows": int(errors.size),
                              "median_pct": float(np.median(errors) * 100),
                              "p90_pct": float(np.quantile(errors, 0.9) * 100),
                              "max_pct": float(errors.max() * 100)}
    return {"file": path, "rows": rows, "summary": summary}


def _print_check(checked: dict[str, Any], path: str) -> None:
    from perfcost.solver.report import tables as report
    from rich.table import Table

    table = Table(title=f"{Path(path).name}: predicted from the database fit (not fitted); "
                        "GEMMs at the sustained clock of a GPU kept busy, FlashAttention-2 at "
                        "its published rate")
    for column in ("kind", "shape", "measured", "predicted", "error"):
        table.add_column(column, justify="left" if column in ("kind", "shape") else "right")
    for r in checked["rows"]:
        table.add_row(r["kind"], r["shape"], f"{r['measured_s'] * 1e6:.1f} us",
                      f"{r['predicted_s'] * 1e6:.1f} us", f"{r['error'] * 100:+.1f}%")
    console = report.console()
    console.print(table)
    for label, s in checked["summary"].items():
        console.print(f"{label}: {s['rows']} rows, median {s['median_pct']:.1f} %, "
                      f"p90 {s['p90_pct']:.1f} %, worst {s['max_pct']:.1f} %")


#: Titles of the floor tables ``--floor`` prints, and the column that labels their rows.
FLOOR_TITLE = ("the same held-out GEMMs interpolated from the fitted rows (no model: what a "
               "smooth function of the shape can hardly beat)", "subset")
REMEASURED_TITLE = ("the same held-out GEMMs as another framework's collector measured them "
                    "(the same PyTorch linear, its own cuBLAS build: how far two measurements "
                    "of one operation lie apart)", "framework")
AGAINST_OTHERS_TITLE = ("the same held-out GEMMs, the model's times and the fitted table's "
                        "own, each against the other frameworks' measurements (their "
                        "geometric mean): a model whose misses were the table's scatter "
                        "would lie as close to them as the table does", "judged")


def _print_floor(rows: list[dict[str, Any]], title: tuple[str, str]) -> None:
    """One floor table: a row per judged subset, labelled by the column ``title[1]`` names."""
    from perfcost.solver.report import tables as report
    from rich.table import Table

    heading, label = title
    table = Table(title=heading)
    for column in ("precision", label, "rows", "median", "p90"):
        table.add_column(column, justify="left" if column in ("precision", label)
                         else "right")
    for r in rows:
        table.add_row(r["precision"], r[label], str(r["rows"]), f"{r['median_pct']:.1f}%",
                      f"{r['p90_pct']:.1f}%")
    report.console().print(table)


def _print(fit: Any, output: str | None, network_output: str | None) -> None:
    from perfcost.solver.report import tables as report
    from rich.table import Table

    db = fit.database
    table = Table(title=f"{db.gpu} ({db.framework}, aiconfigurator-core "
                        f"{db.package_version}): errors on the held-out 30 %")
    for column in ("kind", "precision", "subset", "rows", "median", "p90", "max"):
        table.add_column(column, justify="left" if column in ("kind", "precision", "subset")
                         else "right")
    for r in fit.summary():
        table.add_row(r["kind"], r["precision"], r["subset"], str(r["rows"]),
                      f"{r['median_pct']:.1f}%", f"{r['p90_pct']:.1f}%",
                      f"{r['max_pct']:.1f}%")
    params = Table(title="fitted parameters")
    params.add_column("kind")
    params.add_column("precision")
    params.add_column("values")
    for f in fit.fits:
        shown = ", ".join(f"{k}={_show(k, v)}" for k, v in f.params.items())
        params.add_row(f.kind, f.precision, shown)
    console = report.console()
    console.print(table)
    console.print(params)
    for line in fit.skipped:
        console.print(f"skipped {line}")
    for path in (output, network_output):
        if path is not None:
            console.print(f"wrote {path}")


def _show(key: str, value: Any) -> str:
    if key == "ranges":
        return "; ".join(f"{_bytes(r['min_bytes'])}..{_bytes(r['max_bytes'])}: "
                         f"{r['latency'] * 1e6:.2f} us, {r['bandwidth'] / 1e9:.0f} GB/s"
                         for r in value)
    if key == "leave_one_out":
        return " ".join(f"{count}:{error * 100:.1f}%" for count, error in value.items())
    if isinstance(value, float) and ("overhead" in key or key in ("latency", "power_window",
                                                                  "kblock_time", "step_time")):
        return f"{value * 1e6:.2f} us"
    if isinstance(value, float) and (key.endswith("token_time")
                                     or key.startswith("padded_row")):
        return f"{value * 1e9:.2f} ns"
    if isinstance(value, float) and key == "bandwidth":
        return f"{value / 1e9:.0f} GB/s"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _bytes(size: float) -> str:
    """A byte count in the largest binary unit that keeps it at least 1 (like '1.5 MiB')."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size:.0f} B"
