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
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from perfcost.solver.case import catalog, files, local_files
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.case.fields import (
    Expect,
    Strict,
    Text,
)
from perfcost.solver.case.measured_sections import RETIRED_KEYS
from perfcost.solver.case.sections import (
    ClusterSection,
    CodesignSection,
    CompareSection,
    ConstraintsSection,
    HardwareSection,
    ModelSection,
    NetworkSection,
    ParallelismSection,
    SearchSection,
    TrainingSection,
    ValidationSection,
)
from perfcost.solver.case.serving_section import ServingSection, check_serving
from pydantic import BaseModel, BeforeValidator, Field, ValidationError


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
    compare: list[CompareSection] = Field(default_factory=list)
    codesign: CodesignSection | None = None




SECTIONS_BY_KIND = {"model": "models", "hardware": "hardware", "network": "networks"}
EXAMPLES = {"model": "gpt3-175b", "hardware": "a100-80gb", "network": "dgx-a100"}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = files.read_text(path)  # a regular file of bounded size (not /dev/zero)
    except FileNotFoundError:
        raise CaseError("case", str(path), "no such file or built-in case") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError, or a NUL in the path
        raise CaseError("case", str(path), f"cannot be read ({type(exc).__name__})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError("case", str(path), f"is not valid TOML: {exc}") from None


def resolve(raw: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Replace built-in names (``model = "gpt3-175b"``) and file paths (``hardware =
    "my-gpu.toml"``, relative to ``base_dir``; :mod:`.local_files`) by their tables, and merge a
    table's ``base = "name"`` under its other keys."""
    if not isinstance(raw, dict):
        raise CaseError("case", raw, "expected a table of sections")
    out = copy.deepcopy(raw)
    for section, folder in SECTIONS_BY_KIND.items():
        value = out.get(section)
        what = (f"the name of a built-in {section} (like '{EXAMPLES[section]}'), a file path "
                "or a table")
        if value is None:
            continue
        if isinstance(value, str):
            out[section] = local_files.load_entry(folder, value, section, base_dir)
        elif isinstance(value, list) and section != "model" and all(
                isinstance(v, str) for v in value):
            # A choice among built-in entries, for the search.
            out[section] = [local_files.load_entry(folder, v, f"{section}[{i}]", base_dir)
                            for i, v in enumerate(value)]
        elif isinstance(value, dict):
            if "base" in value:
                rest = dict(value)
                base = rest.pop("base")
                if not isinstance(base, str):
                    raise CaseError(f"{section}.base", base,
                                    f"expected the name of a built-in {section}, "
                                    f"like '{EXAMPLES[section]}', or a file path")
                out[section] = local_files.load_entry(folder, base, f"{section}.base",
                                                      base_dir, rest)
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
    if m.head_dim is None and m.hidden % m.heads:
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
    if m.kv_lora_rank is not None and m.head_dim is not None:
        raise CaseError("model.head_dim", m.head_dim, "expected no head_dim with multi-head "
                        "latent attention: qk_nope_head_dim, qk_rope_head_dim and v_head_dim "
                        "give its head widths")
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
        # Files a case names are found beside it; beside a built-in case, in the working folder.
        builtin = path.resolve().is_relative_to(catalog.root().resolve())
        return from_dict(resolve(raw, None if builtin else path.parent))
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
    if kind == "extra_forbidden" and loc and loc[-1] in RETIRED_KEYS:
        return CaseError(field, value, f"a retired key: write {RETIRED_KEYS[loc[-1]]}")
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
