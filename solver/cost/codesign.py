"""Hardware-software co-design: designed accelerators and cluster sizes as systems of a search.

A training case with a ``[codesign]`` section names a cost case (``cases/designs``): its
``[design]`` choices (node, compute chiplets, chiplet area, HBM stacks, scale-up links) and its
``[system]`` fabric and datacenter. Every design x network x GPU count of the case is priced by
the cluster formulation (formulations/system.py over formulations/accelerator.py) and becomes
one *system* of the training search:

* its hardware is the designed accelerator (peak, HBM capacity and bandwidth, power, price),
  with the software-stack efficiencies of the case's hardware entry (the reference part);
* its scale-up link bandwidth is the design's ``links x link bandwidth``;
* its GPU count is fixed (the bill of materials, and so the capex, depends on it);
* its price per GPU-second is the owned cluster's cost rate (amortised capex, energy,
  operations) over its GPUs, so the ``cost`` objective is the cost of the run on owned
  hardware.

Systems that cannot be built (a die beyond the reticle, no room for logic, a carrier too
large, a fabric beyond three tiers) are dropped with a count; the capital budget and the
facility power limit drop the systems above them. Both limits depend on the system only, so
dropping is exact: the search then chooses among the rest jointly with the parallel split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case
from perfcost.solver.case.sections import NetworkSection
from perfcost.solver.problem import specs as fixed
from perfcost.solver.problem.search import SearchProblem, search_problem
from perfcost.solver.problem.space import System

if TYPE_CHECKING:
    from perfcost.solver.cost.case import CostCase


@dataclass(frozen=True)
class DesignedSystem:
    """One design x network x GPU count, priced, with the specs the training model runs on."""

    design: dict[str, float]
    gpus: int
    network: str
    values: dict[str, float]
    specs: fixed.Specs
    system: System


@dataclass
class Codesign:
    """The systems a co-design case offers the search, and what was dropped and why."""

    cost_case: CostCase
    systems: list[DesignedSystem]
    #: Every design x network x GPU count of the case, buildable or not.
    considered: int
    notes: list[str] = field(default_factory=list)


#: Knobs of a design in the order a label shows them.
LABEL_KNOBS = ("compute_chiplets", "chiplet_area", "hbm_stacks", "scale_up_links")


def design_label(node: str, config: dict[str, float]) -> str:
    """A short name for a design: ``n5 2x440mm2 6HBM 18L``."""
    return (f"{node} {round(config['compute_chiplets'])}x{config['chiplet_area']:g}mm2 "
            f"{round(config['hbm_stacks'])}HBM {round(config['scale_up_links'])}L")


def _networks(case: Case) -> list[NetworkSection]:
    return case.network if isinstance(case.network, list) else [case.network]


def _gpus(case: Case) -> list[int]:
    g = case.cluster.gpus
    if g is None:
        raise CaseError("cluster.gpus", None, "missing: co-design needs the GPU counts to price")
    return sorted(set(g)) if isinstance(g, list) else [g]


def expand(case: Case) -> Codesign:
    """Price every design x network x GPU count of a co-design case; keep those that can be
    built and meet the capital budget and power limit."""
    from perfcost.formulations import accelerator
    from perfcost.formulations import system as system_mod
    from perfcost.solver.cost import case as cost_case
    from perfcost.solver.cost import price as cost

    section = case.codesign
    if section is None:
        raise CaseError("codesign", None, "expected a [codesign] section")
    cc = cost_case.load(section.design)
    if cc.system is None:
        raise CaseError("codesign.design", section.design,
                        "expected a cost case with a [system] table (fabric and datacenter)")
    inputs = cost.accelerator_inputs(cc.design)
    node = cc.design.technology.name
    gpus = _gpus(case)
    tokens = case.training.tokens if case.training is not None else 1.0
    systems: list[DesignedSystem] = []
    considered = 0
    unbuildable: dict[str, int] = {}
    over_budget: list[tuple[float, str]] = []
    over_power: list[tuple[float, str]] = []
    priced: list[tuple[float, float, str]] = []
    for net in _networks(case):
        update = {"network": net, "accelerators": gpus, "scale_up_size": None,
                  "oversubscription": None}
        cc_net = cost.with_network_defaults(cc.model_copy(update={
            "system": cc.system.model_copy(update=update)}))
        formulation = system_mod.build_cluster(
            inputs, cost.fabric_spec(cc_net.system), cost.datacenter_spec(cc_net.system),
            system_mod.RunSpec(tokens=tokens, run_time=1.0))
        configs = cost.configurations(cc_net)
        values = cost.evaluate_configurations(formulation, configs)
        # The case's hardware entry is the reference part whose software-stack efficiencies
        # every design inherits.
        single = case.model_copy(update={"network": net, "hardware": (
            case.hardware[0] if isinstance(case.hardware, list) else case.hardware)})
        net_specs = fixed.specs(single)
        reference = net_specs.hardware
        for config, v in zip(configs, values, strict=True):
            considered += 1
            problem = cost.why_unbuildable(cc_net, config, v)
            if problem is not None:
                short = problem[3]
                unbuildable[short] = unbuildable.get(short, 0) + 1
                continue
            n = round(config["accelerators"])
            label = design_label(node, config)
            where = f"{label} x {n} on {net.name}"
            priced.append((v["capex"], v["facility_power"], where))
            if section.capex_budget is not None and v["capex"] > section.capex_budget:
                over_budget.append((v["capex"], where))
                continue
            if section.power_limit is not None and v["facility_power"] > section.power_limit:
                over_power.append((v["facility_power"], where))
                continue
            hw = accelerator.hardware_spec(label, v, reference)
            up = dataclasses.replace(net_specs.network.scale_up,
                                     bandwidth=v["scale_up_bandwidth"])
            specs = dataclasses.replace(
                net_specs, hardware=hw,
                network=dataclasses.replace(net_specs.network, scale_up=up),
                training=dataclasses.replace(net_specs.training,
                                             gpu_hour_price=v["owned_cost_rate"] / n))
            systems.append(DesignedSystem(
                {k: config[k] for k in LABEL_KNOBS}, n, net.name, v, specs,
                System(label, net.name, net.scale_up.size or 1, hw.hbm_capacity, gpus=n)))
    notes = [f"co-design: {considered} design x network x GPU-count systems priced "
             f"({cc.name or section.design}); {len(systems)} kept"]
    for why, count in sorted(unbuildable.items()):
        notes.append(f"co-design: {count} dropped ({why})")
    if over_budget:
        notes.append(f"co-design: {len(over_budget)} dropped above the capex budget "
                     f"{section.capex_budget:,.0f} USD")
    if over_power:
        notes.append(f"co-design: {len(over_power)} dropped above the power limit "
                     f"{section.power_limit / 1e6:,.3g} MW")
    if not systems:
        _no_system_left(section, priced)
        raise CaseError("codesign.design", section.design,
                        "expected at least one buildable design: "
                        + "; ".join(f"{c} {why}" for why, c in unbuildable.items()))
    return Codesign(cc, systems, considered, notes)


def _no_system_left(section: Any, priced: list[tuple[float, float, str]]) -> None:
    """Raise the error that says which limit leaves no buildable system, and by how much."""
    if not priced:
        return
    budget, power = section.capex_budget, section.power_limit
    capex, _p, where = min(priced)
    least_power, _c, where_power = min((p, c, w) for c, p, w in priced)
    if power is not None and least_power > power:
        raise CaseError("codesign.power_limit", f"{power:,.0f} W",
                        f"expected at least {least_power:,.0f} W, the facility power of the "
                        f"least power-hungry buildable system ({where_power})")
    if budget is not None and capex > budget:
        raise CaseError("codesign.capex_budget", f"{budget:,.0f} USD",
                        f"expected at least {capex:,.0f} USD, the capex of the cheapest "
                        f"buildable system ({where})")
    within = [(c, w) for c, p, w in priced if p <= power]
    cheapest, where_both = min(within)
    raise CaseError("codesign.capex_budget", f"{budget:,.0f} USD",
                    f"expected at least {cheapest:,.0f} USD, the capex of the cheapest "
                    f"system within the power limit of {power:,.0f} W ({where_both})")


#: Quantities of the chosen design and cluster that solve reports, with their units.
SUMMARY_UNITS: dict[str, str] = {
    "peak_flops": "FLOP/s", "hbm_capacity": "B", "hbm_bandwidth": "B/s",
    "scale_up_bandwidth": "B/s", "power": "W", "unit_cost": "USD", "price": "USD",
    "capex": "USD", "facility_power": "W", "owned_cost_per_accelerator_hour": "USD",
}


def summary(problem: Any, index: int) -> dict[str, Any]:
    """The design, GPU count and priced cluster of system ``index`` (SI units)."""
    d = problem.codesign.systems[index]
    return {"design": {"technology": problem.codesign.cost_case.design.technology.name,
                       **{k: (round(v) if k != "chiplet_area" else v)
                          for k, v in d.design.items()}},
            "gpus": d.gpus, "network": d.network,
            **{k: d.values[k] for k in SUMMARY_UNITS if k in d.values}}


#: Seconds per hour (prices per GPU-hour are SI prices per GPU-second times this).
SECONDS_PER_HOUR = 3600.0


def alike_price_warning(case: Case) -> str | None:
    """A warning when different GPUs of a case's search cost the same per GPU-hour: the cost
    objective then ranks systems by GPU-hours alone, so "cheapest" is "fewest GPU-seconds"
    whatever the parts cost. None when the prices differ, or there is one GPU type."""
    if case.codesign is not None:
        return None  # designed parts are priced by their own cluster's owned cost rate
    hardware = case.hardware if isinstance(case.hardware, list) else [case.hardware]
    override = case.cluster.gpu_hour_price
    prices = {h.name: (h.gpu_hour_price if override is None else override) for h in hardware}
    by_price: dict[float, list[str]] = {}
    for name, price in prices.items():
        if price > 0:
            by_price.setdefault(price, []).append(name)
    alike = {p: names for p, names in by_price.items() if len(names) > 1}
    if not alike:
        return None
    price, names = next(iter(alike.items()))
    per_hour = f"{price * SECONDS_PER_HOUR:.4g} USD per GPU-hour"
    if override is not None:
        own = ", ".join(f"{h.name} {h.gpu_hour_price * SECONDS_PER_HOUR:.4g}"
                        if h.gpu_hour_price > 0 else f"{h.name} none" for h in hardware)
        why = (f"cluster.gpu_hour_price overrides the entries' own prices (USD per GPU-hour: "
               f"{own}); remove it to price each GPU from its hardware entry")
    else:
        why = "their hardware entries give the same gpu_hour_price"
    return (f"warning: {', '.join(names)} are priced alike at {per_hour}: {why}; the cost "
            "objective then ranks by GPU-hours alone")


def build_problem(case: Case, objective: str | None = None) -> SearchProblem:
    """The search problem of ``case``: over its hardware and network entries, or, for a
    co-design case, over the accelerators its design space builds (:func:`expand`). A case
    that prices different GPUs alike gets a warning among its notes."""
    if case.codesign is None:
        problem = search_problem(case, objective)
    else:
        problem = search_problem(case, objective, expand(case))
    warning = alike_price_warning(case)
    if warning is not None:
        problem.notes.insert(0, warning)
    return problem
