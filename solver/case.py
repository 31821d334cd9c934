"""Case files: TOML -> typed, validated, SI-unit :class:`Case`.

A case names or inlines a model, a hardware entry and a network, and gives the cluster, the
training job and the parallel configuration. Every physical quantity carries a unit and is
converted once here. Every problem is reported as a :class:`CaseError` naming the field, the
value and what was expected -- never as a pydantic, pint or Python error.

Numbers are checked against generous ranges (:data:`INT_MAX`, :data:`units.RANGES`,
:data:`MIN_EFFICIENCY`): far beyond any real system, but tight enough that every derived time,
memory and cost stays a finite float.
"""

from __future__ import annotations

import copy
import math
import tomllib
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from perfcost.formulations.specs import PLACEMENTS
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from . import catalog, units
from .errors import MISSING, CaseError, short_repr

#: Largest integer a size, count or parallel degree may be.
INT_MAX = 10**9
#: Smallest achievable fraction of a peak (efficiencies); smaller is a typo, and would make
#: every time overflow.
MIN_EFFICIENCY = 1e-3
#: Largest oversubscription of a scale-out fabric.
MAX_OVERSUBSCRIPTION = 1e6


class Expect:
    """Annotation marker: how a field's expected value is described in error messages."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Expect({self.text!r})"


# -- validators: each raises ValueError with an "expected ..." message, nothing else ----------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """A short description of what ``value`` is, for 'got ...' hints."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, float):
        return "a fraction" if math.isfinite(value) and not value.is_integer() else "a float"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "nothing"
    return type(value).__name__


def _numeric_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _int_problem(value: Any, low: int, high: int) -> str | None:
    """Why ``value`` is not an integer in [low, high], or None."""
    if not _is_int(value):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer() and (
                value >= 1):
            return f"got {value!r}; write it without a decimal point"
        if isinstance(value, str):
            return "got text; write the number without quotes" if _numeric_text(value) else (
                "got text")
        return f"got {_kind(value)}"
    if value < low:
        return "too small"
    if value > high:
        return "too large"
    return None


POSITIVE_INT = "a positive integer"


def _check_int(value: Any, expected: str = POSITIVE_INT) -> int:
    problem = _int_problem(value, 1, INT_MAX)
    if problem == "too large":
        raise ValueError(f"expected {expected}, at most {INT_MAX:.0e}")
    if problem == "too small":
        raise ValueError(f"expected {expected}")
    if problem is not None:
        raise ValueError(f"expected {expected}; {problem}")
    return int(value)


def _positive_int(value: Any) -> int:
    return _check_int(value)


def _int_choice(value: Any) -> Any:
    """A positive integer, or a non-empty list of them (the values to choose from)."""
    expected = f"{POSITIVE_INT} or a non-empty list of them"
    if isinstance(value, list):
        if not value:
            raise ValueError(f"expected {expected}; got an empty list")
        out = []
        for i, item in enumerate(value):
            if _int_problem(item, 1, INT_MAX) is not None:
                raise ValueError(f"expected {expected}; item {i} is {short_repr(item, 40)}")
            out.append(int(item))
        return out
    return _check_int(value, expected=expected)


def _choice_or_list(options: tuple[Any, ...], what: str) -> Callable[[Any], Any]:
    expected = f"{what}, or a non-empty list of them"

    def ok(item: Any) -> bool:
        # bool is an int, and 1 == True: compare types as well as values.
        return any(type(item) is type(o) and item == o for o in options)

    def check(value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError(f"expected {expected}; got an empty list")
            for i, item in enumerate(value):
                if not ok(item):
                    raise ValueError(f"expected {expected}; item {i} is {short_repr(item, 40)}")
            return value
        if not ok(value):
            raise ValueError(f"expected {expected}")
        return value

    return check


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[Any], float]:
    expected = (f"a number greater than {low:g} and at most {high:g}" if low_open
                else f"a number from {low:g} to {high:g}")

    def check(value: Any) -> float:
        if not _is_number(value):
            hint = ("; write the number without quotes"
                    if isinstance(value, str) and _numeric_text(value) else "")
            raise ValueError(f"expected {expected}{hint}")
        x = float(value)
        if not math.isfinite(x) or x < low or (low_open and x == low) or x > high:
            raise ValueError(f"expected {expected}")
        return x

    return check


def _int_pair(value: Any) -> tuple[int, int]:
    expected = f"two positive integers (at most {INT_MAX:.0e}), like [64, 64]"
    if not isinstance(value, list | tuple) or len(value) != 2 or any(
            _int_problem(v, 1, INT_MAX) is not None for v in value):
        raise ValueError(f"expected {expected}")
    return int(value[0]), int(value[1])


def _quantity(dimension: str, *, positive: bool) -> Any:
    def convert(value: Any) -> float:
        try:
            return units.check_range(units.parse(value, dimension), dimension,
                                     positive=positive)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(convert)


def _unit_text(dimension: str, *, positive: bool) -> Expect:
    _target, example = units.DIMENSIONS[dimension]
    noun = units.NOUNS[dimension]
    sign = "greater than 0" if positive else "of at least 0"
    return Expect(f"{noun} {sign}, like '{example}'")


def _unit_type(dimension: str, *, positive: bool) -> Any:
    return Annotated[float, _quantity(dimension, positive=positive),
                     _unit_text(dimension, positive=positive)]


Bytes = _unit_type("bytes", positive=True)
Bandwidth = _unit_type("bandwidth", positive=True)
FlopRate = _unit_type("flop_rate", positive=True)
Duration = _unit_type("time", positive=False)
Money = _unit_type("money", positive=False)
MoneyRate = _unit_type("money_rate", positive=False)
Power = _unit_type("power", positive=True)
Count = _unit_type("count", positive=True)
PositiveInt = Annotated[int, BeforeValidator(_positive_int), Expect(POSITIVE_INT)]
Fraction = Annotated[float, BeforeValidator(_number(MIN_EFFICIENCY, 1.0)),
                     Expect(f"a number from {MIN_EFFICIENCY:g} to 1")]
Oversubscription = Annotated[float, BeforeValidator(_number(1.0, MAX_OVERSUBSCRIPTION)),
                             Expect(f"a number from 1 to {MAX_OVERSUBSCRIPTION:g}")]
Tolerance = Annotated[float, BeforeValidator(_number(0.0, 1e6, low_open=True)),
                      Expect("a number greater than 0")]
#: Largest capacity or load-imbalance factor of an MoE layer (far beyond any router).
MAX_MOE_FACTOR = 1e3
CapacityFactor = Annotated[float, BeforeValidator(_number(0.0, MAX_MOE_FACTOR, low_open=True)),
                           Expect(f"a number greater than 0 and at most {MAX_MOE_FACTOR:g}")]
LoadImbalance = Annotated[float, BeforeValidator(_number(1.0, MAX_MOE_FACTOR)),
                          Expect(f"a number from 1 to {MAX_MOE_FACTOR:g}")]


def _non_negative_int(value: Any) -> int:
    if _is_int(value) and value == 0:
        return 0
    return _check_int(value, expected="a non-negative integer")


NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int),
                           Expect("a non-negative integer")]
Flag = Annotated[bool, Field(strict=True), Expect("true or false")]
Text = Annotated[str, Field(strict=True), Expect("text in quotes")]
IntPair = Annotated[tuple[int, int], BeforeValidator(_int_pair),
                    Expect("two positive integers, like [64, 64]")]
IntChoice = Annotated[int | list[int], BeforeValidator(_int_choice),
                      Expect(f"{POSITIVE_INT} or a non-empty list of them")]

RECOMPUTE_OPTIONS = ("none", "selective", "full")
Recompute = Literal["none", "selective", "full"]
RecomputeChoice = Annotated[
    Recompute | list[Recompute],
    BeforeValidator(_choice_or_list(RECOMPUTE_OPTIONS, "one of 'none', 'selective', 'full'")),
    Expect("one of 'none', 'selective', 'full', or a non-empty list of them")]
PlacementChoice = Annotated[
    str | list[str],
    BeforeValidator(_choice_or_list(PLACEMENTS, "one of 'tp-cp-dp-pp', 'tp-cp-pp-dp'")),
    Expect("one of 'tp-cp-dp-pp', 'tp-cp-pp-dp', or a non-empty list of them")]
FlagChoice = Annotated[
    bool | list[bool], BeforeValidator(_choice_or_list((False, True), "true or false")),
    Expect("true or false, or a non-empty list of them")]
ZeroChoice = Annotated[
    int | list[int], BeforeValidator(_choice_or_list((0, 1, 2, 3), "a ZeRO stage 0, 1, 2 or 3")),
    Expect("a ZeRO stage 0, 1, 2 or 3, or a non-empty list of them")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)




class SourcedFraction(Strict):
    """An efficiency (a fraction of a peak) with its provenance."""

    value: Fraction
    source: Text


class ModelSection(Strict):
    name: Text
    description: Text = ""
    source: Text = ""
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt | None = None
    ffn: PositiveInt
    ffn_kind: Literal["gelu", "swiglu"] = "gelu"
    vocab: PositiveInt
    seq_len: PositiveInt
    tied_embeddings: Flag = False
    biases: Flag = False
    positions: Literal["learned", "rope"] = "rope"
    dropout: Flag = False
    # Mixture of experts (formulations/moe.py); no experts is a dense model.
    experts: PositiveInt | None = None
    shared_experts: NonNegativeInt = 0
    top_k: PositiveInt | None = None
    expert_ffn: PositiveInt | None = None
    moe_every: PositiveInt = 1
    first_dense_layers: NonNegativeInt = 0
    # How many layers are MoE (DESIGN.md's key): the last ones, every moe_every-th; an
    # alternative to first_dense_layers (first_dense_layers = layers - moe_layers * moe_every).
    moe_layers: PositiveInt | None = None
    capacity_factor: CapacityFactor | None = None
    load_imbalance: LoadImbalance = 1.0
    # Node-limited routing: scale-up domains (nodes) one token may be sent to at most.
    route_domains: PositiveInt | None = None
    # Multi-head latent attention (formulations/mla.py).
    q_lora_rank: PositiveInt | None = None
    kv_lora_rank: PositiveInt | None = None
    qk_nope_head_dim: PositiveInt | None = None
    qk_rope_head_dim: PositiveInt | None = None
    v_head_dim: PositiveInt | None = None
    # Multi-token prediction modules (DeepSeek-V3 Sec. 2.2): recorded, not yet modelled.
    mtp_modules: NonNegativeInt = 0


class FlashEfficiency(Strict):
    """Fractions of the dense peak one FlashAttention generation's kernels reach, and their
    fixed cost per wave of tiles."""

    forward: Fraction
    backward: Fraction
    forward_tile_overhead: Duration = 0.0
    backward_tile_overhead: Duration = 0.0
    source: Text


class EfficiencySection(Strict):
    matmul: SourcedFraction
    memory: SourcedFraction
    gemm_tile: IntPair
    kernel_overhead: Duration
    kernel_overhead_source: Text
    # Fixed cost per wave of GEMM output tiles (formulations.compute); 0: plain roofline.
    wave_overhead: Duration = 0.0
    # Rows of the narrow tiles of GEMMs with fewer rows than gemm_tile[0]
    # (formulations.compute.gemm_tile_rows); None: every GEMM uses gemm_tile[0] rows.
    gemm_row_granule: PositiveInt | None = None
    gemm_row_granule_source: Text = ""
    # Dispatch latency an isolated eager kernel timing adds ('perfcost calibrate'); recorded
    # with the fit, paid by no workload.
    measurement_floor: Duration = 0.0
    measurement_floor_source: Text = ""
    # The FlashAttention generation the software stack runs and the rates of each generation
    # (formulations.attention).
    flash_attention: Literal["fa2", "fa3"] = "fa2"
    fa2: FlashEfficiency | None = None
    fa3: FlashEfficiency | None = None
    # Provenance of a kernel fit ('perfcost calibrate'): file, date, residual summary.
    fit_source: Text = ""
    fit_as_of: Text = ""
    fit_residuals: Text = ""


class HardwareSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    peak_flops: dict[Literal["fp32", "tf32", "bf16", "fp16", "fp8"], FlopRate]
    hbm_capacity: Bytes
    hbm_bandwidth: Bandwidth
    sram: Bytes | None = None
    # On-chip shared memory per multiprocessor: FlashAttention's block sizes.
    shared_memory: Bytes | None = None
    shared_memory_source: Text = ""
    multiprocessors: PositiveInt
    price: Money = 0.0
    power: Power
    gpu_hour_price: MoneyRate = 0.0
    price_source: Text = ""
    efficiency: EfficiencySection


class LinkSection(Strict):
    bandwidth: Bandwidth
    latency: Duration
    efficiency: Fraction
    efficiency_source: Text = ""
    topology: Text = ""
    size: PositiveInt | None = None
    # A torus (topology = "torus") gives its dimensions; their product is the size.
    dims: Annotated[list[PositiveInt], Expect("a list of positive integers, like [16, 16, 16]")
                    ] | None = None
    oversubscription: Oversubscription = 1.0
    # Scale-out fabric structure (formulations/topology.py): GPUs under one leaf switch, rail
    # group or dragonfly group; the global-link share of a dragonfly; latency per switch hop.
    unit: PositiveInt | None = None
    global_taper: Fraction | None = None
    hop_latency: Duration = 0.0
    # Switch-side reduction (NVLink SHARP / InfiniBand SHARP), where the fabric has it: the
    # all-reduce bandwidth each rank sees and the latency of one reduce or multicast phase.
    reduction_bandwidth: Bandwidth | None = None
    reduction_latency: Duration | None = None
    reduction_source: Text = ""


class NetworkSection(Strict):
    name: Text
    description: Text = ""
    source: Text
    as_of: Text
    scale_up: LinkSection
    scale_out: LinkSection


class ClusterSection(Strict):
    gpus: IntChoice | None = None
    gpu_hour_price: MoneyRate | None = None


class TrainingSection(Strict):
    global_batch: PositiveInt
    tokens: Count = 300e9
    precision: Literal["bf16", "fp16"] = "bf16"
    optimizer: Literal["adam"] = "adam"
    grad_reduce_precision: Literal["bf16", "fp16", "fp32"] | None = None
    dp_overlap: Flag = False
    # Hide the MoE all-to-alls behind other micro-batches' compute (DeepSeek-V3's DualPipe,
    # Megatron-Core's a2a overlap): only the excess over the MoE layer's compute is exposed.
    ep_overlap: Flag = False
    # The tensor-parallel all-reduce algorithm; "auto" takes the fastest, as NCCL does.
    tp_algorithm: Literal["auto", "ring", "double_binary_tree", "in_network"] = "auto"
    # The attention core's kernels (formulations.attention).
    attention: Literal["materialized", "flash"] = "materialized"


class ParallelismSection(Strict):
    tp: IntChoice | None = None
    pp: IntChoice | None = None
    dp: IntChoice | None = None
    cp: IntChoice | None = None
    micro_batch: IntChoice | None = None
    virtual_stages: IntChoice | None = None
    recompute: RecomputeChoice | None = None
    placement: PlacementChoice | None = None
    sequence_parallel: FlagChoice | None = None
    zero: ZeroChoice | None = None
    ep: IntChoice | None = None
    # Not searched: expert tensor parallelism and whether stages may hold unequal layers.
    expert_tp: PositiveInt = 1
    uneven_stages: Flag = False


class CompareSection(Strict):
    """A fixed configuration (a published layout) evaluated beside the optimum by ``solve``."""

    name: Text
    source: Text = ""
    parallelism: ParallelismSection


class MetricSection(Strict):
    measured: float | str
    tolerance_pct: Tolerance


class ValidationSection(Strict):
    suite: Text
    source: Text
    published_id: Text
    metrics: dict[str, MetricSection]


class SearchSection(Strict):
    objective: Text = "iteration_time"
    engine: Literal["auto", "enumerate", "bound", "milp"] = "auto"


class ConstraintsSection(Strict):
    """Limits the search must respect (``perfcost solve``)."""

    budget: Money | None = None
    memory_headroom: Fraction = 1.0


class CodesignSection(Strict):
    """Hardware-software co-design (solver/codesign.py): the accelerator designs of a cost
    case (its ``[design]`` choices, fabric and datacenter) become systems of the search, one per
    design x network x GPU count, each priced by its own cluster bill of materials."""

    design: Text
    #: Capital budget of the whole cluster (accelerators, hosts, fabric), if any.
    capex_budget: Money | None = None
    #: Facility power limit (IT power x PUE), if any.
    power_limit: Power | None = None


def _non_empty(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise ValueError("expected a table or a non-empty list of built-in names")
    return value


class Case(Strict):
    name: Text = ""
    description: Text = ""
    model: ModelSection
    # A list offers the search a choice of entries; evaluate needs exactly one.
    hardware: Annotated[HardwareSection | list[HardwareSection], BeforeValidator(_non_empty)]
    network: Annotated[NetworkSection | list[NetworkSection], BeforeValidator(_non_empty)]
    cluster: ClusterSection = ClusterSection()
    # A training case has [training]; a serving case has [serving] instead (check_case).
    training: TrainingSection | None = None
    parallelism: ParallelismSection = ParallelismSection()
    search: SearchSection = SearchSection()
    constraints: ConstraintsSection = ConstraintsSection()
    validation: ValidationSection | None = None
    serving: ServingSection | None = None
    compare: list[CompareSection] = []
    codesign: CodesignSection | None = None


# The serving section (solver/serving_case.py) builds on the validators above.
from .serving_case import ServingSection, check_serving  # noqa: E402

Case.model_rebuild()


SECTIONS_BY_KIND = {"model": "models", "hardware": "hardware", "network": "networks"}
EXAMPLES = {"model": "gpt3-175b", "hardware": "a100-80gb", "network": "dgx-a100"}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError("case", str(path), "no such file or built-in case") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError, or a NUL in the path
        raise CaseError("case", str(path), f"cannot be read ({type(exc).__name__})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError("case", str(path), f"is not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, tables merged key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Replace built-in names (``model = "gpt3-175b"``) by their tables, and merge a table's
    ``base = "name"`` under its other keys."""
    if not isinstance(raw, dict):
        raise CaseError("case", raw, "expected a table of sections")
    out = copy.deepcopy(raw)
    for section, folder in SECTIONS_BY_KIND.items():
        value = out.get(section)
        what = f"the name of a built-in {section} (like '{EXAMPLES[section]}') or a table"
        if value is None:
            continue
        if isinstance(value, str):
            out[section] = catalog.load_entry(folder, value, section)
        elif isinstance(value, list) and section != "model" and all(
                isinstance(v, str) for v in value):
            # A choice among built-in entries, for the search.
            out[section] = [catalog.load_entry(folder, v, f"{section}[{i}]")
                            for i, v in enumerate(value)]
        elif isinstance(value, dict):
            if "base" in value:
                rest = dict(value)
                base = rest.pop("base")
                if not isinstance(base, str):
                    raise CaseError(f"{section}.base", base,
                                    f"expected the name of a built-in {section}, "
                                    f"like '{EXAMPLES[section]}'")
                out[section] = _merge(catalog.load_entry(folder, base, f"{section}.base"),
                                      rest)
        else:
            raise CaseError(section, value, f"expected {what}")
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` settings (value parsed as TOML, else kept as text).

    Apply them before :func:`resolve`: a section that names a built-in entry
    (``model = "gpt3-175b"``) becomes ``{base = "gpt3-175b"}`` when a setting goes inside it.
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        parts = [p.strip() for p in key.split(".")]
        if not sep or not key or not all(parts):
            raise CaseError("--set", item, "expected key=value, e.g. parallelism.tp=4")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and depth == 0 and part in SECTIONS_BY_KIND:
                child = node[part] = {"base": child}
            if not isinstance(child, dict):
                where = ".".join(parts[:depth + 1])
                raise CaseError("--set", item, f"expected a table at '{where}', which is "
                                f"{child!r}")
            node = child
        node[parts[-1]] = value
    return out


def from_dict(raw: dict[str, Any]) -> Case:
    """Validate a resolved dictionary into a :class:`Case`."""
    if not isinstance(raw, dict):
        raise CaseError("case", raw, "expected a table of sections")
    for section in SECTIONS_BY_KIND:
        if section not in raw:
            raise CaseError(section, MISSING,
                            f"name a built-in {section} (like {section} = "
                            f"'{EXAMPLES[section]}') or give a [{section}] table")
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        raise _case_error(exc) from None
    check_case(case)
    return case


def check_network(net: NetworkSection, field: str = "network") -> None:
    """A torus names dimensions that multiply to its size; nothing else names dimensions."""
    for level in ("scale_up", "scale_out"):
        link = getattr(net, level)
        where = f"{field}.{level}"
        if link.topology == "torus":
            if not link.dims:
                raise CaseError(f"{where}.dims", MISSING,
                                "expected the torus dimensions, like [16, 16, 16]")
            product = math.prod(link.dims)
            if link.size is not None and product != link.size:
                raise CaseError(f"{where}.dims", link.dims,
                                f"expected dimensions whose product is {where}.size = "
                                f"{link.size}, got {product}")
        elif link.dims is not None:
            raise CaseError(f"{where}.dims", link.dims,
                            f"expected no dimensions for topology '{link.topology}' "
                            "(only a torus has them)")


def check_case(case: Case) -> None:
    """Rules between fields of one section, that the field types cannot say."""
    if case.serving is not None:
        if case.training is not None:
            raise CaseError("serving", "[serving]", "expected either [training] or [serving] "
                            "in one case, not both")
        check_serving(case)
    elif case.training is None:
        raise CaseError("training", MISSING, "expected a table")
    networks = case.network if isinstance(case.network, list) else [case.network]
    for i, net in enumerate(networks):
        check_network(net, "network" if len(networks) == 1 else f"network[{i}]")
    m = case.model
    if m.hidden % m.heads:
        raise CaseError("model.hidden", m.hidden,
                        f"expected a multiple of model.heads = {m.heads}")
    if m.kv_heads is not None and (m.kv_heads > m.heads or m.heads % m.kv_heads):
        raise CaseError("model.kv_heads", m.kv_heads,
                        f"expected a divisor of model.heads = {m.heads}")
    check_moe(case)
    check_mla(m)


#: Fields that describe a mixture of experts, all of which need ``experts``.
MOE_FIELDS = ("shared_experts", "top_k", "expert_ffn", "capacity_factor", "first_dense_layers",
              "moe_layers", "route_domains")


def first_dense_layers(m: ModelSection) -> int:
    """Dense layers before the first MoE layer, from ``first_dense_layers`` or ``moe_layers``."""
    if m.moe_layers is None:
        return m.first_dense_layers
    return m.layers - m.moe_layers * m.moe_every
MLA_DIMS = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


def check_moe(case: Case) -> None:
    """Rules of a mixture-of-experts model and of its expert parallelism."""
    m, par = case.model, case.parallelism
    if m.experts is None:
        for name in MOE_FIELDS:
            value = getattr(m, name)
            if value not in (None, 0):
                raise CaseError(f"model.{name}", value,
                                "expected model.experts to be given too (a dense model has "
                                "no experts)")
        eps = par.ep if isinstance(par.ep, list) else [par.ep]
        if any(e not in (None, 1) for e in eps):
            raise CaseError("parallelism.ep", par.ep,
                            "expected 1: the model has no experts (model.experts)")
        if par.expert_tp != 1:
            raise CaseError("parallelism.expert_tp", par.expert_tp,
                            "expected 1: the model has no experts (model.experts)")
        return
    if m.top_k is None or m.expert_ffn is None:
        name = "top_k" if m.top_k is None else "expert_ffn"
        raise CaseError(f"model.{name}", MISSING,
                        "expected a positive integer for a mixture-of-experts model")
    if m.top_k > m.experts:
        raise CaseError("model.top_k", m.top_k,
                        f"expected at most model.experts = {m.experts}")
    if m.first_dense_layers >= m.layers:
        raise CaseError("model.first_dense_layers", m.first_dense_layers,
                        f"expected fewer than model.layers = {m.layers}")
    if m.moe_layers is not None:
        if m.first_dense_layers and m.first_dense_layers != first_dense_layers(m):
            raise CaseError("model.moe_layers", m.moe_layers,
                            f"expected model.layers - model.first_dense_layers = "
                            f"{m.layers - m.first_dense_layers} MoE layers (with moe_every = "
                            f"{m.moe_every}), or leave one of the two out")
        if first_dense_layers(m) < 0:
            raise CaseError("model.moe_layers", m.moe_layers,
                            f"expected at most model.layers / model.moe_every = "
                            f"{m.layers // m.moe_every}")
    if isinstance(par.ep, int) and m.experts % par.ep:
        raise CaseError("parallelism.ep", par.ep,
                        f"expected a divisor of model.experts = {m.experts}")
    if m.expert_ffn % par.expert_tp:
        raise CaseError("parallelism.expert_tp", par.expert_tp,
                        f"expected a divisor of model.expert_ffn = {m.expert_ffn}")


def check_mla(m: ModelSection) -> None:
    """Multi-head latent attention needs all of its head dimensions."""
    given = [name for name in ("q_lora_rank", *MLA_DIMS) if getattr(m, name) is not None]
    if m.kv_lora_rank is None:
        if given:
            raise CaseError(f"model.{given[0]}", getattr(m, given[0]),
                            "expected model.kv_lora_rank to be given too (multi-head latent "
                            "attention)")
        return
    for name in MLA_DIMS:
        if getattr(m, name) is None:
            raise CaseError(f"model.{name}", MISSING,
                            "expected a positive integer for multi-head latent attention")
    if m.kv_heads not in (None, m.heads):
        raise CaseError("model.kv_heads", m.kv_heads,
                        f"expected model.heads = {m.heads}: multi-head latent attention "
                        "gives every head its own keys and values")


def load(source: str | Path, overrides: list[str] | None = None) -> Case:
    """Load a case from a file path or a built-in case name."""
    path = catalog.find_case(str(source))
    try:
        raw = read_toml(path)
        if overrides:
            raw = apply_overrides(raw, overrides)
        return from_dict(resolve(raw))
    except RecursionError:
        raise CaseError("case", str(path), "is nested too deeply") from None


# -- pydantic errors -> CaseError -----------------------------------------------------------

def _case_error(exc: ValidationError) -> CaseError:
    """The first error of ``exc`` as a :class:`CaseError`: the field's dotted path, the value
    and what the field expects (from its annotation), never pydantic's own wording."""
    errors = exc.errors(include_url=False)
    if not errors:
        return CaseError("case", None, "invalid case")
    err = errors[0]
    raw_loc = tuple(err["loc"])
    kind = err["type"]
    keep_last = kind in ("missing", "extra_forbidden")
    loc = [p for i, p in enumerate(raw_loc)
           if not _is_union_tag(p) or (keep_last and i == len(raw_loc) - 1)]
    field = ".".join(_key_text(p) for p in loc) or "case"
    value = err.get("input")
    if kind == "missing":
        expected = _describe(_annotation_at(loc)) or "a value"
        return CaseError(field, MISSING, f"expected {expected}")
    if kind == "extra_forbidden":
        known = _known_keys(_annotation_at(loc[:-1]))
        tail = f"; known keys: {', '.join(known)}" if known else ""
        return CaseError(field, value, f"unknown key{tail}")
    msg = str(err.get("msg", ""))
    if kind == "value_error" and msg.startswith("Value error, "):
        return CaseError(field, value, msg[len("Value error, "):])
    if "[key]" in (str(p) for p in raw_loc):
        return CaseError(field, value, f"unknown key; {_pydantic_text(msg)}")
    expected = _describe(_annotation_at(loc))
    if expected:
        return CaseError(field, value, f"expected {expected}")
    return CaseError(field, value, _pydantic_text(msg))


def _key_text(part: Any) -> str:
    """A key of a location as the user would write it (quoted when it is not a bare key)."""
    text = str(part)
    bare = text and all(ch.isalnum() or ch in "-_" for ch in text) and text.isascii()
    return text if bare else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pydantic_text(msg: str) -> str:
    if msg.startswith("Input should be "):
        return "expected " + msg[len("Input should be "):]
    return msg[:1].lower() + msg[1:] if msg else "invalid value"


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the union member ("list[int]", "constrained-int", "HardwareSection")
    # into locations.
    text = str(part)
    return any(tag in text for tag in ("[", "constrained", "function-")) or text in {
        "int", "float", "str", "bool", "list"} or text in _SECTION_NAMES


def _members(annotation: Any) -> list[Any]:
    """The non-None members of a union (or the annotation itself)."""
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """``(bare type, metadata)`` of a possibly ``Annotated`` and optional annotation."""
    meta: list[Any] = []
    while True:
        if get_origin(annotation) is Annotated:
            meta.extend(annotation.__metadata__)
            annotation = get_args(annotation)[0]
            continue
        members = _members(annotation)
        if len(members) == 1 and members[0] is not annotation:
            annotation = members[0]
            continue
        return annotation, meta


def _field_annotation(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields.get(name)
    if info is None:
        return None
    if info.metadata:
        return Annotated[(info.annotation, *info.metadata)]
    return info.annotation


def _annotation_at(loc: Iterable[Any]) -> Any:
    """The annotation of the field at ``loc`` under :class:`Case` (None if unknown)."""
    annotation: Any = Case
    for part in loc:
        bare, _meta = _unwrap(annotation)
        tables = [m for m in _members(bare) if isinstance(m, type) and issubclass(m, BaseModel)]
        if tables and not (isinstance(bare, type) and issubclass(bare, BaseModel)):
            bare = tables[0]  # a table-or-list field: describe the table
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            annotation = _field_annotation(bare, str(part))
        elif get_origin(bare) is dict:
            annotation = get_args(bare)[1]
        elif get_origin(bare) in (list, tuple):
            annotation = get_args(bare)[0]
        else:
            return None
        if annotation is None:
            return None
    return annotation


def _describe(annotation: Any) -> str | None:
    """What a field of type ``annotation`` expects, in words."""
    if annotation is None:
        return None
    bare, meta = _unwrap(annotation)
    for item in meta:
        if isinstance(item, Expect):
            return item.text
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "a table"
    origin = get_origin(bare)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(bare))
    if origin is dict or bare is dict:
        return "a table"
    if origin in (list, tuple):
        return "a list"
    names = {bool: "true or false", str: "text in quotes", int: "an integer", float: "a number"}
    members = _members(bare)
    words = [names.get(m) or _describe(m) for m in members]
    words = [w for w in words if w]
    return " or ".join(words) if words else None


def _known_keys(annotation: Any) -> list[str]:
    bare, _meta = _unwrap(annotation) if annotation is not None else (None, [])
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return list(bare.model_fields)
    return []


_SECTION_NAMES = frozenset(cls.__name__ for cls in Strict.__subclasses__())
