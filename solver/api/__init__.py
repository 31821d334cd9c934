"""perfcost's Python API: the questions of the command line, asked from a notebook or a script.

>>> import perfcost
>>> r = perfcost.evaluate("gpt3-175b-a100", set={"parallelism.micro_batch": 2})
>>> round(r["iteration_time_s"], 1) > 0
True

Every function takes a case as a built-in name, a path to a TOML file, a ``dict`` laid out like
a case file (for :func:`load`, :func:`evaluate` and :func:`solve`) or an already loaded
:class:`Case`, plus ``set``: overrides as the command line's ``--set`` takes them (a mapping
``{"parallelism.tp": 4}`` or a list of ``"parallelism.tp=4"`` strings). Each returns a
:class:`Result` whose :meth:`Result.to_dict` holds the same fields, in SI units, as the
matching command prints with ``--json``. Bad input raises :class:`CaseError`, whose message
names the field, the value and what was expected.

This package is the top of the import graph beside the command line: it imports the layers
below it and nothing imports it. Python imports it before any ``perfcost.*`` module, the command
line's included, so everything heavy (pydantic, numpy, sympy) is imported inside the functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfcost.solver.case.errors import CaseError

if TYPE_CHECKING:
    from perfcost.solver.case.schema import Case


def __getattr__(name: str) -> Any:
    """``Case`` and ``__version__`` on first use (pydantic and package metadata are slow to
    import, and every command of the command line imports this package first)."""
    if name == "Case":
        from perfcost.solver.case.schema import Case

        return Case
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'perfcost' has no attribute {name!r}")


def version() -> str:
    """The installed version of perfcost (``perfcost --version``)."""
    from importlib import metadata

    try:
        return metadata.version("perfcost")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"

__all__ = [
    "Case",
    "CaseError",
    "Result",
    "__version__",
    "cost",
    "evaluate",
    "export",
    "list_cases",
    "load",
    "solve",
    "sweep",
    "validate",
    "version",
]

#: What a ``set=`` argument may be: a mapping of dotted keys to values, or ``key=value`` texts.
Overrides = Mapping[str, Any] | Sequence[str] | None


@dataclass(frozen=True)
class Result(Mapping[str, Any]):
    """An answer: its ``--json`` fields (read it like a dict) and the objects behind them.

    ``kind`` says which question it answers (``evaluation``, ``solution``,
    ``serving_evaluation``, ``serving_solution``, ``sweep``, ``cost``, ``validation``,
    ``cases``); ``detail`` is the object the report was made from (an ``Evaluation``, a
    ``Solution``, ...) for those who want more than the fields.
    """

    kind: str
    data: Any
    detail: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> Any:
        """The fields, as ``--json`` prints them (a list for row-shaped answers)."""
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON text (SI units; an undefined number is ``null``)."""
        from perfcost.solver.export import strict_json

        return strict_json.dumps(self.data, indent=indent)

    @property
    def ok(self) -> bool:
        """False for an infeasible search or a validation suite over its tolerance."""
        if isinstance(self.data, Mapping) and "status" in self.data:
            return self.data["status"] == "optimal"
        if self.kind == "validation":
            return all(s.ok for s in self.detail[1])
        return True

    def __getitem__(self, key: str) -> Any:
        if not isinstance(self.data, Mapping):
            raise TypeError(f"a {self.kind} result is a list of rows: use .to_dict()")
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data) if isinstance(self.data, Mapping) else iter(())

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        if isinstance(self.data, Mapping):
            keys = ", ".join(list(self.data)[:6])
            return f"Result({self.kind}: {keys}, ...)"
        return f"Result({self.kind}: {len(self.data)} rows)"


def _override_texts(overrides: Overrides) -> list[str]:
    """``set=`` as the ``key=value`` texts the loader takes (values written as TOML)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise CaseError("set", overrides, "expected a mapping or a list of 'key=value' texts")
    if isinstance(overrides, Mapping):
        return [f"{key}={_toml_value(key, value)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise CaseError(key, value, "expected a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    raise CaseError(key, repr(value), "expected a number, a text, true/false or a list")


def load(case: str | Path | Mapping[str, Any] | Case, set: Overrides = None) -> Case:
    """A validated case (SI units) from a built-in name, a file, a dict or a :class:`Case`."""
    from perfcost.solver.case import schema

    overrides = _override_texts(set)
    if isinstance(case, schema.Case):
        if overrides:
            raise CaseError("set", overrides, "expected no overrides for an already loaded "
                            "case; pass its name, file or dict instead")
        return case
    if isinstance(case, Mapping):
        raw = dict(case)
        if overrides:
            raw = schema.apply_overrides(raw, overrides)
        return schema.from_dict(schema.resolve(raw))
    if not isinstance(case, str | Path):
        raise CaseError("case", repr(case), "expected a built-in name, a path, a dict or a Case")
    return schema.load(case, overrides)


def evaluate(case: str | Path | Mapping[str, Any] | Case, set: Overrides = None,
             sensitivities: bool = False) -> Result:
    """One fixed configuration (``perfcost evaluate``): time, throughput, memory, cost and
    breakdowns of a training case, or TTFT, TPOT and cost of a serving case."""
    from perfcost.solver.report import data

    loaded = load(case, set)
    rows = None
    if loaded.serving is not None:
        from perfcost.solver.serving.evaluate import evaluate_serving

        result: Any = evaluate_serving(loaded)
        if sensitivities:
            from perfcost.solver.studies.sensitivity import serving_sensitivities

            rows = serving_sensitivities(result)
        return Result("serving_evaluation", data.evaluation(result, rows), result)
    from perfcost.solver.problem.evaluate import evaluate_case

    result = evaluate_case(loaded)
    if sensitivities:
        from perfcost.solver.studies.sensitivity import evaluation_sensitivities

        rows = evaluation_sensitivities(result)
    return Result("evaluation", data.evaluation(result, rows), result)


def solve(case: str | Path | Mapping[str, Any] | Case, set: Overrides = None,
          engine: str | None = None, objective: str | None = None, top: int = 1,
          sensitivities: bool = False) -> Result:
    """The best configuration under the constraints (``perfcost solve``); an infeasible
    search is a result with ``status`` "infeasible" and the reason, not an exception."""
    from perfcost.solver.report import data

    if engine not in (None, "auto", "enumerate", "bound", "milp"):
        raise CaseError("engine", engine, "expected auto, enumerate, bound or milp")
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 1000:
        raise CaseError("top", top, "expected an integer from 1 to 1000")
    loaded = load(case, set)
    rows = None
    if loaded.serving is not None:
        from perfcost.solver.serving.search import solve_serving

        if engine not in (None, "auto", "enumerate"):
            raise CaseError("engine", engine, "expected auto or enumerate for a serving case")
        serving = solve_serving(loaded, objective, top)
        if sensitivities:
            from perfcost.solver.studies.sensitivity import serving_solution_sensitivities

            rows = serving_solution_sensitivities(serving)
        return Result("serving_solution", data.serving_solution(serving, rows), serving)
    from perfcost.solver.engines.solve import solve_case
    from perfcost.solver.studies.compare import compare

    solution = solve_case(loaded, engine, objective, top)
    comparisons = compare(solution.problem, solution.result) if loaded.compare else []
    if sensitivities:
        from perfcost.solver.studies.sensitivity import solution_sensitivities

        rows = solution_sensitivities(solution)
    return Result("solution", data.solution(solution, comparisons, rows), solution)


def sweep(case: str | Path, vary: Mapping[str, Sequence[Any] | str] | Sequence[str],
          set: Overrides = None, zipped: bool = False,
          objective: str | None = None, engine: str | None = None,
          workers: int = 1) -> Result:
    """Re-solve over a grid (``perfcost sweep``): one row per point. ``vary`` maps a case
    field to its values (a list, or a range text like ``"2..8:13 TB/s"``), or is a list of
    ``--vary`` texts."""
    from perfcost.solver.studies import sweep as sw

    if not isinstance(case, str | Path):
        raise CaseError("case", repr(case), "expected a built-in name or a path (a sweep's "
                        "points are loaded afresh, possibly in other processes)")
    if isinstance(vary, Mapping):
        items = [f"{key}={values}" if isinstance(values, str)
                 else f"{key}=" + ",".join(_toml_value(key, v) for v in values)
                 for key, values in vary.items()]
    else:
        items = [str(v) for v in vary]
    axes = sw.parse_vary(items)
    points = sw.grid(axes, zipped)
    study = sw.Study(str(case), tuple(_override_texts(set)), tuple(a.key for a in axes),
                     objective, engine)
    rows = sw.run(study, points, workers)
    return Result("sweep", rows, axes)


def export(case: str | Path, format: str = "markdown",
           quantities: Sequence[str] = (), fix: Sequence[str] = (),
           set: Overrides = None, prefix: str | None = None) -> str:
    """Closed forms of a case's quantities (``perfcost export``) as text in ``format``
    (latex, markdown, python, c or json); for C, the header and the source one after the
    other (the command line's ``-o`` writes them to two files)."""
    from perfcost.solver.export.render import render

    return render(str(case), format, list(quantities), list(fix), _override_texts(set),
                  None, prefix).text


def cost(case: str | Path) -> Result:
    """Chiplet, package, accelerator and cluster cost of a cost case (``perfcost cost``)."""
    from perfcost.solver.cost import case as cost_case
    from perfcost.solver.cost.price import price_case

    result = price_case(cost_case.load(case))
    return Result("cost", result.to_json(), result)


def validate(suite: str | None = None) -> Result:
    """Predictions against published measurements (``perfcost validate``): one row per
    measured value; ``ok`` is False when a suite exceeds its tolerance."""
    from perfcost.solver.studies import validate as val

    rows = val.run(suite)
    return Result("validation", [r.to_json() for r in rows], (rows, val.summarise(rows)))


def list_cases() -> Result:
    """The built-in models, hardware, networks, studies and validation cases (``perfcost
    cases``; the name ``perfcost.cases`` is the package that holds their files)."""
    from perfcost.solver.case import catalog

    entries = catalog.listing()
    return Result("cases", [{"kind": e.kind, "name": e.name, "description": e.description}
                            for e in entries], entries)
