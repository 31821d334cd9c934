"""``perfcost solve`` for serving: the cheapest deployment that meets the SLOs at the rate.

Decisions: the accelerator, tensor and pipeline parallel degrees, weight format and decode
batch of the (decode) pool, colocated or disaggregated, and for a disaggregated deployment
the prefill pool's accelerator, degrees and format. A case fixes a decision with a scalar,
offers a choice with a list, and leaves it out to search its default domain
(:func:`domains`).

The search is exhaustive: every combination is evaluated, vectorised, through the lambdified
expressions of :mod:`perfcost.formulations.serving`, so the optimum is exact over the finite
domains (the pool-count rounding and the SLO cliffs make the landscape too ragged for the
compiled MILP path of training, and the spaces are small: 10^3-10^5 deployments).
Objectives: ``cost_per_token`` (minimise cost per million tokens), ``gpus`` (minimise GPUs,
then cost), ``goodput`` (maximise requests per second per GPU, then cost) and, on a fixed
fleet (``[serving] gpus``), ``throughput`` (maximise the requests per second the fleet serves
within the SLOs, its offered load a decision).

A fixed fleet searches every batch size from 1 to :data:`MAX_BATCH` (the memory check keeps
those that fit), not only powers of two. :func:`pareto` is the throughput-latency curve: the
deployments no other beats on both tokens per second per GPU and p99 TPOT.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import Case
from perfcost.solver.case.serving_section import as_list
from perfcost.solver.serving.evaluate import (
    ServingEvaluation,
    ServingModel,
    evaluate_config,
    feasibility,
    with_parameters,
)

#: Powers of two up to 1024: the default tensor-parallel and expert-parallel degrees (those
#: that fit the model and network) and the default decode-batch domain.
POWERS_OF_TWO: tuple[int, ...] = tuple(2**i for i in range(11))
#: Default pipeline depths searched when the case leaves ``pp`` out.
DEFAULT_PIPELINE: tuple[int, ...] = (1, 2, 4, 8)
#: Largest decode batch a fixed fleet's search tries (every integer up to it).
MAX_BATCH = 1024
#: Objectives: quantity to order by, and its sign (1 minimise, -1 maximise).
OBJECTIVES: dict[str, tuple[str, int]] = {
    "cost_per_token": ("cost_per_million_tokens", 1),
    "gpus": ("gpus", 1),
    "goodput": ("goodput_per_gpu", -1),
    "throughput": ("request_rate", -1),
}
#: What limits a step, by the part of the step that takes longest.
LIMITS: dict[str, str] = {
    "weights_and_gemms": "GEMMs",
    "attention": "HBM bandwidth (KV-cache reads in attention)",
    "elementwise": "HBM bandwidth (norms and activations)",
    "tp_communication": "scale-up network (tensor-parallel all-reduces)",
    "pp_communication": "pipeline sends",
    "head": "output layer",
}


def _tp_domain(model: ServingModel) -> list[int]:
    heads = model.case.model.heads
    largest = max(p.network.scale_up_size for p in model.pools.values())
    return [t for t in POWERS_OF_TWO if t <= largest and heads % t == 0]


def domains(model: ServingModel) -> dict[str, list[Any]]:
    """The values each decision may take."""
    case = model.case
    sv = case.serving
    if sv is None:
        raise CaseError("serving", None, "expected a [serving] table")
    layers = case.model.layers
    tp = as_list(case.parallelism.tp) if case.parallelism.tp is not None else _tp_domain(model)
    pp = (as_list(case.parallelism.pp) if case.parallelism.pp is not None
          else [p for p in DEFAULT_PIPELINE if p <= layers])
    pre = sv.prefill
    experts = case.model.experts or 0
    dp = as_list(sv.dp_attention) if sv.dp_attention is not None else []
    # Expert parallelism spans the tp GPUs of a stage, or all tp dp GPUs of a replica.
    ep_default = [e for e in POWERS_OF_TWO if e <= max(tp) * max(dp or [1]) and experts % e == 0]
    ep = as_list(case.parallelism.ep) if case.parallelism.ep is not None else ep_default
    fleet = sv.gpus is not None
    batches = list(range(1, MAX_BATCH + 1)) if fleet else list(POWERS_OF_TWO)
    from perfcost.formulations.serving import LOAD_PERCENTS

    loads = (as_list(sv.load) if sv.load is not None else list(LOAD_PERCENTS)) if fleet else []
    return {
        "load": loads,
        "dp_attention": dp if experts else [],
        "ep": ep if experts else [],
        "prefill_ep": (as_list(pre.ep) if pre.ep is not None else ep) if experts else [],
        "hardware": model.hardware_names,
        "tp": tp,
        "pp": pp,
        "precision": as_list(sv.precision),
        "batch": as_list(sv.batch) if sv.batch is not None else batches,
        "disaggregated": as_list(sv.disaggregated),
        "prefill_hardware": as_list(pre.hardware) if pre.hardware is not None
        else model.hardware_names,
        "prefill_tp": as_list(pre.tp) if pre.tp is not None else tp,
        "prefill_pp": as_list(pre.pp) if pre.pp is not None else pp,
        "prefill_precision": as_list(pre.precision) if pre.precision is not None
        else as_list(sv.precision),
    }


#: Decisions of each deployment kind, in the order of the grid's axes.
COLOCATED_AXES = ("tp", "pp", "precision", "batch")
DISAGGREGATED_AXES = ("prefill_tp", "prefill_pp", "prefill_precision", *COLOCATED_AXES)


@dataclass
class Block:
    """Every deployment of one kind on one (pair of) accelerator(s), evaluated."""

    fixed: dict[str, Any]
    configs: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    feasible: np.ndarray
    checks: dict[str, np.ndarray]

    def config(self, i: int) -> dict[str, Any]:
        out = dict(self.fixed)
        for k, v in self.configs.items():
            item = v[i]
            # Degrees and batches are integers; the grid holds them as floats.
            out[k] = round(float(item)) if isinstance(item, float | np.floating) else item
        return out


def _axes(disaggregated: bool, dom: dict[str, list[Any]]) -> tuple[str, ...]:
    """The decisions of a deployment kind (expert parallelism only for MoE models)."""
    axes = DISAGGREGATED_AXES if disaggregated else COLOCATED_AXES
    if dom["ep"]:
        axes = (*axes, "ep", *(("prefill_ep",) if disaggregated else ()))
    if dom["dp_attention"]:
        axes = (*axes, "dp_attention")
    if dom["load"] and not disaggregated:
        axes = (*axes, "load")
    return axes


#: Most deployments of one kind evaluated at once (a grid of object and float columns; the
#: built-in disaggregated studies hold a few thousand).
MAX_DEPLOYMENTS = 2_000_000


def _grid(axes: tuple[str, ...], dom: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    count = math.prod(len(dom[a]) for a in axes)
    if count > MAX_DEPLOYMENTS:  # counted before the product is built
        raise CaseError("search space", f"{count:,} deployments",
                        f"expected at most {MAX_DEPLOYMENTS:,} of one kind ("
                        + " x ".join(f"{a} {len(dom[a])}" for a in axes)
                        + "); give fewer values to choose from")
    combos = list(itertools.product(*(dom[a] for a in axes)))
    return {a: np.array([c[i] for c in combos], dtype=object if a.endswith("precision")
                        else float) for i, a in enumerate(axes)}


def evaluate_blocks(model: ServingModel, dom: dict[str, list[Any]],
                    scale: dict[str, float] | None = None) -> list[Block]:
    """Every deployment in the domains, in blocks of one deployment kind and accelerator.
    ``scale`` multiplies parameters by name, in every block whose formulation has them (the
    re-solves of a stability range, solver/studies/sensitivity.py)."""
    blocks = []
    for disaggregated in dom["disaggregated"]:
        grid = _grid(_axes(bool(disaggregated), dom), dom)
        n = len(next(iter(grid.values())))
        pairs = (itertools.product(dom["prefill_hardware"], dom["hardware"]) if disaggregated
                 else ((None, hw) for hw in dom["hardware"]))
        for prefill_hw, hw in pairs:
            fixed: dict[str, Any] = {"hardware": hw, "disaggregated": bool(disaggregated)}
            if disaggregated:
                fixed["prefill_hardware"] = prefill_hw
            config = {**fixed, **grid}
            f = model.formulation_of(config)
            scaled = {k: f.parameters[k].value * v for k, v in (scale or {}).items()
                      if k in f.parameters}
            raw = model.evaluate(config, arrays=True, parameters=scaled)
            values = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in
                      with_parameters(raw, f, scaled).items()}
            checks = {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in
                      feasibility(values, bool(disaggregated)).items()}
            # A tensor-parallel group stays inside one scale-up domain.
            size = model.pools[hw].network.scale_up_size
            checks["tp_in_scale_up"] = grid["tp"] <= size
            if "load" in grid:
                # A fixed fleet holds at least one replica.
                checks["fits_fleet"] = values["replicas"] >= 1
            if disaggregated:
                checks["prefill_tp_in_scale_up"] = grid["prefill_tp"] <= model.pools[
                    prefill_hw].network.scale_up_size
            # Expert parallelism folds into the tensor-parallel GPUs (of every data-parallel
            # attention rank): ep divides tp (tp dp).
            for prefix in ("", "prefill_"):
                if prefix + "ep" in grid:
                    ranks = grid[prefix + "tp"] * (grid["dp_attention"] if prefix == "" and
                                                   "dp_attention" in grid else 1)
                    checks[prefix + "ep_divides_tp"] = np.mod(ranks, grid[prefix + "ep"]) == 0
            finite = np.isfinite(values["cost_per_million_tokens"])
            feasible = np.logical_and.reduce([*checks.values(), finite])
            blocks.append(Block(fixed, grid, values, feasible, checks))
    return blocks


@dataclass
class Diagnosis:
    """Why no deployment meets the SLOs: the best TTFT and TPOT any deployment that fits in
    memory reaches, where, and what limits each."""

    best_ttft: float
    best_ttft_config: dict[str, Any]
    ttft_limited_by: str
    best_tpot: float
    best_tpot_config: dict[str, Any]
    tpot_limited_by: str
    fits_memory: bool

    def to_json(self) -> dict[str, Any]:
        return {"best_ttft_s": self.best_ttft, "best_ttft_config": self.best_ttft_config,
                "ttft_limited_by": self.ttft_limited_by, "best_tpot_s": self.best_tpot,
                "best_tpot_config": self.best_tpot_config,
                "tpot_limited_by": self.tpot_limited_by, "fits_memory": self.fits_memory}


@dataclass
class ServingSolution:
    status: str  # "optimal" or "infeasible"
    objective: str
    best: ServingEvaluation | None
    top: list[ServingEvaluation]
    best_by_mode: dict[str, ServingEvaluation]
    evaluated: int
    feasible: int
    diagnosis: Diagnosis | None = None
    domains: dict[str, list[Any]] = field(default_factory=dict)
    pareto: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "objective": self.objective,
            "engine": "enumerate",
            "evaluated_deployments": self.evaluated,
            "feasible_deployments": self.feasible,
        }
        if self.best is not None:
            data.update(self.best.to_json())
            data["top"] = [{"config": e.config,
                            "cost_per_million_tokens_usd": e.values["cost_per_million_tokens"],
                            "gpus": round(e.values["gpus"])} for e in self.top]
        data["best_by_mode"] = {
            mode: {"config": e.config, "cost_per_million_tokens_usd":
                   e.values["cost_per_million_tokens"], "gpus": round(e.values["gpus"]),
                   "ttft_s": e.values["ttft"], "tpot_s": e.values["tpot"]}
            for mode, e in self.best_by_mode.items()}
        if self.diagnosis is not None:
            data["diagnosis"] = self.diagnosis.to_json()
        data["pareto"] = self.pareto
        return data


def _order_key(block: Block, objective: str) -> np.ndarray:
    name, sign = OBJECTIVES[objective]
    return sign * block.values[name]


def _ranked(blocks: list[Block], objective: str) -> list[tuple[float, float, float, int, int]]:
    """(objective, cost, TPOT, block, index) of every feasible deployment, best first: ties
    in the objective go to the cheaper, then to the faster deployment, then to the first
    enumerated."""
    rows = []
    for b, block in enumerate(blocks):
        key = _order_key(block, objective)
        cost = block.values["cost_per_million_tokens"]
        tpot = block.values["tpot"]
        for i in np.flatnonzero(block.feasible):
            rows.append((float(key[i]), float(cost[i]), float(tpot[i]), b, int(i)))
    rows.sort()
    return rows


def _limit(values: dict[str, Any], group: tuple[str, ...], i: int) -> str:
    """The part of a step that takes longest, as the resource that limits it."""
    parts = {name: float(np.asarray(values[name])[i]) for name in group}
    worst = max(parts, key=lambda k: parts[k])
    prefix, _, part = worst.partition("_step_")
    if part == "weights_and_gemms":
        compute_t = float(np.asarray(values[f"{prefix}_step_gemm_compute_bound"])[i])
        memory_t = float(np.asarray(values[f"{prefix}_step_gemm_memory_bound"])[i])
        return ("compute (GEMM FLOPs)" if compute_t >= memory_t
                else "HBM bandwidth (weight reads)")
    return LIMITS.get(part, part)


def diagnose(model: ServingModel, blocks: list[Block]) -> Diagnosis:
    """Best achievable TTFT and TPOT over the deployments that fit in memory."""
    best: dict[str, tuple[float, int, int]] = {}
    fits_any = False
    for b, block in enumerate(blocks):
        # Every requirement but the two SLOs: memory, the prefill budget, the splits.
        fits = np.logical_and.reduce([v for k, v in block.checks.items()
                                      if k not in ("ttft", "tpot")])
        if not fits.any():
            continue
        fits_any = True
        for metric in ("ttft", "tpot"):
            vals = np.where(fits, block.values[metric], np.inf)
            i = int(np.argmin(vals))
            if metric not in best or vals[i] < best[metric][0]:
                best[metric] = (float(vals[i]), b, i)
    if not fits_any:
        capacity = "HBM capacity: the weights and one sequence's KV cache fit no configuration"
        return Diagnosis(float("inf"), {}, capacity, float("inf"), {}, capacity, False)
    out = {}
    for metric in ("ttft", "tpot"):
        value, b, i = best[metric]
        block = blocks[b]
        group = model.formulation_of(block.fixed).groups[metric]
        limit = _limit(block.values, group, i)
        if metric == "ttft" and block.fixed["disaggregated"]:
            transfer = float(block.values["kv_transfer"][i])
            if transfer > float(block.values["prefill_time"][i]):
                limit = "scale-out network (KV-cache transfer)"
        out[metric] = (value, block.config(i), limit)
    return Diagnosis(*out["ttft"], *out["tpot"], True)


def pareto(blocks: list[Block]) -> list[dict[str, Any]]:
    """The throughput-latency curve over the feasible deployments: those no other beats on
    both output tokens per second per GPU (higher) and p99 TPOT (lower), fastest first."""
    rows = []
    for block in blocks:
        for i in np.flatnonzero(block.feasible):
            rows.append((float(block.values["tpot_p99"][i]),
                         -float(block.values["throughput_per_gpu"][i]), block, int(i)))
    rows.sort(key=lambda r: (r[0], r[1]))
    curve = []
    best = -np.inf
    for tpot, neg_rate, block, i in rows:
        if -neg_rate > best:
            best = -neg_rate
            v = block.values
            curve.append({"config": block.config(i), "throughput_per_gpu": -neg_rate,
                          "tpot_p99_s": tpot, "ttft_p99_s": float(v["ttft_p99"][i]),
                          "request_rate": float(v["request_rate"][i])})
    return curve


def solve_serving(case: Case, objective: str | None = None, top: int = 1) -> ServingSolution:
    """The best deployment of a serving case (exhaustive over its finite domains)."""
    sv = case.serving
    if sv is None:
        raise CaseError("serving", None, "expected a [serving] table")
    fleet_default = sv.gpus is not None and "objective" not in sv.model_fields_set
    objective = objective or ("throughput" if fleet_default else sv.objective)
    if objective == "throughput" and sv.gpus is None:
        raise CaseError("--objective", objective, "expected a fixed fleet (serving.gpus) for "
                        "the throughput objective")
    if objective not in OBJECTIVES:
        raise CaseError("--objective", objective,
                        f"expected one of {', '.join(OBJECTIVES)} for a serving case")
    model = ServingModel(case)
    dom = domains(model)
    blocks = evaluate_blocks(model, dom)
    evaluated = sum(len(b.feasible) for b in blocks)
    ranked = _ranked(blocks, objective)
    evaluations: dict[tuple[int, int], ServingEvaluation] = {}

    def evaluation(b: int, i: int) -> ServingEvaluation:
        if (b, i) not in evaluations:
            evaluations[b, i] = evaluate_config(model, blocks[b].config(i))
        return evaluations[b, i]

    by_mode = {}
    for mode, flag in (("colocated", False), ("disaggregated", True)):
        # The best of a mode: the first of the ranking (best first) in a block of that mode.
        first = next(((b, i) for *_, b, i in ranked if blocks[b].fixed["disaggregated"] == flag),
                     None)
        if first is not None:
            by_mode[mode] = evaluation(*first)
    if not ranked:
        return ServingSolution("infeasible", objective, None, [], by_mode, evaluated, 0,
                               diagnose(model, blocks), dom)
    chosen = [evaluation(b, i) for *_, b, i in ranked[:top]]
    return ServingSolution("optimal", objective, chosen[0], chosen, by_mode, evaluated,
                           len(ranked), None, dom, pareto(blocks))


def peak_throughput_per_node(case: Case, gpus_per_node: int) -> tuple[float, dict[str, Any]]:
    """The most output tokens per second per node of ``gpus_per_node`` GPUs that a feasible
    deployment of the case reaches (its replicas' throughput over their GPUs), and where: the
    figure serving teams report for a decode node."""
    model = ServingModel(case)
    best, where = 0.0, {}
    for block in evaluate_blocks(model, domains(model)):
        per_node = (block.values["throughput_tokens_per_s"]
                    / block.values["gpus_per_replica"] * gpus_per_node)
        per_node = np.where(block.feasible, per_node, 0.0)
        i = int(np.argmax(per_node))
        if per_node[i] > best:
            best, where = float(per_node[i]), block.config(i)
    return best, where
