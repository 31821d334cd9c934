"""A cluster's bill of materials, power, total cost of ownership and cost per training run.

**Scale-out fabric.** A folded-Clos (fat-tree) of switches with ``k`` ports joins ``E``
endpoints (NIC ports). A leaf gives ``k_d = k o / (1 + o)`` ports to endpoints and the rest up
(oversubscription ``o``, 1 = non-blocking). One tier serves ``k`` endpoints, two tiers ``k k_d``
(every spine port reaches a different leaf), three tiers ``k^2 k_d / 2`` (pods of ``k/2`` leaves
under ``k/2`` aggregation switches) -- for ``o = 1``: ``k``, ``k^2/2``, ``k^3/4``, the counts of
Al-Fares, Loukissas & Vahdat, "A Scalable, Commodity Data Center Network Architecture",
SIGCOMM 2008. With ``U = ceil(E / k_d) (k - k_d)`` uplinks out of the leaves:

    tiers 1: ceil(E / k) switches, no switch-to-switch links
    tiers 2: ceil(E / k_d) leaves + ceil(U / k) spines; U links
    tiers 3: ceil(E / k_d) leaves + ceil(2 U / k) aggregation + ceil(U / k) cores; 2 U links

A rail-optimised fabric (one leaf per rail) has the same counts. Endpoint-to-leaf links are
copper (in-rack reach); switch-to-switch links are optical (two transceivers and a fibre).

**Scale-up domain.** ``l`` links per accelerator into switches of radix ``k_u``:
``ceil(S l / k_u)`` switches per domain of ``S`` accelerators (NVSwitch-like).

**Power and money.** IT power ``N (P_acc u + P_host) + switches P_sw + NICs P_nic +
transceivers P_x``, facility power = IT power x PUE; energy at a price per joule.
Capital is amortised linearly over ``T_a``; yearly operations (staff, maintenance) are a
fraction of capital. A run of duration ``T`` on owned hardware costs
``T (capex / T_a + opex rate)``; rented, ``N T c_gpu``. Cost per token = run cost / tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import accelerator
from .accelerator import AcceleratorInputs
from .core import Decision, Formulation, ParameterSet

#: Seconds in a (Julian) year and in an hour, for yearly and hourly rates.
SECONDS_PER_YEAR = 365.25 * 86400
SECONDS_PER_HOUR = 3600
#: Tiers of fat-tree this model writes out; larger clusters need a 4th tier (an error).
MAX_TIERS = 3
#: Transceivers per optical link: one at each end.
TRANSCEIVERS_PER_LINK = 2


@dataclass(frozen=True)
class FabricBomSpec:
    """Prices and powers of the scale-out and scale-up parts."""

    switch_radix: int  # ports per scale-out switch
    switch_price: float  # USD
    switch_power: float  # W
    oversubscription: float  # leaf down/up ratio, 1 = non-blocking
    nics_per_accelerator: float
    nic_price: float  # USD
    nic_power: float  # W
    copper_cable_price: float  # USD per endpoint-to-leaf link
    transceiver_price: float  # USD
    transceiver_power: float  # W
    fibre_price: float  # USD per switch-to-switch link
    scale_up_switch_radix: int  # links per scale-up switch
    scale_up_switch_price: float  # USD
    scale_up_switch_power: float  # W


@dataclass(frozen=True)
class DatacenterSpec:
    """Hosting, power, money and time."""

    host_price: float  # USD per accelerator: CPU, DRAM, board, chassis share
    host_power: float  # W per accelerator
    utilisation: float  # average accelerator power / TDP while training
    pue: float  # facility power / IT power
    energy_price: float  # USD per J
    amortisation: float  # s over which capital is written off
    operations_fraction: float  # yearly operations cost / capital
    rental_price: float  # USD per accelerator-second (rental alternative)


#: Cluster decisions (the lead's co-design may search them).
CLUSTER_DECISIONS: dict[str, tuple[str, str]] = {
    "accelerators": ("N", "accelerators in the cluster"),
    "scale_up_size": ("S", "accelerators per scale-up domain"),
}


def cluster_decisions() -> dict[str, Decision]:
    return {name: Decision(sp.Symbol(latex, integer=True, positive=True), doc)
            for name, (latex, doc) in CLUSTER_DECISIONS.items()}


def fat_tree_capacity(tiers: int, radix: sp.Expr, down: sp.Expr) -> sp.Expr:
    """Endpoints a fat-tree of ``tiers`` tiers serves (``down`` leaf ports to endpoints)."""
    if tiers == 1:
        return radix
    if tiers == 2:
        return radix * down
    return radix**2 * down / 2


@dataclass(frozen=True)
class Fabric:
    """Switch, link and tier counts of a fat-tree for ``endpoints``."""

    tiers: sp.Expr
    switches: sp.Expr
    copper_links: sp.Expr
    optical_links: sp.Expr


def fat_tree(endpoints: sp.Expr, radix: sp.Expr, oversubscription: sp.Expr) -> Fabric:
    """The smallest fat-tree (1 to 3 tiers) that serves ``endpoints``."""
    down = radix * oversubscription / (1 + oversubscription)
    leaves = sp.ceiling(endpoints / down)
    uplinks = leaves * (radix - down)
    counts = {
        1: (sp.ceiling(endpoints / radix), sp.Integer(0)),
        2: (leaves + sp.ceiling(uplinks / radix), uplinks),
        3: (leaves + sp.ceiling(2 * uplinks / radix) + sp.ceiling(uplinks / radix),
            2 * uplinks),
    }
    pieces_t, pieces_s, pieces_o = [], [], []
    for tiers in range(1, MAX_TIERS + 1):
        fits = endpoints <= fat_tree_capacity(tiers, radix, down)
        pieces_t.append((sp.Integer(tiers), fits))
        pieces_s.append((counts[tiers][0], fits))
        pieces_o.append((counts[tiers][1], fits))
    # Beyond three tiers: NaN, which the caller reports as too large a cluster.
    tail = (sp.nan, True)
    return Fabric(sp.Piecewise(*pieces_t, tail), sp.Piecewise(*pieces_s, tail), endpoints,
                  sp.Piecewise(*pieces_o, tail))


def fabric_symbols(ps: ParameterSet, bom: FabricBomSpec) -> dict[str, sp.Expr]:
    add = ps.add
    return {
        "k": add("switch_radix", bom.switch_radix, "1", "ports per scale-out switch",
                 latex="k"),
        "C_sw": add("switch_price", bom.switch_price, "USD", "scale-out switch price",
                    latex="C_sw"),
        "P_sw": add("switch_power", bom.switch_power, "W", "scale-out switch power",
                    latex="P_sw"),
        "o": add("oversubscription", bom.oversubscription, "1",
                 "leaf down/up port ratio", latex="o"),
        "nic": add("nics_per_accelerator", bom.nics_per_accelerator, "1",
                   "scale-out NIC ports per accelerator", latex="n_nic"),
        "C_nic": add("nic_price", bom.nic_price, "USD", "NIC price", latex="C_nic"),
        "P_nic": add("nic_power", bom.nic_power, "W", "NIC power", latex="P_nic"),
        "C_cu": add("copper_cable_price", bom.copper_cable_price, "USD",
                    "copper cable per endpoint link", latex="C_cu"),
        "C_x": add("transceiver_price", bom.transceiver_price, "USD",
                   "optical transceiver price", latex="C_x"),
        "P_x": add("transceiver_power", bom.transceiver_power, "W",
                   "optical transceiver power", latex="P_x"),
        "C_f": add("fibre_price", bom.fibre_price, "USD", "fibre per optical link",
                   latex="C_f"),
        "k_u": add("scale_up_switch_radix", bom.scale_up_switch_radix, "1",
                   "links per scale-up switch", latex="k_u"),
        "C_usw": add("scale_up_switch_price", bom.scale_up_switch_price, "USD",
                     "scale-up switch price", latex="C_usw"),
        "P_usw": add("scale_up_switch_power", bom.scale_up_switch_power, "W",
                     "scale-up switch power", latex="P_usw"),
    }


def datacenter_symbols(ps: ParameterSet, dc: DatacenterSpec) -> dict[str, sp.Expr]:
    add = ps.add
    return {
        "C_host": add("host_price", dc.host_price, "USD", "host share per accelerator",
                      latex="C_host"),
        "P_host": add("host_power", dc.host_power, "W", "host power per accelerator",
                      latex="P_host"),
        "u": add("utilisation", dc.utilisation, "1", "average power over TDP", latex="u"),
        "pue": add("pue", dc.pue, "1", "power usage effectiveness", latex="PUE"),
        "c_e": add("energy_price", dc.energy_price, "USD/J", "energy price", latex="c_E"),
        "T_a": add("amortisation", dc.amortisation, "s", "capital write-off period",
                   latex="T_a"),
        "f_ops": add("operations_fraction", dc.operations_fraction, "1",
                     "yearly operations cost over capital", latex="f_ops"),
        "c_r": add("rental_price", dc.rental_price, "USD/s",
                   "rental price per accelerator-second", latex="c_r"),
    }


def cluster_quantities(f: dict[str, sp.Expr], d: dict[str, sp.Expr], accelerators: sp.Expr,
                       scale_up_size: sp.Expr, links: sp.Expr, unit_price: sp.Expr,
                       unit_power: sp.Expr, run_time: sp.Expr,
                       tokens: sp.Expr) -> dict[str, sp.Expr]:
    """Bill of materials, power and money of a cluster of ``accelerators`` accelerators."""
    e: dict[str, sp.Expr] = {}
    n = accelerators
    endpoints = n * f["nic"]
    fabric = fat_tree(endpoints, f["k"], f["o"])
    e["nics"] = endpoints
    e["fabric_tiers"] = fabric.tiers
    e["scale_out_switches"] = fabric.switches
    e["copper_links"] = fabric.copper_links
    e["optical_links"] = fabric.optical_links
    e["transceivers"] = TRANSCEIVERS_PER_LINK * fabric.optical_links
    domains = sp.ceiling(n / scale_up_size)
    e["scale_up_switches"] = domains * sp.ceiling(scale_up_size * links / f["k_u"])
    e["accelerators_capex"] = n * unit_price
    e["hosts_capex"] = n * d["C_host"]
    e["nics_capex"] = endpoints * f["C_nic"]
    e["switches_capex"] = (fabric.switches * f["C_sw"]
                           + e["scale_up_switches"] * f["C_usw"])
    e["cables_capex"] = (fabric.copper_links * f["C_cu"] + fabric.optical_links * f["C_f"]
                         + e["transceivers"] * f["C_x"])
    e["capex"] = (e["accelerators_capex"] + e["hosts_capex"] + e["nics_capex"]
                  + e["switches_capex"] + e["cables_capex"])
    e["it_power"] = (n * (unit_power * d["u"] + d["P_host"]) + endpoints * f["P_nic"]
                     + fabric.switches * f["P_sw"] + e["scale_up_switches"] * f["P_usw"]
                     + e["transceivers"] * f["P_x"])
    e["facility_power"] = e["it_power"] * d["pue"]
    e["energy_cost_rate"] = e["facility_power"] * d["c_e"]
    e["capex_rate"] = e["capex"] / d["T_a"]
    e["operations_rate"] = e["capex"] * d["f_ops"] / SECONDS_PER_YEAR
    e["opex_rate"] = e["energy_cost_rate"] + e["operations_rate"]
    e["owned_cost_rate"] = e["capex_rate"] + e["opex_rate"]
    e["owned_cost_per_accelerator_hour"] = e["owned_cost_rate"] / n * SECONDS_PER_HOUR
    e["yearly_opex"] = e["opex_rate"] * SECONDS_PER_YEAR
    e["run_time"] = run_time
    e["run_energy"] = e["facility_power"] * run_time
    e["run_cost"] = e["owned_cost_rate"] * run_time
    e["run_cost_rental"] = n * d["c_r"] * run_time
    e["cost_per_token"] = e["run_cost"] / tokens
    e["cost_per_token_rental"] = e["run_cost_rental"] / tokens
    return e


SYSTEM_UNITS: dict[str, str] = {
    "nics": "1", "fabric_tiers": "1", "scale_out_switches": "1", "copper_links": "1",
    "optical_links": "1", "transceivers": "1", "scale_up_switches": "1",
    "accelerators_capex": "USD", "hosts_capex": "USD", "nics_capex": "USD",
    "switches_capex": "USD", "cables_capex": "USD", "capex": "USD", "it_power": "W",
    "facility_power": "W", "energy_cost_rate": "USD/s", "capex_rate": "USD/s",
    "operations_rate": "USD/s", "opex_rate": "USD/s", "owned_cost_rate": "USD/s",
    "owned_cost_per_accelerator_hour": "USD", "yearly_opex": "USD", "run_time": "s",
    "run_energy": "J", "run_cost": "USD", "run_cost_rental": "USD", "cost_per_token": "USD",
    "cost_per_token_rental": "USD",
}


@dataclass(frozen=True)
class RunSpec:
    """The training run priced: its tokens and either a duration or the FLOPs and MFU that give
    one (``run_time = flops / (N F_peak mfu)``)."""

    tokens: float
    run_time: float | None = None  # s, e.g. time_to_train of the training model
    flops: float | None = None  # model FLOPs of the whole run
    mfu: float | None = None  # model FLOPs utilisation


def build_cluster(inputs: AcceleratorInputs, bom: FabricBomSpec, dc: DatacenterSpec,
                  run: RunSpec) -> Formulation:
    """Accelerator (formulations.accelerator) and cluster quantities in one formulation, over
    the design knobs and the cluster decisions (accelerators, scale-up domain size)."""
    ps = ParameterSet()
    dec = accelerator.design_decisions() | cluster_decisions()
    e = accelerator.accelerator_quantities(inputs, ps, dec)
    f = fabric_symbols(ps, bom)
    d = datacenter_symbols(ps, dc)
    tokens = ps.add("tokens", run.tokens, "1", "training tokens", latex="D")
    n = dec["accelerators"].symbol
    if run.run_time is not None:
        run_time: sp.Expr = ps.add("run_time", run.run_time, "s", "duration of the run",
                                   latex="T_run")
    elif run.flops is not None and run.mfu is not None:
        flops = ps.add("run_flops", run.flops, "FLOP", "model FLOPs of the run", latex="C")
        mfu = ps.add("mfu", run.mfu, "1", "model FLOPs utilisation", latex="MFU")
        run_time = flops / (n * e["peak_flops"] * mfu)
    else:
        raise ValueError("RunSpec needs run_time, or flops and mfu")
    e |= cluster_quantities(f, d, n, dec["scale_up_size"].symbol,
                            dec["scale_up_links"].symbol, e["price"], e["power"], run_time,
                            tokens)
    units = {**accelerator.ACCELERATOR_UNITS, **SYSTEM_UNITS}
    groups = {
        "capex": ("accelerators_capex", "hosts_capex", "nics_capex", "switches_capex",
                  "cables_capex"),
        "owned_cost_rate": ("capex_rate", "energy_cost_rate", "operations_rate"),
    }
    return Formulation("cluster", e, {k: units[k] for k in e}, {k: "" for k in e}, dec,
                       ps.parameters, groups)
