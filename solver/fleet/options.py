"""Options of each workload on each SKU, from the exact engines, pruned to the Pareto front.

* Training: the case's search problem (:func:`perfcost.solver.cost.codesign.build_problem`)
  over the run's GPU counts on the SKU, enumerated exhaustively
  (:mod:`perfcost.solver.engines.enumerate`): for each GPU count, the least time to train over
  every valid split that fits in memory. A count dominated by a smaller one that is no slower
  (in whole periods) is dropped.
* Serving: every colocated deployment of the service on the SKU
  (:mod:`perfcost.solver.serving.search`), one pipeline stage; for each tensor-parallel replica
  shape, the highest request rate one replica serves within the SLOs, re-evaluated with
  :func:`perfcost.solver.serving.evaluate.evaluate_config`. A shape dominated by a smaller one
  that serves no less is dropped.

The time to train is ``D / tokens_per_s`` (formulations/training.py), linear in the token
budget ``D`` with a split that does not depend on it, so one search per (model, batch, SKU)
serves every run of that model and batch; searches are cached per (workload shape, machine)
for the life of the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from perfcost.solver.case.errors import CaseError
from perfcost.solver.fleet.case import (
    PERIOD_SECONDS,
    FleetCase,
    ServingWorkload,
    SkuSection,
    TrainingWorkload,
)
from perfcost.solver.fleet.instance import (
    Fleet,
    Service,
    ServingOption,
    Sku,
    Training,
    TrainingOption,
)

#: Token budget of the cached training searches (any positive value: time is linear in it).
REFERENCE_TOKENS = 1e12
#: Most structurally valid configurations one training search may enumerate.
MAX_CANDIDATES = 3_000_000
#: Request rate of the serving searches: a replica's own rate does not depend on it.
REFERENCE_RATE = 1.0
#: GPU-hour price handed to the serving search, which needs one to rank deployments of equal
#: rate by cost per token. Within one SKU that cost is the price times GPUs over throughput, so
#: every positive price ranks alike; the fleet prices the GPUs itself.
RANKING_PRICE = "1 USD/h"


@dataclass
class OptionCache:
    """Searches already run in this process, by (workload shape, SKU)."""

    training: dict[tuple[Any, ...], dict[int, tuple[float, dict[str, Any]]]] = field(
        default_factory=dict)
    serving: dict[tuple[Any, ...], dict[int, tuple[float, dict[str, Any]]]] = field(
        default_factory=dict)
    hardware: dict[str, dict[str, Any]] = field(default_factory=dict)
    searches: int = 0


#: The searches of this process: every key names built-in entries only (models, parts,
#: designs, networks), which do not change while it runs.
PROCESS_CACHE = OptionCache()


def hardware_table(sku: SkuSection, cache: OptionCache) -> dict[str, Any]:
    """The hardware table (as in cases/hardware) of a SKU: a built-in part, or a design of
    cases/designs priced by the accelerator formulation (formulations/accelerator.py) with its
    reference part's software-stack efficiencies."""
    from perfcost.solver.case import catalog

    key = sku.hardware or f"design:{sku.design}"
    if key in cache.hardware:
        return cache.hardware[key]
    if sku.hardware is not None:
        table = catalog.load_entry("hardware", sku.hardware, "sku.hardware")
    else:
        table = _designed_table(sku)
    cache.hardware[key] = table
    return table


def designed_price(sku: SkuSection) -> tuple[float, float]:
    """Unit price and power of a designed accelerator (the cheapest buildable design)."""
    from perfcost.solver.cost import case as cost_case
    from perfcost.solver.cost.price import cheapest_hardware

    hw, price = cheapest_hardware(cost_case.load(str(sku.design)))
    return price, hw.power


def _designed_table(sku: SkuSection) -> dict[str, Any]:
    from perfcost.solver.case import catalog, units
    from perfcost.solver.cost import case as cost_case
    from perfcost.solver.cost.price import cheapest_hardware

    cc = cost_case.load(str(sku.design))
    hw, price = cheapest_hardware(cc)
    reference = catalog.load_entry("hardware", cc.design.reference, "design.reference")
    ratio = hw.peak_flops / units.parse(reference["peak_flops"]["bf16"], "flop_rate")
    peaks = {k: f"{units.parse(v, 'flop_rate') * ratio!r} FLOP/s"
             for k, v in reference["peak_flops"].items()}
    return {**reference, "name": sku.name,
            "description": f"designed accelerator {sku.design} (cases/designs)",
            "source": f"cases/designs/{sku.design}, priced by formulations/accelerator.py; "
                      f"software-stack efficiencies of {cc.design.reference}",
            "peak_flops": peaks, "hbm_capacity": f"{hw.hbm_capacity!r} B",
            "hbm_bandwidth": f"{hw.hbm_bandwidth!r} B/s",
            "multiprocessors": hw.multiprocessors, "power": f"{hw.power!r} W",
            "price": f"{price!r} USD", "gpu_hour_price": "0 USD/h"}


def _machine(sku: SkuSection) -> tuple[str, str]:
    """What the performance of a SKU depends on: its part (or design) and its network; two
    SKUs of one machine with other terms (bought, reserved) share their searches."""
    return (sku.hardware or f"design:{sku.design}", sku.network)


def _case(raw: dict[str, Any]) -> Any:
    from perfcost.solver.case import schema

    return schema.from_dict(schema.resolve(raw))


def training_times(run: TrainingWorkload, sku: SkuSection, cache: OptionCache
                   ) -> dict[int, tuple[float, dict[str, Any]]]:
    """GPU count -> (seconds per token at the fastest valid split, that split) on ``sku``."""
    key = (run.model, run.global_batch, tuple(sorted(set(run.gpus))), _machine(sku))
    if key in cache.training:
        return cache.training[key]
    import numpy as np
    from perfcost.solver.cost.codesign import build_problem
    from perfcost.solver.engines.enumerate import (
        config_at,
        evaluate_all,
        full_values,
        user_config,
    )

    raw = {"name": f"{run.name} on {sku.name}", "model": run.model,
           "hardware": hardware_table(sku, cache), "network": sku.network,
           "cluster": {"gpus": sorted(set(run.gpus))},
           "training": {"global_batch": run.global_batch, "tokens": REFERENCE_TOKENS},
           "search": {"objective": "time_to_train"}}
    problem = build_problem(_case(raw))
    cands = problem.valid()
    cache.searches += 1
    if len(cands) > MAX_CANDIDATES:
        raise CaseError("training.gpus", run.gpus,
                        f"expected fewer GPU counts: {len(cands):,} splits on {sku.name} "
                        f"exceed the {MAX_CANDIDATES:,} a fleet search enumerates")
    out: dict[int, tuple[float, dict[str, Any]]] = {}
    if len(cands):
        names = list(dict.fromkeys([problem.quantity, "gpus",
                                    *(c.quantity for c in problem.constraints)]))
        values = evaluate_all(problem, cands, names)
        ok = np.isfinite(values[problem.quantity])
        for c in problem.constraints:
            ok &= values[c.quantity] <= np.asarray(c.limits)[cands.system]
        for n in sorted(set(run.gpus)):
            idx = np.flatnonzero(ok & (np.round(values["gpus"]) == n))
            if not idx.size:
                continue
            best = int(idx[np.argmin(values[problem.quantity][idx])])
            codes = config_at(cands, best)
            # The report's number is the full evaluation's, as the engines report it.
            full = full_values(problem, codes, int(cands.system[best]))
            out[n] = (full["time_to_train"] / REFERENCE_TOKENS, user_config(problem, codes))
    cache.training[key] = out
    return out


def serving_rates(service: ServingWorkload, sku: SkuSection, cache: OptionCache
                  ) -> dict[int, tuple[float, dict[str, Any]]]:
    """GPUs per replica -> (highest request rate of one replica within the SLOs, its
    deployment) on ``sku``."""
    precision = service.precision if isinstance(service.precision, list) else [
        service.precision]
    key = (service.model, service.prompt_len, service.output_len, service.slo_ttft,
           service.slo_tpot, tuple(precision), tuple(service.tp), _machine(sku))
    if key in cache.serving:
        return cache.serving[key]
    from perfcost.solver.case import catalog
    from perfcost.solver.serving.evaluate import ServingModel, evaluate_config
    from perfcost.solver.serving.search import domains, evaluate_blocks

    heads = catalog.load_entry("models", service.model, "serving.model").get("heads", 1)
    tps = [t for t in sorted(set(service.tp)) if isinstance(heads, int) and heads % t == 0]
    # Only the weight formats the part has a peak for (an A100 has no fp8).
    precision = [p for p in precision if p in hardware_table(sku, cache)["peak_flops"]]
    out: dict[int, tuple[float, dict[str, Any]]] = {}
    if tps and precision:
        raw = {"name": f"{service.name} on {sku.name}", "model": service.model,
               "hardware": hardware_table(sku, cache), "network": sku.network,
               "parallelism": {"tp": tps, "pp": 1},
               "serving": {"prompt_len": service.prompt_len, "output_len": service.output_len,
                           "rate": REFERENCE_RATE, "slo_ttft": f"{service.slo_ttft!r} s",
                           "slo_tpot": f"{service.slo_tpot!r} s", "precision": precision,
                           "objective": "goodput", "disaggregated": False,
                           "prices": {str(hardware_table(sku, cache)["name"]): RANKING_PRICE}}}
        model = ServingModel(_case(raw))
        blocks = evaluate_blocks(model, domains(model))
        cache.searches += 1
        best: dict[int, tuple[float, Any, int]] = {}
        for b, block in enumerate(blocks):
            rate = block.values["requests_per_s_per_replica"]
            gpus = block.values["gpus_per_replica"]
            for i in block.feasible.nonzero()[0]:
                g = round(float(gpus[i]))
                if g not in best or rate[i] > best[g][0]:
                    best[g] = (float(rate[i]), b, int(i))
        for g, (_rate, b, i) in sorted(best.items()):
            evaluation = evaluate_config(model, blocks[b].config(int(i)))
            out[g] = (float(evaluation.values["requests_per_s_per_replica"]),
                      dict(evaluation.config))
    cache.serving[key] = out
    return out


def pareto_training(options: list[TrainingOption]) -> list[TrainingOption]:
    """Drop options with more GPUs and no fewer periods than another on the same SKU."""
    keep = []
    for a in options:
        if not any(b.sku == a.sku and b.gpus <= a.gpus and b.periods <= a.periods
                   and (b.gpus, b.periods) != (a.gpus, a.periods) for b in options):
            keep.append(a)
    return keep


def pareto_serving(options: list[ServingOption]) -> list[ServingOption]:
    """Drop replica shapes that copies of a smaller shape on the same SKU replace: when
    ``b.gpus`` divides ``a.gpus`` and ``a.gpus / b.gpus`` replicas of ``b`` serve at least
    ``a``'s rate, they hold the same GPUs of the same SKU (same cost, power and racks) in every
    period and serve no less, so no optimum needs ``a``."""
    keep = []
    for a in options:
        if not any(b.sku == a.sku and b is not a and a.gpus % b.gpus == 0
                   and (a.gpus // b.gpus) * b.rate >= a.rate
                   and (b.gpus, b.rate) != (a.gpus, a.rate) for b in options):
            keep.append(a)
    return keep


def periods_of(seconds: float, period_s: float) -> int:
    """Whole periods a run of ``seconds`` holds its GPUs (a run never shares a period)."""
    q = seconds / period_s
    return max(1, math.ceil(q - 1e-9))


def build_fleet(case: FleetCase, cache: OptionCache | None = None) -> Fleet:
    """The fleet of a case: SKUs with prices per period and every workload's options."""
    cache = PROCESS_CACHE if cache is None else cache
    period_s = PERIOD_SECONDS[case.fleet.period]
    hours = period_s / 3600.0
    skus = []
    for sku in case.sku:
        purchase = sku.purchase
        if purchase is None:
            purchase = designed_price(sku)[0] + sku.system_share
        skus.append(Sku(sku.name, purchase, (sku.rental or 0.0) * 3600.0 * hours,
                        sku.operating * 3600.0 * hours, sku.power, sku.available,
                        sku.rentable if sku.rental is not None else 0, sku.gpus_per_rack,
                        sku.lead_time))
    trainings = []
    for i, run in enumerate(case.training):
        options = []
        for s, sku in enumerate(case.sku):
            for n, (per_token, config) in training_times(run, sku, cache).items():
                seconds = per_token * run.tokens
                options.append(TrainingOption(s, n, periods_of(seconds, period_s), seconds,
                                              config))
        if not options:
            raise CaseError(f"training.{i}.model", run.model,
                            f"expected a model some SKU can train: no split of any GPU count "
                            f"in {run.gpus} fits in memory on "
                            f"{', '.join(s.name for s in case.sku)}")
        trainings.append(Training(run.name, run.earliest - 1, run.deadline - 1, run.value,
                                  tuple(pareto_training(options))))
    services = []
    for i, service in enumerate(case.serving):
        serving_options = [ServingOption(s, g, rate, config)
                           for s, sku in enumerate(case.sku)
                           for g, (rate, config) in serving_rates(service, sku, cache).items()]
        if not serving_options:
            raise CaseError(f"serving.{i}.model", service.model,
                            f"expected a model some SKU can serve: no replica shape (tp in "
                            f"{service.tp}) meets the SLOs on "
                            f"{', '.join(s.name for s in case.sku)}")
        services.append(Service(service.name, tuple(service.traffic),
                                tuple(pareto_serving(serving_options))))
    limits = {k: float(v) for k, v in case.limits.model_dump().items() if v is not None}
    return Fleet(case.fleet.periods, period_s, tuple(skus), tuple(trainings), tuple(services),
                 limits, case.fleet.objective, case.name)
