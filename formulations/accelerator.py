"""An accelerator built from chiplets: performance, power and unit cost from five knobs.

A design is a process node (its parameter values), ``n`` compute chiplets of ``A`` mm^2 each,
``m`` HBM stacks and ``l`` scale-up links. Its silicon holds, besides compute and SRAM, the
die-to-die PHYs (``f_d2d / (1 + f_d2d)`` of every chiplet once there are several: PHYs of
``f_d2d`` times the logic they serve, as in Chiplet Actuary, Feng & Ma DAC 2022), one HBM
PHY per stack and one SerDes PHY per link:

    A_logic  = n A (1 - f_d2d / (1 + f_d2d) [n > 1]) - m A_phy,hbm - l A_phy,link
    F_peak   = rho_F A_logic                 (dense FLOP/s per mm^2 of logic, per node)
    SRAM     = rho_S A_logic                 (bytes per mm^2 of logic, per node)
    P        = rho_P n A + m P_hbm           (W per mm^2 of silicon at TDP, per node)
    B_hbm    = min(m B_stack, n^2 B_d2d / (n - 1))   for n > 1, else m B_stack
    B_up     = l B_link

The HBM bound is the die-to-die limit when work crosses chiplets: with memory interleaved over
all stacks, ``(n-1)/n`` of each chiplet's accesses go to stacks beside other chiplets, through
its die-to-die links of ``B_d2d`` (one direction), so the package streams at most
``n B_d2d n/(n-1)`` bytes per second.

The densities are per-node parameters calibrated on shipped parts (their sources are in the
technology files); the unit price is the package's cost (formulations.chiplet) plus the NRE
per unit, marked up by a gross margin: ``price = cost / (1 - margin)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from . import chiplet
from .chiplet import MemoryStackSpec, PackagingSpec, TechnologySpec
from .core import Decision, Formulation, ParameterSet, register
from .specs import HardwareSpec


@dataclass(frozen=True)
class DensitySpec:
    """What a mm^2 of logic at one node delivers (calibrated on a shipped accelerator)."""

    compute_density: float  # dense FLOP/s per mm^2 of logic (the precision of peak_flops)
    sram_density: float  # B per mm^2 of logic
    power_density: float  # W per mm^2 of silicon at TDP
    hbm_phy_area: float  # mm^2 per HBM stack interface
    link_phy_area: float  # mm^2 per scale-up link


@dataclass(frozen=True)
class LinkSpec:
    """One scale-up link (NVLink-, ICI- or UALink-like SerDes bundle)."""

    name: str
    bandwidth: float  # B/s, one direction
    power: float  # W (SerDes and retimers beyond the die's power density)


@dataclass(frozen=True)
class AcceleratorInputs:
    """Everything an accelerator formulation needs besides the design knobs."""

    technology: TechnologySpec
    density: DensitySpec
    packaging: PackagingSpec
    memory: MemoryStackSpec
    link: LinkSpec
    volume: float  # units produced over which NRE is amortised
    margin: float  # gross margin on the unit cost (0: at cost)


#: The accelerator's design knobs: the package's plus the scale-up links.
LINK_DECISION = ("scale_up_links", "l", "scale-up links per accelerator")


def design_decisions() -> dict[str, Decision]:
    """Decision objects of every design knob (the node is a choice of parameter values)."""
    out = chiplet.design_decisions()
    name, latex, doc = LINK_DECISION
    out[name] = Decision(sp.Symbol(latex, integer=True, positive=True), doc)
    return out


def accelerator_quantities(inputs: AcceleratorInputs, ps: ParameterSet,
                           dec: Mapping[str, Decision]) -> dict[str, sp.Expr]:
    """Every quantity of the accelerator as sympy expressions over ``dec``'s symbols."""
    tech, dens, pkg, mem, link = (inputs.technology, inputs.density, inputs.packaging,
                                  inputs.memory, inputs.link)
    t = chiplet.technology_symbols(ps, tech)
    p = chiplet.packaging_symbols(ps, pkg, mem)
    add = ps.add
    rho_f = add("compute_density", dens.compute_density, "FLOP/s/mm^2",
                "dense FLOP/s per mm^2 of logic", latex="rho_F")
    rho_s = add("sram_density", dens.sram_density, "B/mm^2", "SRAM bytes per mm^2 of logic",
                latex="rho_S")
    rho_p = add("power_density", dens.power_density, "W/mm^2",
                "power per mm^2 of silicon at TDP", latex="rho_P")
    a_hphy = add("hbm_phy_area", dens.hbm_phy_area, "mm^2", "HBM PHY area per stack",
                 latex="A_phy_hbm")
    a_lphy = add("link_phy_area", dens.link_phy_area, "mm^2", "SerDes PHY area per link",
                 latex="A_phy_link")
    cap = add("hbm_stack_capacity", mem.capacity, "B", "capacity of one HBM stack",
              latex="M_stack")
    bw = add("hbm_stack_bandwidth", mem.bandwidth, "B/s", "bandwidth of one HBM stack",
             latex="B_stack")
    p_hbm = add("hbm_stack_power", mem.power, "W", "power of one HBM stack", latex="P_hbm")
    b_d2d = add("d2d_bandwidth", pkg.d2d_bandwidth, "B/s",
                "die-to-die bandwidth per chiplet, one direction", latex="B_d2d")
    b_link = add("link_bandwidth", link.bandwidth, "B/s", "scale-up link bandwidth",
                 latex="B_link")
    p_link = add("link_power", link.power, "W", "power per scale-up link", latex="P_link")
    volume = add("production_volume", inputs.volume, "1", "units over which NRE is amortised",
                 latex="V")
    n, area, stacks = (dec[k].symbol for k in ("compute_chiplets", "chiplet_area",
                                               "hbm_stacks"))
    links = dec["scale_up_links"].symbol

    e = chiplet.package_cost(tech, pkg, t, p, n, area, stacks, volume)
    e["io_phy_area"] = stacks * a_hphy + links * a_lphy
    e["compute_area"] = e["logic_area"] - e["io_phy_area"]
    e["peak_flops"] = rho_f * e["compute_area"]
    e["sram"] = rho_s * e["compute_area"]
    e["hbm_capacity"] = stacks * cap
    e["hbm_peak_bandwidth"] = stacks * bw
    e["hbm_bandwidth"] = sp.Piecewise(
        (e["hbm_peak_bandwidth"], n <= 1),
        (sp.Min(e["hbm_peak_bandwidth"], n**2 * b_d2d / (n - 1)), True))
    e["scale_up_bandwidth"] = links * b_link
    e["power"] = rho_p * n * area + stacks * p_hbm + links * p_link
    e["silicon_area"] = n * area
    # price = cost / (1 - margin), with the markup as the parameter so that a margin of 0
    # keeps the same expression (and parameter set) as any other.
    markup = add("markup", 1 / (1 - inputs.margin), "1",
                 "price over unit cost, 1 / (1 - gross margin)", latex="m_u")
    e["price"] = e["unit_cost"] * markup
    return e


def parameter_values(inputs: AcceleratorInputs) -> dict[str, float]:
    """Values of the accelerator formulation's parameters for ``inputs``, without building it:
    a search over process nodes (or memory, or link types) of one packaging kind swaps these
    in, as the training model does for hardware entries."""
    ps = ParameterSet()
    accelerator_quantities(inputs, ps, design_decisions())
    return {name: p.value for name, p in ps.parameters.items()}


ACCELERATOR_UNITS: dict[str, str] = {
    **chiplet.PACKAGE_UNITS,
    "io_phy_area": "mm^2", "compute_area": "mm^2", "peak_flops": "FLOP/s", "sram": "B",
    "hbm_capacity": "B", "hbm_peak_bandwidth": "B/s",
    "hbm_bandwidth": "B/s", "scale_up_bandwidth": "B/s", "power": "W",
    "silicon_area": "mm^2", "price": "USD",
}


@register("accelerator")
def build_accelerator(inputs: AcceleratorInputs) -> Formulation:
    """The accelerator formulation: cost, performance and power over the design knobs."""
    ps = ParameterSet()
    dec = design_decisions()
    e = accelerator_quantities(inputs, ps, dec)
    units = {k: ACCELERATOR_UNITS[k] for k in e}
    groups = {
        "package_cost": ("silicon_cost", "hbm_cost", "carrier_cost", "substrate_cost",
                         "bump_cost", "bridge_cost", "assembly_loss"),
    }
    return Formulation("accelerator", e, units, {k: "" for k in e}, dec, ps.parameters,
                       groups)


def hardware_spec(name: str, values: Mapping[str, float], reference: HardwareSpec) -> HardwareSpec:
    """The training model's :class:`HardwareSpec` for an evaluated design.

    Peak, HBM, power and price come from the design's ``values`` (an evaluation of
    :func:`build_accelerator`); the software-stack efficiencies, GEMM tile and kernel overhead
    from ``reference`` (a shipped part of the same architecture family); the multiprocessor
    count scales with the peak, so that wave quantisation keeps the reference's granularity.
    """
    sms = max(1, round(reference.multiprocessors * values["peak_flops"]
                       / reference.peak_flops))
    return dataclasses.replace(
        reference, name=name, peak_flops=values["peak_flops"],
        hbm_capacity=values["hbm_capacity"], hbm_bandwidth=values["hbm_bandwidth"],
        multiprocessors=sms, price=values["price"], power=values["power"])
