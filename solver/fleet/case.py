"""The fleet case (``cases/fleets/*.toml``): a horizon of periods, the GPU SKUs on offer, the
training runs and serving services that share them, the limits and the objective.

Quantities are written with units and parsed once by :mod:`perfcost.solver.case.units` through
the field types of :mod:`perfcost.solver.case.fields`; every price and power of a SKU carries
its ``source`` and ``as_of``. Periods are numbered from 1 in the file (``earliest = 1`` is the
first period; ``deadline = 6`` means finished by the end of the sixth).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.fields import (
    Count,
    Duration,
    Expect,
    Money,
    MoneyRate,
    NonNegativeInt,
    PositiveInt,
    Power,
    Strict,
    Text,
)
from pydantic import BeforeValidator, Field, ValidationError

#: Seconds in one period of each kind (a month is a twelfth of a Julian year, 365.25 days).
PERIOD_SECONDS: dict[str, float] = {"week": 7 * 86400.0, "month": 365.25 / 12 * 86400.0}
#: Most periods a horizon may have (a decade of weeks).
MAX_PERIODS = 520
#: Largest request rate a service may forecast, requests per second.
MAX_TRAFFIC = 1e9
#: Folder of the built-in fleet cases, under cases/.
FLEET_FOLDER = "fleets"

_TRAFFIC_TEXT = "a list of request rates per period (requests per second, each at least 0)"


def _traffic(value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected {_TRAFFIC_TEXT}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"expected {_TRAFFIC_TEXT}; item {i} is not a number")
        x = float(item)
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"expected {_TRAFFIC_TEXT}; item {i} is {item!r}, below 0")
        if x > MAX_TRAFFIC:
            raise ValueError(f"expected {_TRAFFIC_TEXT}; item {i} is above {MAX_TRAFFIC:g}")
        out.append(x)
    return out


Traffic = Annotated[list[float], BeforeValidator(_traffic), Expect(_TRAFFIC_TEXT)]
GpuCounts = Annotated[list[PositiveInt], Field(min_length=1),
                      Expect("a non-empty list of positive integers, like [64, 128, 256]")]


class SkuSection(Strict):
    """One kind of accelerator on offer: a shipped part (``hardware``) or a design of
    ``cases/designs`` (``design``), with what it costs to buy, rent and run."""

    name: Text
    hardware: Text | None = None
    design: Text | None = None
    network: Text
    #: Price of one GPU with its share of hosts and fabric; a design's own price if absent.
    purchase: Money | None = None
    #: For a design: hosts and fabric per accelerator, added to the design's price.
    system_share: Money = 0.0
    #: Rental price per GPU-hour; absent: the SKU cannot be rented.
    rental: MoneyRate | None = None
    #: Cost of running one owned GPU per hour (energy at the wall and operations).
    operating: MoneyRate = 0.0
    #: Facility power of one owned GPU (its host share and cooling included).
    power: Power
    #: Most GPUs that can be bought over the horizon.
    available: NonNegativeInt = 0
    #: Most GPUs that can be rented in one period.
    rentable: NonNegativeInt = 0
    #: GPUs per rack (the rack limit counts owned racks).
    gpus_per_rack: PositiveInt = 32
    #: Periods between the order (at the start) and the GPUs' first period of use.
    lead_time: NonNegativeInt = 0
    source: Text
    as_of: Text


class TrainingWorkload(Strict):
    name: Text
    model: Text
    tokens: Count
    global_batch: PositiveInt
    #: GPU counts offered to the search on each SKU.
    gpus: GpuCounts
    earliest: PositiveInt = 1
    deadline: PositiveInt
    #: What finishing the run is worth (the ``value`` objective).
    value: Money = 0.0


class ServingWorkload(Strict):
    name: Text
    model: Text
    traffic: Traffic
    prompt_len: PositiveInt
    output_len: PositiveInt
    slo_ttft: Duration
    slo_tpot: Duration
    precision: Literal["bf16", "fp8"] | list[Literal["bf16", "fp8"]] = Field(
        default_factory=lambda: ["bf16", "fp8"])
    #: Tensor-parallel replica shapes offered (one pipeline stage).
    tp: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 8])


class LimitsSection(Strict):
    capex: Money | None = None
    opex: Money | None = None
    power: Power | None = None
    racks: NonNegativeInt | None = None


class FleetSection(Strict):
    periods: PositiveInt
    period: Literal["week", "month"] = "month"
    objective: Literal["cost", "value", "completion"] = "cost"


class FleetCase(Strict):
    name: Text = ""
    description: Text = ""
    fleet: FleetSection
    limits: LimitsSection = LimitsSection()
    sku: list[SkuSection] = Field(min_length=1)
    training: list[TrainingWorkload] = Field(default_factory=list)
    serving: list[ServingWorkload] = Field(default_factory=list)


def check(case: FleetCase) -> None:
    """Rules across fields: each raises a one-line :class:`CaseError` naming the field."""
    periods = case.fleet.periods
    if periods > MAX_PERIODS:
        raise CaseError("fleet.periods", periods, f"expected at most {MAX_PERIODS}")
    if not case.training and not case.serving:
        raise CaseError("training", [], "expected at least one training run or serving service")
    names: set[str] = set()
    for i, sku in enumerate(case.sku):
        where = f"sku.{i}"
        if (sku.hardware is None) == (sku.design is None):
            raise CaseError(f"{where}.hardware", sku.hardware,
                            "expected exactly one of hardware (a built-in part) or design "
                            "(a design of cases/designs)")
        if sku.hardware is not None and sku.purchase is None:
            raise CaseError(f"{where}.purchase", None,
                            "expected the price of one GPU, like '33750 USD'")
        if sku.rental is None and sku.rentable:
            raise CaseError(f"{where}.rentable", sku.rentable,
                            "expected 0 when no rental price is given")
        if sku.name in names:
            raise CaseError(f"{where}.name", sku.name, "expected a name no other SKU has")
        names.add(sku.name)
    seen: set[str] = set()
    for i, run in enumerate(case.training):
        where = f"training.{i}"
        if run.deadline < run.earliest:
            raise CaseError(f"{where}.deadline", run.deadline,
                            f"expected a period at or after the earliest start "
                            f"(earliest = {run.earliest})")
        if run.deadline > periods:
            raise CaseError(f"{where}.deadline", run.deadline,
                            f"expected a period within the horizon (fleet.periods = {periods})")
        _unique(run.name, seen, f"{where}.name")
    for i, service in enumerate(case.serving):
        where = f"serving.{i}"
        if len(service.traffic) != periods:
            raise CaseError(f"{where}.traffic", service.traffic,
                            f"expected one rate per period ({periods})")
        _unique(service.name, seen, f"{where}.name")


def _unique(name: str, seen: set[str], field: str) -> None:
    if name in seen:
        raise CaseError(field, name, "expected a name no other workload has")
    seen.add(name)


def from_dict(raw: Any) -> FleetCase:
    from perfcost.solver.case.schema import _case_error

    if not isinstance(raw, dict):
        raise CaseError("case", raw, "expected a table of sections")
    try:
        case = FleetCase.model_validate(raw)
    except ValidationError as exc:
        raise _case_error(exc) from None
    check(case)
    return case


def find(source: str) -> Path:
    """A fleet file path, or the path of the built-in fleet named ``source``."""
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        return path
    from perfcost import cases

    folder = Path(cases.__file__).parent / FLEET_FOLDER
    builtin = folder / f"{source}.toml"
    if builtin.exists():
        return builtin
    known = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
    raise CaseError("fleet", source, f"no such file or built-in fleet; built-in: {known}")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` settings; a number in the path indexes a list of tables
    (``training.0.deadline=6``). The value is read as TOML, else kept as text."""
    import copy
    import tomllib

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = [p.strip() for p in key.strip().split(".")]
        if not sep or not all(parts):
            raise CaseError("--set", item, "expected key=value, e.g. training.0.deadline=6")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        node: Any = out
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth + 1])
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise CaseError("--set", item, f"expected an index below {len(node)} at "
                                    f"'{where}'")
                index: Any = int(part)
            elif isinstance(node, dict):
                index = part
                if not last and index not in node:
                    node[index] = {}
            else:
                raise CaseError("--set", item, f"expected a table or list above '{where}'")
            if last:
                node[index] = value
            else:
                node = node[index]
    return out


def load(source: str, overrides: list[str] | None = None) -> FleetCase:
    """Load a fleet case from a file or a built-in name, with ``key=value`` overrides."""
    from perfcost.solver.case.schema import read_toml

    raw = read_toml(find(source))
    if overrides:
        raw = apply_overrides(raw, overrides)
    return from_dict(raw)
