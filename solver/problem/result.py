"""What every engine returns: the same :class:`Result`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["optimal", "infeasible", "time_limit", "error", "not_accepted"]


@dataclass(frozen=True)
class ConstraintUse:
    """How much of a constraint the optimum uses, and whether relaxing it would help."""

    name: str
    value: float
    limit: float
    unit: str
    binding: bool
    better_if_relaxed: float | None = None  # best objective among configs only it excludes


@dataclass(frozen=True)
class Ranked:
    """One of the best configurations."""

    config: dict[str, Any]
    system: str
    objective: float


@dataclass
class Result:
    engine: str
    status: Status
    objective: str
    value: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    system: str = ""
    system_index: int = 0  # into the problem's systems (the case's hardware x network list)
    values: dict[str, float] = field(default_factory=dict)
    constraints: list[ConstraintUse] = field(default_factory=list)
    top: list[Ranked] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "optimal"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "engine": self.engine,
            "status": self.status,
            "objective": self.objective,
            "value": self.value,
            "config": self.config,
            "system": self.system,
            "constraints": [c.__dict__ for c in self.constraints],
            "top": [r.__dict__ for r in self.top],
            "explanation": self.explanation,
            "notes": self.notes,
            "stats": self.stats,
        }
        v = self.values
        if v:
            out.update({
                "iteration_time_s": v["iteration_time"],
                "tokens_per_s": v["tokens_per_s"],
                "mfu": v["mfu"],
                "hfu": v["hfu"],
                "model_tflops_per_gpu": v["model_tflops_per_gpu"],
                "memory_per_gpu_bytes": v["memory_per_gpu"],
                "time_to_train_s": v["time_to_train"],
                "cost_usd": v["cost"],
                "gpus": round(v["gpus"]),
            })
        return out
