"""Exhaustive, vectorised enumeration: exact, the test oracle, and the default for spaces of up
to a few million structurally valid configurations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from perfcost.solver.case.units import format_quantity
from perfcost.solver.problem.result import ConstraintUse, Ranked, Result
from perfcost.solver.problem.search import SearchProblem
from perfcost.solver.problem.space import DECISIONS, Candidates

#: Configurations evaluated per numpy pass (bounds the temporaries' memory).
CHUNK = 200_000


def user_config(problem: SearchProblem, codes: dict[str, float]) -> dict[str, Any]:
    """Numeric decision codes -> the user-facing configuration."""
    decisions = problem.numeric().decisions
    out: dict[str, Any] = {}
    for name in DECISIONS:
        label = decisions[name].label(codes[name])
        if name == "sequence_parallel":
            label = label == "true"
        out[name] = label
    return out


def evaluate_all(problem: SearchProblem, cands: Candidates, names: list[str]
                 ) -> dict[str, np.ndarray]:
    """``names`` for every candidate, chunk by chunk."""
    evaluator = problem.numeric(names)
    n = len(cands)
    out = {name: np.empty(n) for name in names}
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        decisions = {k: v[start:stop] for k, v in cands.columns.items()}
        values = evaluator(decisions, problem.parameter_arrays(cands.system[start:stop]))
        for name in names:
            out[name][start:stop] = np.broadcast_to(values[name], (stop - start,))
    return out


def full_values(problem: SearchProblem, codes: dict[str, float], system: int
                ) -> dict[str, float]:
    """Every quantity of one configuration, with the system's parameters."""
    return problem.numeric()(codes, problem.system_parameters[system])


def config_at(cands: Candidates, i: int) -> dict[str, float]:
    return {k: float(v[i]) for k, v in cands.columns.items()}


def describe(problem: SearchProblem, cands: Candidates, i: int) -> str:
    return describe_codes(problem, config_at(cands, i), int(cands.system[i]))


def describe_codes(problem: SearchProblem, codes: dict[str, float], system: int) -> str:
    """A configuration on one line (with its system when the search has several)."""
    text = " ".join(f"{k}={v}" for k, v in user_config(problem, codes).items())
    if len(problem.space.systems) > 1:
        text = f"{problem.space.systems[system].label}: {text}"
    return text


def violation(name: str, needed: float, limit: float, unit: str, where: str,
              others: Sequence[str] = ()) -> str:
    """The line that says a constraint cannot be met, by how much, and where it comes
    closest -- among the configurations that meet the ``others`` constraints, when any does
    (the limit a user would have to move for the problem to have an optimum)."""
    over = f"{100 * (needed / limit - 1):.1f}% over" if limit > 0 else "a limit of 0"
    held = f" (where {', '.join(others)} {'holds' if len(others) == 1 else 'hold'})" if (
        others) else ""
    return (f"no configuration satisfies {name}: the least needed is "
            f"{format_quantity(needed, unit)} against {format_quantity(limit, unit)} "
            f"({over}) at {where}{held}")


class EnumerateEngine:
    name = "enumerate"

    def accepts(self, problem: SearchProblem) -> str | None:
        return None

    def solve(self, problem: SearchProblem, top: int = 1, explain: bool = True) -> Result:
        """``explain`` is free here: enumeration sees every configuration anyway."""
        del explain
        t0 = time.perf_counter()
        cands = problem.valid()
        t1 = time.perf_counter()
        names = list(dict.fromkeys([problem.quantity] + [c.quantity
                                                          for c in problem.constraints]))
        values = evaluate_all(problem, cands, names) if len(cands) else {
            n: np.empty(0) for n in names}
        objective = values[problem.quantity]
        ok = {}
        for c in problem.constraints:
            limits = np.asarray(c.limits)[cands.system] if len(cands) else np.empty(0)
            ok[c.name] = values[c.quantity] <= limits
        finite = np.isfinite(objective)
        feasible = finite.copy()
        for mask in ok.values():
            feasible &= mask
        t2 = time.perf_counter()
        stats: dict[str, Any] = {
            "space_size": problem.space.size, "candidates": len(cands),
            "feasible": int(feasible.sum()), "generate_s": t1 - t0, "evaluate_s": t2 - t1,
            "rules": cands.counts,
        }
        result = Result(self.name, "infeasible", problem.objective, notes=list(problem.notes),
                        stats=stats)
        if not feasible.any():
            result.explanation = explain_infeasible(problem, cands, values, ok, finite)
            return result
        idx = np.flatnonzero(feasible)
        order = idx[np.argsort(objective[idx], kind="stable")[:max(top, 2)]]
        best = int(order[0])
        result.status = "optimal"
        result.config = user_config(problem, config_at(cands, best))
        result.system_index = int(cands.system[best])
        result.system = problem.space.systems[result.system_index].label
        result.values = full_values(problem, config_at(cands, best), int(cands.system[best]))
        # Report the full evaluation's number (the ranking pass may differ in the last bit).
        result.value = float(result.values[problem.quantity])
        result.top = [Ranked(user_config(problem, config_at(cands, int(i))),
                             problem.space.systems[cands.system[i]].label,
                             float(objective[i])) for i in order[:max(top, 2)]]
        for c in problem.constraints:
            others = finite.copy()
            for name, mask in ok.items():
                if name != c.name:
                    others &= mask
            excluded = others & ~ok[c.name]
            better = objective[excluded].min() if excluded.any() else np.inf
            result.constraints.append(ConstraintUse(
                c.name, float(values[c.quantity][best]),
                float(c.limits[cands.system[best]]), c.unit, bool(better < result.value),
                float(better) if better < result.value else None))
        result.stats["solve_s"] = time.perf_counter() - t0
        return result


def explain_infeasible(problem: SearchProblem, cands: Candidates, values: dict[str, np.ndarray],
                       ok: dict[str, np.ndarray], finite: np.ndarray) -> list[str]:
    """Which rule or constraint empties the space, and by how much."""
    if not len(cands):
        for rule, count in cands.counts:
            if count == 0:
                return [f"no configuration satisfies the rule '{rule}' together with the "
                        f"rules before it (GPU counts {list(problem.space.gpus)})"]
        return ["no configuration satisfies the structural rules"]
    lines = []
    for c in problem.constraints:
        limits = np.asarray(c.limits)[cands.system]
        with np.errstate(divide="ignore", invalid="ignore"):  # a limit of 0: ratio inf
            ratio = np.where(finite, values[c.quantity] / limits, np.inf)
        others = [o.name for o in problem.constraints if o.name != c.name]
        meet_others = finite.copy()
        for name in others:
            meet_others &= ok[name]
        if others and meet_others.any():
            # The least this constraint needs where the others hold: a cheapest
            # configuration that does not fit in memory is no answer to "how much budget".
            i = int(np.argmin(np.where(meet_others, ratio, np.inf)))
            if ratio[i] > 1.0:
                lines.append(violation(c.name, float(values[c.quantity][i]),
                                       float(limits[i]), c.unit, describe(problem, cands, i),
                                       others))
        elif not ok[c.name].any():
            i = int(np.argmin(ratio))
            lines.append(violation(c.name, float(values[c.quantity][i]), float(limits[i]),
                                   c.unit, describe(problem, cands, i)))
    if not lines:
        lines.append("every constraint can be met alone but not together: "
                     + ", ".join(f"{k}: {int(v.sum())} configurations" for k, v in ok.items()))
    return lines
