"""Closed forms of a formulation's quantities: LaTeX, Markdown, Python, C and JSON.

The expressions are the formulation's own (DESIGN.md, invariant 1); this module only names
their common subexpressions (``sympy.cse``) and prints them.

What stays symbolic
-------------------
Every exported function takes the **decision variables** (tp, pp, dp, ...; of a serving
case tp, pp, precision, batch and, disaggregated, the prefill pool's) as arguments and
every **parameter** (bandwidths, FLOP rates, model sizes, prices) as an argument whose default
is the case's value -- so calling a function with a configuration alone gives the numbers of
``perfcost evaluate``, and a what-if needs no re-export. A serving case has one formulation
per deployment kind (accelerator; colocated or disaggregated): a case offering a choice of
kind picks one with ``--set`` (:func:`serving_deployment`). ``--fix NAME=VALUE`` substitutes a
parameter or a decision (a categorical decision by its label) before printing, ``--fix NAME``
substitutes the case's value, and ``--fix parameters`` every parameter; what is fixed leaves
the signatures and the formulas get shorter.

A cost case (a design of cases/designs/, or a file with a ``[design]`` table) exports the
formulation ``perfcost cost`` prices it with (:data:`COST_KINDS`): the accelerator formulation
for a design alone, the cluster formulation for one with a ``[system]``. The design knobs
(compute chiplets, chiplet area, HBM stacks, scale-up links) and, for a cluster, its size and
scale-up domain are the arguments; the parameters default to the case's values as above.

The code formats (Python, C) name subexpressions with one ``sympy.cse`` over all quantities
in the formulation's order -- the call ``sympy.lambdify(..., cse=True)`` makes for the
evaluator -- so that the exported code runs the same floating-point operations in the same
order. That matters: tile quantisation takes ``ceil`` of products, and a different grouping
can move a product across an integer. The document formats (LaTeX, Markdown) name only the
subexpressions of each quantity that are worth a name, for reading.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sympy as sp
from perfcost.formulations import queueing
from perfcost.formulations.core import Decision, Formulation, Parameter
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.fields import INT_MAX
from perfcost.solver.case.schema import Case
from perfcost.solver.cost.case import CostCase
from perfcost.solver.export import escape
from perfcost.solver.export import latex as tex
from perfcost.solver.problem.expressions import common_subexpressions
from sympy.printing.c import C99CodePrinter
from sympy.printing.latex import LatexPrinter, greek_letters_set, translate
from sympy.printing.pycode import PythonCodePrinter

FORMATS: tuple[str, ...] = ("latex", "markdown", "python", "c", "json")
#: ``--fix`` value that substitutes every parameter (only decisions stay symbolic).
ALL_PARAMETERS = "parameters"
#: Subexpressions with at most this many operations are written inline in the documents.
INLINE_OPS = 3
#: Sections of a case that are not a kind of their own. A section outside both sets that
#: holds a value means a kind this module does not know yet. (``[codesign]`` adds designed
#: accelerators to the systems a training search chooses from; the formulation, and so the
#: closed forms, stay the training ones.)
COMMON_SECTIONS = frozenset({"name", "description", "model", "hardware", "network", "cluster",
                             "parallelism", "search", "constraints", "validation", "compare",
                             "codesign"})


# -- from a case to its formulation and configuration ----------------------------------------

@dataclass(frozen=True)
class Kind:
    """How export, sensitivities and sweeps reach the formulation of one kind of case."""

    formulation: Callable[[Case], Formulation]  # the one ``perfcost evaluate`` builds
    decisions: Callable[[Case], dict[str, float]]  # codes of the case's fixed configuration


def _training_formulation(case: Case) -> Formulation:
    from perfcost.solver.problem.evaluate import training_formulation
    from perfcost.solver.problem.specs import single

    return training_formulation(single(case))


def _training_decisions(case: Case) -> dict[str, float]:
    from perfcost.solver.problem.specs import decision_codes, fixed_config, single

    return decision_codes(fixed_config(single(case)))


def serving_deployment(case: Case) -> dict[str, Any]:
    """The deployment kind of a serving case: its accelerator, colocated or disaggregated, and
    a disaggregated deployment's prefill accelerator -- what picks the formulation
    (solver/serving/evaluate.py builds one per kind). A case offering a choice of any of these
    raises: the closed forms differ in structure, so one is picked with ``--set``."""
    from perfcost.solver.case.serving_section import as_list

    sv = case.serving
    if sv is None:
        raise CaseError("serving", "None", "expected a [serving] table")
    names = [h.name for h in as_list(case.hardware)]
    modes = as_list(sv.disaggregated)
    for field_name, values, hint in (("hardware", names, "hardware=NAME"),
                                     ("serving.disaggregated", modes,
                                      "serving.disaggregated=true")):
        if len(values) != 1:
            raise CaseError(field_name, values, "expected one value for export, sensitivities "
                            f"and sweeps' closed forms; pick one with --set {hint}")
    out: dict[str, Any] = {"hardware": names[0], "disaggregated": bool(modes[0])}
    if out["disaggregated"]:
        prefill = (as_list(sv.prefill.hardware) if sv.prefill.hardware is not None
                   else names)
        if len(prefill) != 1 or prefill[0] not in names:
            raise CaseError("serving.prefill.hardware", prefill,
                            f"expected one of the case's hardware entries ({', '.join(names)})"
                            "; pick one with --set serving.prefill.hardware=NAME")
        out["prefill_hardware"] = prefill[0]
    return out


def _serving_formulation(case: Case) -> Formulation:
    from perfcost.solver.serving.evaluate import ServingModel

    return ServingModel(case).formulation_of(serving_deployment(case))


def serving_codes(formulation: Formulation, config: Mapping[str, Any]) -> dict[str, float]:
    """A serving deployment (labels and integers, as ``perfcost evaluate`` reports it) as the
    numeric codes of ``formulation``'s decisions."""
    out = {}
    for name, decision in formulation.decisions.items():
        value = config[name]
        out[name] = float(decision.labels.index(value) if decision.labels else value)
    return out


def _serving_decisions(case: Case) -> dict[str, float]:
    from perfcost.solver.serving.evaluate import ServingModel, fixed_config

    config = fixed_config(case)
    return serving_codes(ServingModel(case).formulation_of(config), config)


def serving_candidates(case: Case, slos: bool = False) -> dict[str, Any]:
    """Decision codes (numpy columns) of the deployments of the case's deployment kind
    (:func:`serving_deployment`) that the serving search enumerates and would accept:
    its own domains and checks (solver/serving/search.py) -- the split within one scale-up
    domain, ``ep`` dividing ``tp``, the weights and KV cache in memory, the prompt tokens in
    the chunk budget, finite values -- and, with ``slos``, the TTFT and TPOT SLOs too."""
    import numpy as np
    from perfcost.solver.serving.evaluate import ServingModel
    from perfcost.solver.serving.search import domains, evaluate_blocks

    deployment = serving_deployment(case)
    model = ServingModel(case)
    dom = domains(model)
    dom.update(hardware=[deployment["hardware"]],
               disaggregated=[deployment["disaggregated"]],
               prefill_hardware=[deployment.get("prefill_hardware", deployment["hardware"])])
    (block,) = evaluate_blocks(model, dom)
    keep = block.feasible if slos else np.logical_and.reduce(
        [np.isfinite(block.values["cost_per_million_tokens"]),
         *(v for k, v in block.checks.items() if k not in ("ttft", "tpot"))])
    formulation = model.formulation_of(deployment)
    out = {}
    for name, decision in formulation.decisions.items():
        column = block.configs[name][keep]
        if decision.labels:
            column = np.array([decision.labels.index(v) for v in column], dtype=float)
        out[name] = np.asarray(column, dtype=float)
    return out


#: Each kind of case by the section that makes it one.
KINDS: dict[str, Kind] = {"training": Kind(_training_formulation, _training_decisions),
                          "serving": Kind(_serving_formulation, _serving_decisions)}


def case_kind(case: Case) -> str:
    """The kind of model a case describes: the key of :data:`KINDS` whose section it has.

    A case with a section this module does not know (``[serving]``, say) raises, so that a
    new kind of case fails loudly here instead of being exported as training.
    """
    present = []
    for name, info in type(case).model_fields.items():
        if name in COMMON_SECTIONS:
            continue
        value = getattr(case, name)
        if value is not None and value != info.get_default(call_default_factory=True):
            present.append(name)
    unknown = [n for n in present if n not in KINDS]
    if unknown or len(present) != 1:
        raise CaseError(unknown[0] if unknown else "case", f"[{', '.join(present)}]",
                        "export, sensitivities and sweeps know cases with "
                        f"{' or '.join(f'[{k}]' for k in KINDS)} only")
    return present[0]


def case_formulation(case: Case) -> Formulation:
    """The formulation ``perfcost evaluate`` builds for ``case`` (one hardware and network)."""
    return KINDS[case_kind(case)].formulation(case)


def case_decisions(case: Case) -> dict[str, float]:
    """Numeric codes of the one configuration the case fixes (as ``perfcost evaluate``)."""
    return KINDS[case_kind(case)].decisions(case)


# -- cost cases (``perfcost cost``) ----------------------------------------------------------

#: The formulations ``perfcost cost`` evaluates, by name, with the modules of
#: ``perfcost.formulations`` whose docstrings explain them (what each models, and from where):
#: a design alone is priced by the accelerator formulation, a design with a ``[system]`` by the
#: cluster formulation, which holds the accelerator's quantities too.
COST_KINDS: dict[str, tuple[str, ...]] = {"accelerator": ("accelerator", "chiplet"),
                                          "cluster": ("system", "accelerator", "chiplet")}


@dataclass(frozen=True)
class CostTarget:
    """What export needs of a cost case: the formulation ``perfcost cost`` evaluates for it,
    with the case's values as the parameters' values, and the configuration it chooses."""

    case: CostCase
    formulation: Formulation
    config: dict[str, float]  # design knobs (and cluster decisions) ``perfcost cost`` picks
    about: str  # the docstrings of COST_KINDS[formulation.name]


def is_cost_case(source: str) -> bool:
    """Whether ``source`` names a cost case: a built-in design (and no built-in training or
    serving case of that name), or a TOML file with a top-level ``[design]`` table."""
    from perfcost.solver.case import catalog

    path = Path(source)
    try:
        exists = path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        exists = False
    if exists:
        from perfcost.solver.case.schema import read_toml

        return "design" in read_toml(path)
    if path.suffix == ".toml" or any(source in catalog.entries(f)
                                     for f in catalog.CASE_FOLDERS):
        return False
    return source in catalog.entries("designs")


def load_cost_case(source: str, sets: Sequence[str] = ()) -> CostCase:
    """The cost case ``source`` (a file or a built-in design) with ``--set`` overrides laid
    over its tables first, as a training case's are."""
    from perfcost.solver.case.schema import apply_overrides, read_toml
    from perfcost.solver.cost import case as cost_case

    raw = read_toml(cost_case.find(source))
    if sets:
        raw = apply_overrides(_based(raw, sets), list(sets))
    try:
        return cost_case.from_dict(raw)
    except RecursionError:
        raise CaseError("case", source, "is nested too deeply") from None


def _based(raw: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """``raw`` with each built-in entry that a setting goes inside (``design.memory =
    "hbm3"`` under ``design.memory.capacity=...``) written ``{base = "hbm3"}``, which the cost
    case's loader merges (solver/cost/case.py) -- as apply_overrides does for a training
    case's sections."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in sets:
        parts = [p.strip() for p in item.partition("=")[0].split(".")]
        if len(parts) > 2:
            section = out.get(parts[0])
            if isinstance(section, dict) and isinstance(section.get(parts[1]), str):
                section[parts[1]] = {"base": section[parts[1]]}
    return out


def cost_target(cc: CostCase) -> CostTarget:
    """The formulation ``perfcost cost`` evaluates for ``cc`` and the configuration it picks.

    It runs ``perfcost cost``'s own pricing (solver/cost/price.py, :func:`price_case`), so a case it
    refuses (no feasible configuration, a budget below the cheapest system, a cluster without
    a run to price) is refused here with the same one-line error. With ``run.case`` the run
    time is the training model's time on each designed accelerator -- not a closed form of
    this formulation but a parameter ``run_time`` that ``perfcost cost`` sets per
    configuration; its default here is the value at the chosen configuration.
    """
    import inspect
    from importlib import import_module

    from perfcost.solver.cost.price import price_case

    result = price_case(cc)
    formulation = result.formulation
    if formulation.name not in COST_KINDS:  # a formulation this module does not know yet
        raise CaseError("design", cc.name, f"expected a case priced by the "
                        f"{' or '.join(COST_KINDS)} formulation, not {formulation.name}")
    if cc.run is not None and cc.run.case is not None and "run_time" in formulation.parameters:
        run_time = formulation.parameters["run_time"]
        params = {**formulation.parameters, "run_time": replace(
            run_time, value=result.chosen.values["run_time"],
            doc=f"{run_time.doc} (the training model's, on the chosen design)")}
        formulation = replace(formulation, parameters=params)
    about = "\n\n".join(
        inspect.cleandoc(import_module(f"perfcost.formulations.{m}").__doc__ or "")
        for m in COST_KINDS[formulation.name])
    return CostTarget(result.case, formulation, dict(result.chosen.config), about)


#: Why ``--format json`` has no compiled form for a cost case.
COST_NOT_COMPILED = ("perfcost cost evaluates every configuration a cost case lists; "
                     "compile_problem builds the training search's form only")


def cost_export(target: CostTarget, quantities: Sequence[str] = (),
                fix: Mapping[str, str | float | None] | None = None,
                document: bool = False) -> Export:
    """:func:`build_export` of a cost case's formulation: the design knobs (and cluster
    decisions) are the arguments, the parameters keyword arguments with the case's values."""
    from perfcost.solver.cost.price import DECISION_UNITS

    built = build_export(target.formulation, quantities, fix, target.case.name, document)
    units = {n: DECISION_UNITS[n] for n in built.decisions if n in DECISION_UNITS}
    return replace(built, about=target.about, evaluated_by=("perfcost cost",),
                   decision_units=units)


def suggest(name: str, known: Iterable[str], cutoff: float = 0.5) -> str:
    """'; did you mean a, b?' for the closest names, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=cutoff)
    return f"; did you mean {', '.join(close)}?" if close else ""


# -- the exported object --------------------------------------------------------------------

@dataclass(frozen=True)
class ClosedForm:
    """One quantity: named subexpressions, then the result written with them."""

    name: str
    unit: str
    doc: str
    subexpressions: tuple[tuple[sp.Symbol, sp.Expr], ...]
    result: sp.Expr


@dataclass(frozen=True)
class Export:
    """The quantities of one formulation with what stays symbolic and what was fixed."""

    case: str
    formulation: str
    decisions: dict[str, Decision]
    parameters: dict[str, Parameter]
    fixed: dict[str, float]
    forms: tuple[ClosedForm, ...]
    names: dict[sp.Symbol, str] = field(default_factory=dict)  # symbol -> identifier
    exact: bool = True  # the code runs the evaluator's operations in the evaluator's order
    about: str = ""  # the formulation module's docstring: what it models, and from where
    evaluated_by: tuple[str, ...] = ("perfcost evaluate", "perfcost solve")  # commands whose
    # numbers the closed forms are
    decision_units: dict[str, str] = field(default_factory=dict)  # name -> unit; default "1"

    @property
    def arguments(self) -> list[str]:
        return list(self.decisions) + list(self.parameters)


def _fix_values(formulation: Formulation, fix: Mapping[str, str | float | None]
                ) -> dict[str, float]:
    """``--fix`` settings as numbers, checked against the formulation's names."""
    out: dict[str, float] = {}
    known = list(formulation.parameters) + list(formulation.decisions)
    for key, raw in fix.items():
        if key == ALL_PARAMETERS and raw is None:
            out.update({n: p.value for n, p in formulation.parameters.items()})
            continue
        if key in formulation.parameters:
            param = formulation.parameters[key]
            out[key] = param.value if raw is None else _in_domain(
                key, raw, _number("--fix", key, raw), param.symbol, param.value)
        elif key in formulation.decisions:
            dec = formulation.decisions[key]
            if raw is None:
                raise CaseError("--fix", key, "expected NAME=VALUE for a decision variable")
            if isinstance(raw, str) and raw in dec.labels:
                out[key] = float(dec.labels.index(raw))
            elif isinstance(raw, str) and raw.lower() in ("true", "false") and dec.labels == (
                    "false", "true"):
                out[key] = float(raw.lower() == "true")
            else:
                out[key] = _in_domain(key, raw, _number("--fix", key, raw), dec.symbol, None,
                                      dec.labels)
        else:
            raise CaseError("--fix", key, f"expected a parameter or decision of the "
                            f"{formulation.name} formulation or '{ALL_PARAMETERS}'"
                            f"{suggest(key, known)}")
    return out


def _number(flag: str, key: str, raw: str | float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CaseError(flag, f"{key}={raw}", "expected a number in SI units") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CaseError(flag, f"{key}={raw}", "expected a finite number")
    return value


def _in_domain(key: str, raw: str | float, value: float, symbol: sp.Symbol,
               case_value: float | None, labels: tuple[str, ...] = ()) -> float:
    """``value`` if it lies in the domain the formulation declares for ``symbol`` (its sympy
    assumptions: positive, non-negative, integer; a label's code): a formula is only defined
    there, and outside it a closed form silently becomes NaN (``--fix hbm_bandwidth=0``). The
    case's own value of a parameter is always accepted (it is what evaluate uses)."""
    if case_value is not None and value == case_value:
        return value
    if labels:
        if not float(value).is_integer() or not 0 <= value < len(labels):
            codes = ", ".join(f"{i} ({label})" for i, label in enumerate(labels))
            raise CaseError("--fix", f"{key}={raw}", f"expected a label or a code: {codes}")
        return value
    if symbol.is_integer and (not float(value).is_integer() or abs(value) > INT_MAX):
        raise CaseError("--fix", f"{key}={raw}", f"expected a whole number of at most "
                        f"{INT_MAX:.0e}")
    if symbol.is_positive and value <= 0:
        raise CaseError("--fix", f"{key}={raw}", "expected a number greater than 0")
    if symbol.is_nonnegative and value < 0:
        raise CaseError("--fix", f"{key}={raw}", "expected a number of at least 0")
    return value


def parse_fix(items: Sequence[str]) -> dict[str, str | None]:
    """``["hbm_bandwidth=4e12", "zero"]`` -> ``{"hbm_bandwidth": "4e12", "zero": None}``."""
    out: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key or (sep and not value.strip()):
            raise CaseError("--fix", item, "expected NAME=VALUE, NAME, or 'parameters'")
        out[key] = value.strip() if sep else None
    return out


def build_export(formulation: Formulation, quantities: Sequence[str] = (),
                 fix: Mapping[str, str | float | None] | None = None, case: str = "",
                 document: bool = False) -> Export:
    """The closed forms of ``quantities`` (default: all) of ``formulation``.

    ``document`` names subexpressions per quantity for reading; otherwise one ``cse`` over all
    of the formulation's expressions, as the evaluator's ``lambdify`` does.
    """
    known = list(formulation.expressions)
    for q in quantities:
        if q not in formulation.expressions:
            raise CaseError("--quantity", q, f"expected a quantity of the {formulation.name} "
                            f"formulation{suggest(q, known)} (all: {', '.join(known)})")
    chosen = list(dict.fromkeys(quantities)) or known
    fixed = _fix_values(formulation, fix or {})
    subs: dict[sp.Symbol, sp.Expr] = {}
    for name, value in fixed.items():
        symbol = (formulation.parameters[name].symbol if name in formulation.parameters
                  else formulation.decisions[name].symbol)
        subs[symbol] = sp.Integer(int(value)) if float(value).is_integer() else sp.Float(value)
    decisions = {n: d for n, d in formulation.decisions.items() if n not in fixed}
    parameters = {n: p for n, p in formulation.parameters.items() if n not in fixed}
    names = {d.symbol: n for n, d in decisions.items()}
    names.update({p.symbol: n for n, p in parameters.items()})
    if document:
        forms = tuple(_document_form(formulation, q, subs) for q in chosen)
    else:
        forms = _code_forms(formulation, chosen, subs)
    if subs:
        _defined(forms, fixed)
    return Export(case, formulation.name, decisions, parameters, fixed, forms, names,
                  exact=not subs, about=_about(formulation.name))


def _defined(forms: Sequence[ClosedForm], fixed: Mapping[str, float]) -> None:
    """No closed form is undefined (NaN, an unsigned infinity) after the ``--fix`` values are
    put in: every value is in its symbol's domain, but two together can still divide by
    zero."""
    undefined = (sp.nan, sp.zoo, sp.oo, -sp.oo)
    for form in forms:
        for expr in [form.result, *(v for _s, v in form.subexpressions)]:
            if any(expr.has(u) for u in undefined):
                shown = ", ".join(f"{k}={v:g}" for k, v in fixed.items())
                raise CaseError("--fix", shown, f"expected values for which {form.name} is "
                                "defined (it becomes infinite or not a number)")


def _about(name: str) -> str:
    """The docstring of the module that builds formulation ``name`` (cites its sources)."""
    import inspect

    from perfcost.formulations.registry import registered

    builder = registered().get(name)
    module = inspect.getmodule(builder) if builder is not None else None
    return inspect.cleandoc(module.__doc__ or "") if module is not None else ""


def substitute(exprs: Sequence[sp.Expr], subs: Mapping[sp.Basic, sp.Expr]) -> list[sp.Expr]:
    """``exprs`` with ``subs`` put in, node by node. A ``max``/``min`` whose arguments stay
    symbolic is rebuilt unevaluated: sympy would otherwise try to order its (long) branches
    symbolically, which takes minutes on the training model; everything else simplifies as
    usual (case splits on a fixed decision collapse, numbers fold)."""
    memo: dict[sp.Basic, sp.Basic] = {}

    def walk(e: sp.Basic) -> sp.Basic:
        if e in subs:
            return subs[e]
        if e.is_Atom or not e.args:
            return e
        found = memo.get(e)
        if found is None:
            args = [walk(a) for a in e.args]
            if all(a is b for a, b in zip(args, e.args, strict=True)):
                found = e
            elif isinstance(e, sp.Max | sp.Min) and not all(a.is_number for a in args):
                found = e.func(*args, evaluate=False)
            else:
                found = e.func(*args)
            memo[e] = found
        return found

    return [walk(e) for e in exprs]


def _code_forms(formulation: Formulation, chosen: Sequence[str],
                subs: Mapping[sp.Symbol, sp.Expr]) -> tuple[ClosedForm, ...]:
    exprs = [formulation.expressions[n] for n in formulation.expressions]
    if subs:
        exprs = substitute(exprs, subs)
    replacements, reduced = common_subexpressions(exprs)
    defined = dict(replacements)
    order = {s: i for i, (s, _e) in enumerate(replacements)}
    out = []
    for name, result in zip(formulation.expressions, reduced, strict=True):
        if name not in chosen:
            continue
        needed: set[sp.Symbol] = set()
        stack = [s for s in sp.sympify(result).free_symbols if s in defined]
        while stack:
            s = stack.pop()
            if s not in needed:
                needed.add(s)
                stack.extend(x for x in defined[s].free_symbols if x in defined)
        subexpressions = tuple((s, defined[s]) for s in sorted(needed, key=order.__getitem__))
        out.append(ClosedForm(name, formulation.units.get(name, ""),
                              formulation.docs.get(name, ""), subexpressions,
                              sp.sympify(result)))
    by_name = {f.name: f for f in out}
    return tuple(by_name[n] for n in chosen)


def _document_form(formulation: Formulation, name: str,
                   subs: Mapping[sp.Symbol, sp.Expr]) -> ClosedForm:
    expr = formulation.expressions[name]
    if subs:
        (expr,) = substitute([expr], subs)
    replacements, (result,) = common_subexpressions([expr])
    # Inline the small ones (1/t, 2 h): a name for them costs the reader more than it saves.
    kept: list[tuple[sp.Symbol, sp.Expr]] = []
    inline: dict[sp.Symbol, sp.Expr] = {}
    for symbol, value in replacements:
        value = value.xreplace(inline)
        if sp.count_ops(value) <= INLINE_OPS:
            inline[symbol] = value
        else:
            kept.append((symbol, value))
    result = sp.sympify(result).xreplace(inline)
    # Renamed with substitute, not xreplace: a new name simplifies nothing, and xreplace
    # would rebuild every max/min on the way evaluated, ordering their long branches
    # symbolically again (most of an export's time).
    renumber = {s: sp.Symbol(f"x_{i}") for i, (s, _v) in enumerate(kept)}
    *values, result = substitute([v for _s, v in kept] + [result], renumber)
    kept = [(renumber[s], v) for (s, _v), v in zip(kept, values, strict=True)]
    return ClosedForm(name, formulation.units.get(name, ""), formulation.docs.get(name, ""),
                      tuple(kept), result)


# -- Python --------------------------------------------------------------------------------

class _NamedPython(PythonCodePrinter):
    """Python printer with identifiers for the formulation's symbols."""

    def __init__(self, names: Mapping[sp.Symbol, str]) -> None:
        # The settings of lambdify's printer: same Mul/Add order, same operations.
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        self._names = names

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names.get(expr) or _identifier(expr.name)

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))


def _identifier(name: str) -> str:
    """An ASCII identifier for Python and C from a symbol's name."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not text or text[0].isdigit():
        text = "_" + text
    return f"{text}_" if keyword.iskeyword(text) else text


def _checked_names(ex: Export) -> None:
    """Every name written as code (functions, arguments, struct fields) is a plain ASCII
    identifier: names are the formulation's, but a name is never escaped, so it is checked."""
    for name in [*ex.decisions, *ex.parameters, *(f.name for f in ex.forms)]:
        escape.python_identifier(name, "name")


def _cse_name(symbol: sp.Symbol) -> str:
    return f"_{symbol.name}"


def _code_names(ex: Export) -> dict[sp.Symbol, str]:
    names = dict(ex.names)
    for form in ex.forms:
        for s, _v in form.subexpressions:
            names[s] = _cse_name(s)
    clash = {_cse_name(s) for f in ex.forms for s, _v in f.subexpressions} & set(ex.arguments)
    if clash:  # a parameter named like a subexpression; never today
        raise ValueError(f"identifiers clash: {sorted(clash)}")
    return names


def _header_lines(ex: Export, command: str) -> list[str]:
    lines = [f"Closed forms of the {ex.formulation} formulation"
             + (f" for case {ex.case}" if ex.case else "") + ".",
             "", f"Generated by: {command}" if command else "Generated by perfcost export."]
    if ex.fixed:
        lines += ["", "Fixed: " + ", ".join(f"{k} = {v:g}" for k, v in ex.fixed.items())]
    return lines


def _printed(ex: Export) -> list[sp.Expr]:
    """Every expression the code formats print (to find the named functions they call)."""
    return [e for f in ex.forms for e in (f.result, *(v for _s, v in f.subexpressions))]


def to_python(ex: Export, command: str = "") -> str:
    """A standalone module (standard library only): one function per quantity."""
    _checked_names(ex)
    printer = _NamedPython(_code_names(ex))
    doc = [
        *_header_lines(ex, command), "",
        "Every function takes the decision variables (categorical ones as integer codes, see",
        "DECISIONS) and, as keyword arguments, the parameters in SI units; the defaults are the",
        f"case's values, so a configuration alone gives the numbers of '{ex.evaluated_by[0]}'.",
    ]
    out = ['"""' + escape.python_docstring("\n".join(doc)) + '\n"""', "", "import math", "",
           ""]
    out.append("#: name -> (meaning, labels of the integer codes; empty for integers)")
    out.append("DECISIONS = {")
    for n, d in ex.decisions.items():
        out.append(f"    {n!r}: ({d.doc!r}, {tuple(d.labels)!r}),")
    out.append("}")
    out.append("#: name -> (value in SI units, unit, meaning)")
    out.append("PARAMETERS = {")
    for n, p in ex.parameters.items():
        out.append(f"    {n!r}: ({p.value!r}, {p.unit!r}, {p.doc!r}),")
    out.append("}")
    out.append("#: name -> (unit, meaning)")
    out.append("QUANTITIES = {")
    for f in ex.forms:
        out.append(f"    {f.name!r}: ({f.unit!r}, {f.doc!r}),")
    out.append("}")
    for function in queueing.defined_functions(_printed(ex)):
        out += ["", "", queueing.code_definition(function, "python")]
    signature = ", ".join(ex.decisions)
    if ex.parameters:
        signature += (", *, " if ex.decisions else "*, ") + ", ".join(
            f"{n}={p.value!r}" for n, p in ex.parameters.items())
    for form in ex.forms:
        out += ["", "", f"def {form.name}({signature}):"]
        text = form.doc or form.name.replace("_", " ")
        out.append(f'    """{escape.python_docstring(f"{text} [{form.unit or 1}].")}"""')
        for s, value in form.subexpressions:
            out.append(f"    {_cse_name(s)} = {printer.doprint(value)}")
        out.append(f"    return {printer.doprint(form.result)}")
    out += ["", "", "def evaluate(config, **parameters):",
            '    """Every quantity at ``config`` (decision name -> code or label)."""',
            "    args = {}",
            "    for name, value in config.items():",
            "        labels = DECISIONS[name][1]",
            "        if isinstance(value, bool) and labels:",
            "            value = labels.index(str(value).lower())",
            "        elif isinstance(value, str):",
            "            value = labels.index(value)",
            "        args[name] = value",
            "    return {name: globals()[name](**args, **parameters) for name in QUANTITIES}",
            ""]
    return "\n".join(out)


# -- C -------------------------------------------------------------------------------------

#: The math constants sympy's C printer may write, to 21 significant digits.
C_CONSTANTS: dict[str, str] = {
    "M_E": "2.71828182845904523536", "M_LN2": "0.693147180559945309417",
    "M_LN10": "2.30258509299404568402", "M_LOG2E": "1.44269504088896340736",
    "M_LOG10E": "0.434294481903251827651", "M_PI": "3.14159265358979323846",
    "M_SQRT2": "1.41421356237309504880", "M_SQRT1_2": "0.707106781186547524401",
}


class _NamedC(C99CodePrinter):
    def __init__(self, names: Mapping[sp.Symbol, str]) -> None:
        super().__init__()
        self._names = names

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names.get(expr) or _identifier(expr.name)


def c_prefix(case: str) -> str:
    """A C identifier prefix from a case name."""
    text = re.sub(r"[^a-z0-9_]", "_", case.lower()).strip("_")
    if not text:
        return "perfcost_"
    return ("case_" if text[0].isdigit() else "") + text + "_"


def to_c(ex: Export, prefix: str = "perfcost_", header: str = "perfcost.h",
         command: str = "") -> tuple[str, str]:
    """A header and a source (C99, libm): one function per quantity, plus ``evaluate``.

    The structs hold doubles only, in the order of ``DECISIONS``/``PARAMETERS``; build without
    floating-point contraction (``-ffp-contract=off``) to keep the evaluator's rounding.
    """
    _checked_names(ex)
    escape.c_identifier(prefix, "--prefix")
    escape.c_header_name(header)
    names = _code_names(ex)
    printer = _NamedC(names)
    guard = re.sub(r"[^A-Za-z0-9_]", "_", header).upper()
    guard = "_" + guard if guard[0].isdigit() else guard
    doc = [*_header_lines(ex, command), "",
           "Units: SI. Categorical decisions are integer codes (see the struct comments).",
           "Build with -ffp-contract=off to keep the evaluator's rounding; link with -lm."]
    h = ["/* " + "\n * ".join(escape.c_comment(line) for line in doc) + "\n */",
         f"#ifndef {guard}", f"#define {guard}", ""]
    h.append("typedef struct {")
    for n, d in ex.decisions.items():
        labels = f"; codes: {', '.join(f'{i} {lab}' for i, lab in enumerate(d.labels))}" \
            if d.labels else ""
        h.append(f"    double {n}; /* {escape.c_comment(d.doc + labels)} */")
    if not ex.decisions:
        h.append("    double unused;")
    h.append(f"}} {prefix}decisions;")
    h.append("")
    h.append("typedef struct {")
    for n, p in ex.parameters.items():
        h.append(f"    double {n}; /* {escape.c_comment(f'[{p.unit}] {p.doc}')} */")
    if not ex.parameters:
        h.append("    double unused;")
    h.append(f"}} {prefix}params;")
    h += ["", "/* The case's parameter values. */",
          f"extern const {prefix}params {prefix}default_params;",
          f"#define {prefix.upper()}QUANTITIES {len(ex.forms)}",
          f"extern const char *const {prefix}quantity_names[{len(ex.forms)}];", ""]
    for form in ex.forms:
        text = f"{form.doc or form.name.replace('_', ' ')} [{form.unit or '1'}]"
        h.append(f"/* {escape.c_comment(text)} */")
        h.append(f"double {prefix}{form.name}(const {prefix}decisions *d, "
                 f"const {prefix}params *p);")
    h += ["", "/* Every quantity, in the order of quantity_names. */",
          f"void {prefix}evaluate(const {prefix}decisions *d, const {prefix}params *p, "
          "double *out);", "", f"#endif /* {guard} */", ""]

    c = [f'/* Generated by perfcost export; see {header}. */', "#include <math.h>",
         f'#include "{header}"', "",
         "/* sympy writes these POSIX constants; C99 alone does not define them. */"]
    for name, value in C_CONSTANTS.items():
        c += [f"#ifndef {name}", f"#define {name} {value}", "#endif"]
    c += ["", f"const {prefix}params {prefix}default_params = {{"]
    c += [f"    {float(p.value)!r}, /* {n} */" for n, p in ex.parameters.items()] or ["    0.0"]
    c += ["};", "", f"const char *const {prefix}quantity_names[{len(ex.forms)}] = {{"]
    c += [f'    "{f.name}",' for f in ex.forms] + ["};"]
    for function in queueing.defined_functions(_printed(ex)):
        c += ["", queueing.code_definition(function, "c")]
    for form in ex.forms:
        c += ["", f"double {prefix}{form.name}(const {prefix}decisions *d, "
              f"const {prefix}params *p) {{"]
        used = set(form.result.free_symbols)
        for _s, v in form.subexpressions:
            used |= v.free_symbols
        for n, d in ex.decisions.items():
            if d.symbol in used:
                c.append(f"    const double {n} = d->{n};")
        for n, p in ex.parameters.items():
            if p.symbol in used:
                c.append(f"    const double {n} = p->{n};")
        c.append("    (void)d; (void)p;")
        for s, value in form.subexpressions:
            c.append(f"    const double {_cse_name(s)} = {printer.doprint(value)};")
        c.append(f"    return {printer.doprint(form.result)};")
        c.append("}")
    c += ["", f"void {prefix}evaluate(const {prefix}decisions *d, const {prefix}params *p, "
          "double *out) {"]
    c += [f"    out[{i}] = {prefix}{f.name}(d, p);" for i, f in enumerate(ex.forms)]
    c += ["}", ""]
    return "\n".join(h), "\n".join(c)


# -- LaTeX and Markdown ----------------------------------------------------------------------

class _Latex(LatexPrinter):
    """Subscripts as upright text (``B_hbm`` is not a bold h), multi-letter names upright
    (``ep`` is one symbol, not e times p), numbers as ``9.89 \\times 10^{14}``, indicators as
    Iverson brackets ``[r = 2]`` rather than two-line case splits."""

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        main, _, sub = expr.name.partition("_")
        head = _greek(main, _upright(main))
        if not sub:
            return head
        # A second underscore stays text (``per_element``), not a nested subscript.
        tail = sub if sub.isdigit() else _greek(sub, r"\mathrm{" + sub.replace("_", r"\_")
                                                + "}")
        return f"{head}_{{{tail}}}"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        args = expr.args
        if len(args) == 2 and args[1].cond == sp.true and {args[0].expr, args[1].expr} == {
                sp.Integer(0), sp.Integer(1)}:
            cond = self._print(args[0].cond)
            if args[0].expr == 1:
                return rf"\left[{cond}\right]"
            return rf"\left[\lnot\left({cond}\right)\right]"
        return super()._print_Piecewise(expr)

    def _print_Float(self, expr: sp.Float) -> str:
        return tex.tex_number(float(expr))

    def _print_Integer(self, expr: sp.Integer) -> str:
        # A round power of ten or so (1e15 GPUs: "no limit") reads better in scientific form.
        n = int(expr)
        if abs(n) >= 10**6 and float(n) == n and len(str(abs(n)).rstrip("0")) <= 6:
            return tex.tex_number(float(n))
        return str(n)


def _upright(name: str) -> str:
    """A multi-letter name as one upright symbol (``\\mathrm{ep}``); one letter, or a name
    that is already LaTeX (``\\tau``), as it is."""
    if len(name) <= 1 or name.startswith("\\"):
        return name
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


def _greek(name: str, otherwise: str | None = None) -> str:
    """``\\alpha`` for a Greek letter's name, else ``otherwise`` (default: the name). Not
    sympy's ``translate``, which also reads suffixes such as ``bm`` (bold) into names."""
    if name.lower() in greek_letters_set:
        return translate(name)
    return name if otherwise is None else otherwise


def _latex(expr: sp.Expr) -> str:
    return _Latex({"mul_symbol": "dot", "fold_short_frac": False}).doprint(expr)


def _quantity_symbol(name: str) -> str:
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


def _equations(form: ClosedForm) -> list[str]:
    """One line per named term (each subexpression, then the quantity), long right-hand
    sides split into further named terms and broken onto continuation lines."""
    taken = {s.name for s, _v in form.subexpressions}
    counter = iter(range(len(taken), 10**9))

    def new_symbol() -> sp.Symbol:
        while True:
            name = f"x_{next(counter)}"
            if name not in taken:
                taken.add(name)
                return sp.Symbol(name)

    printed: dict[sp.Basic, str] = {}

    def render(e: sp.Basic) -> str:
        # Splitting measures the same subtrees again and again: print each once.
        found = printed.get(e)
        if found is None:
            found = printed[e] = _latex(e)
        return found

    quantity = object()  # the left-hand side of the quantity itself
    pairs = [*form.subexpressions, (quantity, form.result)]
    split = tex.split_long(pairs, render, lambda e, m: substitute([e], m)[0], new_symbol)
    # Number the named terms in the order they are defined (x_0 first), as a reader expects.
    order = {lhs: sp.Symbol(f"x_{i}") for i, (lhs, _r) in enumerate(split) if lhs is not quantity}
    if any(old != new for old, new in order.items()):
        split = [(order.get(lhs, lhs), substitute([rhs], order)[0]) for lhs, rhs in split]
    return [tex.equation_lines(_quantity_symbol(form.name) if lhs is quantity
                               else render(lhs), tex.broken(rhs, render))
            for lhs, rhs in split]


def _symbol_rows(ex: Export) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for n, d in ex.decisions.items():
        labels = ", ".join(f"{i}: {lab}" for i, lab in enumerate(d.labels))
        rows.append((n, _latex(d.symbol), ex.decision_units.get(n, "1"),
                     "decision" + (f" ({labels})" if labels else ""), d.doc))
    for n, p in ex.parameters.items():
        rows.append((n, _latex(p.symbol), p.unit, f"{p.value:.6g}", p.doc))
    return rows


def _tex_value(value: str) -> str:
    """A symbol table's value cell: a number in math mode (scientific notation with
    ``\\times``), anything else (``decision (0: none, ...)``) as text."""
    try:
        number = float(value)
    except ValueError:
        return _tex_text(value)
    return f"${tex.tex_number(number)}$"


def _equation_exprs(form: ClosedForm) -> list[sp.Expr]:
    return [form.result, *(v for _s, v in form.subexpressions)]


def to_markdown(ex: Export, command: str = "") -> str:
    """A page for a README or docs/: the symbols with units, then one block per quantity."""
    title = f"# The {ex.formulation} formulation" + (
        f" ({escape.markdown_text(ex.case)})" if ex.case else "")
    out = [title, ""]
    if command:
        out += ["Generated by:", "", escape.markdown_fence(command), ""]
    if ex.about:
        out += ["## The model", "", escape.without_roles(ex.about), ""]
    tools = " and ".join(f"`{c}`" for c in ex.evaluated_by)
    verb = "computes" if len(ex.evaluated_by) == 1 else "compute"
    out += [f"Every quantity below is the expression {tools} {verb}; "
            "subexpressions worth a name are written first as $x_k$. "
            "$[c]$ is 1 where the condition $c$ holds and 0 elsewhere.", ""]
    if ex.fixed:
        out += ["Fixed: " + ", ".join(f"`{k}` = {v:g}" for k, v in ex.fixed.items()), ""]
    out += ["## Symbols", "", "| name | symbol | unit | value | meaning |",
            "| --- | --- | --- | --- | --- |"]
    for n, sym, unit, value, doc in _symbol_rows(ex):
        cells = " | ".join(escape.markdown_cell(x) for x in (unit, value, doc))
        out.append(f"| `{n}` | ${sym}$ | {cells} |")
    named = queueing.defined_functions([e for f in ex.forms for e in _equation_exprs(f)])
    if named:
        out += ["", "## Named functions", "",
                "Defined in `perfcost.formulations.queueing` (its docstring cites the sources); "
                "`perfcost export --format python` or `c` writes their definitions.", ""]
        out += [f"* `{f.__name__}`: {escape.markdown_cell(' '.join(f.__doc__.split()))}"
                for f in named if f.__doc__]
    out += ["", "## Quantities", ""]
    for form in ex.forms:
        out += [f"### `{form.name}` [{form.unit or '1'}]", ""]
        if form.doc:
            out += [escape.markdown_cell(form.doc[0].upper() + form.doc[1:]) + ".", ""]
        out += ["$$", r"\begin{aligned}", " \\\\\n".join(_equations(form)), r"\end{aligned}",
                "$$", ""]
    return "\n".join(out)


def to_latex(ex: Export, command: str = "", standalone: bool = False) -> str:
    """A LaTeX fragment (the packages of :data:`latex.PACKAGES`, named in its first lines): a
    symbol table and one ``align*`` per quantity, one line per named term. ``standalone``
    wraps it in a document that compiles as it is."""
    out = [f"% Closed forms of the {ex.formulation} formulation"
           + (f" for case {escape.latex_comment(ex.case)}" if ex.case else "")]
    if command:
        out.append(f"% Generated by: {escape.latex_comment(command)}")
    out.append("% Needs: " + ", ".join(rf"\usepackage{{{p}}}" for p in tex.PACKAGES))
    out += [r"\begin{longtable}{lllp{0.45\linewidth}}", r"\toprule",
            r"symbol & unit & value & meaning \\", r"\midrule", r"\endhead"]
    for _n, sym, unit, value, doc in _symbol_rows(ex):
        out.append(f"${sym}$ & {_tex_text(unit)} & {_tex_value(value)} & {_tex_text(doc)} "
                   "\\\\")
    out += [r"\bottomrule", r"\end{longtable}", ""]
    for form in ex.forms:
        out.append(escape.latex_comment(f"% {form.name} [{form.unit or '1'}]: {form.doc}"))
        out += [r"\begin{align*}", " \\\\\n".join(_equations(form)), r"\end{align*}", ""]
    body = "\n".join(out)
    if not standalone:
        return body
    title = f"The {ex.formulation} formulation" + (f" ({ex.case})" if ex.case else "")
    return tex.standalone(body, title)


def _tex_text(text: str) -> str:
    return escape.latex_text(text)


# -- JSON ------------------------------------------------------------------------------------

def to_json(ex: Export, compiled: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The closed forms as text (sympy syntax) and, per quantity, its compiled form."""
    names = _code_names(ex)
    printer = _NamedPython(names)
    return {
        "case": ex.case,
        "formulation": ex.formulation,
        "fixed": ex.fixed,
        "decisions": {n: {"doc": d.doc, "labels": list(d.labels)} for n, d in
                      ex.decisions.items()},
        "parameters": {n: {"value": p.value, "unit": p.unit, "doc": p.doc} for n, p in
                       ex.parameters.items()},
        "quantities": {
            f.name: {
                "unit": f.unit, "doc": f.doc,
                "subexpressions": [[names[s], printer.doprint(v)] for s, v in
                                   f.subexpressions],
                "expression": printer.doprint(f.result),
                **(dict(compiled.get(f.name, {})) if compiled else {}),
            } for f in ex.forms},
    }


def compiled_forms(case: Case, quantities: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The compiled form (solver/engines/compile.py) of each quantity over the case's search space,
    or why there is none. The search formulation holds ``pp`` micro-batches in flight on the
    first stage (the rule the search imposes), so memory there is the search's."""
    from perfcost.solver.cost.codesign import build_problem
    from perfcost.solver.engines.compile import NotCompilable, compile_problem

    if case_kind(case) != "training":
        return {q: {"compiled": None, "not_compiled": "the serving search enumerates its "
                    "deployments exhaustively; it has no compiled form"} for q in quantities}
    try:
        problem = build_problem(case)
    except CaseError as exc:
        return {q: {"compiled": None, "not_compiled": f"no search space: {exc}"}
                for q in quantities}
    out: dict[str, dict[str, Any]] = {}
    for q in quantities:
        if q not in problem.formulation.expressions:
            out[q] = {"compiled": None, "not_compiled": "not a quantity of the search"}
            continue
        try:
            form = compile_problem(replace(problem, quantity=q, objective=q, constraints=[],
                                           compiled=None))
        except NotCompilable as exc:
            out[q] = {"compiled": None, "not_compiled": str(exc)}
            continue
        data = form.to_json()
        data.pop("constraints", None)
        out[q] = {"compiled": data}
    return out
