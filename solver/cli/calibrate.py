"""``perfcost calibrate``: fit a hardware entry's compute efficiency to kernel timings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.cli.app import JsonOpt, QuietOpt, app, guarded, print_json


@app.command()
@guarded
def calibrate(
    kernels: Annotated[str | None, typer.Argument(
        help="kernel timings (JSON, see docs/kernels.md); or use --database")] = None,
    hardware: Annotated[str | None, typer.Option(
        "--hardware", help="a built-in hardware entry or a hardware TOML file")] = None,
    output: Annotated[str | None, typer.Option(
        "-o", "--output", help="write the fitted hardware TOML here")] = None,
    precision: Annotated[str, typer.Option(help="precision the kernels ran in")] = "bf16",
    kernel_overhead: Annotated[str | None, typer.Option(
        "--kernel-overhead",
        help="back-to-back overhead per kernel (like '2.6 us') from another source, when "
             "the file timed isolated eager calls: the fit then finds their measurement "
             "floor")] = None,
    kernel_overhead_source: Annotated[str, typer.Option(
        "--kernel-overhead-source", help="where --kernel-overhead comes from")] = "",
    database: Annotated[str | None, typer.Option(
        "--database", help="fit to NVIDIA's measured kernel database for this GPU (like "
                           "h100_sxm; needs pip install 'perfcost\\[kernels]')")] = None,
    framework: Annotated[str, typer.Option(
        help="the database's serving framework: trtllm, vllm or sglang")] = "trtllm",
    network: Annotated[str | None, typer.Option(
        "--network", help="with --database: the network entry its collectives calibrate")
    ] = None,
    network_output: Annotated[str | None, typer.Option(
        "--network-output", help="with --database: write the fitted network TOML here")
    ] = None,
    check: Annotated[str | None, typer.Option(
        "--check", help="with --database: predict this kernel file (docs/kernels.md) from "
                        "the fit, without fitting on it")] = None,
    kinds: Annotated[str | None, typer.Option(
        "--kinds", help="with --database: fit only these kinds of table, comma-separated, of "
                        "gemm, prefill, decode, decode_mla, moe, collectives (default: "
                        "all)")] = None,
    floor: Annotated[bool, typer.Option(
        "--floor", help="with --database: also print how closely interpolating each GEMM "
                        "table's fitted rows predicts its held-out rows (what no smooth "
                        "model of the shape can beat) and, for bf16, how far the other "
                        "frameworks' measurements of the same GEMMs lie from the table and "
                        "from the model")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit GEMM, FlashAttention and memory efficiency; print every row's residual."""
    import tomllib

    if database is not None:
        from perfcost.solver.cli import calibrate_database

        calibrate_database.run(database, framework, hardware, output, network,
                               network_output, as_json, check, quiet, kinds, floor)
        return
    if floor:
        raise CaseError("--floor", "true", "expected --database GPU: the floor interpolates "
                        "a measured kernel database")
    if kernels is None:
        raise CaseError("KERNELS", MISSING, "expected a kernel timings file, or --database GPU")
    if hardware is None:
        raise CaseError("--hardware", MISSING, "expected a built-in hardware entry or TOML file")

    from perfcost.solver.case import catalog
    from perfcost.solver.case.sections import HardwareSection
    from perfcost.solver.studies import calibrate as cal

    path = Path(hardware)
    if path.suffix == ".toml" or path.exists():
        try:
            original = path.read_text(encoding="utf-8")
            raw = tomllib.loads(original)
        except (OSError, ValueError) as exc:
            raise CaseError("--hardware", hardware,
                            f"expected a readable hardware TOML file: {exc}") from None
    else:
        raw = catalog.load_entry("hardware", hardware, "--hardware")
        original = catalog.entries("hardware")[hardware].read_text(encoding="utf-8")
    section = HardwareSection.model_validate(raw)
    machine = cal.machine_of(section, precision)
    data = cal.read_kernels(kernels)
    overhead = None if kernel_overhead is None else _duration(kernel_overhead)
    from perfcost.solver.report.progress import spinner

    with spinner(f"fitting {machine.name} to {Path(kernels).name}", quiet or as_json):
        fit = cal.calibrate(data, machine, overhead, kernel_overhead_source)
    as_of = cal.today()
    text = cal.hardware_toml(original, raw, fit, as_of)
    # The written entry must load as a hardware entry again.
    HardwareSection.model_validate(tomllib.loads(text))
    if output is not None:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CaseError("--output", output, f"expected a writable path: {exc.strerror}"
                            ) from None
    if as_json:
        print_json({"hardware": machine.name, "gemm": fit.gemm, "attention": fit.attention,
                     "summary": fit.summary(),
                     "residuals": [{"kind": r.kind, "shape": r.shape, "measured_s": r.measured,
                                    "predicted_s": r.predicted, "error": r.error,
                                    "fitted": r.fitted} for r in fit.residuals]})
        return
    from perfcost.solver.report import tables as report
    from rich.table import Table

    table = Table(title=f"{machine.name}: kernel residuals ({Path(kernels).name})")
    for column in ("kind", "shape", "measured", "predicted", "error"):
        table.add_column(column, justify="left" if column in ("kind", "shape") else "right")
    for r in fit.residuals:
        note = "" if r.fitted else " (not fitted)"
        table.add_row(r.kind + note, r.shape, f"{r.measured * 1e6:.1f} us",
                      f"{r.predicted * 1e6:.1f} us", f"{r.error * 100:+.1f}%")
    params = Table(title="fitted parameters")
    params.add_column("parameter")
    params.add_column("value", justify="right")
    g = fit.gemm
    params.add_row("gemm_tile", f"{int(g['tile_m'])} x {int(g['tile_n'])}")
    params.add_row("matmul_efficiency", f"{g['matmul_efficiency']:.4f}")
    params.add_row("memory_efficiency", f"{g['memory_efficiency']:.4f}")
    params.add_row("kernel_overhead", f"{g['kernel_overhead'] * 1e6:.2f} us")
    params.add_row("measurement_floor", f"{g['measurement_floor'] * 1e6:.2f} us")
    params.add_row("gemm_row_granule", str(cal.ROW_GRANULE))
    params.add_row("wave_overhead", f"{g['wave_overhead'] * 1e6:.3f} us")
    for gen, rates in fit.attention.items():
        params.add_row(f"{gen} forward / backward efficiency",
                       f"{rates['forward']:.4f} / {rates['backward']:.4f}")
        params.add_row(f"{gen} forward / backward tile overhead",
                       f"{rates['forward_tile_overhead'] * 1e6:.2f} / "
                       f"{rates['backward_tile_overhead'] * 1e6:.2f} us")
    console = report.console()
    console.print(table)
    console.print(params)
    console.print(fit.summary_line())
    if output is not None:
        console.print(f"wrote {output}")


def _duration(text: str) -> float:
    """Seconds of a time with units, like '2.6 us' (the case files' unit parser)."""
    from perfcost.solver.case.fields import Duration
    from pydantic import TypeAdapter, ValidationError

    try:
        return float(TypeAdapter(Duration).validate_python(text))
    except ValidationError:
        raise CaseError("--kernel-overhead", text,
                        "expected a time with units, like '2.6 us'") from None
