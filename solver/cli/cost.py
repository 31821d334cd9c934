"""``perfcost cost`` and ``perfcost chiplet-crossover``: what a design costs to make and run."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.app import CaseArg, JsonOpt, app, guarded, print_json

#: Row labels of the breakdown tables.
LABELS: dict[str, str] = {
    "chiplet_area": "die area", "d2d_phy_area": "die-to-die PHY area",
    "dies_per_wafer": "gross dies per wafer", "die_yield": "die yield",
    "raw_die_cost": "raw die", "die_test_cost": "wafer-sort test",
    "test_pass_fraction": "dies passing test", "test_escape_rate": "test escapes",
    "known_good_die_cost": "known-good die", "compute_chiplets": "compute chiplets",
    "silicon_cost": "compute silicon (KGD)", "hbm_stacks": "HBM stacks", "hbm_cost": "HBM",
    "carrier_area": "carrier area", "carrier_yield": "carrier yield",
    "carrier_cost": "carrier (tested)", "substrate_area": "substrate area",
    "substrate_cost": "substrate", "bump_cost": "bumps", "bridge_cost": "bridges",
    "assembly_yield": "assembly yield", "assembly_loss": "assembly loss",
    "manufacturing_cost": "manufacturing cost (per good package)", "chip_nre": "chip NRE",
    "package_nre": "package NRE", "nre_per_unit": "NRE per unit",
    "unit_cost": "unit cost (manufacturing + NRE per unit)",
    "silicon_area": "silicon area", "compute_area": "compute + SRAM area",
    "peak_flops": "peak (bf16 dense)", "sram": "SRAM", "hbm_capacity": "HBM capacity",
    "hbm_peak_bandwidth": "HBM bandwidth (stacks)",
    "hbm_bandwidth": "HBM bandwidth (after die-to-die limit)",
    "scale_up_links": "scale-up links", "scale_up_bandwidth": "scale-up bandwidth",
    "power": "power (TDP)", "price": "purchase price", "accelerators": "accelerators",
    "scale_up_size": "scale-up domain", "fabric_tiers": "fat-tree tiers",
    "scale_out_switches": "scale-out switches", "scale_up_switches": "scale-up switches",
    "nics": "NICs", "copper_links": "copper links", "optical_links": "optical links",
    "transceivers": "transceivers",
    "accelerators_capex": "accelerators (at purchase price)",
    "hosts_capex": "hosts", "nics_capex": "NICs", "switches_capex": "switches",
    "cables_capex": "cables and optics", "capex": "capital (capex)", "it_power": "IT power",
    "facility_power": "facility power (x PUE)", "yearly_opex": "opex per year",
    "owned_cost_per_accelerator_hour": "owned cost per GPU-hour",
    "gpu_hours": "GPU-hours",
    "run_time": "run time", "run_energy": "run energy", "run_cost": "owned cost of the run",
    "run_cost_rental": "rental cost of the run", "cost_per_token": "owned cost per million tokens",
    "cost_per_token_rental": "rental cost per million tokens",
    "training_memory": "training memory per accelerator",
}
TITLES = {"chiplet": "chiplet", "package": "package (per good unit)",
          "accelerator": "accelerator", "cluster": "cluster"}
PER_MILLION = 1e6
#: Column headers of the configuration table.
SHORT = {"compute_chiplets": "chiplets", "chiplet_area": "mm^2 each", "hbm_stacks": "HBM",
         "scale_up_links": "links", "accelerators": "accel.", "scale_up_size": "domain",
         "price": "purchase price", "run_cost": "owned run cost", "run_time": "run time"}


def fmt(value: float, unit: str, name: str = "") -> str:
    """A value with its unit, readable."""
    from perfcost.solver.case.units import format_quantity

    if value != value:  # NaN
        return "-"
    if name.startswith("cost_per_token"):
        return f"{value * PER_MILLION:,.3f} USD"
    if unit == "USD":
        return f"{value:,.2f} USD" if abs(value) < 1e4 else f"{value:,.0f} USD"
    if unit == "mm^2":
        return f"{value:,.1f} mm^2"
    if unit == "1":
        return f"{value:.4g}" if not float(value).is_integer() else f"{value:,.0f}"
    if unit == "J":
        return f"{value / 3.6e9:,.3g} MWh"
    return format_quantity(value, unit)


@app.command()
@guarded
def cost(case: CaseArg, as_json: JsonOpt = False) -> None:
    """Chiplet, package, accelerator and cluster cost of a design (cases/designs/)."""
    from perfcost.solver.cost import price as cost_mod
    from perfcost.solver.cost.case import load

    result = cost_mod.price_case(load(case))
    if as_json:
        print_json(result.to_json())
        return
    from perfcost.solver.report import tables as report
    from rich.table import Table

    console = report.console()
    chosen = result.chosen.values
    for section, names in cost_mod.SECTIONS.items():
        rows = [n for n in names if n in chosen]
        if not rows:
            continue
        table = Table(title=f"{result.case.name or 'design'}: {TITLES[section]}",
                      title_justify="left")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for name in rows:
            label = LABELS.get(name, name)
            if name == "price":
                label += f" (margin {result.pricing()['margin']:.2f})"
            table.add_row(label, fmt(chosen[name], result.unit(name), name))
        console.print(table)
    if len(result.priced) > 1:
        console.print(_alternatives(result))
    if result.training:
        t = result.training
        console.print(f"training model: {t['case']} on the design: iteration "
                      f"{t['iteration_time_s']:.3g} s, MFU {t['mfu']:.3f}, memory "
                      f"{t['memory_per_gpu_bytes'] / 2**30:.1f} GiB per accelerator"
                      f"{'' if t['memory_fits'] else ' (does NOT fit)'}")
    for line in vocabulary(result.pricing()):
        console.print(line)
    for note in result.notes:
        console.print(f"note: {note}")


def vocabulary(pricing: dict[str, Any]) -> list[str]:
    """What each cost word of the tables means, with this design's numbers (docs/cost.md)."""
    usd = lambda x: fmt(x, "USD")  # noqa: E731 -- a local shorthand
    margin = pricing["margin"]
    lines = [
        f"manufacturing cost {usd(pricing['manufacturing_cost'])} per good package; unit cost "
        f"{usd(pricing['unit_cost'])} with the NRE per unit; purchase price "
        f"{usd(pricing['purchase_price'])} = unit cost / (1 - margin), margin {margin:.2f} "
        f"from {pricing['margin_source']}",
    ]
    if "rental_price_per_gpu_hour" in pricing:
        lines.append(
            "owned cost = capex amortised + energy + operations (at the purchase price); "
            "rental cost = GPU-hours x rental price per GPU-hour "
            f"({usd(pricing['rental_price_per_gpu_hour'])})")
    return lines


def _alternatives(result: Any) -> Any:
    from rich.table import Table

    keys = list(result.chosen.config)
    table = Table(title="every configuration", title_justify="left")
    for k in keys:
        table.add_column(SHORT.get(k, k), justify="right")
    extra = [k for k in ("price", "capex", "run_cost", "run_time") if k in result.chosen.values]
    for k in extra:
        table.add_column(SHORT.get(k, k), justify="right")
    table.add_column("")
    for p in result.priced:
        cells = [f"{p.config[k]:g}" for k in keys]
        if p.problem is None:
            cells += [fmt(p.values[k], result.unit(k), k) for k in extra]
            mark = "chosen" if p is result.chosen else ""
        else:
            cells += ["-"] * len(extra)
            mark = f"infeasible: {p.short}"
        table.add_row(*cells, mark)
    return table


@app.command(name="chiplet-crossover")
@guarded
def chiplet_crossover(
    nodes: Annotated[str, typer.Option(help="built-in technology nodes, comma-separated")] = (
        "n3,n5,n7,n10,n14,n20,n28,n40,n55"),
    chiplets: Annotated[str, typer.Option(help="chiplet counts, comma-separated")] = "2,4",
    packaging: Annotated[str, typer.Option(
        help="packaging of the split design (the monolithic die is on 'organic')")] = (
        "organic"),
    as_json: JsonOpt = False,
) -> None:
    """Logic area beyond which splitting a die into chiplets lowers manufacturing cost."""
    from perfcost.solver.cost import price as cost_mod

    names = [n.strip() for n in nodes.split(",") if n.strip()]
    try:
        counts = [int(c) for c in chiplets.split(",") if c.strip()]
    except ValueError:
        raise CaseError("--chiplets", chiplets, "expected integers, like 2,4") from None
    if not names or not counts or any(c < 2 or c > 64 for c in counts):
        raise CaseError("--chiplets", chiplets, "expected chiplet counts from 2 to 64")
    rows = cost_mod.crossover_study(names, counts, packaging)
    if as_json:
        print_json([{"node": r.node, "chiplets": r.chiplets,
                      "crossover_area_mm2": r.crossover_area,
                      "cost_ratio_at_50mm2": r.ratio_small,
                      "cost_ratio_at_reticle": r.ratio_large} for r in rows])
        return
    from perfcost.solver.report import tables as report
    from rich.table import Table

    table = Table(title=f"chiplets on '{packaging}' vs one die on 'organic': manufacturing "
                  "cost", title_justify="left")
    for col in ("node", "chiplets", "crossover (mm^2 of logic)", "cost ratio at 50 mm^2",
                "cost ratio at reticle"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r.node, str(r.chiplets),
                      "never" if r.crossover_area is None else f"{r.crossover_area:.0f}",
                      f"{r.ratio_small:.3f}", f"{r.ratio_large:.3f}")
    report.console().print(table)
