"""Engines behind one small interface, each declaring what it accepts.

Every engine returns the same :class:`~perfcost.solver.result.Result`; a shared conformance
suite (tests/test_conformance.py) runs every registered engine against enumeration.
"""

from __future__ import annotations

from typing import Protocol

from .problem_search import SearchProblem
from .result import Result

#: Structurally valid configurations above which ``auto`` prefers the MILP engine
#: (enumeration evaluates about 2 million per second here; see benchmarks/solver.py).
AUTO_ENUMERATION_LIMIT = 20_000_000


class Engine(Protocol):
    name: str

    def accepts(self, problem: SearchProblem) -> str | None:
        """``None`` if the engine can solve ``problem`` exactly, else the reason it cannot."""

    def solve(self, problem: SearchProblem, top: int = 1, explain: bool = True) -> Result:
        """The optimum (and the ``top`` best); with ``explain``, which constraints bind."""


def registry() -> dict[str, Engine]:
    from .engine_enumerate import EnumerateEngine
    from .engine_milp import MilpEngine

    engines: list[Engine] = [EnumerateEngine(), MilpEngine()]
    return {e.name: e for e in engines}


def pick(problem: SearchProblem, requested: str = "auto", top: int = 1) -> tuple[Engine, str]:
    """The engine to use and why."""
    engines = registry()
    if requested != "auto":
        return engines[requested], f"{requested} (requested)"

    n = len(problem.valid())
    if n <= AUTO_ENUMERATION_LIMIT or top > 1:
        return engines["enumerate"], (
            f"enumerate: {n:,} configurations satisfy the structural rules "
            f"(<= {AUTO_ENUMERATION_LIMIT:,}, exact and fast)" if top == 1 else
            f"enumerate: --top {top} needs a ranking")
    reason = engines["milp"].accepts(problem)
    if reason is None:
        return engines["milp"], (f"milp: {n:,} configurations are too many to enumerate "
                                 "quickly and the model compiles to the log-space form")
    return engines["enumerate"], f"enumerate: milp does not accept this problem ({reason})"

