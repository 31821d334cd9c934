"""What-if sweeps: re-solve a case over a grid of changed fields (``perfcost sweep``).

A sweep point is the case with some fields set, exactly as ``perfcost solve --set`` would set
them, so every point is validated by the case loader and solved by the same engines. Points
run in chunks on a local Dask cluster of processes or a remote one (dask is the optional
``perfcost[distributed]`` extra; without it a sweep runs in this process): a Dask worker
builds the formulation of a model structure once and its numeric functions once
(solver/problem/search.py and solver/problem/evaluate.py cache both), and every later point of
that structure only swaps parameter values and the search space -- the "compile once, reuse"
of the design.

A serving case (``[serving]``) is re-solved by the serving search (solver/serving/search.py,
exhaustive over its domains), whose lambdified functions are shared the same way.

Rows are plain dictionaries in point order: the varied fields (in SI units where the field has
a unit), the status, the objective and its value, the optimal configuration, the headline
quantities and every named breakdown term of the formulation (of a serving optimum: its TPOT
and TTFT breakdowns). Solving is deterministic, so the
rows do not depend on how the points were spread over workers.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from perfcost.solver.case.errors import CaseError
from pydantic import BaseModel

#: Quantities every row carries when the formulation has them (besides its breakdown groups).
HEADLINE = ("gpus", "iteration_time", "time_to_train", "cost", "tokens_per_s", "mfu",
            "memory_per_gpu")
#: Units of the row quantities a Pareto front is usually drawn of (SI; a plot or table scales
#: them), by column name.
QUANTITY_UNITS: dict[str, str] = {
    "cost": "USD", "time_to_train": "s", "iteration_time": "s", "memory_per_gpu": "B",
    "ttft": "s", "tpot": "s", "e2e_latency": "s", "cost_per_million_tokens": "USD/Mtok",
    "energy_per_token": "J"}
#: Seconds to wait for a Dask scheduler before reporting it unreachable.
CONNECT_TIMEOUT_S = 5.0
#: Chunks per worker. A chunk is one Dask task (a few milliseconds of scheduling), and the
#: workers finish within about one chunk's time of each other, so small chunks keep both the
#: cores and the progress bar busy to the end.
CHUNKS_PER_WORKER = 16
#: Largest grid a sweep accepts (a typo such as 1..1e6:1e6 should not run for a day).
MAX_POINTS = 100_000


@dataclass(frozen=True)
class Axis:
    """One varied case field and its values as written (``--set`` syntax)."""

    key: str
    values: tuple[str, ...]


# -- the keys a case has ---------------------------------------------------------------------

def _models(annotation: Any) -> list[Any]:
    """The pydantic models and literal keys an annotation can hold."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin in (list, tuple, Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _models(a)]
    if origin is dict:
        key, value = get_args(annotation)
        keys = [str(k) for k in get_args(key)] if get_args(key) else []
        return [("dict", keys, value)]
    return []


def _walk(model: type[BaseModel], prefix: str, out: dict[str, Any]) -> None:
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        found = _models(info.annotation)
        if not found:
            out[key] = _unit_of(info)
            continue
        for item in found:
            if isinstance(item, tuple):
                _kind, keys, value = item
                for k in keys:
                    out[f"{key}.{k}"] = _unit_of_annotation(value)
            else:
                _walk(item, f"{key}.", out)


def _unit_of(info: Any) -> str | None:
    return _unit_from_metadata(list(info.metadata) + _annotated_metadata(info.annotation))


def _unit_of_annotation(annotation: Any) -> str | None:
    return _unit_from_metadata(_annotated_metadata(annotation))


def _annotated_metadata(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return list(get_args(annotation)[1:])
    if origin in (Union, types.UnionType):  # an optional field: ``Money | None``
        return [m for a in get_args(annotation) for m in _annotated_metadata(a)]
    return []


def _unit_from_metadata(metadata: Sequence[Any]) -> str | None:
    """The SI unit of a field with a physical dimension (from its error-message text)."""
    from perfcost.solver.case import units

    for m in metadata:
        text = getattr(m, "text", None)
        if not isinstance(text, str):
            continue
        for dimension, noun in units.NOUNS.items():
            if text.startswith(noun + " "):
                unit = units.RANGES[dimension][2]
                return None if unit == "1" else unit
    return None


#: Units of fields whose dimension the units table has no noun for.
FIELD_UNITS: dict[str, str] = {"serving.rate": "1/s"}  # requests per second


def case_keys() -> dict[str, str | None]:
    """Every field a case may set, dotted (``hardware.hbm_bandwidth``), with its SI unit."""
    from perfcost.solver.case.schema import Case

    out: dict[str, str | None] = {}
    _walk(Case, "", out)
    out.update({k: u for k, u in FIELD_UNITS.items() if k in out})
    return out


# -- parsing --vary ---------------------------------------------------------------------------

#: A number of a range: digits on both sides of a decimal point (so '1...8' cannot read as
#: '1.' to '8' or '1' to '.8'), an exponent of at most three digits.
_RANGE_NUMBER = r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?(?P<{}>\d+))?"
#: What may follow a range: a unit (it is written into a quoted value, so never a quote).
_RANGE_UNIT = re.compile(r"[\w/^*%()\u00b7\u00b2\u00b3 .+-]*")
_RANGE = re.compile(f"(?P<lo>{_RANGE_NUMBER.format('lo_exp')})\\.\\."
                    f"(?P<hi>{_RANGE_NUMBER.format('hi_exp')}):(?P<n>\\d+)(?P<log>:log)?", re.ASCII)

def _range(key: str, text: str) -> tuple[str, ...] | None:
    """``LO..HI:N`` (linear) or ``LO..HI:N:log`` (geometric), optionally followed by a unit:
    ``3..8:11 TB/s``. None when ``text`` is not a range."""
    body, _, unit = text.strip().partition(" ")
    if ".." not in body:
        return None
    problem = "expected LO..HI:N or LO..HI:N:log, like 3..8:11 TB/s"
    # The whole text must match: '1...8:3' is not 1 to .8 (nor 1. to 8), it is a typo.
    match = _RANGE.fullmatch(body)
    if match is None or any(len(e) > 3 for e in (match.group("lo_exp") or "",
                                                  match.group("hi_exp") or "")):
        raise CaseError("--vary", f"{key}={text}", problem)
    if not _RANGE_UNIT.fullmatch(unit.strip()):
        raise CaseError("--vary", f"{key}={text}", "expected a unit after the range, like TB/s")
    lo, hi = float(match.group("lo")), float(match.group("hi"))
    if len(match.group("n")) > 7:
        raise CaseError("--vary", f"{key}={text}", f"expected 1 to {MAX_POINTS:,} points")
    n = int(match.group("n"))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise CaseError("--vary", f"{key}={text}", "expected finite ends")
    if n < 1 or n > MAX_POINTS:
        raise CaseError("--vary", f"{key}={text}", f"expected 1 to {MAX_POINTS:,} points")
    log = match.group("log") is not None
    if log and (lo <= 0 or hi <= 0):
        raise CaseError("--vary", f"{key}={text}", "expected positive ends for a log range")
    if n == 1:
        values = [lo]
    elif log:
        values = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1))
                  for i in range(n)]
    else:
        values = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    texts = [repr(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v) for v in values]
    return tuple(f'"{t} {unit.strip()}"' if unit.strip() else t for t in texts)


def parse_vary(items: Sequence[str]) -> list[Axis]:
    """``--vary`` options as axes; keys are checked against the case schema."""
    if not items:
        raise CaseError("--vary", None, "expected at least one KEY=V1,V2,... to vary")
    known = case_keys()
    axes = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CaseError("--vary", item, "expected KEY=V1,V2,..., like "
                            "hardware.hbm_bandwidth='3 TB/s','4 TB/s'")
        if key not in known:
            from perfcost.solver.export.closed_form import suggest

            # Else a typo in the last part: compare within the section.
            section = key.split(".")[0] + "."
            hint = suggest(key, known, cutoff=0.6) or suggest(
                key, [k for k in known if k.startswith(section)], cutoff=0.3)
            raise CaseError("--vary", key, f"expected a case field (as --set takes it){hint}")
        values = _range(key, text)
        if values is None:
            values = tuple(v.strip() for v in _split(text) if v.strip())
        if not values:
            raise CaseError("--vary", item, "expected at least one value (an empty range)")
        if any(a.key == key for a in axes):
            raise CaseError("--vary", key, "expected each field once")
        axes.append(Axis(key, values))
    return axes


def _split(text: str) -> list[str]:
    """Split on commas outside brackets and quotes (a value may be a list: [512,1024])."""
    out, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(current))
            current = []
            continue
        current.append(ch)
    out.append("".join(current))
    return out


def grid(axes: Sequence[Axis], zipped: bool = False) -> list[tuple[str, ...]]:
    """The points: the product of the axes' values, or their zip (equal lengths)."""
    if zipped:
        lengths = {len(a.values) for a in axes}
        if len(lengths) != 1:
            raise CaseError("--zip", ", ".join(f"{a.key}: {len(a.values)}" for a in axes),
                            "expected the same number of values for every --vary")
    # Counted before the grid is built: two axes of 100,000 values are 10^10 points.
    count = len(axes[0].values) if zipped and axes else math.prod(len(a.values) for a in axes)
    if count > MAX_POINTS:
        raise CaseError("--vary", f"{count:,} points", f"expected at most {MAX_POINTS:,} in "
                        "all; use fewer values per axis, or --zip to pair the axes")
    if zipped:
        return list(zip(*(a.values for a in axes), strict=True))
    return list(itertools.product(*(a.values for a in axes)))


# -- one point --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Study:
    """Everything a worker needs to solve points (plain data: it travels to other processes)."""

    source: str
    sets: tuple[str, ...]
    keys: tuple[str, ...]
    objective: str | None = None
    engine: str | None = None


def load_point(study: Study, point: Sequence[str]) -> Any:
    from perfcost.solver.case import schema as case_mod

    sets = [*study.sets, *(f"{k}={v}" for k, v in zip(study.keys, point, strict=True))]
    return case_mod.load(study.source, sets)


def _field_value(case: Any, key: str) -> int | float | None:
    """The loaded (SI) value of a dotted field, or None where it is not one number."""
    node: Any = case
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return node


def solve_point(study: Study, point: Sequence[str]) -> dict[str, Any]:
    """One row: the point, the optimum and its quantities."""
    from perfcost.solver.engines.solve import solve_case
    from perfcost.solver.export.closed_form import case_kind

    case = load_point(study, point)
    kind = case_kind(case)
    row: dict[str, Any] = {}
    for key, text in zip(study.keys, point, strict=True):
        value = _field_value(case, key)
        row[key] = value if value is not None else _literal(text)
    if kind == "serving":
        return _serving_row(study, case, row)
    solution = solve_case(case, study.engine, study.objective)
    result = solution.result
    formulation = solution.problem.numeric()
    row["status"] = result.status
    row["objective"] = result.objective
    row["value"] = result.value if result.value is not None else math.nan
    row["system"] = result.system
    row["unit"] = formulation.units.get(solution.problem.quantity, "")
    row["configuration"] = " ".join(f"{k}={v}" for k, v in result.config.items())
    for k in formulation.decisions:  # every decision, so infeasible rows have the columns
        row[k] = result.config.get(k, "")
    names = [q for q in HEADLINE if q in formulation.units]
    for group in formulation.groups.values():
        names += [q for q in group if q not in names]
    for q in names:
        row[q] = float(result.values[q]) if q in result.values else math.nan
    if "gpus" in row and math.isfinite(row["gpus"]):
        row["gpus"] = round(row["gpus"])
    return row


#: Quantities every serving row carries, in this order (``gpus`` first: the plots and the
#: table take the columns before the first :data:`HEADLINE` name as the configuration).
SERVING_HEADLINE = ("gpus", "cost_per_million_tokens", "cost_per_million_input_tokens",
                    "cost_per_million_output_tokens", "ttft", "tpot", "e2e_latency",
                    "throughput_per_gpu", "replicas", "memory_per_gpu", "kv_cache_bytes",
                    "energy_per_token")
#: The decisions of a serving deployment, colocated or disaggregated (solver/serving/search.py),
#: every row carrying each (blank where the optimum's kind has none).
SERVING_DECISIONS = ("hardware", "disaggregated", "tp", "pp", "ep", "precision", "batch",
                     "prefill_hardware", "prefill_tp", "prefill_pp", "prefill_ep",
                     "prefill_precision")


def _serving_row(study: Study, case: Any, row: dict[str, Any]) -> dict[str, Any]:
    """One row of a serving case: the optimum of the serving search (exhaustive over the
    case's domains) and its quantities; the TPOT and TTFT breakdowns as ``tpot_<part>`` and
    ``ttft_<part>`` columns."""
    from perfcost.solver.serving.search import OBJECTIVES, solve_serving

    if study.engine not in (None, "auto", "enumerate"):
        raise CaseError("--engine", study.engine, "expected auto or enumerate for a serving "
                        "case (the search is exhaustive)")
    solution = solve_serving(case, study.objective)
    best = solution.best
    quantity = OBJECTIVES[solution.objective][0]
    row["status"] = solution.status
    row["objective"] = solution.objective
    row["value"] = float(best.values[quantity]) if best is not None else math.nan
    config = best.config if best is not None else {}
    row["unit"] = best.formulation.units.get(quantity, "") if best is not None else ""
    row["configuration"] = " ".join(f"{k}={v}" for k, v in config.items())
    moe = bool(case.model.experts)
    for k in SERVING_DECISIONS:
        if moe or not k.endswith("ep"):
            row[k] = config.get(k, "")
    for q in SERVING_HEADLINE:
        row[q] = float(best.values[q]) if best is not None else math.nan
    if best is not None:
        row["gpus"] = round(row["gpus"])
        for prefix, parts in (("tpot", best.tpot_breakdown()), ("ttft", best.ttft_breakdown())):
            for name, value in parts.items():
                row[f"{prefix}_{name.split('_step_')[-1]}"] = float(value)
    return row


def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


#: Key of the one row a chunk returns when a point is bad input (a CaseError does not survive
#: pickling between processes: its constructor takes three arguments).
ERROR = "__error__"


def solve_chunk(study: Study, points: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """Rows of several points, in order (one task of a worker)."""
    rows = []
    for p in points:
        try:
            rows.append(solve_point(study, p))
        except CaseError as exc:
            where = ", ".join(f"{k}={v}" for k, v in zip(study.keys, p, strict=True))
            return [{ERROR: (exc.field, exc.value, f"{exc.expected} (at {where})")}]
    return rows


def _checked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if rows and ERROR in rows[0]:
        raise CaseError(*rows[0][ERROR])
    return rows


# -- running ----------------------------------------------------------------------------------

def chunks(points: Sequence[tuple[str, ...]], workers: int) -> list[list[tuple[str, ...]]]:
    n = max(1, min(len(points), workers * CHUNKS_PER_WORKER))
    size = math.ceil(len(points) / n)
    return [list(points[i:i + size]) for i in range(0, len(points), size)]


def has_dask() -> bool:
    """Whether ``dask[distributed]`` is installed (the ``perfcost[distributed]`` extra)."""
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def run(study: Study, points: Sequence[tuple[str, ...]], workers: int = 1,
        scheduler: str | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Solve every point: in this process (``workers`` 1, or without dask), on a local Dask
    cluster of ``workers`` processes, or on the Dask scheduler at ``scheduler``, whose points
    are spread in chunks over all its worker threads. ``progress(n)`` is called as n more
    points finish.

    A worker is a long-lived process that takes chunk after chunk, so it builds a structure's
    formulation and numeric functions once (the module-level caches of solver/problem and
    solver/serving) and every later point only swaps numbers: the cost of a worker's start
    (importing sympy, building the formulation) is paid once per worker, not per chunk.
    """
    done = progress or (lambda n: None)
    if scheduler:
        client = connect(scheduler)
        try:
            return _on_dask(client, study, points, _threads(client), done)
        finally:
            client.close()
    if workers > 1 and has_dask():
        import logging

        import dask
        from distributed import Client, LocalCluster

        # Processes, one thread each: a point is pure-Python CPU work (the GIL would serialise
        # threads). No dashboard: it would need a free port and bokeh, and nobody looks.
        # Dask's statistical profiler samples each worker's stack every 10 ms; the sampling
        # thread takes the GIL from the point being solved (about a quarter of a worker's CPU
        # on these pure-Python points), and nobody reads the profile of a local sweep.
        with dask.config.set({"distributed.worker.profile.enabled": False}), \
                LocalCluster(processes=True, n_workers=workers, threads_per_worker=1,
                             dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            return _on_dask(client, study, points, workers, done)
    check(study, points)
    out = []
    for part in chunks(points, 1):
        out += _checked(solve_chunk(study, part))
        done(len(part))
    return out


def check(study: Study, points: Sequence[tuple[str, ...]]) -> None:
    """Load every point, so a bad value is one error naming it, before any row is reported."""
    for p in points:
        load_point(study, p)


def built_here() -> dict[str, int]:
    """Formulations and numeric forms this process has built or read (run on each Dask worker
    with ``client.run``: a worker that took many chunks of one structure shows one of each
    kind it needed)."""
    from perfcost.solver.problem import search

    return {"formulations": len(search._FORMULATIONS), "numeric": len(search._NUMERIC)}


def _threads(client: Any) -> int:
    """Worker threads of a Dask cluster (1 while it has none yet: the chunks wait for one)."""
    return max(1, sum(client.nthreads().values()))


def _on_dask(client: Any, study: Study, points: Sequence[tuple[str, ...]], threads: int,
             done: Callable[[int], None]) -> list[dict[str, Any]]:
    """Rows of ``points``, solved in chunks by the Dask cluster of ``client``, in point order."""
    from distributed import as_completed

    parts = chunks(points, threads)
    futures = {client.submit(solve_chunk, study, part, pure=False): i
               for i, part in enumerate(parts)}
    results: dict[int, list[dict[str, Any]]] = {}
    try:
        check(study, points)  # while the workers start (import, build the formulation)
        for future in as_completed(futures):
            results[futures[future]] = _checked(future.result())
            done(len(parts[futures[future]]))
    except BaseException:
        client.cancel(list(futures))  # a bad point or Ctrl-C: the other chunks are not wanted
        raise
    return [row for i in range(len(parts)) for row in results[i]]


def connect(address: str) -> Any:
    """A Dask client of the scheduler at ``address``, or a one-line error."""
    try:
        from distributed import Client
    except ImportError:
        raise CaseError("--scheduler", address,
                        "needs dask[distributed] (pip install 'perfcost[distributed]')") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CaseError("--scheduler", address,
                        f"expected a reachable Dask scheduler like tcp://host:8786 ({reason})"
                        ) from None


# -- output -----------------------------------------------------------------------------------

def columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    out: dict[str, None] = {}
    for r in rows:
        out.update(dict.fromkeys(r))
    return list(out)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns(rows))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: (repr(v) if isinstance(v, float) else v)
                                 for k, v in r.items()})
    except OSError as exc:
        raise CaseError("--csv", str(path), f"cannot be written ({exc.strerror or exc})"
                        ) from None


def pareto_front(rows: Sequence[dict[str, Any]], x: str, y: str) -> list[int]:
    """Indices of the rows no other row beats on both ``x`` and ``y`` (both minimised),
    sorted by ``x``."""
    ok = [i for i, r in enumerate(rows) if r.get("status") == "optimal"
          and math.isfinite(r.get(x, math.nan)) and math.isfinite(r.get(y, math.nan))]
    ok.sort(key=lambda i: (rows[i][x], rows[i][y]))
    front, best = [], math.inf
    for i in ok:
        if rows[i][y] < best:
            front.append(i)
            best = rows[i][y]
    return front


def config_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The decision columns: those between 'configuration' and the first quantity."""
    keys = columns(rows)
    start = keys.index("configuration") + 1 if "configuration" in keys else len(keys)
    out = []
    for k in keys[start:]:
        if k in HEADLINE:
            break
        out.append(k)
    return out


def decision_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The columns that tell the optima apart: the system, the GPU count and
    :func:`config_keys`."""
    return [k for k in ("system", "gpus", *config_keys(rows)) if k in rows[0]]


def changed_columns(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[str]:
    """Those of ``keys`` whose value is not the same in every row."""
    return [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]
