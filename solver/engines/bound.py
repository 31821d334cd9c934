"""Branch and bound over the systems of a search, on the compiled tables.

A search over many systems (hardware entries, networks, co-designed accelerators at several
GPU counts) has a structure that neither enumeration nor the MILP uses. Compiled with a free
system axis (:func:`compile.compile_problem` with ``free_system``), every term of the
objective and of each constraint is a coefficient that depends on the configuration alone,
times a few tables over some decisions and the system. Over a *set* of systems, the smallest
and largest entry of each such table bound the term at every configuration at once (an
interval product), so

* a configuration whose lower bound exceeds the best value found, or that no system of the set
  can fit, is dropped for every system of the set, and
* a set whose best lower bound exceeds the best value found is dropped whole.

Sets are split, best bound first, on the system parameter that spreads most, until a set holds
systems the model cannot tell apart: there the bound *is* the value (the tables' product), and
the configurations left are candidates. Nothing is dropped without a proof that it cannot beat
the incumbent (relative :data:`REL_TOL`), so the answer is the optimum; candidates are
re-evaluated with the evaluator before one is reported.

The work grows with the configurations the bounds cannot rule out, not with the product of
configurations and systems: on co-design spaces most of the product is never touched.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from perfcost.solver.engines.compile import (
    SYSTEM,
    Compiled,
    NotCompilable,
    Term,
    compile_problem,
    domain_codes,
)
from perfcost.solver.engines.enumerate import (
    describe_codes,
    explain_infeasible,
    full_values,
    user_config,
    violation,
)
from perfcost.solver.problem.result import ConstraintUse, Ranked, Result
from perfcost.solver.problem.search import SearchProblem
from perfcost.solver.problem.space import (
    DECISIONS,
    Candidates,
    System,
    candidates,
    core_candidates,
    with_modes,
)

#: A configuration is dropped when its lower bound exceeds the threshold by more than this
#: (relative): the tables and the evaluator round differently in the last bits.
REL_TOL = 1e-9
#: Constraint ratios within this of one are decided by the evaluator, not by the tables.
BORDER = 1e-9
#: Configurations in the even sample searched first (when there are four times as many).
WARM_START = 50_000
#: Configurations of the even sample that orders the terms of a block by size.
SAMPLE = 2_000
#: Decisions the first pass leaves out (bounding over their range): the cores it rules out
#: are never crossed with them. Recomputation stays in: it trades memory for time too
#: strongly for a range over it to rule much out.
LEFT_OUT = ("sequence_parallel", "zero", "placement")
#: The objective's block (the other blocks are named by their constraint).
OBJECTIVE = "objective"
#: Largest table (without the system axis) of an atom the compiled form cannot split: this
#: engine keeps no LP, so such a table may span more decisions than the MILP accepts.
LARGEST_TABLE = 65_536


@dataclass(frozen=True)
class _Cells:
    """Where configurations fall in the tables over ``variables`` (C order)."""

    variables: tuple[str, ...]
    strides: tuple[int, ...]

    def of(self, codes: dict[str, np.ndarray], idx: np.ndarray,
           cache: dict[tuple[str, ...], np.ndarray]) -> np.ndarray:
        flat = cache.get(self.variables)
        if flat is None:
            flat = np.zeros(len(idx), dtype=np.int64)
            for v, stride in zip(self.variables, self.strides, strict=True):
                flat += codes[v][idx] * stride
            cache[self.variables] = flat
        return flat


def _mul(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """``[a, b] * [c, d]`` elementwise; a point is an interval whose ends are one array."""
    if a is b and c is d:
        p = a * c
        return p, p
    if not (np.any(a < 0) or np.any(c < 0)):  # the usual case: times, sizes, rates
        return a * c, b * d
    products = np.stack([a * c, a * d, b * c, b * d])
    return np.min(products, axis=0), np.max(products, axis=0)


@dataclass(frozen=True)
class _Range:
    """A table without the system axis, or its range over decisions left out (``lo`` is
    ``hi`` when nothing is left out)."""

    lo: np.ndarray
    hi: np.ndarray
    cells: _Cells

    def at(self, codes: dict[str, np.ndarray], idx: np.ndarray,
           cache: dict[tuple[str, ...], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        rows = self.cells.of(codes, idx, cache)
        lo = self.lo[rows]
        return (lo, lo) if self.lo is self.hi else (lo, self.hi[rows])


@dataclass(frozen=True)
class _SystemRange:
    """A table with the system axis: rows are the cells of its other decisions, columns its
    distinct columns (``columns[k]`` is system class ``k``'s); ``lo`` and ``hi`` are one
    array unless decisions are left out."""

    lo: np.ndarray
    hi: np.ndarray
    columns: np.ndarray
    cells: _Cells
    nonnegative: bool

    def at(self, codes: dict[str, np.ndarray], idx: np.ndarray, classes: np.ndarray,
           cache: dict[tuple[str, ...], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest entry over ``classes`` at configurations ``idx``."""
        columns = np.unique(self.columns[classes])
        rows = self.cells.of(codes, idx, cache)
        if len(columns) == 1 and self.lo is self.hi:
            one = self.lo[:, columns[0]][rows]
            return one, one
        # fmin/fmax skip nan: a system whose entry cannot be evaluated is not a system the
        # configuration can run on. Reduced over the rows asked for when they are fewer than
        # the table's (a branch late in the search asks for a few).
        few = rows.size < self.lo.shape[0]
        cells = np.ix_(rows, columns) if few else (slice(None), columns)
        lo = np.fmin.reduce(self.lo[cells], axis=1)
        hi = np.fmax.reduce(self.hi[cells], axis=1)
        return (lo, hi) if few else (lo[rows], hi[rows])


@dataclass(frozen=True)
class _Term:
    """``sum_j c_j prod F_j(x)`` (terms of the compiled form that share their system tables)
    times the product of those tables ``T(x, s)``."""

    parts: tuple[tuple[float, tuple[_Range, ...]], ...]
    tables: tuple[_SystemRange, ...]
    #: Every value is >= 0: a partial sum of such terms already bounds the whole from below.
    nonnegative: bool

    def lower(self, codes: dict[str, np.ndarray], idx: np.ndarray, classes: np.ndarray,
              cache: dict[tuple[str, ...], np.ndarray]) -> np.ndarray:
        """Lower bound over ``classes`` (the value when it holds one class and no decision is
        left out)."""
        ua = ub = None
        for constant, factors in self.parts:
            a = b = np.full(len(idx), constant)
            for f in factors:
                a, b = _mul(a, b, *f.at(codes, idx, cache))
            if ua is None or ub is None:
                ua, ub = a, b
            else:
                point = ua is ub and a is b
                ub = None if point else ub + b
                ua = ua + a
                ub = ua if ub is None else ub
        assert ua is not None and ub is not None
        for t in self.tables:
            ua, ub = _mul(ua, ub, *t.at(codes, idx, classes, cache))
        return ua


@dataclass(frozen=True)
class _Block:
    """A sum of terms (the objective, or a constraint as the ratio to its limit), in the
    order one GPU count's configurations are bounded: terms that may be negative first, then
    the others from the largest down."""

    terms: tuple[_Term, ...]

    def lower(self, codes: dict[str, np.ndarray], idx: np.ndarray, classes: np.ndarray,
              limit: float) -> tuple[np.ndarray, np.ndarray]:
        """The positions in ``idx`` of the configurations whose lower bound over ``classes``
        may be at most ``limit``, and that bound (the value when ``classes`` holds one
        class and no decision is left out).

        Once only non-negative terms are left, a configuration whose partial sum already
        exceeds ``limit`` is dropped: the largest terms come first, so most configurations
        are decided by a few tables.
        """
        lo = np.zeros(len(idx))
        pos = np.arange(len(idx))
        cache: dict[tuple[str, ...], np.ndarray] = {}
        with np.errstate(invalid="ignore", over="ignore"):
            for k, term in enumerate(self.terms):
                lo += term.lower(codes, idx, classes, cache)
                if term.nonnegative and k + 1 < len(self.terms):
                    keep = lo <= limit  # nan (cannot be evaluated) goes too
                    if not keep.all():
                        idx, lo, pos = idx[keep], lo[keep], pos[keep]
                        cache = {key: v[keep] for key, v in cache.items()}
        keep = lo <= limit
        return pos[keep], lo[keep]


@dataclass
class _Layout:
    """One GPU count: its core configurations (every decision but those of
    :data:`LEFT_OUT`) and the blocks twice -- over whole configurations, and over cores with
    those decisions left out (their range), which rules most cores out before they are
    crossed with them."""

    gpus: int
    cores: Candidates
    codes: dict[str, np.ndarray]
    blocks: dict[str, _Block]
    relaxed: dict[str, _Block]
    #: The classes with a system allowed at this GPU count, and that system (the first).
    system_of: dict[int, int]

    @property
    def classes(self) -> np.ndarray:
        return np.array(sorted(self.system_of), dtype=np.int64)


@dataclass(frozen=True)
class _Configs:
    """Whole configurations of one layout (some of its cores crossed with the decisions left
    out)."""

    layout: int
    columns: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["tp"])


@dataclass(order=True)
class _Set:
    bound: float
    order: int
    configs: int = field(compare=False)
    classes: np.ndarray = field(compare=False)
    live: np.ndarray = field(compare=False)
    lower: np.ndarray = field(compare=False)  # each live configuration's bound


@dataclass
class _Found:
    """Candidates (compiled value, configurations, class, row), the best ``keep`` and ties."""

    keep: int
    #: Per GPU count: the system each class stands for in this search (its first allowed).
    system_of: list[dict[int, int]]
    value: np.ndarray = field(default_factory=lambda: np.empty(0))
    configs: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    cls: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    row: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def add(self, value: np.ndarray, configs: int, cls: int, row: np.ndarray) -> None:
        self.value = np.concatenate([self.value, value])
        self.configs = np.concatenate([self.configs, np.full(len(value), configs)])
        self.cls = np.concatenate([self.cls, np.full(len(value), cls)])
        self.row = np.concatenate([self.row, row])
        if len(self.value) > self.keep:
            keep = self.value <= _slack(np.partition(self.value, self.keep - 1)[self.keep - 1])
            for name in ("value", "configs", "cls", "row"):
                setattr(self, name, getattr(self, name)[keep])

    @property
    def threshold(self) -> float:
        if len(self.value) < self.keep:
            return np.inf
        return float(np.partition(self.value, self.keep - 1)[self.keep - 1])


def _slack(t: float) -> float:
    return t + REL_TOL * abs(t) if np.isfinite(t) else np.inf


class _Solver:
    """The layouts of one problem and branch-and-bound runs over them."""

    def __init__(self, problem: SearchProblem, compiled: Compiled) -> None:
        self.problem = problem
        self.c = compiled
        systems = problem.space.systems
        self.system_class = np.asarray(compiled.system_class or [0] * len(systems))
        n_classes = len(compiled.variables.get(SYSTEM, (0.0,)))
        first = {int(k): i for i, k in reversed(list(enumerate(self.system_class)))}
        self.scale_up = np.array([systems[first[k]].scale_up_size for k in range(n_classes)])
        self.features = (np.asarray(compiled.system_features, dtype=float)
                         if compiled.system_features else np.zeros((n_classes, 1)))
        self.configs: list[_Configs] = []
        self.stats = {"sets_bounded": 0, "bounds_computed": 0, "cores_bounded": 0,
                      "exact_values": 0}
        self.layouts = self._layouts()

    # -- layout ------------------------------------------------------------------------------

    def _layouts(self) -> list[_Layout]:
        p, c = self.problem, self.c
        systems = p.space.systems
        blocks = {OBJECTIVE: c.objective, **c.constraints}
        terms = {name: self._terms(t, ()) for name, t in blocks.items()}
        relaxed = {name: self._terms(t, LEFT_OUT) for name, t in blocks.items()}
        out: list[_Layout] = []
        for g in p.space.gpus:
            allowed = [i for i, s in enumerate(systems) if s.gpus in (None, g)]
            if not allowed:
                continue
            # Configurations valid on some system of this GPU count; tp is checked per set.
            pseudo = System("any", "any", max(systems[i].scale_up_size for i in allowed), 0.0)
            space = dataclasses.replace(p.space, gpus=(g,), systems=(pseudo,))
            cores = core_candidates(space, LEFT_OUT)
            if not len(cores):
                continue
            codes = self._codes(cores.columns)
            layout = _Layout(g, cores, codes, {}, {}, self._system_of(g, allowed))
            classes = layout.classes
            sample = np.arange(0, len(cores), max(1, len(cores) // SAMPLE))
            whole = self._expand(layout, len(out), sample, register=False)
            layout.blocks = {n: _ordered(t, whole.codes, np.arange(len(whole)), classes)
                             for n, t in terms.items()}
            layout.relaxed = {n: _ordered(t, codes, sample, classes)
                              for n, t in relaxed.items()}
            out.append(layout)
        return out

    def _system_of(self, gpus: int, allowed: Sequence[int]) -> dict[int, int]:
        """Each class with an ``allowed`` system at ``gpus``, and the first such system."""
        systems = self.problem.space.systems
        system_of: dict[int, int] = {}
        for i in allowed:
            if systems[i].gpus in (None, gpus):
                system_of.setdefault(int(self.system_class[i]), int(i))
        return system_of

    def _codes(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {v: domain_codes(self.c.variables[v], columns[v], v) for v in DECISIONS}

    def _expand(self, layout: _Layout, li: int, cores: np.ndarray, register: bool = True
                ) -> _Configs:
        """The whole configurations of some cores of a layout."""
        sub = Candidates({k: v[cores] for k, v in layout.cores.columns.items()},
                         layout.cores.system[cores], [])
        whole = with_modes(self.problem.space, sub, LEFT_OUT)
        configs = _Configs(li, whole.columns, self._codes(whole.columns))
        if register:
            self.configs.append(configs)
        return configs

    def _cells(self, variables: tuple[str, ...]) -> _Cells:
        sizes = [len(self.c.variables[v]) for v in variables]
        strides = [int(np.prod(sizes[k + 1:], dtype=np.int64)) for k in range(len(sizes))]
        return _Cells(variables, tuple(strides))

    def _range(self, values: np.ndarray, variables: tuple[str, ...], columns: int,
               out: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """A table's range over the decisions ``out`` (rows over the others, then columns)."""
        shape = [len(self.c.variables[v]) for v in variables] + ([columns] if columns else [])
        axes = tuple(k for k, v in enumerate(variables) if v in out)
        kept = tuple(v for v in variables if v not in out)
        if not axes:
            table = values.reshape(-1, columns) if columns else values
            return table, table, kept
        grid = values.reshape(shape)
        with np.errstate(invalid="ignore"):
            lo, hi = np.fmin.reduce(grid, axis=axes), np.fmax.reduce(grid, axis=axes)
        if columns:
            return lo.reshape(-1, columns), hi.reshape(-1, columns), kept
        return lo.ravel(), hi.ravel(), kept

    def _terms(self, terms: tuple[Term, ...], out: tuple[str, ...]) -> list[_Term]:
        """The compiled terms, those with the same system tables gathered into one, with the
        decisions ``out`` left out (each table replaced by its range over them)."""
        by_tables: dict[tuple[int, ...], list[tuple[float, tuple[_Range, ...]]]] = {}
        signs: dict[tuple[int, ...], bool] = {}
        for term in terms:
            free = []
            nonnegative = term.coefficient >= 0
            for fi in term.factors:
                f = self.c.factors[fi]
                if f.columns is None:
                    lo, hi, kept = self._range(f.values, f.variables, 0, out)
                    free.append(_Range(lo, hi, self._cells(kept)))
                    nonnegative &= bool(np.all(f.values[np.isfinite(f.values)] >= 0))
            key = tuple(sorted(fi for fi in term.factors
                               if self.c.factors[fi].columns is not None))
            by_tables.setdefault(key, []).append((term.coefficient, tuple(free)))
            signs[key] = signs.get(key, True) and nonnegative
        result = []
        for key, parts in by_tables.items():
            tables = []
            for fi in key:
                f = self.c.factors[fi]
                columns = f.columns
                assert columns is not None
                # The system axis is the last of a table's variables (compile order).
                width = int(columns.max()) + 1
                lo, hi, kept = self._range(f.values, f.variables[:-1], width, out)
                finite = f.values[np.isfinite(f.values)]
                tables.append(_SystemRange(lo, hi, columns, self._cells(kept),
                                           bool(np.all(finite >= 0))))
            result.append(_Term(tuple(parts), tuple(tables),
                                signs[key] and all(t.nonnegative for t in tables)))
        return result

    # -- branch and bound --------------------------------------------------------------------

    def _bound(self, found: _Found, objective: str, constraints: tuple[str, ...],
               blocks: dict[str, _Block], columns: dict[str, np.ndarray],
               codes: dict[str, np.ndarray], classes: np.ndarray, live: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """The configurations of ``live`` that some system of ``classes`` may run below the
        threshold, with their lower bounds."""
        live = live[columns["tp"][live] <= self.scale_up[classes].max()]
        pos, lo = blocks[objective].lower(codes, live, classes, _slack(found.threshold))
        live = live[pos]
        for name in constraints:
            if not live.size:
                break
            pos, _ = blocks[name].lower(codes, live, classes, 1.0 + BORDER)
            live, lo = live[pos], lo[pos]
        return live, lo

    def _leaf(self, found: _Found, constraints: tuple[str, ...], ci: int, cls: int,
              live: np.ndarray, value: np.ndarray) -> None:
        """One class: the bound is the value; keep what is feasible and good enough."""
        configs = self.configs[ci]
        layout = self.layouts[configs.layout]
        self.stats["exact_values"] += len(live)
        classes = np.array([cls])
        near = np.zeros(len(live), dtype=bool)
        for name in constraints:
            pos, ratio = layout.blocks[name].lower(configs.codes, live, classes, np.inf)
            near[pos[ratio > 1.0 - BORDER]] = True
        check = np.flatnonzero(near)
        ok = np.ones(len(live), dtype=bool)
        if check.size:  # near a limit: the evaluator decides
            system = found.system_of[configs.layout][cls]
            exact = self.evaluate(configs, live[check], system)
            for c in self.problem.constraints:
                if c.name in constraints:
                    ok[check[~(exact[c.quantity] <= c.limits[system])]] = False
        ok &= value <= _slack(found.threshold)
        if ok.any():
            found.add(value[ok], ci, cls, live[ok])

    def _split(self, classes: np.ndarray) -> list[np.ndarray]:
        """Two halves of a set of classes, on the feature that spreads most over it."""
        features = self.features[classes]
        lo, hi = features.min(axis=0), features.max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.where((lo > 0) & (hi > 0), np.log(hi / lo),
                              (hi - lo) / np.maximum(np.abs(hi) + np.abs(lo), 1e-300))
        k = int(np.argmax(spread))
        column = features[:, k]
        left = column <= np.median(column)
        if left.all():
            left = column < column.max()
        if not left.any() or left.all():  # indistinguishable: halve by index
            half = len(classes) // 2
            return [classes[:half], classes[half:]]
        return [classes[left], classes[~left]]

    def run(self, objective: str, constraints: tuple[str, ...], keep: int,
            threshold: float = np.inf, allowed: Sequence[int] | None = None) -> _Found:
        """Minimise block ``objective`` subject to ``constraints``: the best ``keep``
        candidates (and ties), every one below ``threshold`` when it is given, on the
        ``allowed`` systems (all by default; a class stands for its first allowed system)."""
        maps = [layout.system_of if allowed is None else self._system_of(layout.gpus, allowed)
                for layout in self.layouts]
        found = _Found(keep, maps)
        if np.isfinite(threshold):  # only strictly better candidates are wanted
            found.add(np.full(keep, threshold), -1, -1, np.full(keep, -1))
        total = sum(len(layout.cores) for layout in self.layouts)
        if total > 4 * WARM_START:
            # A search over an even sample of the cores first: its candidates are real, and
            # its threshold lets the full search drop most configurations at once.
            step = total // WARM_START
            self._sweep(found, objective, constraints,
                        [np.arange(0, len(layout.cores), step) for layout in self.layouts])
        self._sweep(found, objective, constraints,
                    [np.arange(len(layout.cores)) for layout in self.layouts])
        real = found.configs >= 0
        for name in ("value", "configs", "cls", "row"):
            setattr(found, name, getattr(found, name)[real])
        return found

    def _sweep(self, found: _Found, objective: str, constraints: tuple[str, ...],
               roots: list[np.ndarray]) -> None:
        """Best-first branch and bound from the cores ``roots`` of each GPU count."""
        heap: list[_Set] = []
        counter = itertools.count()

        def push(ci: int, classes: np.ndarray, live: np.ndarray) -> None:
            configs = self.configs[ci]
            layout = self.layouts[configs.layout]
            self.stats["sets_bounded"] += 1
            self.stats["bounds_computed"] += len(live)
            live, lo = self._bound(found, objective, constraints, layout.blocks,
                                   configs.columns, configs.codes, classes, live)
            if not live.size:
                return
            if len(classes) == 1:
                self._leaf(found, constraints, ci, int(classes[0]), live, lo)
            else:
                heapq.heappush(heap, _Set(float(lo.min()), next(counter), ci, classes, live,
                                          lo))

        for li, cores in enumerate(roots):
            layout = self.layouts[li]
            if not found.system_of[li] or not cores.size:
                continue
            classes = np.array(sorted(found.system_of[li]), dtype=np.int64)
            # Cores first, over the range of the decisions left out; the cores left are
            # crossed with them.
            self.stats["cores_bounded"] += len(cores)
            cores, _ = self._bound(found, objective, constraints, layout.relaxed,
                                   layout.cores.columns, layout.codes, classes, cores)
            if cores.size:
                configs = self._expand(layout, li, cores)
                push(len(self.configs) - 1, classes, np.arange(len(configs)))
        while heap:
            s = heapq.heappop(heap)
            limit = _slack(found.threshold)
            if s.bound > limit:
                break  # every set left is bounded above the incumbent
            live = s.live[s.lower <= limit]  # what the incumbent found since rules out
            for part in self._split(s.classes):
                push(s.configs, part, live)

    # -- exact values --------------------------------------------------------------------------

    def evaluate(self, configs: _Configs, idx: np.ndarray, system: int
                 ) -> dict[str, np.ndarray]:
        p = self.problem
        names = list(dict.fromkeys([p.quantity] + [c.quantity for c in p.constraints]))
        decisions = {k: v[idx] for k, v in configs.columns.items()}
        values = p.numeric(names)(decisions, p.system_parameters[system])
        return {k: np.broadcast_to(np.asarray(v, dtype=float), (len(idx),))
                for k, v in values.items()}

    def ranked(self, found: _Found, score: Callable[[dict[str, np.ndarray], int], np.ndarray],
               constraints: tuple[str, ...]) -> list[tuple[float, int, int, int]]:
        """Candidates re-evaluated with the evaluator: (score, system, configurations, row)
        of the feasible ones, best first, each configuration once."""
        out = []
        for ci in np.unique(found.configs):
            configs = self.configs[int(ci)]
            for cls in np.unique(found.cls[found.configs == ci]):
                idx = found.row[(found.configs == ci) & (found.cls == cls)]
                system = found.system_of[configs.layout][int(cls)]
                exact = self.evaluate(configs, idx, system)
                ok = np.isfinite(score(exact, system))
                for c in self.problem.constraints:
                    if c.name in constraints:
                        ok &= exact[c.quantity] <= c.limits[system]
                out += [(float(v), system, int(ci), int(i))
                        for v, i in zip(score(exact, system)[ok], idx[ok], strict=True)]
        out.sort(key=lambda t: t[0])
        seen: set[tuple[float, ...]] = set()
        unique = []
        for entry in out:  # the sample's search and the full one may find the same
            key = (entry[1], *self.codes(entry[2], entry[3]).values())
            if key not in seen:
                seen.add(key)
                unique.append(entry)
        return unique

    def codes(self, ci: int, row: int) -> dict[str, float]:
        return {k: float(v[row]) for k, v in self.configs[ci].columns.items()}


def _ordered(terms: list[_Term], codes: dict[str, np.ndarray], sample: np.ndarray,
             classes: np.ndarray) -> _Block:
    """The terms in bounding order: those that may be negative first, then the rest by their
    mean size on a sample of the configurations, largest first."""
    size = []
    with np.errstate(invalid="ignore", over="ignore"):
        for term in terms:
            values = np.abs(term.lower(codes, sample, classes, {}))
            finite = values[np.isfinite(values)]
            size.append(float(np.mean(finite)) if finite.size else 0.0)
    order = sorted(range(len(terms)), key=lambda k: (terms[k].nonnegative, -size[k]))
    return _Block(tuple(terms[k] for k in order))


def _solver(problem: SearchProblem, compiled: Compiled) -> _Solver:
    """The layouts of ``problem`` (built once and kept on it), with fresh counters."""
    if problem.bound_solver is None:
        problem.bound_solver = _Solver(problem, compiled)
    solver: _Solver = problem.bound_solver
    solver.stats = dict.fromkeys(solver.stats, 0)
    return solver


def best_within(problem: SearchProblem, allowed: Sequence[int], at_most: float = np.inf
                ) -> tuple[float, int, dict[str, float]] | None:
    """The optimum of ``problem`` on the ``allowed`` systems (the first of equivalent ones):
    value, system and decision codes, or None when nothing there is feasible -- or, when
    ``at_most`` is given (a value some allowed configuration is known to reach), nothing is
    at most that. The compiled form and the layouts are kept on the problem for the next
    call (a Pareto sweep)."""
    compiled = BoundEngine().compiled(problem)
    if isinstance(compiled, str):
        raise NotCompilable(compiled)
    solver = _solver(problem, compiled)
    names = tuple(c.name for c in problem.constraints)
    ranked = solver.ranked(solver.run(OBJECTIVE, names, 1, threshold=at_most,
                                      allowed=allowed),
                           lambda exact, _s: exact[problem.quantity], names)
    if not ranked:
        return None
    value, system, li, cfg = ranked[0]
    return value, system, solver.codes(li, cfg)


class BoundEngine:
    name = "bound"

    def compiled(self, problem: SearchProblem) -> Compiled | str:
        """The compiled form with a free system axis (kept on the problem), or why none."""
        if problem.factored is None:
            try:
                problem.factored = compile_problem(problem, free_system=True, posynomial=False,
                                                   largest_table=LARGEST_TABLE)
            except NotCompilable as exc:
                problem.factored = str(exc)
        return problem.factored

    def accepts(self, problem: SearchProblem) -> str | None:
        compiled = self.compiled(problem)
        return compiled if isinstance(compiled, str) else None

    def solve(self, problem: SearchProblem, top: int = 1, explain: bool = True) -> Result:
        t0 = time.perf_counter()
        result = Result(self.name, "not_accepted", problem.objective, notes=list(problem.notes))
        compiled = self.compiled(problem)
        if isinstance(compiled, str):
            result.explanation = [compiled]
            return result
        t1 = time.perf_counter()
        solver = _solver(problem, compiled)
        t2 = time.perf_counter()
        names = tuple(c.name for c in problem.constraints)
        keep = max(top, 2)

        def objective(exact: dict[str, np.ndarray], _system: int) -> np.ndarray:
            return exact[problem.quantity]

        ranked = solver.ranked(solver.run(OBJECTIVE, names, keep), objective, names)
        result.stats = {"space_size": problem.space.size, "compile_s": t1 - t0,
                        "layout_s": t2 - t1,
                        "core_configurations": sum(len(lay.cores) for lay in solver.layouts),
                        "system_classes": len(solver.features)}
        if not ranked:
            result.status = "infeasible"
            result.explanation = self._infeasible(solver)
            result.stats.update(solver.stats, solve_s=time.perf_counter() - t0)
            return result
        _value, system, li, cfg = ranked[0]
        codes = solver.codes(li, cfg)
        result.status = "optimal"
        result.config = user_config(problem, codes)
        result.system_index = system
        result.system = problem.space.systems[system].label
        result.values = full_values(problem, codes, system)
        result.value = float(result.values[problem.quantity])
        result.top = [Ranked(user_config(problem, solver.codes(lj, c)),
                             problem.space.systems[s].label, v)
                      for v, s, lj, c in ranked[:keep]]
        for c in problem.constraints:
            better = None
            if explain:  # does dropping the constraint improve the optimum?
                others = tuple(n for n in names if n != c.name)
                below = result.value * (1 - REL_TOL)
                relaxed = solver.ranked(solver.run(OBJECTIVE, others, 1, below), objective,
                                        others)
                if relaxed and relaxed[0][0] < below:
                    better = relaxed[0][0]
            result.constraints.append(ConstraintUse(
                c.name, float(result.values[c.quantity]), float(c.limits[system]), c.unit,
                better is not None, better))
        result.stats.update(solver.stats, solve_s=time.perf_counter() - t0)
        return result

    @staticmethod
    def _infeasible(solver: _Solver) -> list[str]:
        """The smallest violation of each constraint, or the structural rule that leaves
        nothing (as enumeration words it)."""
        p = solver.problem
        if not solver.layouts:
            cands = candidates(p.space)
            return explain_infeasible(p, cands, {}, {}, np.zeros(0, dtype=bool))
        lines = []
        for c in p.constraints:
            def ratio(exact: dict[str, np.ndarray], system: int, c=c) -> np.ndarray:
                return exact[c.quantity] / c.limits[system]

            # Where the other constraints hold, as enumeration words it; alone only when
            # they cannot hold together (then their own lines say so).
            others = tuple(o.name for o in p.constraints if o.name != c.name)
            best = solver.ranked(solver.run(c.name, others, 1), ratio, others) if others else []
            if not best:
                others = ()
                best = solver.ranked(solver.run(c.name, (), 1), ratio, ())
            if not best or best[0][0] <= 1.0:
                continue
            _ratio, system, li, cfg = best[0]
            codes = solver.codes(li, cfg)
            needed = full_values(p, codes, system)[c.quantity]
            lines.append(violation(c.name, needed, c.limits[system], c.unit,
                                   describe_codes(p, codes, system), others))
        if not lines:
            lines.append("every constraint can be met alone but not together")
        return lines
