"""The numeric face of a formulation: its quantities as one lambdified function plus the
metadata reports need (units, docs, groups, decision labels, parameter values), without sympy.

:func:`numeric_formulation` builds it from the sympy formulation once per input and keeps it
in the disk cache (:mod:`.cache`), so that a repeated ``perfcost evaluate`` neither imports
sympy nor builds and lambdifies the expressions again. The function is still ``lambdify``'s
own output (DESIGN.md, invariant 1): its generated source is stored and compiled again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from perfcost.solver.problem import cache
from perfcost.solver.problem.expressions import lambdify

#: Where a global name of lambdify's generated code may come from: numpy's namespace, or
#: these (the printer emits ``reduce`` for n-ary min/max and a few constants).
_OTHER_GLOBALS: dict[str, Any] = {"reduce": functools.reduce, "math": math, "numpy": np}


@dataclass(frozen=True)
class DecisionInfo:
    """A decision's name and, for a categorical one, the labels of its codes."""

    labels: tuple[str, ...] = ()

    def label(self, value: float) -> str | int:
        return self.labels[round(value)] if self.labels else round(value)


@dataclass(frozen=True)
class ParameterInfo:
    """A parameter's value (SI) and unit."""

    value: float
    unit: str


@dataclass(frozen=True)
class NumericFormulation:
    """Every quantity of a formulation as one numeric function of (parameters, decisions)."""

    name: str
    names: tuple[str, ...]
    units: Mapping[str, str]
    docs: Mapping[str, str]
    groups: Mapping[str, tuple[str, ...]]
    decisions: Mapping[str, DecisionInfo]
    parameters: Mapping[str, ParameterInfo]
    source: str
    global_names: tuple[str, ...]
    _compiled: list[Callable[..., Any]] = field(default_factory=list, repr=False,
                                                compare=False)

    @property
    def function(self) -> Callable[..., Any]:
        """The lambdified function (its arguments: parameters, then decisions, in order)."""
        if not self._compiled:
            namespace = _namespace(self.global_names)
            code = compile(self.source, f"<perfcost {self.name}>", "exec")
            exec(code, namespace)  # lambdify's own source, as lambdify itself runs it
            self._compiled.append(namespace["_lambdifygenerated"])
        return self._compiled[0]

    def __call__(self, decisions: Mapping[str, Any],
                 parameters: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Values of every quantity; decisions may be numpy arrays (vectorised)."""
        overrides = parameters or {}
        args = [overrides.get(name, p.value) for name, p in self.parameters.items()]
        args += [np.asarray(decisions[name], dtype=float) for name in self.decisions]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values = self.function(*args)
        return {n: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float))
                for n, v in zip(self.names, values, strict=True)}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "names": list(self.names), "units": dict(self.units),
                "docs": dict(self.docs),
                "groups": {k: list(v) for k, v in self.groups.items()},
                "decisions": {k: list(d.labels) for k, d in self.decisions.items()},
                "parameters": {k: [p.value, p.unit] for k, p in self.parameters.items()},
                "source": self.source, "global_names": list(self.global_names)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NumericFormulation:
        return cls(
            name=data["name"], names=tuple(data["names"]), units=dict(data["units"]),
            docs=dict(data["docs"]),
            groups={k: tuple(v) for k, v in data["groups"].items()},
            decisions={k: DecisionInfo(tuple(v)) for k, v in data["decisions"].items()},
            parameters={k: ParameterInfo(float(v[0]), str(v[1]))
                        for k, v in data["parameters"].items()},
            source=data["source"], global_names=tuple(data["global_names"]))


def _namespace(names: Sequence[str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for name in names:
        if name in _OTHER_GLOBALS:
            namespace[name] = _OTHER_GLOBALS[name]
        elif hasattr(np, name):
            namespace[name] = getattr(np, name)
        else:
            raise LookupError(name)
    return namespace


def _global_names(source: str) -> tuple[str, ...]:
    """The global names lambdify's source reads (its own function name aside)."""
    names: set[str] = set()

    def walk(code: Any) -> None:
        names.update(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_names"):
                walk(const)

    walk(compile(source, "<lambdify>", "exec"))
    names.discard("_lambdifygenerated")
    return tuple(sorted(names))


def from_formulation(formulation: Any, only: Sequence[str] = ()) -> NumericFormulation:
    """Lambdify every quantity of a sympy formulation (the slow step this module caches).

    The result keeps lambdify's source for the cache; where a global name of that source
    would not resolve to the same object when read back, the source is left empty and the
    result is not cached."""
    import inspect


    names = tuple(only or formulation.expressions)
    symbols = [p.symbol for p in formulation.parameters.values()] + [
        d.symbol for d in formulation.decisions.values()]
    fn = lambdify(symbols, [formulation.expressions[n] for n in names], cse=True)
    source = inspect.getsource(fn)
    global_names = _global_names(source)
    if any(name not in _OTHER_GLOBALS and getattr(np, name, None) is not fn.__globals__.get(name)
           for name in global_names):
        source, global_names = "", ()
    numeric = NumericFormulation(
        name=formulation.name, names=names, units=dict(formulation.units),
        docs=dict(formulation.docs),
        groups={k: tuple(v) for k, v in formulation.groups.items()},
        decisions={k: DecisionInfo(tuple(d.labels)) for k, d in formulation.decisions.items()},
        parameters={k: ParameterInfo(p.value, p.unit) for k, p in formulation.parameters.items()},
        source=source, global_names=global_names)
    numeric._compiled.append(fn)
    return numeric


def numeric_formulation(kind: str, inputs: Sequence[Any], build: Callable[[], Any],
                        only: Sequence[str] = ()) -> NumericFormulation:
    """The numeric formulation of ``kind`` built from ``inputs`` (frozen specs whose ``repr``
    states them in full), of the quantities ``only`` (default: all): from the disk cache, or
    by ``build()`` and lambdify, then stored."""
    entry_key = cache.key(kind, *(repr(i) for i in inputs), *only)
    found = cache.read("numeric", entry_key)
    if found is not None:
        try:
            numeric = NumericFormulation.from_json(found)
            _namespace(numeric.global_names)
            return numeric
        except (KeyError, TypeError, ValueError, LookupError):
            pass  # a damaged entry: build it again
    numeric = from_formulation(build(), only)
    if numeric.source:
        cache.write("numeric", entry_key, numeric.to_json())
    return numeric
