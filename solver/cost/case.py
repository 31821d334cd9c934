"""Cost cases: TOML -> typed, validated design, system and run (``perfcost cost``).

A cost case names or inlines a process node (``cases/technology/``), a packaging technology
(``cases/packaging/``), a memory stack (``cases/packaging/memory/``) and gives the design knobs;
optionally a cluster (``[system]``, parts from ``cases/designs/components/``), the run to price
(``[run]``) and a capital budget (``[constraints]``). A design knob given as a list is a choice:
every combination is priced.

Every constant may be a plain value (the file's ``source`` and ``as_of`` cover it) or an
inline table ``{ value = ..., source = "...", as_of = "..." }`` when it comes from elsewhere.
Areas carry units (``"814 mm^2"``), defect densities too (``"0.11 / cm^2"``). Every problem is
a one-line :class:`CaseError` naming the field.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from perfcost.formulations.chiplet import PackageKind, YieldModel
from perfcost.solver.case import catalog, units
from perfcost.solver.case import fields as fields_mod
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import MISSING, CaseError, short_repr
from perfcost.solver.case.fields import (
    Count,
    Duration,
    Expect,
    Fraction,
    IntChoice,
    Money,
    Strict,
    Text,
)
from perfcost.solver.case.sections import NetworkSection
from pydantic import BaseModel, BeforeValidator, ValidationError

#: Built-in folders of the cost catalog, under the ``perfcost.cases`` package.
FOLDERS: dict[str, str] = {
    "technology": "technology",
    "packaging": "packaging",
    "memory": "packaging/memory",
    "fabric": "designs/components",
    "datacenter": "designs/components",
    "margin": "designs/components/margins",
}
#: The built-in margin entry a design without ``margin`` is priced at (a merchant part's
#: public price against its modelled unit cost; see the entry's source).
DEFAULT_MARGIN = "h100-dgx-2023"
#: Largest area a case may give (mm^2): a whole 300 mm wafer.
MAX_AREA = 70_686.0
#: Largest length (mm).
MAX_LENGTH = 1_000.0
#: Largest defect density (per mm^2): 100 per cm^2 is far beyond any process.
MAX_DEFECT_DENSITY = 1.0
#: Largest negative-binomial clustering parameter (beyond it, Poisson).
MAX_CLUSTERING = 1e6


# -- value types ------------------------------------------------------------------------------

def _unwrap_sourced(value: Any) -> Any:
    """A constant written as ``{value, source, as_of}`` -> its value (the table is checked)."""
    if isinstance(value, dict):
        keys = set(value)
        if "value" not in keys:
            raise ValueError("expected a value, or a table with value, source and as_of")
        extra = keys - {"value", "source", "as_of"}
        if extra:
            raise ValueError(f"expected only value, source and as_of; got {sorted(extra)}")
        if not isinstance(value.get("source"), str) or not value["source"].strip():
            raise ValueError("expected a source (text) beside the value")
        if not isinstance(value.get("as_of"), str) or not value["as_of"].strip():
            raise ValueError("expected an as_of date (text) beside the value")
        return value["value"]
    return value


def _then(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        return convert(_unwrap_sourced(value))

    return run


def _pint(target: str, noun: str, example: str, low: float, high: float, *,
          low_open: bool) -> Callable[[Any], float]:
    """Convert text with a unit to ``target`` (a unit of solver/case/units.py's grammar), within
    [low, high]."""
    bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
    expected = f"{noun} with a unit, {bound} and at most {high:g} {example.split()[-1]}, " \
               f"like '{example}'"

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str) or len(value) > 200:
            raise ValueError(f"expected {expected}")
        try:
            x = units.convert(value, target)
        except units.UnitError:
            raise ValueError(f"expected {expected}") from None
        if not math.isfinite(x) or x < low or (low_open and x == low) or x > high:
            raise ValueError(f"expected {expected}")
        return x

    return convert


def _number(low: float, high: float, *, low_open: bool = False,
            what: str = "a number") -> Callable[[Any], float]:
    bound = f"greater than {low:g}" if low_open else f"from {low:g}"
    expected = f"{what} {bound} and at most {high:g}" if low_open else \
        f"{what} {bound} to {high:g}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected {expected}")
        x = float(value)
        if not math.isfinite(x) or x < low or (low_open and x == low) or x > high:
            raise ValueError(f"expected {expected}")
        return x

    return check


def _unit(dimension: str, *, positive: bool) -> Callable[[Any], float]:
    """The unit and range check of a training case's quantities (same messages)."""
    return fields_mod._quantity(dimension, positive=positive).func


def _typed(convert: Callable[[Any], Any], expect: str) -> Any:
    return Annotated[float, BeforeValidator(_then(convert)), Expect(expect)]


AREA_EXPECT = "an area greater than 0 with a unit, like '814 mm^2'"
_area = _pint("mm^2", "an area", "814 mm^2", 0.0, MAX_AREA, low_open=True)
Area = _typed(_area, AREA_EXPECT)
Length = _typed(_pint("mm", "a length", "0.2 mm", 0.0, MAX_LENGTH, low_open=False),
                "a length of at least 0 with a unit, like '0.2 mm'")
PositiveLength = _typed(_pint("mm", "a length", "300 mm", 0.0, MAX_LENGTH, low_open=True),
                        "a length greater than 0 with a unit, like '300 mm'")
DefectDensity = _typed(
    _pint("/mm^2", "a defect density", "0.11 / cm^2", 0.0, MAX_DEFECT_DENSITY * 100,
          low_open=False),
    "a defect density of at least 0 with a unit, like '0.11 / cm^2'")
MoneyPerArea = _typed(
    _pint("USD/mm^2", "a price per area", "0.005 USD/mm^2", 0.0, 1e9, low_open=False),
    "a price per area of at least 0, like '0.005 USD/mm^2'")
FlopDensity = _typed(
    _pint("FLOP/s/mm^2", "a FLOP rate per area", "1.3 TFLOP/s/mm^2", 0.0, 1e18,
          low_open=True), "a FLOP rate per area greater than 0, like '1.3 TFLOP/s/mm^2'")
ByteDensity = _typed(
    _pint("B/mm^2", "bytes per area", "118000 B/mm^2", 0.0, 1e15, low_open=True),
    "bytes per area greater than 0, like '118000 B/mm^2'")
PowerDensity = _typed(
    _pint("W/mm^2", "a power per area", "0.7 W/mm^2", 0.0, 1e3, low_open=True),
    "a power per area greater than 0, like '0.7 W/mm^2'")
YIELD_EXPECT = "a yield greater than 0 and at most 1"
Yield = _typed(_number(0.0, 1.0, low_open=True, what="a yield"), YIELD_EXPECT)
Share = _typed(_number(0.0, 1.0, what="a share"), "a share from 0 to 1")
Overhead = _typed(_number(0.0, 10.0, what="an area overhead"), "an area overhead from 0 to 10")
Scale = _typed(_number(0.0, 100.0, low_open=True, what="an area scale"),
               "an area scale greater than 0 and at most 100")
Clustering = _typed(_number(0.0, MAX_CLUSTERING, low_open=True, what="a clustering alpha"),
                    f"a clustering alpha greater than 0 and at most {MAX_CLUSTERING:g}")
SMoney = _typed(_unit("money", positive=False), "an amount of money, like '30000 USD'")
SPositiveMoney = _typed(_unit("money", positive=True),
                        "an amount of money greater than 0, like '30000 USD'")
SPower = _typed(_unit("power", positive=True), "a power greater than 0, like '700 W'")
SBandwidth = _typed(_unit("bandwidth", positive=True), "a bandwidth, like '670 GB/s'")
SBytes = _typed(_unit("bytes", positive=True), "a size in bytes, like '16 GiB'")
SMoneyRate = _typed(_unit("money_rate", positive=False), "a price per time, like '2 USD/h'")
#: Longest write-off period (s): a century.
MAX_PERIOD = 3.2e9
Period = _typed(_pint("s", "a duration", "4 year", 0.0, MAX_PERIOD, low_open=True),
                "a duration greater than 0 with a unit, like '4 year'")
Radix = _typed(_number(2.0, 1e6, what="a switch radix"), "a switch radix from 2 to 1e6")
Pue = _typed(_number(1.0, 10.0, what="a PUE"), "a PUE from 1 to 10")
UtilisationT = _typed(_number(0.0, 1.0, low_open=True, what="a utilisation"),
                      "a utilisation greater than 0 and at most 1")
PerAccelerator = _typed(_number(0.0, 1e3, low_open=True, what="a count per accelerator"),
                        "a count per accelerator greater than 0")
EnergyPrice = _typed(
    _pint("USD/J", "an energy price", "0.08 USD/kWh", 0.0, 1e3, low_open=False),
    "an energy price, like '0.08 USD/kWh'")
#: Largest FLOP count of a run.
MAX_FLOPS = 1e35
Flops = _typed(_number(0.0, MAX_FLOPS, low_open=True, what="a FLOP count"),
               f"a FLOP count greater than 0 and at most {MAX_FLOPS:g}, like 6.3e24")
Margin = _typed(_number(0.0, 0.99, what="a gross margin"), "a gross margin from 0 to 0.99")


_sourced_area = _then(_area)


def _area_choice(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise ValueError(f"expected {AREA_EXPECT}, or a non-empty list of them")
        return [_sourced_area(v) for v in value]
    return _sourced_area(value)


AreaChoice = Annotated[float | list[float], BeforeValidator(_area_choice),
                       Expect(f"{AREA_EXPECT}, or a non-empty list of them")]


# -- sections ---------------------------------------------------------------------------------

class DensitySection(Strict):
    source: Text
    as_of: Text
    compute_density: FlopDensity
    sram_density: ByteDensity
    power_density: PowerDensity
    hbm_phy_area: Area
    link_phy_area: Area


class TechnologySection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    wafer_diameter: PositiveLength
    edge_loss: Length
    scribe_lane: Length
    defect_density: DefectDensity
    clustering: Clustering
    wafer_cost: SPositiveMoney
    reticle_area: Area
    nre: SMoney
    nre_reference_area: Area
    nre_module_share: Share
    nre_chip_share: Share
    d2d_area_overhead: Overhead
    test_cost_per_area: MoneyPerArea
    test_coverage: Share
    yield_model: YieldModel = "negative_binomial"
    density: DensitySection | None = None


class PackagingSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    kind: PackageKind
    substrate_area_scale: Scale
    substrate_cost_per_area: MoneyPerArea
    c4_bump_cost_per_area: MoneyPerArea
    bonding_yield: Yield
    assembly_cost: SMoney
    final_test_cost: SMoney
    nre_fixed: SMoney
    nre_per_area: MoneyPerArea
    d2d_bandwidth: SBandwidth
    carrier_area_scale: Scale = 1.0
    carrier_wafer_cost: SMoney = 0.0
    carrier_defect_density: DefectDensity = 0.0
    carrier_clustering: Clustering = 1.0
    carrier_bonding_yield: Yield = 1.0
    carrier_max_area: Area | None = None
    microbump_cost_per_area: MoneyPerArea = 0.0
    bridge_area: Area | None = None
    bridges_per_interface: PerAccelerator = 1.0


class MemorySection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    capacity: SBytes
    bandwidth: SBandwidth
    price: SMoney
    power: SPower
    footprint: Area


class LinkTypeSection(Strict):
    name: Text
    source: Text
    as_of: Text
    bandwidth: SBandwidth
    power: SPower


class DesignSection(Strict):
    technology: TechnologySection
    packaging: PackagingSection
    memory: MemorySection
    link: LinkTypeSection
    compute_chiplets: IntChoice
    chiplet_area: AreaChoice
    hbm_stacks: IntChoice
    scale_up_links: IntChoice
    volume: Count = 1e6
    # Gross margin of the seller: price = unit cost / (1 - margin). None: the built-in
    # DEFAULT_MARGIN entry (a public price point); 0 prices the part at cost (an in-house design).
    margin: Margin | None = None
    # A built-in hardware entry whose software-stack efficiencies the designed part inherits.
    reference: Text = "h100-sxm"


class MarginSection(Strict):
    """A gross margin derived from a public price point (``cases/designs/components/margins``)."""

    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    margin: Margin
    public_price: SPositiveMoney
    reference_design: Text


class FabricSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    switch_radix: Radix
    switch_price: SMoney
    switch_power: SPower
    nics_per_accelerator: PerAccelerator = 1.0
    nic_price: SMoney
    nic_power: SPower
    copper_cable_price: SMoney
    transceiver_price: SMoney
    transceiver_power: SPower
    fibre_price: SMoney
    scale_up_switch_radix: Radix
    scale_up_switch_price: SMoney
    scale_up_switch_power: SPower


class DatacenterSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    host_price: SMoney
    host_power: SPower
    utilisation: UtilisationT
    pue: Pue
    energy_price: EnergyPrice
    amortisation: Period
    operations_fraction: Share
    rental_price: SMoneyRate


class SystemSection(Strict):
    accelerators: IntChoice | None = None
    # The scale-up domain size and the fabric's oversubscription default to those of
    # ``network`` (a built-in network or a table, as in training cases), or of the run's
    # training case.
    network: NetworkSection | None = None
    scale_up_size: IntChoice | None = None
    oversubscription: Annotated[float, BeforeValidator(_number(1.0, 1e6)),
                                Expect("a number from 1 to 1e6")] | None = None
    fabric: FabricSection
    datacenter: DatacenterSection


class RunSection(Strict):
    tokens: Count | None = None
    # A training case (file or built-in name) evaluated on the designed accelerator; or the
    # run's model FLOPs and utilisation; or its duration.
    case: Text | None = None
    flops: Flops | None = None
    mfu: Fraction | None = None
    duration: Duration | None = None


class CostConstraints(Strict):
    budget: Money | None = None


class CostCase(Strict):
    name: Text = ""
    description: Text = ""
    design: DesignSection
    system: SystemSection | None = None
    run: RunSection | None = None
    constraints: CostConstraints = CostConstraints()


# -- loading ----------------------------------------------------------------------------------

def builtin(kind: str, name: str, field: str) -> dict[str, Any]:
    """The table of the built-in ``kind`` entry ``name`` (``field`` names it in errors)."""
    known = catalog.entries(FOLDERS[kind])
    path = known.get(name)
    if path is None:
        raise CaseError(field, name, f"unknown built-in {kind}; expected one of: "
                        f"{', '.join(sorted(known)) or 'none'}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(field, name, f"the built-in file cannot be read: "
                        f"{type(exc).__name__}") from None


def margin_entry(name: str = DEFAULT_MARGIN) -> MarginSection:
    """The built-in margin entry ``name`` (validated like a case section)."""
    try:
        return MarginSection.model_validate(builtin("margin", name, "design.margin"))
    except ValidationError as exc:
        raise _case_error(exc) from None


def design_margin(design: DesignSection) -> tuple[float, str]:
    """The gross margin a design is priced at and where it comes from (for reports)."""
    if design.margin is not None:
        basis = "at cost: an in-house part" if design.margin == 0 else "the case's"
        return design.margin, f"design.margin ({basis})"
    entry = margin_entry()
    return entry.margin, f"the default {entry.name} ({entry.as_of}: {entry.description})"


def _resolve_entry(table: dict[str, Any], key: str, kind: str, where: str) -> None:
    value = table.get(key)
    if isinstance(value, str):
        table[key] = builtin(kind, value, f"{where}.{key}")
    elif isinstance(value, dict) and "base" in value:
        rest = dict(value)
        base = rest.pop("base")
        if not isinstance(base, str):
            raise CaseError(f"{where}.{key}.base", base, f"expected the name of a built-in "
                            f"{kind}")
        table[key] = {**builtin(kind, base, f"{where}.{key}.base"), **rest}
    elif value is not None and not isinstance(value, dict):
        raise CaseError(f"{where}.{key}", value, f"expected the name of a built-in {kind} "
                        "or a table")


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Replace built-in names by their tables."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    design = out.get("design")
    if isinstance(design, dict):
        for key in ("technology", "packaging", "memory"):
            _resolve_entry(design, key, key, "design")
    system = out.get("system")
    if isinstance(system, dict):
        for key in ("fabric", "datacenter"):
            _resolve_entry(system, key, key, "system")
        network = system.get("network")
        if network is not None:
            # resolved as a training case's [network] is
            system["network"] = case_mod.resolve({"network": network})["network"]
    return out


def from_dict(raw: dict[str, Any]) -> CostCase:
    if not isinstance(raw, dict):
        raise CaseError("case", raw, "expected a table of sections")
    if "design" not in raw:
        raise CaseError("design", MISSING, "expected a [design] table: technology, packaging, "
                        "memory, compute_chiplets, chiplet_area, hbm_stacks, scale_up_links")
    try:
        return CostCase.model_validate(resolve(raw))
    except ValidationError as exc:
        raise _case_error(exc) from None


def load(source: str | Path) -> CostCase:
    """Load a cost case from a file path or a built-in design name."""
    path = find(str(source))
    raw = case_mod.read_toml(path)
    try:
        return from_dict(raw)
    except RecursionError:
        raise CaseError("case", str(path), "is nested too deeply") from None


def find(source: str) -> Path:
    """A file path, or the built-in design named ``source``."""
    path = Path(source)
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if source and (path.suffix == ".toml" or exists):
        return path
    designs = catalog.entries("designs")
    if source in designs:
        return designs[source]
    raise CaseError("case", source, f"expected a cost case file or a built-in design: "
                    f"{', '.join(sorted(designs))}")


# -- pydantic errors -> CaseError -------------------------------------------------------------

def _case_error(exc: ValidationError) -> CaseError:
    """The first error as one line: dotted field path, value, what was expected."""
    errors = exc.errors(include_url=False)
    if not errors:
        return CaseError("case", None, "invalid cost case")
    err = errors[0]
    loc = [str(p) for p in err["loc"] if not _is_tag(str(p))]
    field = ".".join(loc) or "case"
    value = err.get("input")
    kind = err["type"]
    model = _model_at(loc[:-1])
    annotation = _field_expect(model, loc[-1]) if loc and model is not None else None
    if kind == "missing":
        return CaseError(field, MISSING, f"expected {annotation or 'a value'}")
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields) if model is not None else ""
        return CaseError(field, value, f"unknown key; known keys: {known}")
    msg = str(err.get("msg", ""))
    if msg.startswith("Value error, "):
        return CaseError(field, value, msg[len("Value error, "):])
    if annotation:
        return CaseError(field, value, f"expected {annotation}")
    return CaseError(field, short_repr(value), msg or "invalid value")


def _is_tag(part: str) -> bool:
    return any(t in part for t in ("[", "constrained", "function-")) or part in {
        "int", "float", "str", "bool", "list"}


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = CostCase
    for part in loc:
        info = model.model_fields.get(part)
        if info is None:
            return None
        found = _model_in(info.annotation)
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _field_expect(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    if info is None:
        return None
    for item in info.metadata:
        if isinstance(item, Expect):
            return item.text
    if _model_in(info.annotation) is not None:
        return "a table (or the name of a built-in entry)"
    return case_mod._describe(info.annotation)

