"""A search problem: one formulation, its decision space, an objective and constraints.

The formulation is built once (with the first system's parameter values); a search over
several hardware or network entries swaps in each system's parameter values, so every system
shares the same expressions. Engines that evaluate read its numeric functions
(:meth:`SearchProblem.numeric`), which come from the disk cache when the same structure was
searched before; the sympy formulation itself is built only when something needs the
expressions (compiled tables, sensitivities, export).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case
from perfcost.solver.problem import cache
from perfcost.solver.problem import specs as fixed
from perfcost.solver.problem.numeric import NumericFormulation, numeric_formulation
from perfcost.solver.problem.space import Candidates, Space, System, build_space, candidates

if TYPE_CHECKING:
    from perfcost.formulations.core import Formulation

#: Objectives: quantity to minimise, and how the reported value is derived from it.
OBJECTIVES: dict[str, tuple[str, str]] = {
    "iteration_time": ("iteration_time", "minimise seconds per iteration"),
    "time_to_train": ("time_to_train", "minimise wall time for the token budget"),
    "cost": ("cost", "minimise GPU-hour cost of the token budget"),
    "tokens_per_dollar": ("cost", "maximise tokens per USD (minimises cost)"),
    "tokens_per_s": ("iteration_time", "maximise tokens per second"),
}
NEEDS_PRICE = {"cost", "tokens_per_dollar"}


@dataclass(frozen=True)
class Constraint:
    """``quantity <= limit`` (the limit may differ per system)."""

    name: str
    quantity: str
    limits: tuple[float, ...]
    unit: str


@dataclass
class SearchProblem:
    case: Case
    space: Space
    #: The specs the formulation is built from (the first system's).
    specs: fixed.Specs
    system_parameters: list[dict[str, float]]
    objective: str
    quantity: str
    constraints: list[Constraint]
    notes: list[str] = field(default_factory=list)
    #: The compiled form (or why there is none), filled in by the MILP engine when first asked.
    compiled: Any = None
    #: The compiled form with a free system axis (or why there is none), for the bound engine.
    factored: Any = None
    #: The bound engine's layouts of this problem, kept for repeated searches (Pareto sweeps).
    bound_solver: Any = None
    _valid: Candidates | None = field(default=None, repr=False)
    #: The priced designs of a co-design case (solver/cost/codesign.py), one per system.
    codesign: Any = None

    @property
    def formulation(self) -> Formulation:
        """The sympy formulation (built on first use, shared by problems of one structure)."""
        return _formulation(self.specs)

    def numeric(self, names: Sequence[str] = ()) -> NumericFormulation:
        """The quantities ``names`` (default: all) as numeric functions of (parameters,
        decisions), with units, groups and decision labels: from the disk cache when this
        structure was searched before. Pass :attr:`system_parameters` explicitly: the
        stored parameter values are those of whichever problem built it first."""
        key = (repr(structure_key(self.specs)), *names)
        found = _NUMERIC.get(key)
        if found is None:
            found = _NUMERIC[key] = numeric_formulation(
                "training-search", key, lambda: self.formulation, tuple(names))
        return found

    def valid(self) -> Candidates:
        """Every configuration that satisfies the structural rules (generated once)."""
        if self._valid is None:
            self._valid = candidates(self.space)
        return self._valid

    def parameter_arrays(self, system: np.ndarray) -> dict[str, np.ndarray | float]:
        """Per-configuration parameter values for configurations on ``system``.

        Always explicit: the formulation may be shared with other problems of the same
        structure (see :func:`_formulation`), so its stored values are not this problem's.
        """
        out: dict[str, np.ndarray | float] = dict(self.system_parameters[0])
        if len(self.system_parameters) > 1:
            for name in out:
                values = np.array([p[name] for p in self.system_parameters])
                if not np.all(values == values[0]):
                    out[name] = values[system]
        return out


_FORMULATIONS: dict[tuple[object, ...], Formulation] = {}
_NUMERIC: dict[tuple[str, ...], NumericFormulation] = {}


def structure_key(specs: fixed.Specs) -> tuple[object, ...]:
    """What shapes the training expressions of a search (attention and MLP kind, embeddings,
    dropout, overlap, mixture of experts, latent attention); sizes, rates and prices are
    parameters whose values each problem supplies."""
    m = specs.model
    return (m.ffn_kind, m.kv_heads != m.heads, m.tied_embeddings, m.biases,
           m.learned_positions, m.dropout, specs.training.dp_overlap,
           specs.training.tp_algorithm, specs.training.attention,
           # Mixture of experts and latent attention change the expressions' structure.
           m.moe, m.shared_experts > 0, m.capacity_factor > 0, m.route_domains > 0, m.mla,
           m.q_lora_rank > 0,
           specs.training.uneven_stages, specs.training.ep_overlap,
           # FP8 GEMMs, the pipeline schedule and the overlaps change the terms' structure.
           specs.training.fp8_recipe, specs.training.schedule, specs.training.tp_overlap,
           specs.training.zero_reduce_per_micro_batch, m.mtp_modules > 0,
           specs.training.cp_algorithm,
           # Which outputs are recomputed, the stored formats and copies, and a per-rank
           # dispatch (whose distinct-rank count has one factor per routed expert) are
           # written into the expressions, not passed as values.
           specs.training.recompute_modules, specs.training.attention_output_format,
           specs.training.fp8_weight_copies, specs.training.dispatch_per_rank,
           m.top_k if specs.training.dispatch_per_rank else None,
           # A layout writes each rank's layer counts (and so which are dense) into memory.
           specs.training.pipeline_layout,
           (m.first_dense_layers, m.moe_every) if specs.training.pipeline_layout else None)


def _formulation(specs: fixed.Specs) -> Formulation:
    """The search formulation for a model structure (:func:`structure_key`), built once per
    process."""
    from perfcost.formulations.registry import build

    key = structure_key(specs)
    if key not in _FORMULATIONS:
        _FORMULATIONS[key] = build("training", specs.model, specs.hardware, specs.network,
                                   specs.training, pipeline_filled=True)
    return _FORMULATIONS[key]


def training_parameters(all_specs: Sequence[fixed.Specs]) -> list[dict[str, float]]:
    """The training formulation's parameter values of every system of a search, as one disk
    cache entry (computing them imports sympy; a co-design search has a thousand systems, so
    one entry per search, not per system)."""
    parts = [repr((s.model, s.hardware, s.network, s.training)) for s in all_specs]
    entry_key = cache.key("training-parameters", *parts)
    found = cache.read("parameters", entry_key)
    values = found.get("systems") if found is not None else None
    if isinstance(values, list) and len(values) == len(parts):
        return [{str(k): float(v) for k, v in system.items()} for system in values]
    from perfcost.formulations.training import parameter_values

    computed = [parameter_values(s.model, s.hardware, s.network, s.training) for s in all_specs]
    cache.write("parameters", entry_key, {"systems": computed})
    return computed


def systems_of(case: Case) -> list[tuple[Case, System]]:
    """One case per hardware x network combination the case allows."""
    hardware = case.hardware if isinstance(case.hardware, list) else [case.hardware]
    networks = case.network if isinstance(case.network, list) else [case.network]
    out = []
    for hw in hardware:
        for net in networks:
            single = case.model_copy(update={"hardware": hw, "network": net})
            out.append((single, System(hw.name, net.name, net.scale_up.size or 1,
                                       hw.hbm_capacity)))
    return out


def search_problem(case: Case, objective: str | None = None,
                   codesign: Any = None) -> SearchProblem:
    """The search problem of ``case`` over its hardware and network entries, or over the
    accelerators of ``codesign`` (a :class:`perfcost.solver.cost.codesign.Codesign`, which
    the cost layer builds from the case's design space; see its ``build_problem``)."""
    objective = objective or case.search.objective
    if objective not in OBJECTIVES:
        raise CaseError("search.objective", objective,
                        f"expected one of {', '.join(OBJECTIVES)}")
    notes: list[str] = []
    if case.codesign is not None and codesign is None:
        raise CaseError("codesign", case.codesign.design,
                        "a co-design case: build its problem with cost.codesign.build_problem")
    if codesign is not None:
        pairs = [(d.specs, d.system) for d in codesign.systems]
        notes += codesign.notes
    else:
        pairs = [(fixed.specs(single), system) for single, system in systems_of(case)]
    space = build_space(case, [s for _c, s in pairs])
    system_parameters = training_parameters([s for s, _system in pairs])
    quantity = OBJECTIVES[objective][0]
    if objective in NEEDS_PRICE and any(p["gpu_hour_price"] <= 0 for p in system_parameters):
        raise CaseError("search.objective", objective,
                        "needs a GPU-hour price: set cluster.gpu_hour_price or the hardware's")
    headroom = case.constraints.memory_headroom
    constraints = [Constraint("memory", "memory_per_gpu",
                              tuple(s.hbm_capacity * headroom for _c, s in pairs), "B")]
    if case.constraints.budget is not None:
        constraints.append(Constraint("budget", "cost",
                                      (case.constraints.budget,) * len(pairs), "USD"))
    return SearchProblem(case, space, pairs[0][0], system_parameters, objective, quantity,
                         constraints, notes + list(space.notes), codesign=codesign)


def system_case(problem: SearchProblem, index: int) -> Case:
    """The case of one system of ``problem``: one hardware and one network entry (for a
    co-design case, the designed accelerator and its scale-up links, at its GPU count)."""
    case = problem.case
    if problem.codesign is None:
        return systems_of(case)[index][0]
    designed = problem.codesign.systems[index]
    hw, net = designed.specs.hardware, designed.specs.network
    networks = case.network if isinstance(case.network, list) else [case.network]
    section = next(n for n in networks if n.name == designed.network)
    base = case.hardware[0] if isinstance(case.hardware, list) else case.hardware
    precision = case.training.precision if case.training is not None else "bf16"
    hardware = base.model_copy(update={
        "name": hw.name, "description": f"designed from {problem.codesign.cost_case.name}",
        "peak_flops": {precision: hw.peak_flops}, "hbm_capacity": hw.hbm_capacity,
        "hbm_bandwidth": hw.hbm_bandwidth, "multiprocessors": hw.multiprocessors,
        "price": hw.price, "power": hw.power,
        "gpu_hour_price": designed.specs.training.gpu_hour_price})
    network = section.model_copy(update={"scale_up": section.scale_up.model_copy(
        update={"bandwidth": net.scale_up.bandwidth})})
    cluster = case.cluster.model_copy(update={"gpus": designed.gpus,
                                              "gpu_hour_price": None})
    return case.model_copy(update={"hardware": hardware, "network": network,
                                   "cluster": cluster})
