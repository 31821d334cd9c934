"""Engines behind one small interface, each declaring what it accepts.

Every engine returns the same :class:`~perfcost.solver.problem.result.Result`; a shared conformance
suite (tests/test_conformance.py) runs every registered engine against enumeration.
"""

from __future__ import annotations

from typing import Protocol

from perfcost.solver.problem.result import Result
from perfcost.solver.problem.search import SearchProblem
from perfcost.solver.problem.space import count_candidates

#: Structurally valid configurations of one system above which ``auto`` leaves enumeration
#: (it evaluates about 2 million per second here; see benchmarks/solver.py).
AUTO_ENUMERATION_LIMIT = 20_000_000


class Engine(Protocol):
    name: str

    def accepts(self, problem: SearchProblem) -> str | None:
        """``None`` if the engine can solve ``problem`` exactly, else the reason it cannot."""

    def solve(self, problem: SearchProblem, top: int = 1, explain: bool = True) -> Result:
        """The optimum (and the ``top`` best); with ``explain``, which constraints bind."""


#: Every engine by name: its module and class, imported when first asked for (the bound and
#: MILP engines bring sympy and pyomo, which enumeration does not need).
ENGINES: dict[str, tuple[str, str]] = {
    "enumerate": ("perfcost.solver.engines.enumerate", "EnumerateEngine"),
    "milp": ("perfcost.solver.engines.milp", "MilpEngine"),
    "bound": ("perfcost.solver.engines.bound", "BoundEngine"),
}


def engine(name: str) -> Engine:
    """A new instance of the engine called ``name``."""
    import importlib

    module, cls = ENGINES[name]
    made: Engine = getattr(importlib.import_module(module), cls)()
    return made


class _Engines(dict[str, Engine]):
    """Engines by name, each made on first access."""

    def __missing__(self, name: str) -> Engine:
        made = self[name] = engine(name)
        return made


def registry() -> dict[str, Engine]:
    """Every engine, by name."""
    return {name: engine(name) for name in ENGINES}


def pick(problem: SearchProblem, requested: str = "auto", top: int = 1) -> tuple[Engine, str]:
    """The engine to use and why."""
    engines = _Engines()
    if requested != "auto":
        return engines[requested], f"{requested} (requested)"

    systems = len(problem.space.systems)
    if systems > 1:
        # Counting the (system, configuration) pairs would enumerate them: with several
        # systems the bound engine avoids exactly that.
        reason = engines["bound"].accepts(problem)
        if reason is None:
            return engines["bound"], (
                f"bound: {systems} systems; branch and bound over them on the compiled "
                "tables rules most (system, configuration) pairs out unevaluated")
    n = count_candidates(problem.space)  # counted, not built: the space may be huge
    if n <= AUTO_ENUMERATION_LIMIT:
        return engines["enumerate"], (
            f"enumerate: {n:,} configurations satisfy the structural rules "
            f"(<= {AUTO_ENUMERATION_LIMIT:,}, exact and fast)")
    for name in ("bound", "milp"):
        if engines[name].accepts(problem) is None:
            return engines[name], (f"{name}: {n:,} configurations are too many to "
                                   "enumerate quickly")
    return engines["enumerate"], "enumerate: no other engine accepts this problem"
