"""The data every command prints with ``--json`` (SI units), built in one place so that the
command line and the Python API (``import perfcost``) give the same field names."""

from __future__ import annotations

from typing import Any


def evaluation(result: Any, sensitivities: list[Any] | None = None) -> dict[str, Any]:
    """A fixed configuration (training :class:`Evaluation` or a serving evaluation)."""
    data = result.to_json()
    if sensitivities is not None:
        data["sensitivities"] = [r.to_json() for r in sensitivities]
    return data


def solution(solution: Any, comparisons: list[Any] | None = None,
             sensitivities: list[Any] | None = None) -> dict[str, Any]:
    """The answer of a training search: the optimum (or why there is none), the engine and why
    it was picked, the co-designed system, the compared layouts and the sensitivities."""
    from perfcost.solver.cost.codesign import summary

    result = solution.result
    data = result.to_json()
    data["engine_reason"] = solution.engine_reason
    # The framework whose rules the search kept to (solver/case/frameworks.py).
    training = solution.problem.case.training
    data["framework"] = training.framework if training is not None else None
    if solution.problem.codesign is not None and result.ok:
        data["codesign"] = summary(solution.problem, result.system_index)
    if comparisons:
        terms = solution.problem.numeric().groups["iteration_time"]
        data["compare"] = [c.to_json(terms) for c in comparisons]
    if sensitivities is not None:
        data["sensitivities"] = [r.to_json() for r in sensitivities]
    return data


def serving_solution(solution: Any, sensitivities: list[Any] | None = None) -> dict[str, Any]:
    """The answer of a serving search."""
    data = solution.to_json()
    if sensitivities is not None:
        data["sensitivities"] = [r.to_json() for r in sensitivities]
    return data
