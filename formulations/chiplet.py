"""Silicon and package cost: dies per wafer, yield, known-good die, packaging, NRE.

The recurring-engineering (RE) cost of a multi-die package follows the structure of the
Chiplet Actuary model (Y. Feng and K. Ma, "Chiplet Actuary: A Quantitative Cost Model and
Multi-Chiplet Architecture Exploration", DAC 2022, arXiv:2203.12268):

* **dies per wafer** -- the gross-die formula of Ferris-Prabhu as reviewed by de Vries
  ("Investigation of gross die per wafer formulas", IEEE Trans. Semicond. Manuf. 18(1), 2005),
  applied to the usable diameter ``phi - 2 e`` (edge exclusion ``e``) and to the die
  pitch ``(sqrt(A) + s)^2`` (scribe lane ``s``, square dies):

      N = pi (phi - 2e)^2 / (4 S) - pi (phi - 2e) / sqrt(2 S),   S = (sqrt(A) + s)^2

  It is kept continuous (no floor) so that cost is smooth in the die area; the floor moves it by
  less than one die.
* **die-to-die PHYs**: once a design is split, each chiplet carries PHYs of ``f`` times the
  area of the logic they serve (Chiplet Actuary uses f = 0.1).
* **die yield** from the defect density ``D0`` (per mm^2) and area ``A`` (mm^2): Poisson
  ``exp(-A D0)``, Murphy ``((1 - exp(-A D0)) / (A D0))^2``, Seeds ``1 / (1 + A D0)`` and the
  negative binomial ``(1 + A D0 / alpha)^-alpha`` with clustering ``alpha`` (Stapper;
  Chiplet Actuary, with alpha its "critical level"). Seeds is the negative binomial with
  alpha = 1; Poisson is its limit as alpha -> infinity.
* **known-good die (KGD)**: every die is tested at wafer sort (cost per mm^2), the test
  catches a fraction ``coverage`` of the bad dies; a passed die costs
  ``(C_raw + C_test) / P_pass`` with ``P_pass = Y + (1 - Y)(1 - coverage)``, and is bad with
  probability ``escape = (1 - Y)(1 - coverage) / P_pass``.
* **package** (chip-last: dies, HBM stacks and the carrier are tested before assembly):

      C_package = (n C_KGD + m C_HBM + C_carrier + C_substrate + C_bumps + C_bridges + C_asm)
                  / Y_assembly + C_final_test
      Y_assembly = y_bond^(n + m) (1 - escape)^n y_carrier_bond

  The carrier (silicon interposer or fan-out RDL) is itself a die of ``k_c`` times the dies'
  area made on a mature-node wafer with its own defect density and clustering; the organic
  substrate costs per mm^2 of ``k_s`` times the area it carries (Chiplet Actuary).
  A bridge package (EMIB, CoWoS-L local interconnect) embeds one small silicon bridge per
  die-to-die interface instead of a full interposer.
* **NRE** (Chiplet Actuary): a design of total logic area ``A_L`` and one chiplet
  tape-out of area ``A_c`` costs ``K_m A_L + K_c A_c + C_fixed`` with
  ``K_m = share_m NRE_ref / A_ref``, ``K_c = share_c NRE_ref / A_ref`` and
  ``C_fixed = (1 - share_m - share_c) NRE_ref``; the package adds its own NRE; all is
  amortised over the production volume.

Areas are in mm^2 and lengths in mm (the units of defect densities and wafer maps); money in
USD. Every input is a parameter symbol; the design knobs (compute chiplets, area per chiplet,
HBM stacks) are decision symbols so that a search can choose them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sympy as sp

from .core import Decision, ParameterSet

#: Packaging kinds: organic substrate only (MCM / flip-chip), a silicon interposer (CoWoS-S-
#: like 2.5D), a fan-out redistribution layer (InFO-like), embedded silicon bridges (EMIB /
#: CoWoS-L-like).
PackageKind = Literal["organic", "interposer", "fanout", "bridge"]
#: Yield models by name (:func:`die_yield`).
YieldModel = Literal["poisson", "murphy", "seeds", "negative_binomial"]


# -- inputs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TechnologySpec:
    """One process node: wafer, defects, cost and NRE (Chiplet Actuary parameter set)."""

    name: str
    wafer_diameter: float  # mm
    edge_loss: float  # mm of unusable rim
    scribe_lane: float  # mm between dies
    defect_density: float  # defects per mm^2
    clustering: float  # negative-binomial alpha ("critical level")
    wafer_cost: float  # USD per processed wafer
    reticle_area: float  # mm^2, largest die one exposure prints
    nre: float  # USD for a reference design of nre_reference_area, incl. first tape-out
    nre_reference_area: float  # mm^2
    nre_module_share: float  # of nre, proportional to the design's logic area
    nre_chip_share: float  # of nre, proportional to the taped-out chip area
    d2d_area_overhead: float  # die-to-die PHY area over the logic it serves, when split
    test_cost_per_area: float  # USD per mm^2 of wafer-sort test
    test_coverage: float  # fraction of bad dies the test catches
    yield_model: YieldModel = "negative_binomial"


@dataclass(frozen=True)
class PackagingSpec:
    """A packaging technology: carrier, substrate, bonding, assembly and its NRE."""

    name: str
    kind: PackageKind
    substrate_area_scale: float  # organic substrate area / area it carries
    substrate_cost_per_area: float  # USD per mm^2
    c4_bump_cost_per_area: float  # USD per mm^2 of what sits on the substrate
    bonding_yield: float  # per die (chiplet or HBM stack) bonded
    assembly_cost: float  # USD per package (handling, underfill, lid)
    final_test_cost: float  # USD per package
    nre_fixed: float  # USD
    nre_per_area: float  # USD per mm^2 of carrier/substrate design
    d2d_bandwidth: float  # B/s per chiplet across its die-to-die links (one direction)
    # Carrier (interposer or RDL); unused for organic and bridge kinds.
    carrier_area_scale: float = 1.0
    carrier_wafer_cost: float = 0.0
    carrier_defect_density: float = 0.0  # per mm^2
    carrier_clustering: float = 1.0
    carrier_bonding_yield: float = 1.0  # carrier onto the substrate
    carrier_max_area: float = 0.0  # mm^2; 0: no limit given
    microbump_cost_per_area: float = 0.0  # USD per mm^2 of die area on the carrier
    # Bridges (bridge kind): one per die-to-die interface.
    bridge_area: float = 0.0  # mm^2
    bridges_per_interface: float = 0.0


@dataclass(frozen=True)
class MemoryStackSpec:
    """A bought, known-good memory stack (HBM)."""

    name: str
    capacity: float  # B
    bandwidth: float  # B/s
    price: float  # USD
    power: float  # W
    footprint: float  # mm^2 on the carrier


# -- the formulas -----------------------------------------------------------------------------

def die_pitch_area(area: sp.Expr, scribe: sp.Expr) -> sp.Expr:
    """Wafer area one square die of ``area`` occupies with its scribe lane."""
    return (sp.sqrt(area) + scribe) ** 2


def dies_per_wafer(area: sp.Expr, diameter: sp.Expr, edge_loss: sp.Expr,
                   scribe: sp.Expr) -> sp.Expr:
    """Gross dies per wafer (Ferris-Prabhu, reviewed by de Vries 2005, on the usable diameter)."""
    usable = diameter - 2 * edge_loss
    pitch = die_pitch_area(area, scribe)
    return sp.pi * usable**2 / (4 * pitch) - sp.pi * usable / sp.sqrt(2 * pitch)


def yield_poisson(area: sp.Expr, d0: sp.Expr) -> sp.Expr:
    """Poisson yield: defects land independently."""
    return sp.exp(-area * d0)


def yield_murphy(area: sp.Expr, d0: sp.Expr) -> sp.Expr:
    """Murphy's yield (triangular defect-density distribution; Murphy 1964)."""
    x = area * d0
    return ((1 - sp.exp(-x)) / x) ** 2


def yield_seeds(area: sp.Expr, d0: sp.Expr) -> sp.Expr:
    """Seeds' yield (exponential defect-density distribution; Seeds 1967)."""
    return 1 / (1 + area * d0)


def yield_negative_binomial(area: sp.Expr, d0: sp.Expr, alpha: sp.Expr) -> sp.Expr:
    """Negative-binomial yield with clustering ``alpha`` (Stapper; Chiplet Actuary)."""
    return (1 + area * d0 / alpha) ** (-alpha)


def die_yield(model: YieldModel, area: sp.Expr, d0: sp.Expr, alpha: sp.Expr) -> sp.Expr:
    """The yield of a die of ``area`` by the named model."""
    if model == "poisson":
        return yield_poisson(area, d0)
    if model == "murphy":
        return yield_murphy(area, d0)
    if model == "seeds":
        return yield_seeds(area, d0)
    return yield_negative_binomial(area, d0, alpha)


@dataclass(frozen=True)
class TestedDie:
    """A die after wafer-sort test: what a passed die costs and how often it is bad."""

    pass_fraction: sp.Expr
    cost: sp.Expr
    escape: sp.Expr


def tested_die(raw_cost: sp.Expr, test_cost: sp.Expr, die_yield_: sp.Expr,
               coverage: sp.Expr) -> TestedDie:
    """Known-good-die cost and escape rate for a test that catches ``coverage`` of bad dies."""
    slipped = (1 - die_yield_) * (1 - coverage)
    passed = die_yield_ + slipped
    return TestedDie(passed, (raw_cost + test_cost) / passed, slipped / passed)


def nre_design(logic_area: sp.Expr, chip_area: sp.Expr, nre: sp.Expr, reference_area: sp.Expr,
               module_share: sp.Expr, chip_share: sp.Expr) -> sp.Expr:
    """NRE of one design (Chiplet Actuary): module design scales with the logic area,
    the chip's physical design and masks with the taped-out area, plus a fixed part."""
    return (module_share * nre / reference_area * logic_area
            + chip_share * nre / reference_area * chip_area
            + (1 - module_share - chip_share) * nre)


# -- symbols ----------------------------------------------------------------------------------

#: The design knobs of a package, as decision symbols (mm^2 for the area).
DESIGN_DECISIONS: dict[str, tuple[str, str]] = {
    "compute_chiplets": ("n_c", "compute chiplets in the package"),
    "chiplet_area": ("A_c", "die area of one compute chiplet, mm^2"),
    "hbm_stacks": ("n_hbm", "HBM stacks in the package"),
}


def design_decisions() -> dict[str, Decision]:
    """Decision objects of the package design knobs."""
    return {name: Decision(sp.Symbol(latex, integer=True, positive=True), doc)
            for name, (latex, doc) in DESIGN_DECISIONS.items()}


def technology_symbols(ps: ParameterSet, tech: TechnologySpec) -> dict[str, sp.Expr]:
    """Parameter symbols of a process node."""
    add = ps.add
    return {
        "phi": add("wafer_diameter", tech.wafer_diameter, "mm", "wafer diameter",
                   latex="phi_w"),
        "e": add("edge_loss", tech.edge_loss, "mm", "unusable wafer rim", latex="e_w"),
        "s": add("scribe_lane", tech.scribe_lane, "mm", "scribe lane", latex="s_w"),
        "D0": add("defect_density", tech.defect_density, "1/mm^2", "defect density",
                  latex="D_0"),
        "alpha": add("clustering", tech.clustering, "1",
                     "negative-binomial defect clustering", latex="alpha"),
        "Cw": add("wafer_cost", tech.wafer_cost, "USD", "processed wafer cost", latex="C_w"),
        "nre": add("nre_reference", tech.nre, "USD", "NRE of the reference design",
                   latex="NRE_ref"),
        "A_ref": add("nre_reference_area", tech.nre_reference_area, "mm^2",
                     "area of the NRE reference design", latex="A_ref"),
        "sh_m": add("nre_module_share", tech.nre_module_share, "1",
                    "NRE share proportional to logic area", latex="k_m"),
        "sh_c": add("nre_chip_share", tech.nre_chip_share, "1",
                    "NRE share proportional to chip area", latex="k_c"),
        "f_d2d": add("d2d_area_overhead", tech.d2d_area_overhead, "1",
                     "die-to-die PHY area over the logic it serves", latex="f_d2d"),
        "c_test": add("test_cost_per_area", tech.test_cost_per_area, "USD/mm^2",
                      "wafer-sort test cost", latex="c_t"),
        "cov": add("test_coverage", tech.test_coverage, "1",
                   "fraction of bad dies the test catches", latex="c_v"),
    }


def packaging_symbols(ps: ParameterSet, pkg: PackagingSpec,
                      hbm: MemoryStackSpec) -> dict[str, sp.Expr]:
    """Parameter symbols of a packaging technology and its memory stacks."""
    add = ps.add
    out = {
        "k_s": add("substrate_area_scale", pkg.substrate_area_scale, "1",
                   "substrate area over the area it carries", latex="k_s"),
        "c_s": add("substrate_cost_per_area", pkg.substrate_cost_per_area, "USD/mm^2",
                   "organic substrate cost", latex="c_s"),
        "c_c4": add("c4_bump_cost_per_area", pkg.c4_bump_cost_per_area, "USD/mm^2",
                    "C4 bump cost", latex="c_c4"),
        "y_b": add("bonding_yield", pkg.bonding_yield, "1", "yield of bonding one die",
                   latex="y_b"),
        "C_asm": add("assembly_cost", pkg.assembly_cost, "USD", "package assembly",
                     latex="C_asm"),
        "C_ft": add("final_test_cost", pkg.final_test_cost, "USD", "package final test",
                    latex="C_ft"),
        "nre_p": add("package_nre_fixed", pkg.nre_fixed, "USD", "package NRE, fixed part",
                     latex="NRE_p"),
        "nre_pa": add("package_nre_per_area", pkg.nre_per_area, "USD/mm^2",
                      "package NRE per mm^2", latex="K_p"),
        "C_hbm": add("hbm_price", hbm.price, "USD", "price of one known-good HBM stack",
                     latex="C_hbm"),
        "A_hbm": add("hbm_footprint", hbm.footprint, "mm^2", "footprint of one HBM stack",
                     latex="A_hbm"),
    }
    if pkg.kind != "organic":
        # Silicon or RDL made on a mature-node wafer: the interposer, fan-out layer or bridges.
        out |= {
            "Cw_c": add("carrier_wafer_cost", pkg.carrier_wafer_cost, "USD",
                        "carrier (interposer, RDL or bridge) wafer cost", latex="C_wi"),
            "D0_c": add("carrier_defect_density", pkg.carrier_defect_density, "1/mm^2",
                        "carrier defect density", latex="D_i"),
            "alpha_c": add("carrier_clustering", pkg.carrier_clustering, "1",
                           "carrier defect clustering", latex="alpha_i"),
            "c_ub": add("microbump_cost_per_area", pkg.microbump_cost_per_area, "USD/mm^2",
                        "micro-bump cost per mm^2 of die", latex="c_ub"),
        }
    if pkg.kind in ("interposer", "fanout"):
        out |= {
            "k_c": add("carrier_area_scale", pkg.carrier_area_scale, "1",
                       "carrier area over the dies' area", latex="k_i"),
            "y_cb": add("carrier_bonding_yield", pkg.carrier_bonding_yield, "1",
                        "yield of bonding the carrier to the substrate", latex="y_ib"),
        }
    if pkg.kind == "bridge":
        out |= {
            "A_br": add("bridge_area", pkg.bridge_area, "mm^2", "area of one silicon bridge",
                        latex="A_br"),
            "n_br": add("bridges_per_interface", pkg.bridges_per_interface, "1",
                        "bridges per die-to-die interface", latex="n_br"),
        }
    return out


# -- the package ------------------------------------------------------------------------------

def multi_die(n: sp.Expr) -> sp.Expr:
    """1 when the package holds more than one compute chiplet (die-to-die PHYs needed)."""
    return sp.Piecewise((sp.Integer(0), n <= 1), (sp.Integer(1), True))


def package_cost(tech: TechnologySpec, pkg: PackagingSpec, t: dict[str, sp.Expr],
                 p: dict[str, sp.Expr], n: sp.Expr, area: sp.Expr,
                 stacks: sp.Expr, volume: sp.Expr) -> dict[str, sp.Expr]:
    """Every cost quantity of a package of ``n`` compute chiplets of ``area`` mm^2 each and
    ``stacks`` memory stacks (RE cost per good package and NRE per unit)."""
    e: dict[str, sp.Expr] = {}
    e["dies_per_wafer"] = dies_per_wafer(area, t["phi"], t["e"], t["s"])
    e["die_yield"] = die_yield(tech.yield_model, area, t["D0"], t["alpha"])
    e["raw_die_cost"] = t["Cw"] / e["dies_per_wafer"]
    e["die_test_cost"] = t["c_test"] * area
    kgd = tested_die(e["raw_die_cost"], e["die_test_cost"], e["die_yield"], t["cov"])
    e["test_pass_fraction"] = kgd.pass_fraction
    e["known_good_die_cost"] = kgd.cost
    e["test_escape_rate"] = kgd.escape
    # A chiplet of area A holds logic A / (1 + f) and PHYs A f / (1 + f) (Chiplet Actuary
    # sizes the D2D interface as a fraction of the module it serves).
    e["d2d_phy_area"] = t["f_d2d"] / (1 + t["f_d2d"]) * area * multi_die(n)
    e["silicon_cost"] = n * kgd.cost
    e["hbm_cost"] = stacks * p["C_hbm"]
    dies_area = n * area + stacks * p["A_hbm"]
    e["dies_area"] = dies_area
    zero = sp.Integer(0)
    carrier_bond = sp.Integer(1)
    if pkg.kind in ("interposer", "fanout"):
        carrier_area = p["k_c"] * dies_area
        carrier_dpw = dies_per_wafer(carrier_area, t["phi"], t["e"], t["s"])
        carrier_yield = yield_negative_binomial(carrier_area, p["D0_c"], p["alpha_c"])
        e["carrier_area"] = carrier_area
        e["carrier_yield"] = carrier_yield
        # A tested carrier: the bad ones are discarded before assembly.
        e["carrier_cost"] = p["Cw_c"] / carrier_dpw / carrier_yield
        e["bump_cost"] = p["c_ub"] * dies_area + p["c_c4"] * carrier_area
        carrier_bond = p["y_cb"]
        on_substrate = carrier_area
    else:
        e["carrier_area"] = zero
        e["carrier_yield"] = sp.Integer(1)
        e["carrier_cost"] = zero
        e["bump_cost"] = p["c_c4"] * dies_area
        on_substrate = dies_area
    if pkg.kind == "bridge":
        # One interface per neighbouring pair of compute chiplets and one per HBM stack.
        interfaces = (n - 1) + stacks
        bridge_area = p["A_br"]
        bridge_dpw = dies_per_wafer(bridge_area, t["phi"], t["e"], t["s"])
        bridge_yield = yield_negative_binomial(bridge_area, p["D0_c"], p["alpha_c"])
        e["bridge_cost"] = interfaces * p["n_br"] * p["Cw_c"] / bridge_dpw / bridge_yield
        e["bump_cost"] = e["bump_cost"] + p["c_ub"] * dies_area
    else:
        e["bridge_cost"] = zero
    e["substrate_area"] = p["k_s"] * on_substrate
    e["substrate_cost"] = p["c_s"] * e["substrate_area"]
    e["assembly_yield"] = (p["y_b"] ** (n + stacks) * (1 - kgd.escape) ** n * carrier_bond)
    parts = (e["silicon_cost"] + e["hbm_cost"] + e["carrier_cost"] + e["substrate_cost"]
             + e["bump_cost"] + e["bridge_cost"] + p["C_asm"])
    e["packaging_cost"] = (e["carrier_cost"] + e["substrate_cost"] + e["bump_cost"]
                           + e["bridge_cost"] + p["C_asm"] + p["C_ft"])
    e["assembly_loss"] = parts / e["assembly_yield"] - parts
    e["manufacturing_cost"] = parts / e["assembly_yield"] + p["C_ft"]
    logic_area = n * area - e["d2d_phy_area"] * n
    e["logic_area"] = logic_area
    e["chip_nre"] = nre_design(logic_area, area, t["nre"], t["A_ref"], t["sh_m"], t["sh_c"])
    e["package_nre"] = p["nre_p"] + p["nre_pa"] * e["substrate_area"]
    e["nre"] = e["chip_nre"] + e["package_nre"]
    e["nre_per_unit"] = e["nre"] / volume
    e["unit_cost"] = e["manufacturing_cost"] + e["nre_per_unit"]
    return e


#: Units of the package quantities.
PACKAGE_UNITS: dict[str, str] = {
    "dies_per_wafer": "1", "die_yield": "1", "raw_die_cost": "USD", "die_test_cost": "USD",
    "test_pass_fraction": "1", "known_good_die_cost": "USD", "test_escape_rate": "1",
    "d2d_phy_area": "mm^2", "silicon_cost": "USD", "hbm_cost": "USD", "dies_area": "mm^2",
    "carrier_area": "mm^2", "carrier_yield": "1", "carrier_cost": "USD", "bump_cost": "USD",
    "bridge_cost": "USD", "substrate_area": "mm^2", "substrate_cost": "USD",
    "assembly_yield": "1", "packaging_cost": "USD", "assembly_loss": "USD",
    "manufacturing_cost": "USD", "logic_area": "mm^2", "chip_nre": "USD",
    "package_nre": "USD", "nre": "USD", "nre_per_unit": "USD", "unit_cost": "USD",
}
