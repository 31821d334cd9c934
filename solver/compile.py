"""The compiled form: each objective and constraint as a sum of products of small tables.

A quantity of the formulation is rewritten as ``sum_k c_k * prod_j F_kj(x_Skj)`` where each
factor ``F`` is a table over the joint domain of a few decision variables ``S`` (most are
univariate; the roofline of one layer, for instance, depends on micro-batch, tp, cp, sequence
parallelism and recomputation together and is tabulated over their few hundred
combinations). Products of sums are distributed only where keeping a sum whole would couple
too many variables, so the form grows with the *sum* of the tables' sizes, not with the product
of the domains. Maxima and case splits stay inside the tables they belong to.

The structural rules (product of group sizes, divisibility, scale-up limits) are kept as data:
:mod:`engine_milp` writes them as linear relations over the prime exponents of the values.

The object is frozen and JSON-serialisable (``perfcost solve CASE --show-compiled``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from perfcost.formulations.core import Formulation

from .problem_search import SearchProblem

#: Largest joint domain a single table may span before products of sums are distributed.
MAX_TABLE = 8_192
SYSTEM = "system"


class NotCompilable(Exception):
    """The quantity does not fit the compiled form (a term couples too many variables)."""


@dataclass(frozen=True)
class Factor:
    variables: tuple[str, ...]
    values: tuple[float, ...]  # C order over the variables' domains


@dataclass(frozen=True)
class Term:
    coefficient: float
    factors: tuple[int, ...]


@dataclass(frozen=True)
class Compiled:
    """Objective and constraints (each ``<= 1`` after normalising by its limit)."""

    variables: dict[str, tuple[float, ...]]
    factors: tuple[Factor, ...]
    objective: tuple[Term, ...]
    constraints: dict[str, tuple[Term, ...]]
    objective_name: str

    @property
    def size(self) -> int:
        return int(np.prod([len(v) for v in self.variables.values()], dtype=float))

    def to_json(self) -> dict[str, Any]:
        return {
            "objective": self.objective_name,
            "variables": {k: list(v) for k, v in self.variables.items()},
            "factors": [{"variables": list(f.variables), "values": list(f.values)}
                        for f in self.factors],
            "objective_terms": [{"coefficient": t.coefficient, "factors": list(t.factors)}
                                for t in self.objective],
            "constraints": {name: [{"coefficient": t.coefficient, "factors": list(t.factors)}
                                   for t in terms] for name, terms in self.constraints.items()},
        }

    def evaluate(self, terms: Iterable[Term], config: dict[str, int]) -> float:
        """Value of a sum of terms at a configuration given as domain indices."""
        total = 0.0
        for term in terms:
            value = term.coefficient
            for fi in term.factors:
                f = self.factors[fi]
                value *= self.factor_value(f, config)
            total += value
        return total

    def factor_value(self, f: Factor, config: dict[str, int]) -> float:
        flat = 0
        for v in f.variables:
            flat = flat * len(self.variables[v]) + config[v]
        return f.values[flat]


_NUMERIC: dict[tuple[int, sp.Expr], Any] = {}


def _numeric(formulation: Formulation, expr: sp.Expr) -> Any:
    """``lambdify`` of ``expr`` over all of the formulation's symbols, cached: formulations are
    shared by every problem of one model structure, and so are their atoms."""
    key = (id(formulation), expr)
    fn = _NUMERIC.get(key)
    if fn is None:
        symbols = [d.symbol for d in formulation.decisions.values()] + [
            p.symbol for p in formulation.parameters.values()]
        fn = _NUMERIC[key] = sp.lambdify(symbols, expr, modules="numpy")
    return fn


def _as_indicator_sum(expr: sp.Piecewise) -> sp.Expr:
    """``Piecewise((a, c1), (b, True))`` as ``[c1] a + [not c1] b``: the conditions and the
    branches usually depend on different variables, so they become separate tables."""
    terms = []
    earlier: list[sp.Basic] = []
    for value, cond in expr.args:
        here = sp.And(cond, *[sp.Not(c) for c in earlier]) if earlier else cond
        terms.append(sp.Piecewise((1, here), (0, True)) * value)
        earlier.append(cond)
    return sp.Add(*terms)


class _Builder:
    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem
        f = problem.formulation
        self.decision_symbols = {d.symbol: name for name, d in f.decisions.items()}
        self.parameter_symbols = {p.symbol: name for name, p in f.parameters.items()}
        self.system_dependent = set()
        if len(problem.system_parameters) > 1:
            for name in problem.system_parameters[0]:
                vals = {p[name] for p in problem.system_parameters}
                if len(vals) > 1:
                    self.system_dependent.add(f.parameters[name].symbol)
        self.domains: dict[str, tuple[float, ...]] = dict(problem.space.domains)
        if len(problem.space.systems) > 1:
            self.domains[SYSTEM] = tuple(float(i) for i in range(len(problem.space.systems)))
        self.factors: list[Factor] = []
        self.index: dict[str, int] = {}
        self._vars_cache: dict[sp.Expr, frozenset[str]] = {}

    def variables(self, expr: sp.Expr) -> frozenset[str]:
        cached = self._vars_cache.get(expr)
        if cached is None:
            free = expr.free_symbols
            names = {self.decision_symbols[s] for s in free if s in self.decision_symbols}
            if free & self.system_dependent:
                names.add(SYSTEM)
            cached = frozenset(names)
            self._vars_cache[expr] = cached
        return cached

    def joint(self, names: Iterable[str]) -> int:
        return int(np.prod([len(self.domains[n]) for n in names], dtype=float))

    def expand(self, expr: sp.Expr) -> list[list[sp.Expr]]:
        """Terms (lists of multiplied atoms) whose atoms each span a small joint domain."""
        if isinstance(expr, sp.Add):
            return [t for arg in expr.args for t in self.expand(arg)]
        if isinstance(expr, sp.Piecewise) and self.joint(self.variables(expr)) > MAX_TABLE:
            if all(value.is_number for value, _cond in expr.args):
                # An indicator whose condition itself couples too many variables.
                raise NotCompilable(
                    f"a condition couples {sorted(self.variables(expr))} "
                    f"({self.joint(self.variables(expr)):,} combinations > {MAX_TABLE:,})")
            return self.expand(_as_indicator_sum(expr))
        if isinstance(expr, sp.Mul):
            terms: list[list[sp.Expr]] = [[]]
            for arg in expr.args:
                if (isinstance(arg, sp.Add | sp.Piecewise)
                        and self.joint(self.variables(arg)) > MAX_TABLE):
                    parts = self.expand(arg)
                else:
                    parts = [[arg]]
                terms = [t + p for t in terms for p in parts]
            return terms
        if self.joint(self.variables(expr)) > MAX_TABLE:
            raise NotCompilable(
                f"a {type(expr).__name__} couples {sorted(self.variables(expr))} "
                f"({self.joint(self.variables(expr)):,} combinations > {MAX_TABLE:,})")
        return [[expr]]

    def tabulate(self, atoms: list[sp.Expr], names: tuple[str, ...]) -> np.ndarray:
        f = self.problem.formulation
        fn = _numeric(f, sp.Mul(*atoms))
        grids = np.meshgrid(*[np.asarray(self.domains[n]) for n in names], indexing="ij")
        flat = {n: g.ravel() for n, g in zip(names, grids, strict=True)}
        size = len(next(iter(flat.values()))) if flat else 1
        args: list[Any] = []
        for name in f.decisions:
            args.append(flat.get(name, np.ones(size)))
        system = flat.get(SYSTEM)
        for name, p in f.parameters.items():
            if system is not None and p.symbol in self.system_dependent:
                values = np.array([ps[name] for ps in self.problem.system_parameters])
                args.append(values[system.astype(int)])
            else:
                args.append(self.problem.system_parameters[0][name])
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(fn(*args), dtype=float), (size,)).copy()
        return out

    def factor(self, names: tuple[str, ...], values: np.ndarray) -> int:
        key = hashlib.sha1(repr(names).encode() + values.tobytes()).hexdigest()
        if key not in self.index:
            self.index[key] = len(self.factors)
            self.factors.append(Factor(names, tuple(float(v) for v in values)))
        return self.index[key]

    def compile_expr(self, expr: sp.Expr, scale_by_system: np.ndarray | None = None
                     ) -> tuple[Term, ...]:
        out = []
        for atoms in self.expand(expr):
            groups: list[tuple[set[str], list[sp.Expr]]] = []
            constant = 1.0
            # Atoms sharing variables stay separate tables (the MILP links every table to the
            # same one-hot variables); an atom joins a table whose variables cover its own.
            for atom in sorted(atoms, key=lambda a: -len(self.variables(a))):
                names = set(self.variables(atom))
                if not names:
                    constant *= float(self.tabulate([atom], ())[0])
                    continue
                home = next((g for g in groups if names <= g[0]), None)
                if home is None:
                    groups.append((names, [atom]))
                else:
                    home[1].append(atom)
            if scale_by_system is not None:
                names = {SYSTEM} if SYSTEM in self.domains else set()
                if names:
                    merged = [g for g in groups if SYSTEM in g[0]]
                    if not merged:
                        groups.append(({SYSTEM}, []))
                else:
                    constant /= float(scale_by_system[0])
            if constant == 0.0:
                continue
            factors = []
            for names_set, group_atoms in groups:
                names = tuple(n for n in self.domains if n in names_set)
                if self.joint(names) > MAX_TABLE:
                    raise NotCompilable(
                        f"a product couples {list(names)} "
                        f"({self.joint(names):,} combinations > {MAX_TABLE:,})")
                values = self.tabulate(group_atoms, names) if group_atoms else np.ones(
                    self.joint(names))
                if scale_by_system is not None and SYSTEM in names:
                    grid = np.meshgrid(*[np.arange(len(self.domains[n])) for n in names],
                                       indexing="ij")[names.index(SYSTEM)].ravel()
                    values = values / scale_by_system[grid]
                if np.any(values[np.isfinite(values)] < 0) or constant < 0:
                    raise NotCompilable("a term takes negative values (not a posynomial)")
                factors.append(self.factor(names, values))
            out.append(Term(constant, tuple(factors)))
        return tuple(out)


def _broadcast(b: _Builder, factor: Factor, names: tuple[str, ...]) -> np.ndarray:
    """A factor's table laid over the grid of ``names`` (a superset of its variables)."""
    shape = [len(b.domains[n]) for n in names]
    table = np.asarray(factor.values).reshape([len(b.domains[v]) for v in factor.variables])
    order = sorted(range(len(factor.variables)), key=lambda i: names.index(factor.variables[i]))
    table = np.transpose(table, order)
    expanded = table.reshape([shape[k] if n in factor.variables else 1
                              for k, n in enumerate(names)])
    return np.broadcast_to(expanded, shape).ravel()


def _absorb(b: _Builder, term: Term) -> Term:
    """Fold the term's smaller tables into its largest while the joint table stays small."""
    if len(term.factors) < 2:
        return term
    ids = sorted(term.factors, key=lambda i: (-len(b.factors[i].values), i))
    main = set(b.factors[ids[0]].variables)
    absorbed, kept = [ids[0]], []
    for i in ids[1:]:
        union = main | set(b.factors[i].variables)
        if b.joint(union) <= MAX_TABLE:
            main, absorbed = union, [*absorbed, i]
        else:
            kept.append(i)
    if len(absorbed) == 1:
        return term
    names = tuple(n for n in b.domains if n in main)
    table = np.ones(b.joint(names))
    for i in absorbed:
        table = table * _broadcast(b, b.factors[i], names)
    return Term(term.coefficient, (b.factor(names, table), *kept))


def _merge_terms(b: _Builder, terms: tuple[Term, ...]) -> tuple[Term, ...]:
    """Sum terms that differ only in their largest table: c1 A X + c2 B X = (c1 A + c2 B) X.

    Fewer terms mean fewer exponentials for the MILP to approximate; the tables stay small
    because A and B span the same variables.
    """
    groups: dict[tuple[Any, ...], list[Term]] = {}
    for term in (_absorb(b, t) for t in terms):
        if not term.factors:
            groups.setdefault(("const",), []).append(term)
            continue
        main = max(term.factors, key=lambda i: (len(b.factors[i].values), i))
        rest = list(term.factors)
        rest.remove(main)
        key = (b.factors[main].variables, tuple(sorted(rest)))
        groups.setdefault(key, []).append(term)
    out = []
    for key, members in groups.items():
        if len(members) == 1 or key == ("const",):
            if key == ("const",):
                out.append(Term(sum(t.coefficient for t in members), ()))
            else:
                out.extend(members)
            continue
        names, rest = key
        total = np.zeros(len(b.factors[max(members[0].factors, key=lambda i: (
            len(b.factors[i].values), i))].values))
        for t in members:
            main = max(t.factors, key=lambda i: (len(b.factors[i].values), i))
            total = total + t.coefficient * np.asarray(b.factors[main].values)
        out.append(Term(1.0, (b.factor(names, total), *rest)))
    return tuple(out)


def compile_problem(problem: SearchProblem) -> Compiled:
    """Compile the objective and every constraint of ``problem``."""
    b = _Builder(problem)
    f = problem.formulation
    objective = _merge_terms(b, b.compile_expr(f.expressions[problem.quantity]))
    constraints = {}
    for c in problem.constraints:
        constraints[c.name] = _merge_terms(
            b, b.compile_expr(f.expressions[c.quantity], np.asarray(c.limits)))
    used = sorted({i for t in objective for i in t.factors}
                  | {i for terms in constraints.values() for t in terms for i in t.factors})
    renumber = {old: new for new, old in enumerate(used)}

    def renumbered(terms: tuple[Term, ...]) -> tuple[Term, ...]:
        return tuple(Term(t.coefficient, tuple(renumber[i] for i in t.factors)) for t in terms)

    return Compiled(dict(b.domains), tuple(b.factors[i] for i in used), renumbered(objective),
                    {k: renumbered(v) for k, v in constraints.items()}, problem.objective)
