"""Tables for people (rich) -- the JSON forms live with the result objects."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from perfcost.solver.case.catalog import Entry
from perfcost.solver.case.units import format_quantity
from perfcost.solver.problem.evaluate import Evaluation
from perfcost.solver.studies.validate import Row, SuiteSummary
from rich.console import Console, Group
from rich.table import Table


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "-"


def evaluation(result: Evaluation) -> Group:
    v = result.values
    title = result.case.name or result.case.model.name
    cfg = result.config
    summary = Table(title=f"{title}: {result.case.model.name} on {round(v['gpus'])} x "
                    f"{result.case.hardware.name}", show_header=False, title_justify="left")
    summary.add_column("quantity", style="bold")
    summary.add_column("value", justify="right")
    config = (f"tp {cfg['tp']} · pp {cfg['pp']} · dp {cfg['dp']} · cp {cfg['cp']} · "
              + (f"ep {cfg['ep']} · " if cfg.get("ep", 1) != 1 else "")
              + f"micro-batch {cfg['micro_batch']} · v {cfg['virtual_stages']}\n"
              f"recompute {cfg['recompute']} · sequence parallel "
              f"{'on' if cfg['sequence_parallel'] else 'off'} · ZeRO {cfg['zero']} · "
              f"placement {cfg['placement']}")
    summary.add_row("configuration", config)
    fw = result.framework
    summary.add_row("framework", fw["name"] if fw["runs"] else
                    f"[red]{fw['name']} does not run this: " + "; ".join(fw["problems"]))
    summary.add_row("micro-batches per iteration", f"{v['micro_batches']:g}")
    summary.add_row("iteration time", format_quantity(v["iteration_time"], "s"))
    summary.add_row("throughput", f"{v['tokens_per_s']:,.0f} tokens/s")
    summary.add_row("model TFLOP/s per GPU", f"{v['model_tflops_per_gpu']:.1f}")
    summary.add_row("hardware TFLOP/s per GPU", f"{v['hardware_tflops_per_gpu']:.1f}")
    summary.add_row("MFU / HFU", f"{100 * v['mfu']:.1f}% / {100 * v['hfu']:.1f}%")
    fits = v["memory_per_gpu"] <= result.memory_capacity
    mem = (f"{format_quantity(v['memory_per_gpu'], 'B')} of "
           f"{format_quantity(result.memory_capacity, 'B')}")
    margin = result.memory_capacity - v["memory_per_gpu"]
    layout = "largest_rank_excess" in result.memory_breakdown()
    summary.add_row("memory per GPU (largest pipeline rank)" if layout
                    else "memory per GPU (first stage)",
                    f"{mem}, {format_quantity(margin, 'B')} to spare (framework reserve "
                    "included)" if fits else f"[red]{mem} -- does not fit")
    if cfg["tp"] > 1:
        tp = result.tp_all_reduce()
        others = ", ".join(f"{k} {format_quantity(t, 's')}"
                           for k, t in tp["alternatives_s"].items() if k != tp["algorithm"])
        summary.add_row("TP all-reduce (fastest)",
                        f"{tp['algorithm']} {format_quantity(tp['time_s'], 's')} ({others})")
    summary.add_row("per layer forward / backward",
                    f"{format_quantity(v['per_layer_forward_time'], 's')} / "
                    f"{format_quantity(v['per_layer_backward_time'], 's')}")
    summary.add_row("time to train", f"{format_quantity(v['time_to_train'], 's')} for "
                    f"{result.case.training.tokens:.3g} tokens")
    if "gpu_hours" in v:
        summary.add_row("GPU-hours", f"{v['gpu_hours']:,.0f}")
    if v["cost"] > 0:
        # One vocabulary (docs/cost.md): a co-designed cluster is owned (its price per
        # GPU-hour is its owned cost rate); a catalogue GPU is rented at its GPU-hour price.
        owned = getattr(result.case, "codesign", None) is not None
        summary.add_row("owned cost of the run" if owned else
                        "rental cost of the run (GPU-hours x price per GPU-hour)",
                        format_quantity(v["cost"], "USD"))

    total = v["iteration_time"]
    breakdown = result.breakdown()
    top = max(breakdown, key=lambda k: breakdown[k])
    times = Table(title="iteration time breakdown", title_justify="left")
    times.add_column("term")
    times.add_column("time", justify="right")
    times.add_column("share", justify="right")
    for name, value in breakdown.items():
        if value <= 0:
            continue
        style = "bold" if name == top else ""
        times.add_row(name.replace("_", " "), format_quantity(value, "s"), _share(value, total),
                      style=style)
    memory = Table(title="memory breakdown (first rank)" if layout
                   else "memory breakdown (first stage)", title_justify="left")
    memory.add_column("term")
    memory.add_column("bytes", justify="right")
    memory.add_column("share", justify="right")
    for name, value in result.memory_breakdown().items():
        memory.add_row(name.replace("_", " "), format_quantity(value, "B"),
                       _share(value, v["memory_per_gpu"]))
    return Group(summary, times, memory)


def _metric_value(value: float, unit: str) -> str:
    if unit == "TFLOP/s":
        return f"{value:.1f} TFLOP/s"
    return format_quantity(value, unit)


def validation(rows: Sequence[Row], summaries: Sequence[SuiteSummary]) -> Group:
    table = Table(title="predictions vs published measurements", title_justify="left")
    for col, justify in (("case", "left"), ("metric", "left"), ("measured", "right"),
                         ("predicted", "right"), ("error", "right"), ("tolerance", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        style = "" if r.ok else "red"
        table.add_row(r.case, r.metric, _metric_value(r.measured, r.unit),
                      _metric_value(r.predicted, r.unit), f"{r.error_pct:+.1f}%",
                      f"±{r.tolerance_pct:g}%", style=style)
    suites = Table(title="suites", title_justify="left")
    for col in ("suite", "cases", "mean |error|", "max |error|", "mean tolerance", "result"):
        suites.add_column(col)
    for s in summaries:
        suites.add_row(s.suite, str(s.cases), f"{s.mean_abs_error_pct:.2f}%",
                       f"{s.max_abs_error_pct:.2f}%", f"{s.mean_tolerance_pct:g}%",
                       "[green]pass" if s.ok else "[red]FAIL")
    return Group(table, suites)


def cases(entries: Sequence[Entry]) -> Table:
    table = Table(title="built-in catalog", title_justify="left")
    table.add_column("kind")
    table.add_column("name", style="bold")
    table.add_column("description")
    for e in entries:
        table.add_row(e.kind, e.name, e.description)
    return table


def console() -> Console:
    # Piped output gets a wide fixed width so tables are not squeezed to 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def solution(sol: Any, comparisons: Sequence[Any] = ()) -> Group:
    """The optimum of ``perfcost solve``: configuration, metrics, constraints, runner-up, and
    the case's ``[[compare]]`` configurations beside it."""
    from perfcost.solver.problem.evaluate import Evaluation
    from perfcost.solver.problem.search import system_case

    r = sol.result
    parts: list[Any] = []
    head = Table(title=f"solve {sol.problem.case.name or ''}: {r.objective} -- {r.status}",
                 show_header=False, title_justify="left")
    head.add_column("item", style="bold")
    head.add_column("value")
    head.add_row("engine", sol.engine_reason)
    head.add_row("search space", f"{r.stats.get('space_size', 0):,} configurations"
                 + (f", {r.stats['candidates']:,} satisfy the structural rules, "
                    f"{r.stats['feasible']:,} also fit" if "candidates" in r.stats else ""))
    if sol.problem.case.training is not None:
        head.add_row("framework", f"{sol.problem.case.training.framework}: only the layouts it "
                     "runs, its memory reserve left free (training.framework)")
    timing = f"build {sol.build_s:.2f} s, solve {r.stats.get('solve_s', 0.0):.2f} s"
    if "exact_values" in r.stats:
        timing += (f" ({r.stats['system_classes']:,} system classes; "
                   f"{r.stats['exact_values']:,} (system, configuration) values computed, "
                   "the rest ruled out by bounds)")
    if "iterations" in r.stats:
        timing += (f" ({r.stats['iterations']} MILP rounds, {r.stats.get('columns', 0)} columns,"
                   f" {r.stats.get('cuts', 0)} cuts)")
    head.add_row("time", timing)
    for note in r.notes:
        head.add_row("note", note)
    parts.append(head)
    if r.status != "optimal":
        why = Table(title="why there is no optimum", show_header=False, title_justify="left")
        why.add_column("reason", style="red")
        for line in r.explanation:
            why.add_row(line)
        parts.append(why)
        return Group(*parts)
    single = system_case(sol.problem, r.system_index)
    parts.append(evaluation(Evaluation(single, r.config, r.values, sol.problem.numeric())))
    if sol.problem.codesign is not None:
        parts.append(codesign(sol.problem, r.system_index))
    cons = Table(title="constraints", title_justify="left")
    for col in ("constraint", "used", "limit", "binding"):
        cons.add_column(col)
    for c in r.constraints:
        gain = ""
        if c.binding and c.better_if_relaxed is not None and r.value:
            gain = f"yes: relaxing it reaches {c.better_if_relaxed / r.value - 1:+.2%}"
        cons.add_row(c.name, format_quantity(c.value, c.unit), format_quantity(c.limit, c.unit),
                     gain or "no")
    parts.append(cons)
    if len(r.top) > 1:
        ranks = Table(title="best configurations", title_justify="left")
        for col in ("#", r.objective, "vs best", "system", "configuration"):
            ranks.add_column(col)
        for i, rk in enumerate(r.top, 1):
            unit = sol.problem.numeric().units.get(sol.problem.quantity, "1")
            ranks.add_row(str(i), format_quantity(rk.objective, unit),
                          f"{rk.objective / r.top[0].objective - 1:+.2%}", rk.system,
                          " ".join(f"{k}={v}" for k, v in rk.config.items()))
        parts.append(ranks)
    if comparisons:
        parts.append(compared(sol, comparisons))
    return Group(*parts)


def codesign(problem: Any, index: int) -> Table:
    """The chosen accelerator design and its priced cluster (solver/cost/codesign.py)."""
    from perfcost.solver.cost.codesign import SUMMARY_UNITS, summary

    data = summary(problem, index)
    table = Table(title="co-design: the chosen accelerator and cluster", show_header=False,
                  title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value", justify="right")
    d = data["design"]
    table.add_row("design", f"{d['technology']}: {d['compute_chiplets']} x "
                  f"{d['chiplet_area']:g} mm^2 compute chiplets, {d['hbm_stacks']} HBM stacks, "
                  f"{d['scale_up_links']} scale-up links")
    table.add_row("cluster", f"{data['gpus']} accelerators on {data['network']}")
    for key, unit in SUMMARY_UNITS.items():
        if key in data:
            table.add_row(key.replace("_", " "), format_quantity(data[key], unit))
    return table


def compared(sol: Any, comparisons: Sequence[Any]) -> Table:
    """The optimum and each compared configuration side by side (solver/studies/compare.py)."""
    r = sol.result
    unit = sol.problem.numeric().units.get(sol.problem.quantity, "1")
    table = Table(title="optimum beside the case's compared configurations",
                  title_justify="left")
    for col in ("", r.objective, "vs best", "MFU", "memory per GPU", "configuration"):
        table.add_column(col)

    def row(name: str, value: float | None, vs: str, values: dict[str, float],
            config: dict[str, Any], style: str = "") -> None:
        mem = format_quantity(values["memory_per_gpu"], "B") if values else "-"
        table.add_row(name, format_quantity(value, unit) if value is not None else "-", vs,
                      f"{100 * values['mfu']:.1f}%" if values else "-", mem,
                      " ".join(f"{k}={v}" for k, v in config.items()), style=style)

    if r.ok:
        row("optimum", r.value, "+0.00%", r.values, r.config, "bold")
    for c in comparisons:
        if c.error:
            table.add_row(c.name, "-", "-", "-", "-", f"[red]{c.error}")
            continue
        failed = [name for name, ok in c.fits.items() if not ok]
        vs = f"{c.vs_best:+.2%}" if c.vs_best is not None else "-"
        name = c.name + (f" (exceeds {', '.join(failed)})" if failed else "")
        row(name, c.objective, vs, c.values, c.config, "red" if failed else "")
    return table


def sensitivities(rows: Sequence[Any], top: int = 10) -> Table:
    """The most sensitive parameters: elasticity, and where the optimum holds (solve)."""
    quantity = rows[0].quantity.replace("_", " ") if rows else ""
    table = Table(title=f"most sensitive parameters: elasticity of {quantity} "
                  "(+1% parameter -> +e% objective)", title_justify="left")
    ranged = any(r.low is not None for r in rows)
    for col in ("parameter", "value", "elasticity", *(("optimum unchanged for",) if ranged
                                                       else ()), "meaning"):
        table.add_column(col, justify="right" if col in ("value", "elasticity") else "left")
    for r in rows[:top]:
        cells = [r.parameter, format_quantity(r.value, r.unit), f"{r.elasticity:+.4f}"]
        if ranged:
            if r.low is None or r.high is None:
                cells.append("-")
            else:
                cells.append(("≤ " if r.low_open else "") + format_quantity(r.low, r.unit)
                             + " .. " + format_quantity(r.high, r.unit)
                             + (" or more" if r.high_open else "")
                             + (" (clipped at the physical limit)"
                                if r.low_clipped or r.high_clipped else ""))
        cells.append(r.doc)
        table.add_row(*cells)
    return table


def collectives(op: str, network: str, ranks: int, rows: Sequence[Sequence[Any]]) -> Table:
    """nccl-tests-like table: one row per size, the predicted (fastest NCCL) algorithm first."""
    table = Table(title=f"{op} on {ranks} ranks of {network} (predicted, nccl-tests columns)",
                  title_justify="left")
    for col in ("size", "algorithm", "level", "time", "algbw", "busbw", "others (busbw)"):
        table.add_column(col, justify="left" if col in ("algorithm", "level", "others (busbw)")
                         else "right")
    for per_size in rows:
        best = per_size[0]
        others = ", ".join(f"{p.algorithm} {p.busbw / 1e9:.1f}" for p in per_size[1:])
        table.add_row(format_quantity(best.size, "B"), best.algorithm, best.level,
                      format_quantity(best.time, "s"), f"{best.algbw / 1e9:.2f} GB/s",
                      f"{best.busbw / 1e9:.2f} GB/s", others)
    return table
