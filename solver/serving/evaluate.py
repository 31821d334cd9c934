"""Evaluate a serving case at one deployment: every number is a lambdified expression of
:mod:`perfcost.formulations.serving` (nothing re-implemented here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from perfcost.formulations import serving
from perfcost.formulations.core import Formulation
from perfcost.formulations.specs import InferenceSpec, ModelSpec, ServingPoolSpec
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.case.schema import Case
from perfcost.solver.case.serving_section import as_list
from perfcost.solver.problem.evaluate import Evaluator
from perfcost.solver.serving import specs

#: Default decisions of a deployment the case leaves open, for ``evaluate``.
DEFAULTS: dict[str, Any] = {"tp": 1, "pp": 1}


@dataclass
class ServingModel:
    """The formulations of one serving case, one per accelerator (pair): an accelerator
    brings both values and structure (FlashAttention rates or none, a GEMM wave overhead or
    none, its shared memory), so each is built with its own pool specification."""

    case: Case
    _evaluators: dict[tuple[bool, str, str | None], Evaluator] = field(default_factory=dict)

    @cached_property
    def pools(self) -> dict[str, ServingPoolSpec]:
        return specs.pool_specs(self.case)

    @cached_property
    def hardware_names(self) -> list[str]:
        return list(self.pools)

    @cached_property
    def model_spec(self) -> ModelSpec:
        return specs.model_spec(self.case)

    @cached_property
    def job(self) -> InferenceSpec:
        return specs.inference_spec(self.case)

    def evaluator(self, disaggregated: bool, hardware: str,
                  prefill_hardware: str | None = None) -> Evaluator:
        """The lambdified formulation of a deployment on ``hardware`` (and, disaggregated,
        ``prefill_hardware`` for the prefill pool; the decode pool's by default)."""
        prefill = (prefill_hardware or hardware) if disaggregated else None
        key = (disaggregated, hardware, prefill)
        if key not in self._evaluators:
            if prefill is not None:
                f = serving.build_disaggregated(self.model_spec, self.pools[prefill],
                                                self.pools[hardware], self.job)
            else:
                f = serving.build_serving(self.model_spec, self.pools[hardware], self.job)
            self._evaluators[key] = _evaluator(f)
        return self._evaluators[key]

    def formulation_of(self, config: dict[str, Any]) -> Formulation:
        return self.evaluator_of(config).formulation

    def evaluator_of(self, config: dict[str, Any]) -> Evaluator:
        disaggregated = bool(config["disaggregated"])
        return self.evaluator(disaggregated, config["hardware"],
                              config.get("prefill_hardware") if disaggregated else None)

    def quantities(self, config: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
        """Only the quantities ``names`` at one deployment (compiling just those is much
        quicker than the whole formulation: a validation row needs one)."""
        f = self.formulation_of(config)
        unknown = [n for n in names if n not in f.expressions]
        if unknown:
            raise CaseError("validation.metrics", unknown[0],
                            f"expected a quantity of the serving formulation {f.name}")
        return Evaluator(f, names)(self._codes(f, config, arrays=False))

    def _codes(self, f: Formulation, config: dict[str, Any], arrays: bool) -> dict[str, Any]:
        decisions = {}
        for name, decision in f.decisions.items():
            value = config[name]
            if decision.labels:
                value = (np.vectorize(decision.labels.index)(value) if arrays
                         else decision.labels.index(value))
            decisions[name] = value
        return decisions

    def evaluate(self, config: dict[str, Any], arrays: bool = False,
                 parameters: dict[str, float] | None = None) -> dict[str, Any]:
        """Every quantity at ``config`` (decision values may be numpy arrays);
        ``parameters`` overrides parameter values by name."""
        evaluator = self.evaluator_of(config)
        decisions = {}
        for name, decision in evaluator.formulation.decisions.items():
            value = config[name]
            if decision.labels:
                value = (np.vectorize(decision.labels.index)(value) if arrays
                         else decision.labels.index(value))
            decisions[name] = value
        return evaluator(decisions, parameters)


#: Lambdified functions by formulation structure (lambdify is the slow part): a case that
#: differs from an earlier one only in parameter values -- a sweep point, a re-solve -- reuses
#: the function, its values being arguments. Bounded: cleared when full.
_FUNCTIONS: dict[Any, Any] = {}
_MAX_FUNCTIONS = 64


def _evaluator(f: Formulation) -> Evaluator:
    key = (tuple(f.expressions.items()), tuple(p.symbol for p in f.parameters.values()),
           tuple(d.symbol for d in f.decisions.values()))
    found = _FUNCTIONS.get(key)
    evaluator = Evaluator(f, _fn=found)
    if found is None:
        if len(_FUNCTIONS) >= _MAX_FUNCTIONS:
            _FUNCTIONS.clear()
        _FUNCTIONS[key] = evaluator.function
    return evaluator


def _one(value: Any, where: str, default: Any = MISSING) -> Any:
    """The single value of a case field for ``evaluate``."""
    if value is None:
        if default is MISSING:
            raise CaseError(where, MISSING, "expected one value to evaluate ('perfcost solve' "
                            "chooses it), e.g. --set " + where + "=...")
        return default
    values = as_list(value)
    if len(values) != 1:
        raise CaseError(where, value, "evaluate needs one value; 'perfcost solve' chooses "
                        f"among several, or fix it with --set {where}=...")
    return values[0]


def fixed_config(case: Case) -> dict[str, Any]:
    """The one deployment a serving case fixes (a list is a choice, which evaluate refuses)."""
    sv = case.serving
    if sv is None:
        raise CaseError("serving", MISSING, "expected a [serving] table")
    hardware = _one([h.name for h in specs.hardware_entries(case)], "hardware")
    config: dict[str, Any] = {
        "hardware": hardware,
        "tp": _one(case.parallelism.tp, "parallelism.tp", DEFAULTS["tp"]),
        "pp": _one(case.parallelism.pp, "parallelism.pp", DEFAULTS["pp"]),
        "precision": _one(sv.precision, "serving.precision"),
        "batch": _one(sv.batch, "serving.batch"),
        "disaggregated": _one(sv.disaggregated, "serving.disaggregated"),
    }
    if sv.gpus is not None:
        config["load"] = _one(sv.load, "serving.load")
    moe = bool(case.model.experts)
    if moe and sv.dp_attention is not None:
        config["dp_attention"] = _one(sv.dp_attention, "serving.dp_attention")
    if moe:
        config["ep"] = _one(case.parallelism.ep, "parallelism.ep",
                            config["tp"] * config.get("dp_attention", 1))
    if config["disaggregated"]:
        pre = sv.prefill
        config.update({
            "prefill_hardware": _one(pre.hardware, "serving.prefill.hardware", hardware),
            "prefill_tp": _one(pre.tp, "serving.prefill.tp", config["tp"]),
            "prefill_pp": _one(pre.pp, "serving.prefill.pp", config["pp"]),
            "prefill_precision": _one(pre.precision, "serving.prefill.precision",
                                      config["precision"]),
        })
        if moe:
            config["prefill_ep"] = _one(pre.ep, "serving.prefill.ep", config["prefill_tp"])
    for prefix, where in (("", "parallelism.ep"), ("prefill_", "serving.prefill.ep")):
        ep = config.get(prefix + "ep")
        if ep is None:
            continue
        ranks = config[prefix + "tp"] * (config.get("dp_attention", 1) if prefix == "" else 1)
        if ranks % ep:
            size = (f"tensor-parallel size {ranks}" if ranks == config[prefix + "tp"] else
                    f"tensor-parallel size times the data-parallel attention ranks, {ranks}")
            raise CaseError(where, ep, f"expected a divisor of the {size} (experts split over "
                            "the other GPUs)")
    return config


def feasibility(values: dict[str, Any], disaggregated: bool) -> dict[str, Any]:
    """Which requirements a deployment meets (arrays in, arrays out)."""
    ok = {
        "memory": values["memory_per_gpu"] <= values["memory_capacity"],
        "ttft": values["ttft"] <= values["slo_ttft"],
        "tpot": values["tpot"] <= values["slo_tpot"],
        "prefill_budget": values["prefill_budget_ok"] >= 1,
    }
    # Percentile SLOs, where the case sets them (the queueing wait included).
    for metric in ("ttft_p99", "tpot_p99"):
        if "slo_" + metric in values:
            ok[metric] = values[metric] <= values["slo_" + metric]
    if disaggregated:
        ok["prefill_memory"] = values["prefill_memory_per_gpu"] <= values[
            "prefill_memory_capacity"]
    return ok


@dataclass(frozen=True)
class ServingEvaluation:
    """One deployment of one serving case, fully evaluated."""

    case: Case
    config: dict[str, Any]
    values: dict[str, float]
    formulation: Formulation

    @property
    def disaggregated(self) -> bool:
        return bool(self.config["disaggregated"])

    def checks(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in feasibility(self.values, self.disaggregated).items()}

    def tpot_breakdown(self) -> dict[str, float]:
        """The parts of the TPOT; they add up to it. With speculative decoding an iteration
        (drafting and one verification step) emits ``accepted_tokens_per_step`` tokens: each
        part is its share per token."""
        per_token = 1.0 / self.values.get("accepted_tokens_per_step", 1.0)
        out = {k: self.values[k] * per_token for k in self.formulation.groups["tpot"]}
        out["step_overhead"] = self.values["step_overhead_time"] * per_token
        if self.values.get("draft_tokens", 0.0):
            out["speculative_draft"] = self.values["draft_time"] * per_token
        return out

    def ttft_breakdown(self) -> dict[str, float]:
        """The parts of the TTFT; they add up to it."""
        names = self.formulation.groups.get("ttft", ())
        # A chunked prefill repeats its step once per chunk.
        chunks = self.values.get("prefill_chunks", 1.0)
        out = {k: chunks * self.values[k] for k in names}
        out["step_overhead"] = chunks * self.values["step_overhead_time"]
        if self.values.get("draft_tokens", 0.0):
            out["speculative_draft"] = chunks * self.values["ttft_draft_time"]
        out["request_overhead"] = self.values["request_overhead_time"]
        out["pipeline_fill"] = self.values["pipeline_fill"]
        if self.disaggregated:
            out["kv_transfer"] = self.values["kv_transfer"]
        return out

    def to_json(self) -> dict[str, Any]:
        v = self.values
        checks = self.checks()
        data = {
            "case": self.case.name,
            "kind": "serving",
            "config": self.config,
            "ttft_s": v["ttft"],
            "tpot_s": v["tpot"],
            "e2e_latency_s": v["e2e_latency"],
            "throughput_tokens_per_s": v["throughput_tokens_per_s"],
            "throughput_per_gpu_tokens_per_s": v["throughput_per_gpu"],
            "requests_per_s_per_replica": v["requests_per_s_per_replica"],
            "replicas": round(v["replicas"]),
            "gpus": round(v["gpus"]),
            "cost_per_million_tokens_usd": v["cost_per_million_tokens"],
            "cost_per_million_input_tokens_usd": v["cost_per_million_input_tokens"],
            "cost_per_million_output_tokens_usd": v["cost_per_million_output_tokens"],
            "energy_per_token_j": v["energy_per_token"],
            "kv_cache_bytes": v["kv_cache_bytes"],
            "kv_bytes_per_token_per_gpu": v["kv_bytes_per_token"],
            "weights_per_gpu_bytes": v["weights_per_gpu"],
            "memory_per_gpu_bytes": v["memory_per_gpu"],
            "memory_capacity_bytes": v["memory_capacity"],
            "max_batch": round(v["max_batch"]),
            "utilisation": v.get("utilisation", v.get("decode_utilisation")),
            "request_rate": v["request_rate"],
            "ttft_percentiles_s": {f"p{p}": v[f"ttft_p{p}"] for p in (50, 90, 99)},
            "tpot_p99_s": v["tpot_p99"],
            "mean_queueing_wait_s": v["mean_queueing_wait"],
            "goodput_requests_per_s": v["goodput_requests_per_s"],
            "slo": {"ttft_s": v["slo_ttft"], "tpot_s": v["slo_tpot"],
                    **{f"{m}_s": v["slo_" + m] for m in ("ttft_p99", "tpot_p99")
                       if "slo_" + m in v}},
            # How much of each limit the deployment uses (1 = binding).
            "limit_use": {"ttft": v["ttft"] / v["slo_ttft"], "tpot": v["tpot"] / v["slo_tpot"],
                          "memory": v["memory_per_gpu"] / v["memory_capacity"]},
            "checks": checks,
            "feasible": all(checks.values()),
            "tpot_breakdown": self.tpot_breakdown(),
            "speculative": {"accepted_tokens_per_step": v["accepted_tokens_per_step"],
                            "draft_tokens": round(v["draft_tokens"])},
            "prefix_cache": {"prefill_saved_fraction": v["prefill_saved_fraction"],
                             "computed_prompt_tokens": v["computed_prompt_tokens"],
                             "prefix_cache_bytes": v["prefix_cache_bytes"]},
            "ttft_breakdown": self.ttft_breakdown(),
        }
        if self.disaggregated:
            data.update({
                "prefill_replicas": round(v["prefill_replicas"]),
                "prefill_gpus": round(v["prefill_gpus"]),
                "decode_gpus": round(v["decode_gpus"]),
                "kv_transfer_s": v["kv_transfer"],
                "prefill_utilisation": v["prefill_utilisation"],
                "decode_utilisation": v["decode_utilisation"],
                "kv_transfer_bytes": v["kv_transfer_bytes"],
                "prefill_memory_per_gpu_bytes": v["prefill_memory_per_gpu"],
            })
        return data


def with_parameters(values: dict[str, Any], formulation: Formulation,
                    parameters: dict[str, float]) -> dict[str, Any]:
    """``values`` plus the parameters the checks compare with (the SLOs)."""
    out = dict(values)
    for name in ("slo_ttft", "slo_tpot", "slo_ttft_p99", "slo_tpot_p99"):
        if name in formulation.parameters:
            out[name] = parameters.get(name, formulation.parameters[name].value)
    return out


def evaluate_config(model: ServingModel, config: dict[str, Any]) -> ServingEvaluation:
    f = model.formulation_of(config)
    values = with_parameters(model.evaluate(config), f, {})
    return ServingEvaluation(model.case, config, values, f)


def evaluate_serving(case: Case) -> ServingEvaluation:
    """Evaluate the one deployment a serving case fixes."""
    return evaluate_config(ServingModel(case), fixed_config(case))
