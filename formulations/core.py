"""The formulation object and the registry every model is found through.

A formulation is a pure function from frozen, typed inputs to named sympy expressions over two
kinds of symbols:

* **decision symbols** -- integers or categorical codes the optimiser may choose (tp, pp, dp,
  micro_batch, recompute, ...); their finite domains come from the case (solver/problem/space.py);
* **parameter symbols** -- continuous quantities with a value (bandwidths, FLOP rates, model
  sizes), kept symbolic so that the same expression can be exported in closed form and
  differentiated for sensitivities.

Formulations know nothing of solvers, files or printing (DESIGN.md, invariant 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import sympy as sp

__all__ = [
    "Decision",
    "Formulation",
    "Parameter",
    "ParameterSet",
    "indicator",
    "register",
]


@dataclass(frozen=True)
class Parameter:
    """A named continuous quantity with a value in SI base units."""

    symbol: sp.Symbol
    value: float
    unit: str
    doc: str


@dataclass(frozen=True)
class Decision:
    """A decision variable: an integer symbol whose finite domain the search supplies.

    Categorical decisions (recompute mode, ...) are coded as integers; ``labels`` names them.
    """

    symbol: sp.Symbol
    doc: str
    labels: tuple[str, ...] = ()

    def label(self, value: float) -> str | int | bool:
        """The user-facing name of a domain value (a label for categorical decisions)."""
        if self.labels:
            return self.labels[round(value)]
        return round(value)


@dataclass
class ParameterSet:
    """Collects parameter symbols and their values while a formulation is being built."""

    parameters: dict[str, Parameter] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, doc: str, *,
            latex: str | None = None) -> sp.Symbol:
        """Declare a positive parameter symbol ``name`` with ``value`` (SI) and return it."""
        if name in self.parameters:
            existing = self.parameters[name]
            if existing.value != float(value):
                raise ValueError(f"parameter {name!r} declared twice with different values")
            return existing.symbol
        symbol = sp.Symbol(latex or name, positive=True)
        self.parameters[name] = Parameter(symbol, float(value), unit, doc)
        return symbol


@dataclass(frozen=True)
class Formulation:
    """Named sympy expressions plus the symbols they depend on.

    ``expressions`` maps a quantity name to its expression; ``units`` gives each quantity's SI
    unit; ``groups`` names subsets of quantities (e.g. the terms that add up to the iteration
    time) so that reports can show breakdowns without knowing the model.
    """

    name: str
    expressions: Mapping[str, sp.Expr]
    units: Mapping[str, str]
    docs: Mapping[str, str]
    decisions: Mapping[str, Decision]
    parameters: Mapping[str, Parameter]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expressions", MappingProxyType(dict(self.expressions)))
        object.__setattr__(self, "decisions", MappingProxyType(dict(self.decisions)))
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    def parameter_values(self) -> dict[sp.Symbol, float]:
        """Parameter symbol -> value, for substitution."""
        return {p.symbol: p.value for p in self.parameters.values()}

    def substituted(self, name: str, config: Mapping[str, float]) -> sp.Expr:
        """The expression ``name`` with parameters and the decisions in ``config`` put in, as
        exact sympy numbers (integers where the value is whole, so case splits and ceilings
        decide exactly). A node-for-node replacement: ``subs`` would re-match every
        sub-expression and takes minutes on a large formulation."""
        subs: dict[sp.Symbol, float] = self.parameter_values()
        for key, value in config.items():
            subs[self.decisions[key].symbol] = value
        return self.expressions[name].xreplace({symbol: _number(value)
                                                for symbol, value in subs.items()})


def _number(value: float) -> sp.Expr:
    """A value as an exact sympy number: an Integer where it is whole."""
    value = float(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def indicator(symbol: sp.Symbol, code: int) -> sp.Expr:
    """1 where a categorical decision equals ``code``, else 0 (prints as a case split)."""
    return sp.Piecewise((sp.Integer(1), sp.Eq(symbol, code)), (sp.Integer(0), True))


def _all_numbers(args: tuple[sp.Expr, ...]) -> bool:
    return all(sp.sympify(a).is_number for a in args)


def smallest(*args: sp.Expr) -> sp.Expr:
    """min(args), evaluated only between numbers: on symbolic arguments sympy's evaluation
    compares them symbolically (``factor_terms`` over each), which in a large formulation
    costs seconds per call and leaves the minimum standing anyway."""
    return sp.Min(*args, evaluate=_all_numbers(args))


def largest(*args: sp.Expr) -> sp.Expr:
    """max(args), evaluated only between numbers (see :func:`smallest`)."""
    return sp.Max(*args, evaluate=_all_numbers(args))


def exposed(remaining: sp.Expr) -> sp.Expr:
    """What of a time is not hidden behind overlapping work: max(0, remaining).

    Left unevaluated on symbols (:func:`largest`): on DeepSeek-V3's formulation sympy's
    symbolic comparison took most of a minute and changes no value."""
    return largest(0, remaining)


_REGISTRY: dict[str, Callable[..., Formulation]] = {}


def register(name: str) -> Callable[[Callable[..., Formulation]], Callable[..., Formulation]]:
    """Register a formulation builder under ``name``."""

    def wrap(fn: Callable[..., Formulation]) -> Callable[..., Formulation]:
        if name in _REGISTRY:
            raise ValueError(f"formulation {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap
