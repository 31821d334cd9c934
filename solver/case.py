"""Case files: TOML -> typed, validated, SI-unit :class:`Case`.

A case names or inlines a model, a hardware entry and a network, and gives the cluster, the
training job and the parallel configuration. Every physical quantity carries a unit and is
converted once here. Every problem is reported as a :class:`CaseError` naming the field.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from . import catalog, units
from .errors import CaseError


def _quantity(dimension: str) -> Any:
    def convert(value: Any) -> float:
        try:
            return units.parse(value, dimension)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(convert)


Bytes = Annotated[float, _quantity("bytes"), Field(gt=0)]
Bandwidth = Annotated[float, _quantity("bandwidth"), Field(gt=0)]
FlopRate = Annotated[float, _quantity("flop_rate"), Field(gt=0)]
Duration = Annotated[float, _quantity("time"), Field(ge=0)]
Money = Annotated[float, _quantity("money"), Field(ge=0)]
MoneyRate = Annotated[float, _quantity("money_rate"), Field(ge=0)]
Power = Annotated[float, _quantity("power"), Field(gt=0)]
Count = Annotated[float, _quantity("count"), Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0, strict=True)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(Strict):
    """A value with its provenance."""

    value: float
    source: str


class ModelSection(Strict):
    name: str
    description: str = ""
    source: str = ""
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt | None = None
    ffn: PositiveInt
    ffn_kind: Literal["gelu", "swiglu"] = "gelu"
    vocab: PositiveInt
    seq_len: PositiveInt
    tied_embeddings: bool = False
    biases: bool = False
    positions: Literal["learned", "rope"] = "rope"
    dropout: bool = False


class EfficiencySection(Strict):
    matmul: Sourced
    memory: Sourced
    gemm_tile: tuple[PositiveInt, PositiveInt]
    kernel_overhead: Duration
    kernel_overhead_source: str


class HardwareSection(Strict):
    name: str
    description: str = ""
    source: str
    as_of: str
    peak_flops: dict[Literal["fp32", "tf32", "bf16", "fp16", "fp8"], FlopRate]
    hbm_capacity: Bytes
    hbm_bandwidth: Bandwidth
    sram: Bytes | None = None
    multiprocessors: PositiveInt
    price: Money = 0.0
    power: Power
    gpu_hour_price: MoneyRate = 0.0
    price_source: str = ""
    efficiency: EfficiencySection


class LinkSection(Strict):
    bandwidth: Bandwidth
    latency: Duration
    efficiency: Fraction
    efficiency_source: str = ""
    topology: str = ""
    size: PositiveInt | None = None
    oversubscription: Annotated[float, Field(ge=1)] = 1.0


class NetworkSection(Strict):
    name: str
    description: str = ""
    source: str
    as_of: str
    scale_up: LinkSection
    scale_out: LinkSection


IntChoice = PositiveInt | list[PositiveInt]


class ClusterSection(Strict):
    gpus: IntChoice | None = None
    gpu_hour_price: MoneyRate | None = None


class TrainingSection(Strict):
    global_batch: PositiveInt
    tokens: Count = 300e9
    precision: Literal["bf16", "fp16"] = "bf16"
    optimizer: Literal["adam"] = "adam"
    grad_reduce_precision: Literal["bf16", "fp16", "fp32"] | None = None
    dp_overlap: bool = False


Recompute = Literal["none", "selective", "full"]


class ParallelismSection(Strict):
    tp: IntChoice | None = None
    pp: IntChoice | None = None
    dp: IntChoice | None = None
    cp: IntChoice | None = None
    micro_batch: IntChoice | None = None
    virtual_stages: IntChoice | None = None
    recompute: Recompute | list[Recompute] | None = None
    sequence_parallel: bool | list[bool] | None = None
    zero: Annotated[int, Field(ge=0, le=3, strict=True)] | list[int] | None = None


class MetricSection(Strict):
    measured: float | str
    tolerance_pct: Annotated[float, Field(gt=0)]


class ValidationSection(Strict):
    suite: str
    source: str
    published_id: str
    metrics: dict[str, MetricSection]


class SearchSection(Strict):
    objective: str = "iteration_time"
    engine: Literal["auto", "enumerate", "milp"] = "auto"


class Case(Strict):
    name: str = ""
    description: str = ""
    model: ModelSection
    hardware: HardwareSection
    network: NetworkSection
    cluster: ClusterSection = ClusterSection()
    training: TrainingSection
    parallelism: ParallelismSection = ParallelismSection()
    search: SearchSection = SearchSection()
    validation: ValidationSection | None = None


SECTIONS_BY_KIND = {"model": "models", "hardware": "hardware", "network": "networks"}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError("case", str(path), "no such file or built-in case") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError("case", str(path), f"cannot be read ({type(exc).__name__})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError("case", str(path), f"is not valid TOML: {exc}") from None


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Replace built-in names (``model = "gpt3-175b"``) by their tables."""
    out = copy.deepcopy(raw)
    for section, folder in SECTIONS_BY_KIND.items():
        value = out.get(section)
        if isinstance(value, str):
            out[section] = catalog.load_entry(folder, value, section)
        elif isinstance(value, dict) and "base" in value:
            base = value.pop("base")
            if not isinstance(base, str):
                raise CaseError(f"{section}.base", base, "expected the name of a built-in entry")
            merged = catalog.load_entry(folder, base, f"{section}.base")
            merged.update(value)
            out[section] = merged
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` settings (value parsed as TOML, else kept as text)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CaseError("--set", item, "expected key=value, e.g. parallelism.tp=4")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise CaseError(key, item, f"'{part}' is not a table")
            node = child
        node[parts[-1]] = value
    return out


def from_dict(raw: dict[str, Any]) -> Case:
    """Validate a resolved dictionary into a :class:`Case`."""
    for section in SECTIONS_BY_KIND:
        if section not in raw:
            raise CaseError(section, None, f"missing: name a built-in {section} or give a table")
    try:
        return Case.model_validate(raw)
    except ValidationError as exc:
        raise _case_error(exc) from None


def load(source: str | Path, overrides: list[str] | None = None) -> Case:
    """Load a case from a file path or a built-in case name."""
    path = catalog.find_case(str(source))
    raw = read_toml(path)
    raw = resolve(raw)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return from_dict(raw)


def _case_error(exc: ValidationError) -> CaseError:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
    kind = err["type"]
    value = err.get("input")
    msg = err["msg"]
    if kind == "missing":
        return CaseError(loc, None, "missing: this field is required")
    if kind == "extra_forbidden":
        return CaseError(loc, value, "unknown key")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return CaseError(loc, value, msg[0].lower() + msg[1:] if msg else "invalid value")


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the union member ("list[int]", "constrained-int") into locations.
    text = str(part)
    return any(tag in text for tag in ("[", "constrained", "function-")) or text in {
        "int", "float", "str", "bool", "list"}
