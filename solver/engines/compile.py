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
from perfcost.solver.problem.expressions import free_symbols, lambdify
from perfcost.solver.problem.search import SearchProblem

#: Largest joint domain a single table may span before products of sums are distributed.
MAX_TABLE = 8_192
SYSTEM = "system"


class NotCompilable(Exception):
    """The quantity does not fit the compiled form (a term couples too many variables)."""


@dataclass(frozen=True, eq=False)
class Factor:
    """A table over ``variables`` (C order over their domains, read-only).

    With ``columns`` (a form compiled with ``free_system``) the last variable is the system
    axis and the table holds one column per *distinct* column: system class ``k`` reads column
    ``columns[k]`` (a table of the scale-up bandwidth has a few columns, not one per class).
    """

    variables: tuple[str, ...]
    values: np.ndarray
    columns: np.ndarray | None = None


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
    #: The value of the system axis each system takes (one per system unless the form was
    #: compiled with ``free_system``, where systems the model cannot tell apart share one).
    system_class: tuple[int, ...] = ()
    #: Per system class (``free_system`` only): the values that define it -- the system
    #: parameters the quantities read, each constraint's limit, the scale-up domain.
    system_features: tuple[tuple[float, ...], ...] = ()

    @property
    def size(self) -> int:
        return int(np.prod([len(v) for v in self.variables.values()], dtype=float))

    def to_json(self) -> dict[str, Any]:
        return {
            "objective": self.objective_name,
            "variables": {k: list(v) for k, v in self.variables.items()},
            "factors": [{"variables": list(f.variables), "values": f.values.tolist(),
                         **({} if f.columns is None else
                            {"system_columns": f.columns.tolist()})}
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
            if f.columns is not None and v == SYSTEM:
                flat = flat * (int(f.columns.max()) + 1) + int(f.columns[config[v]])
            else:
                flat = flat * len(self.variables[v]) + config[v]
        return float(f.values[flat])


def domain_codes(domain: tuple[float, ...], column: np.ndarray, name: str) -> np.ndarray:
    """The index in ``domain`` of every value of ``column`` (domains keep the case's order,
    which need not be sorted)."""
    values = np.asarray(domain)
    order = np.argsort(values, kind="stable")
    found = order[np.minimum(np.searchsorted(values[order], column), len(values) - 1)]
    if not np.array_equal(values[found], column):
        raise ValueError(f"a valid value of {name} is missing from its compiled domain")
    return found


_NUMERIC: dict[tuple[int, sp.Expr], Any] = {}


def _numeric(formulation: Formulation, expr: sp.Expr) -> Any:
    """``lambdify`` of ``expr`` over all of the formulation's symbols, cached: formulations are
    shared by every problem of one model structure, and so are their atoms."""
    key = (id(formulation), expr)
    fn = _NUMERIC.get(key)
    if fn is None:
        symbols = [d.symbol for d in formulation.decisions.values()] + [
            p.symbol for p in formulation.parameters.values()]
        fn = _NUMERIC[key] = lambdify(symbols, expr)
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
    def __init__(self, problem: SearchProblem, free_system: bool = False,
                 posynomial: bool = True, largest_table: int = MAX_TABLE) -> None:
        self.problem = problem
        # Sums and case splits are distributed while a table would exceed MAX_TABLE; an
        # atom that cannot be split may still take up to ``largest_table`` cells.
        self.max_table = MAX_TABLE
        self.largest_table = max(largest_table, MAX_TABLE)
        self.free_system = free_system
        self.posynomial = posynomial
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
        # The system axis: one value per system, or (free_system) one per *class* of systems
        # that the objective and constraints cannot tell apart (same parameter values that
        # appear in them, same limits): co-design systems differ in price and GPU count far
        # more often than in what the time model reads.
        systems = range(len(problem.system_parameters))
        if free_system:
            used = set().union(*(free_symbols(f.expressions[q]) for q in
                                 [problem.quantity, *(c.quantity for c in problem.constraints)]))
            names = [n for n in problem.system_parameters[0]
                     if f.parameters[n].symbol in self.system_dependent & used]
            keys = [tuple(problem.system_parameters[i][n] for n in names)
                    + tuple(c.limits[i] for c in problem.constraints)
                    + (problem.space.systems[i].scale_up_size,) for i in systems]
            first: dict[tuple[float, ...], int] = {}
            for i, k in enumerate(keys):
                first.setdefault(k, i)
            number = {k: n for n, k in enumerate(first)}
            self.system_class = [number[k] for k in keys]
            self.representatives = list(first.values())
            self.system_features = list(first)
        else:
            self.system_class = list(systems)
            self.representatives = list(systems)
            self.system_features = []
        self.system_rows = [problem.system_parameters[i] for i in self.representatives]
        if len(problem.space.systems) > 1:
            self.domains[SYSTEM] = tuple(float(i) for i in range(len(self.representatives)))
        self.factors: list[Factor] = []
        self.index: dict[str, int] = {}
        self._vars_cache: dict[sp.Expr, frozenset[str]] = {}
        self._tables: dict[tuple[sp.Expr, tuple[str, ...]],
                           tuple[np.ndarray, np.ndarray | None]] = {}

    def variables(self, expr: sp.Expr) -> frozenset[str]:
        cached = self._vars_cache.get(expr)
        if cached is None:
            free = free_symbols(expr)
            names = {self.decision_symbols[s] for s in free if s in self.decision_symbols}
            if free & self.system_dependent:
                names.add(SYSTEM)
            cached = frozenset(names)
            self._vars_cache[expr] = cached
        return cached

    def joint(self, names: Iterable[str]) -> int:
        """Cells of a table over ``names``."""
        return int(np.prod([len(self.domains[n]) for n in names], dtype=float))

    def span(self, names: Iterable[str]) -> int:
        """The size the table limits apply to: the joint size, without the system axis when
        the form keeps that axis free (the bound engine takes one column per system class)."""
        return self.joint(n for n in names if not (self.free_system and n == SYSTEM))

    def expand(self, expr: sp.Expr) -> list[list[sp.Expr]]:
        """Terms (lists of multiplied atoms) whose atoms each span a small joint domain."""
        if isinstance(expr, sp.Add):
            return [t for arg in expr.args for t in self.expand(arg)]
        if isinstance(expr, sp.Piecewise) and self.span(self.variables(expr)) > self.max_table:
            if all(value.is_number for value, _cond in expr.args):
                # An indicator whose condition itself couples many variables: one table.
                return self._whole(expr, "condition")
            return self.expand(_as_indicator_sum(expr))
        if isinstance(expr, sp.Mul):
            terms: list[list[sp.Expr]] = [[]]
            for arg in expr.args:
                if (isinstance(arg, sp.Add | sp.Piecewise)
                        and self.span(self.variables(arg)) > self.max_table):
                    parts = self.expand(arg)
                else:
                    parts = [[arg]]
                terms = [t + p for t in terms for p in parts]
            return terms
        if self.span(self.variables(expr)) > self.max_table:
            return self._whole(expr, type(expr).__name__)
        return [[expr]]

    def _whole(self, expr: sp.Expr, what: str) -> list[list[sp.Expr]]:
        """An atom that cannot be split: one table, if it stays within ``largest_table``."""
        span = self.span(self.variables(expr))
        if span > self.largest_table:
            raise NotCompilable(f"a {what} couples {sorted(self.variables(expr))} "
                                f"({span:,} combinations > {self.largest_table:,})")
        return [[expr]]

    def tabulate(self, atoms: list[sp.Expr], names: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """The product of ``atoms`` over the grid of ``names``, and (free system axis) the
        column each system class reads (cached: expanded terms repeat their atoms)."""
        key = (sp.Mul(*atoms), names)
        if key not in self._tables:
            self._tables[key] = self._tabulate(key[0], names)
        return self._tables[key]

    def _tabulate(self, product: sp.Expr, names: tuple[str, ...]
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        f = self.problem.formulation
        fn = _numeric(f, product)
        axes = [np.asarray(self.domains[n]) for n in names]
        inverse = None
        by_class: dict[str, np.ndarray] = {}
        if names and names[-1] == SYSTEM:
            # Evaluate once per distinct value of the system parameters this table reads
            # (a table of the scale-up bandwidth has as many as there are link counts), then
            # lay the result out over the system axis.
            free = free_symbols(product)
            read = [n for n, p in f.parameters.items()
                    if p.symbol in self.system_dependent and p.symbol in free]
            rows = np.array([[ps[n] for n in read] for ps in self.system_rows])
            distinct, inverse = np.unique(rows, axis=0, return_inverse=True)
            axes[-1] = np.arange(len(distinct), dtype=float)
            by_class = dict(zip(read, distinct.T, strict=True))
        grids = np.meshgrid(*axes, indexing="ij")
        flat = {n: g.ravel() for n, g in zip(names, grids, strict=True)}
        size = len(next(iter(flat.values()))) if flat else 1
        args: list[Any] = []
        for name in f.decisions:
            args.append(flat.get(name, np.ones(size)))
        system = flat.get(SYSTEM)
        for name, p in f.parameters.items():
            if system is not None and p.symbol in self.system_dependent:
                args.append(by_class[name][system.astype(int)] if name in by_class else
                            self.system_rows[0][name])
            else:
                args.append(self.problem.system_parameters[0][name])
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(fn(*args), dtype=float), (size,)).copy()
        if inverse is None:
            return out, None
        columns = np.asarray(inverse).reshape(-1).astype(np.int64)
        if self.free_system:
            return out, columns
        shape = [len(a) for a in axes]
        return out.reshape(shape)[..., columns].ravel(), None

    def factor(self, names: tuple[str, ...], values: np.ndarray,
               columns: np.ndarray | None = None) -> int:
        extra = b"" if columns is None else columns.tobytes()
        key = hashlib.sha1(repr(names).encode() + values.tobytes() + extra).hexdigest()
        if key not in self.index:
            self.index[key] = len(self.factors)
            table = np.array(values, dtype=float)
            table.flags.writeable = False
            if columns is not None:
                columns = np.array(columns, dtype=np.int64)
                columns.flags.writeable = False
            self.factors.append(Factor(names, table, columns))
        return self.index[key]

    def compile_expr(self, expr: sp.Expr, scale_by_system: np.ndarray | None = None
                     ) -> tuple[Term, ...]:
        if scale_by_system is not None:
            scale_by_system = scale_by_system[self.representatives]
        out = []
        for atoms in self.expand(expr):
            groups: list[tuple[set[str], list[sp.Expr]]] = []
            constant = 1.0
            # Atoms sharing variables stay separate tables (the MILP links every table to the
            # same one-hot variables); an atom joins a table whose variables cover its own.
            for atom in sorted(atoms, key=lambda a: -len(self.variables(a))):
                names = set(self.variables(atom))
                if not names:
                    constant *= float(self.tabulate([atom], ())[0][0])
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
                if self.span(names) > self.largest_table:
                    raise NotCompilable(
                        f"a product couples {list(names)} "
                        f"({self.span(names):,} combinations > {self.largest_table:,})")
                columns: np.ndarray | None = None
                if group_atoms:
                    values, columns = self.tabulate(group_atoms, names)
                elif self.free_system:  # names == (SYSTEM,): a column of ones
                    values, columns = np.ones(1), np.zeros(self.joint(names), dtype=np.int64)
                else:
                    values = np.ones(self.joint(names))
                if scale_by_system is not None and SYSTEM in names:
                    if columns is not None:
                        values, columns = _scaled_columns(values, columns, scale_by_system)
                    else:
                        grid = np.meshgrid(*[np.arange(len(self.domains[n])) for n in names],
                                           indexing="ij")[names.index(SYSTEM)].ravel()
                        values = values / scale_by_system[grid]
                if self.posynomial and (np.any(values[np.isfinite(values)] < 0)
                                        or constant < 0):
                    raise NotCompilable("a term takes negative values (not a posynomial)")
                factors.append(self.factor(names, values, columns))
            out.append(Term(constant, tuple(factors)))
        return tuple(out)


def _scaled_columns(values: np.ndarray, columns: np.ndarray, scale: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A compressed system table divided by a per-class scale (a constraint's limit)."""
    table = values.reshape(-1, int(columns.max()) + 1)
    pairs, inverse = np.unique(np.stack([columns.astype(float), scale], axis=1), axis=0,
                               return_inverse=True)
    out = table[:, pairs[:, 0].astype(np.int64)] / pairs[:, 1]
    return out.ravel(), np.asarray(inverse).reshape(-1).astype(np.int64)


def _aligned(tables: list[Factor]) -> tuple[list[np.ndarray], np.ndarray]:
    """Compressed system tables over the same variables laid over one column map."""
    keys = np.stack([t.columns for t in tables], axis=1)  # type: ignore[misc]
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    out = [t.values.reshape(-1, int(t.columns.max()) + 1)[:, distinct[:, j]]  # type: ignore[union-attr]
           for j, t in enumerate(tables)]
    return out, np.asarray(inverse).reshape(-1).astype(np.int64)


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
    # The bound engine bounds a term over a set of systems table by table: a table with
    # the system axis stays as small as its own variables allow.
    held = [i for i in term.factors if b.free_system and SYSTEM in b.factors[i].variables]
    if held:
        rest = _absorb(b, Term(term.coefficient, tuple(i for i in term.factors
                                                       if i not in held)))
        return Term(rest.coefficient, (*held, *rest.factors))
    ids = sorted(term.factors, key=lambda i: (-len(b.factors[i].values), i))
    main = set(b.factors[ids[0]].variables)
    absorbed, kept = [ids[0]], []
    for i in ids[1:]:
        union = main | set(b.factors[i].variables)
        if b.span(union) <= b.max_table:
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
        mains = [b.factors[max(t.factors, key=lambda i: (len(b.factors[i].values), i))]
                 for t in members]
        columns = None
        if mains[0].columns is not None:
            tables, columns = _aligned(mains)
        else:
            tables = [np.asarray(f.values) for f in mains]
        total = sum(t.coefficient * table for t, table in zip(members, tables, strict=True))
        out.append(Term(1.0, (b.factor(names, np.ravel(total), columns), *rest)))
    return tuple(out)


def compile_problem(problem: SearchProblem, free_system: bool = False,
                    posynomial: bool = True, largest_table: int = MAX_TABLE) -> Compiled:
    """Compile the objective and every constraint of ``problem``.

    ``free_system`` leaves the system axis out of the table-size limit (each table then has
    one column per system); ``posynomial`` refuses terms with negative values (the MILP's log
    space needs them positive); ``largest_table`` caps the cells of a table that cannot be
    split further (without the free system axis).
    """
    b = _Builder(problem, free_system, posynomial, largest_table)
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
                    {k: renumbered(v) for k, v in constraints.items()}, problem.objective,
                    tuple(b.system_class), tuple(b.system_features))
