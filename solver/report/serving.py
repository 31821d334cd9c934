"""Tables for people of a serving evaluation or solution (the JSON forms live with them)."""

from __future__ import annotations

from typing import Any

from perfcost.solver.case.units import format_quantity
from perfcost.solver.report.tables import _share
from perfcost.solver.serving.evaluate import ServingEvaluation
from perfcost.solver.serving.search import ServingSolution
from rich.console import Group
from rich.table import Table


def describe(config: dict[str, Any]) -> str:
    """A deployment in one line."""
    ep = f" · ep {config['ep']}" if "ep" in config else ""
    pool = (f"{config['hardware']} tp {config['tp']}{ep} · pp {config['pp']} · "
            f"{config['precision']} · batch {config['batch']}")
    if not config.get("disaggregated"):
        return f"colocated: {pool}"
    pre_ep = f" · ep {config['prefill_ep']}" if "prefill_ep" in config else ""
    prefill = (f"{config['prefill_hardware']} tp {config['prefill_tp']}{pre_ep} · pp "
               f"{config['prefill_pp']} · {config['prefill_precision']}")
    return f"disaggregated: prefill {prefill} | decode {pool}"


def _count(value: float, noun: str) -> str:
    n = round(value)
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ok(flag: bool) -> str:
    return "ok" if flag else "[red]violated"


def _parts(title: str, parts: dict[str, float], total: float) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("time", justify="right")
    table.add_column("share", justify="right")
    top = max(parts, key=lambda k: parts[k]) if parts else ""
    for name, value in parts.items():
        if value <= 0:
            continue
        label = name.split("_step_")[-1].replace("_", " ")
        table.add_row(label, format_quantity(value, "s"), _share(value, total),
                      style="bold" if name == top else "")
    return table


def evaluation(result: ServingEvaluation) -> Group:
    v = result.values
    checks = result.checks()
    title = result.case.name or result.case.model.name
    summary = Table(title=f"{title}: {result.case.model.name} serving", show_header=False,
                    title_justify="left")
    summary.add_column("quantity", style="bold")
    summary.add_column("value", justify="right")
    summary.add_row("deployment", describe(result.config))
    summary.add_row("TTFT", f"{format_quantity(v['ttft'], 's')} (SLO "
                    f"{format_quantity(v['slo_ttft'], 's')}: {_ok(checks['ttft'])})")
    summary.add_row("TPOT", f"{format_quantity(v['tpot'], 's')} (SLO "
                    f"{format_quantity(v['slo_tpot'], 's')}: {_ok(checks['tpot'])})")
    p99 = (f"p50 {format_quantity(v['ttft_p50'], 's')}, p90 "
           f"{format_quantity(v['ttft_p90'], 's')}, p99 {format_quantity(v['ttft_p99'], 's')}")
    if "ttft_p99" in checks:
        p99 += (f" (SLO p99 {format_quantity(v['slo_ttft_p99'], 's')}: "
                f"{_ok(checks['ttft_p99'])})")
    summary.add_row("TTFT with queueing", p99)
    if "tpot_p99" in checks:
        summary.add_row("TPOT p99", f"{format_quantity(v['tpot_p99'], 's')} (SLO p99 "
                        f"{format_quantity(v['slo_tpot_p99'], 's')}: "
                        f"{_ok(checks['tpot_p99'])})")
    summary.add_row("request rate", f"{v['request_rate']:,.3g} requests/s (goodput "
                    f"{v['goodput_requests_per_s']:,.3g} within the TTFT SLO)")
    summary.add_row("end-to-end latency", format_quantity(v["e2e_latency"], "s"))
    summary.add_row("throughput per replica", f"{v['throughput_tokens_per_s']:,.0f} "
                    "output tokens/s")
    summary.add_row("throughput per GPU", f"{v['throughput_per_gpu']:,.1f} output tokens/s")
    gpus = _count(v["gpus"], "GPU")
    if result.disaggregated:
        gpus += (f" ({_count(v['prefill_replicas'], 'prefill replica')}, "
                 f"{_count(v['replicas'], 'decode replica')})")
        summary.add_row("KV transfer", f"{format_quantity(v['kv_transfer'], 's')} "
                        f"({format_quantity(v['kv_transfer_bytes'], 'B')} per request)")
    else:
        gpus += f" ({_count(v['replicas'], 'replica')})"
    summary.add_row("provisioned", gpus)
    if result.disaggregated:
        summary.add_row("busy fraction", f"prefill pool {100 * v['prefill_utilisation']:.0f}%"
                        f", decode pool {100 * v['decode_utilisation']:.0f}%")
    else:
        summary.add_row("busy fraction", f"{100 * v['utilisation']:.0f}%")
    summary.add_row("cost per million tokens",
                    f"{v['cost_per_million_tokens']:.3f} USD (input "
                    f"{v['cost_per_million_input_tokens']:.3f}, output "
                    f"{v['cost_per_million_output_tokens']:.3f})")
    summary.add_row("energy per token", f"{v['energy_per_token']:.3g} J")
    mem = (f"{format_quantity(v['memory_per_gpu'], 'B')} of "
           f"{format_quantity(v['memory_capacity'], 'B')} (KV cache "
           f"{format_quantity(v['kv_cache_bytes'], 'B')}; at most "
           f"{round(v['max_batch'])} sequences)")
    summary.add_row("memory per GPU", mem if checks["memory"] else f"[red]{mem} -- does not fit")
    if not checks["prefill_budget"]:
        summary.add_row("prefill budget", "[red]prompt tokens per step exceed chunk_tokens")
    tables: list[Any] = [summary,
                         _parts("TPOT breakdown (one decode step)", result.tpot_breakdown(),
                                v["tpot"]),
                         _parts("TTFT breakdown", result.ttft_breakdown(), v["ttft"])]
    return Group(*tables)


#: Rows of the Pareto table (evenly spread over the curve; ``--json`` has every point).
PARETO_ROWS = 12


def pareto_table(points: list[dict[str, Any]]) -> Table:
    """The throughput-latency curve: deployments no other beats on both axes."""
    shown = points
    if len(points) > PARETO_ROWS:
        step = (len(points) - 1) / (PARETO_ROWS - 1)
        shown = [points[round(i * step)] for i in range(PARETO_ROWS)]
    table = Table(title=f"throughput-latency Pareto curve ({len(shown)} of {len(points)} "
                  "points; --json has all)", title_justify="left")
    for name in ("tokens/s per GPU", "TPOT p99", "TTFT p99", "requests/s", "deployment"):
        table.add_column(name, justify="left" if name == "deployment" else "right")
    for p in shown:
        table.add_row(f"{p['throughput_per_gpu']:,.1f}", format_quantity(p["tpot_p99_s"], "s"),
                      format_quantity(p["ttft_p99_s"], "s"), f"{p['request_rate']:,.3g}",
                      describe(p["config"]) + (f" · load {p['config']['load']}%"
                                               if "load" in p["config"] else ""))
    return table


def solution(sol: ServingSolution) -> Group:
    head = Table(title=f"serving solve: {sol.status} ({sol.objective}; {sol.evaluated:,} "
                 f"deployments enumerated, {sol.feasible:,} feasible)", show_header=False,
                 title_justify="left")
    head.add_column("k", style="bold")
    head.add_column("v")
    for mode, e in sol.best_by_mode.items():
        head.add_row(f"best {mode}", f"{describe(e.config)}: "
                     f"{e.values['cost_per_million_tokens']:.3f} USD/Mtok, "
                     f"{round(e.values['gpus'])} GPUs")
    parts: list[Any] = [head]
    if sol.best is not None:
        parts.append(evaluation(sol.best))
    if sol.pareto:
        parts.append(pareto_table(sol.pareto))
    if sol.diagnosis is not None:
        d = sol.diagnosis
        diag = Table(title="no deployment meets the SLOs", show_header=False,
                     title_justify="left")
        diag.add_column("k", style="bold")
        diag.add_column("v")
        if d.fits_memory:
            diag.add_row("best TTFT", f"{format_quantity(d.best_ttft, 's')} at "
                         f"{describe(d.best_ttft_config)}; limited by {d.ttft_limited_by}")
            diag.add_row("best TPOT", f"{format_quantity(d.best_tpot, 's')} at "
                         f"{describe(d.best_tpot_config)}; limited by {d.tpot_limited_by}")
        else:
            diag.add_row("limit", d.tpot_limited_by)
        parts.append(diag)
    return Group(*parts)
