"""What ``perfcost plan`` prints: the purchases, the schedule, utilisation per period, the cost
breakdown and the shadow prices, as JSON (SI units, periods numbered from 1) or rich tables;
and the Gantt chart (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

from typing import Any

from perfcost.solver.fleet.analysis import Shadow
from perfcost.solver.fleet.instance import (
    Fleet,
    Plan,
    costs,
    demand,
    owned,
    power,
    racks,
)


def schedule(fleet: Fleet, plan: Plan) -> list[dict[str, Any]]:
    """One row per workload: what it runs on and when (periods from 1)."""
    rows: list[dict[str, Any]] = []
    for run, choice in zip(fleet.trainings, plan.runs, strict=True):
        if choice is None:
            rows.append({"workload": run.name, "kind": "training", "scheduled": False})
            continue
        opt = run.options[choice[0]]
        rows.append({"workload": run.name, "kind": "training", "scheduled": True,
                     "sku": fleet.skus[opt.sku].name, "gpus": opt.gpus,
                     "start": choice[1] + 1, "finish": choice[1] + opt.periods,
                     "deadline": run.deadline + 1, "time_to_train_s": opt.time_s,
                     "config": opt.config})
    for service, counts in zip(fleet.services, plan.replicas, strict=True):
        per_period = []
        for t in range(fleet.periods):
            used = [{"sku": fleet.skus[opt.sku].name, "gpus_per_replica": opt.gpus,
                     "replicas": counts[o][t], "rate_per_replica": opt.rate,
                     "config": opt.config}
                    for o, opt in enumerate(service.options) if counts[o][t]]
            per_period.append({"period": t + 1, "traffic": service.traffic[t],
                               "served": sum(u["replicas"] * u["rate_per_replica"]
                                             for u in used), "replicas": used})
        rows.append({"workload": service.name, "kind": "serving", "periods": per_period})
    return rows


def utilisation(fleet: Fleet, plan: Plan) -> list[dict[str, Any]]:
    """Per SKU and period: GPUs held by workloads over GPUs owned and rented."""
    need = demand(fleet, plan)
    out = []
    for s, sku in enumerate(fleet.skus):
        for t in range(fleet.periods):
            supply = owned(fleet, s, plan.buy[s], t) + plan.rent[s][t]
            if supply or need[s][t]:
                out.append({"sku": sku.name, "period": t + 1, "used": need[s][t],
                            "owned": owned(fleet, s, plan.buy[s], t),
                            "rented": plan.rent[s][t],
                            "utilisation": need[s][t] / supply if supply else 0.0})
    return out


def to_json(fleet: Fleet, plan: Plan, shadows: list[Shadow] | None,
            size: dict[str, int] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"fleet": fleet.name, "status": plan.status,
                            "objective": fleet.objective, "periods": fleet.periods,
                            "period_s": fleet.period_s, "limits": fleet.limits,
                            "stats": plan.stats}
    if size is not None:
        data["model_size"] = size
    if plan.status != "optimal":
        data["explanation"] = plan.explanation
        return data
    c = costs(fleet, plan.buy, plan.rent)
    data.update({
        "objective_value": plan.objective_value,
        "buy": {sku.name: n for sku, n in zip(fleet.skus, plan.buy, strict=True) if n},
        "rent": {sku.name: row for sku, row in zip(fleet.skus, plan.rent, strict=True)
                 if any(row)},
        "cost_usd": c, "power_w": power(fleet, plan.buy), "racks": racks(fleet, plan.buy),
        "schedule": schedule(fleet, plan), "utilisation": utilisation(fleet, plan)})
    if shadows is not None:
        data["shadow_prices"] = [{"limit": s.name, "unit": s.unit, "value": s.limit,
                                  "used": s.used, "step": s.step, "objective": s.before,
                                  "objective_moved": s.after, "worth_per_unit": s.worth,
                                  "binding": s.binding} for s in shadows]
    return data


def _money(x: float) -> str:
    return f"{x:,.0f}"


def tables(fleet: Fleet, plan: Plan, shadows: list[Shadow] | None) -> list[Any]:
    """Rich tables of a plan (or of its infeasibility)."""
    from rich.table import Table

    out: list[Any] = []
    if plan.status != "optimal":
        t = Table(title=f"{fleet.name}: no plan ({plan.status})")
        t.add_column("why")
        for line in plan.explanation:
            t.add_row(line)
        return [t]
    c = costs(fleet, plan.buy, plan.rent)
    buy = Table(title=f"{fleet.name}: what to buy and rent ({fleet.objective} objective = "
                      f"{plan.objective_value:,.6g})")
    for col in ("SKU", "buy", "rent per period", "purchase USD/GPU", "capex USD"):
        buy.add_column(col, justify="right" if col != "SKU" else "left")
    for sku, n, row in zip(fleet.skus, plan.buy, plan.rent, strict=True):
        if n or any(row):
            buy.add_row(sku.name, str(n), " ".join(str(r) for r in row),
                        _money(sku.purchase), _money(n * sku.purchase))
    out.append(buy)
    sched = Table(title="schedule (periods from 1)")
    for col in ("workload", "SKU", "GPUs", *(str(t + 1) for t in range(fleet.periods))):
        sched.add_column(col)
    for row in schedule(fleet, plan):
        if row["kind"] == "training":
            if not row["scheduled"]:
                sched.add_row(row["workload"], "-", "-", *(["" for _ in range(fleet.periods)]))
                continue
            marks = ["#" if row["start"] <= t + 1 <= row["finish"] else
                     ("|" if t + 1 == row["deadline"] else "") for t in range(fleet.periods)]
            sched.add_row(row["workload"], row["sku"], str(row["gpus"]), *marks)
        else:
            cells = [" ".join(f"{u['replicas']}x{u['gpus_per_replica']}{u['sku']}"
                              for u in p["replicas"]) for p in row["periods"]]
            sched.add_row(row["workload"], "replicas", "", *cells)
    out.append(sched)
    use = Table(title="utilisation per period (GPUs used / owned + rented)")
    use.add_column("SKU")
    for t in range(fleet.periods):
        use.add_column(str(t + 1), justify="right")
    rows = utilisation(fleet, plan)
    for sku in fleet.skus:
        mine = {r["period"]: r for r in rows if r["sku"] == sku.name}
        if mine:
            use.add_row(sku.name, *(f"{mine[t + 1]['used']}/{mine[t + 1]['owned']}+"
                                    f"{mine[t + 1]['rented']}" if t + 1 in mine else ""
                                    for t in range(fleet.periods)))
    out.append(use)
    cost = Table(title="cost over the horizon (USD)")
    cost.add_column("item")
    cost.add_column("USD", justify="right")
    cost.add_column("limit", justify="right")
    for item, limit in (("capex", "capex"), ("operating", None), ("rental", None),
                        ("opex", "opex"), ("total", None)):
        lim = fleet.limits.get(limit) if limit else None
        cost.add_row(item, _money(c[item]), _money(lim) if lim is not None else "")
    cost.add_row("power (MW)", f"{power(fleet, plan.buy) / 1e6:.4g}",
                 f"{fleet.limits['power'] / 1e6:.4g}" if "power" in fleet.limits else "")
    cost.add_row("racks", str(racks(fleet, plan.buy)),
                 f"{fleet.limits['racks']:g}" if "racks" in fleet.limits else "")
    out.append(cost)
    if shadows:
        sp = Table(title="shadow prices: re-solved with each limit moved by one step")
        for col in ("limit", "value", "used", "step", "objective after", "worth per unit",
                    "binding"):
            sp.add_column(col, justify="left" if col == "limit" else "right")
        for s in shadows:
            sp.add_row(s.name, f"{s.limit:,.6g}", f"{s.used:,.6g}", f"{s.step:,.6g} {s.unit}",
                       f"{s.after:,.6g}" if s.after is not None else "infeasible",
                       f"{s.worth:,.6g}" if s.worth is not None else "-",
                       "yes" if s.binding else "no")
        out.append(sp)
    return out


def sweep_table(key: str, rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title=f"cost-capability front over {key}")
    for col in (key, "status", "objective", "total cost USD", "capex USD", "runs done",
                "last finish"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(f"{r['limit']:,.6g}", r["status"],
                  f"{r['objective_value']:,.6g}" if r.get("objective_value") is not None
                  else "-", _money(r["total_cost"]) if "total_cost" in r else "-",
                  _money(r["capex"]) if "capex" in r else "-",
                  str(r.get("runs_done", "-")), str(r.get("last_finish", "-")))
    return t


def gantt(fleet: Fleet, plan: Plan, path: str) -> None:
    """A Gantt chart of the plan: one row per workload, a bar per period it holds GPUs,
    coloured by SKU and labelled with the GPUs it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = schedule(fleet, plan)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(6.0, fleet.periods * 0.9), 1.0 + 0.45 * len(rows)))
    for y, row in enumerate(rows):
        if row["kind"] == "training" and row["scheduled"]:
            s = next(i for i, k in enumerate(fleet.skus) if k.name == row["sku"])
            ax.barh(y, row["finish"] - row["start"] + 1, left=row["start"] - 0.5,
                    color=colours(s % 10), edgecolor="black")
            ax.text(row["start"] - 0.4, y, f"{row['gpus']} {row['sku']}", va="center",
                    fontsize=7)
            ax.plot([row["deadline"] + 0.5] * 2, [y - 0.4, y + 0.4], color="red")
        elif row["kind"] == "serving":
            for p in row["periods"]:
                left = p["period"] - 0.5
                total = sum(u["replicas"] * u["gpus_per_replica"] for u in p["replicas"])
                for u in p["replicas"]:
                    s = next(i for i, k in enumerate(fleet.skus) if k.name == u["sku"])
                    width = u["replicas"] * u["gpus_per_replica"] / total if total else 0
                    ax.barh(y, width, left=left, color=colours(s % 10), edgecolor="black")
                    left += width
                if total:
                    ax.text(p["period"] - 0.45, y, str(total), va="center", fontsize=6)
    ax.set_yticks(range(len(rows)), [r["workload"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0.5, fleet.periods + 0.5)
    ax.set_xticks(range(1, fleet.periods + 1))
    ax.set_xlabel("period (red mark: deadline; serving bars split by the GPUs per SKU)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 10))
               for i in range(len(fleet.skus))]
    ax.legend(handles, [k.name for k in fleet.skus], loc="upper right", fontsize=7)
    ax.set_title(f"{fleet.name}: {fleet.objective} objective")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
