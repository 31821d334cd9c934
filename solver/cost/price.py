"""Price a design: chiplet, package, accelerator and cluster (``perfcost cost``).

Every number comes from lambdifying the expressions of :mod:`perfcost.formulations.chiplet`,
:mod:`~perfcost.formulations.accelerator` and :mod:`~perfcost.formulations.system`
(DESIGN.md, invariant 1); this module turns case sections into specs, enumerates the design
choices a case lists, applies the rules a formulation cannot (reticle and carrier limits, a
budget) and, when the run is a training case, prices the time the training model predicts on
the designed accelerator.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from perfcost.formulations import accelerator as acc
from perfcost.formulations import chiplet, system
from perfcost.formulations.core import Formulation, ParameterSet
from perfcost.formulations.specs import HardwareSpec
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.cost.case import (
    CostCase,
    DesignSection,
    MemorySection,
    PackagingSection,
    SystemSection,
    TechnologySection,
    _case_error,
    builtin,
    design_margin,
)
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import Evaluator, evaluator_for
from pydantic import ValidationError

#: Design knobs in the order of a configuration.
DESIGN_KEYS: tuple[str, ...] = ("compute_chiplets", "chiplet_area", "hbm_stacks",
                                "scale_up_links")
CLUSTER_KEYS: tuple[str, ...] = ("accelerators", "scale_up_size")
#: Units of the decisions, which are not quantities of the formulations.
DECISION_UNITS: dict[str, str] = {"chiplet_area": "mm^2", "training_memory": "B", **{
    k: "1" for k in ("compute_chiplets", "hbm_stacks", "scale_up_links", *CLUSTER_KEYS)}}
#: Precision of the dense peak the node densities are calibrated in.
PEAK_PRECISION = "bf16"
#: Seconds per hour: prices per GPU-hour are SI prices per second times this.
SECONDS_PER_HOUR = 3600.0
#: Built-in entries of the probe case that converts a reference hardware entry.
PROBE_MODEL, PROBE_NETWORK = "llama3-8b", "dgx-h100"


# -- specs from sections ----------------------------------------------------------------------

_S = TypeVar("_S")


def _spec(cls: type[_S], section: Any, **overrides: Any) -> _S:
    """The spec dataclass ``cls`` from the same-named fields of a case section (``overrides``
    for the fields that differ)."""
    return cls(**{f.name: getattr(section, f.name) for f in dataclasses.fields(cls)
                  if f.name not in overrides}, **overrides)


def technology_spec(d: DesignSection) -> chiplet.TechnologySpec:
    return _spec(chiplet.TechnologySpec, d.technology)


def packaging_spec(d: DesignSection) -> chiplet.PackagingSpec:
    p = d.packaging
    if p.kind == "bridge" and p.bridge_area is None:
        raise CaseError("design.packaging.bridge_area", None,
                        "expected the area of one bridge, like '30 mm^2', for a bridge package")
    if p.kind != "organic" and p.carrier_wafer_cost <= 0:
        raise CaseError("design.packaging.carrier_wafer_cost", p.carrier_wafer_cost,
                        f"expected a wafer cost greater than 0 for a {p.kind} package")
    return _spec(chiplet.PackagingSpec, p, carrier_max_area=p.carrier_max_area or 0.0,
                 bridge_area=p.bridge_area or 0.0)


def memory_spec(d: DesignSection) -> chiplet.MemoryStackSpec:
    return _spec(chiplet.MemoryStackSpec, d.memory)


def accelerator_inputs(d: DesignSection) -> acc.AcceleratorInputs:
    dens = d.technology.density
    if dens is None:
        raise CaseError("design.technology.density", None,
                        f"expected a [density] table for node {d.technology.name} (compute, "
                        "SRAM and power per mm^2) to design an accelerator on it")
    return acc.AcceleratorInputs(
        technology=technology_spec(d), density=_spec(acc.DensitySpec, dens),
        packaging=packaging_spec(d), memory=memory_spec(d), link=_spec(acc.LinkSpec, d.link),
        volume=d.volume, margin=design_margin(d)[0])


def fabric_spec(s: SystemSection) -> system.FabricBomSpec:
    f = s.fabric
    return _spec(system.FabricBomSpec, f, switch_radix=round(f.switch_radix),
                 oversubscription=s.oversubscription or 1.0,
                 scale_up_switch_radix=round(f.scale_up_switch_radix))


def datacenter_spec(s: SystemSection) -> system.DatacenterSpec:
    return _spec(system.DatacenterSpec, s.datacenter)


def reference_hardware(name: str, field_name: str = "design.reference") -> HardwareSpec:
    """The training model's :class:`HardwareSpec` of a built-in hardware entry, converted by
    the same code as any training case (a one-GPU probe case around it)."""
    catalog.load_entry("hardware", name, field_name)  # a clear error for an unknown name
    probe = case_mod.from_dict(case_mod.resolve({
        "model": PROBE_MODEL, "hardware": name, "network": PROBE_NETWORK,
        "training": {"global_batch": 1, "precision": PEAK_PRECISION}}))
    return problem.specs(probe).hardware


# -- configurations ---------------------------------------------------------------------------

def _choices(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def configurations(cc: CostCase, accelerators: int | None = None) -> list[dict[str, float]]:
    """Every combination of the design (and cluster) choices the case lists."""
    d = cc.design
    axes: dict[str, list[Any]] = {k: _choices(getattr(d, k)) for k in DESIGN_KEYS}
    if cc.system is not None:
        n = cc.system.accelerators if accelerators is None else accelerators
        if n is None:
            raise CaseError("system.accelerators", MISSING, "expected a positive integer (or a "
                            "list), or a [run] case that fixes the GPU count")
        axes["accelerators"] = _choices(n)
        axes["scale_up_size"] = _choices(cc.system.scale_up_size or 1)
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


# -- results ----------------------------------------------------------------------------------

@dataclass
class Priced:
    """One configuration with every quantity, or the reason it is infeasible."""

    config: dict[str, float]
    values: dict[str, float]
    problem: str | None = None
    problem_field: str | None = None
    problem_value: Any = None
    short: str = ""


@dataclass
class CostResult:
    case: CostCase
    formulation: Formulation
    priced: list[Priced]
    chosen: Priced
    objective: str  # the quantity the chosen configuration minimises
    run_source: str | None = None
    training: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def pricing(self) -> dict[str, Any]:
        """The words of the cost vocabulary with their values (docs/cost.md): what making a
        part costs, what buying it costs, and the two ways a run is paid for."""
        margin, source = design_margin(self.case.design)
        v = self.chosen.values
        out: dict[str, Any] = {
            "manufacturing_cost": _finite(v["manufacturing_cost"]),
            "unit_cost": _finite(v["unit_cost"]),
            "margin": margin, "margin_source": source,
            "purchase_price": _finite(v["price"]),
        }
        if self.case.system is not None:
            out["rental_price_per_gpu_hour"] = (self.case.system.datacenter.rental_price
                                                * SECONDS_PER_HOUR)
            for name in ("owned_cost_per_accelerator_hour", "gpu_hours", "run_cost",
                         "run_cost_rental"):
                if name in v:
                    out[name] = _finite(v[name])
        return out

    @property
    def feasible(self) -> list[Priced]:
        return [p for p in self.priced if p.problem is None]

    def unit(self, name: str) -> str:
        return self.formulation.units.get(name) or DECISION_UNITS.get(name, "")

    def to_json(self) -> dict[str, Any]:
        def row(p: Priced) -> dict[str, Any]:
            out: dict[str, Any] = {"config": _config_json(p.config)}
            if p.problem is not None:
                out["infeasible"] = p.problem
            else:
                out["values"] = {k: _finite(v) for k, v in p.values.items()}
            return out

        groups = {name: {k: _finite(self.chosen.values[k]) for k in keys
                         if k in self.chosen.values}
                  for name, keys in SECTIONS.items()}
        return {
            "case": self.case.name,
            "design": _config_json(self.chosen.config),
            "objective": self.objective,
            **groups,
            "pricing": self.pricing(),
            "units": {k: self.unit(k) for k in self.chosen.values},
            "training": self.training,
            "alternatives": [row(p) for p in self.priced],
            "notes": self.notes,
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _config_json(config: Mapping[str, float]) -> dict[str, float | int]:
    return {k: (round(v) if k != "chiplet_area" else float(v)) for k, v in config.items()}


#: Quantities of each breakdown table, in report order.
SECTIONS: dict[str, tuple[str, ...]] = {
    "chiplet": ("chiplet_area", "d2d_phy_area", "dies_per_wafer", "die_yield", "raw_die_cost",
                "die_test_cost", "test_pass_fraction", "test_escape_rate",
                "known_good_die_cost"),
    "package": ("compute_chiplets", "silicon_cost", "hbm_stacks", "hbm_cost", "carrier_area",
                "carrier_yield", "carrier_cost", "substrate_area", "substrate_cost",
                "bump_cost", "bridge_cost", "assembly_yield", "assembly_loss",
                "manufacturing_cost", "chip_nre", "package_nre", "nre_per_unit", "unit_cost"),
    "accelerator": ("silicon_area", "compute_area", "peak_flops", "sram", "hbm_capacity",
                    "hbm_peak_bandwidth", "hbm_bandwidth", "scale_up_links",
                    "scale_up_bandwidth", "power", "price"),
    "cluster": ("accelerators", "scale_up_size", "fabric_tiers", "scale_out_switches",
                "scale_up_switches", "nics", "copper_links", "optical_links", "transceivers",
                "accelerators_capex", "hosts_capex", "nics_capex", "switches_capex",
                "cables_capex", "capex", "it_power", "facility_power", "yearly_opex",
                "owned_cost_per_accelerator_hour", "training_memory", "run_time",
                "gpu_hours", "run_energy", "run_cost",
                "run_cost_rental", "cost_per_token", "cost_per_token_rental"),
}


# -- pricing ----------------------------------------------------------------------------------

def evaluate_configurations(formulation: Formulation,
                            configs: Sequence[Mapping[str, float]],
                            parameters: Mapping[str, Any] | None = None
                            ) -> list[dict[str, float]]:
    """Every quantity at every configuration (one vectorised lambdify call)."""
    decisions = {k: np.array([c[k] for c in configs], dtype=float)
                 for k in formulation.decisions}
    values = evaluator_for(formulation)(decisions, parameters)
    columns = {k: np.broadcast_to(v, (len(configs),)) for k, v in values.items()}
    out = []
    for i, c in enumerate(configs):
        row = {k: float(v[i]) for k, v in columns.items()}
        row |= {k: float(v) for k, v in c.items()}
        out.append(row)
    return out


def why_unbuildable(cc: CostCase, config: Mapping[str, float],
                    values: Mapping[str, float]) -> tuple[str, Any, str, str] | None:
    """Why a priced configuration cannot be built, as (field, value, expected, in short), or
    None."""
    d = cc.design
    tech, pkg = d.technology, d.packaging
    area = config["chiplet_area"]
    n = round(config["compute_chiplets"])
    if area > tech.reticle_area:
        what = "a monolithic die" if n == 1 else "one chiplet"
        return ("design.chiplet_area", f"{area:g} mm^2",
                f"expected at most the reticle limit {tech.reticle_area:g} mm^2 of "
                f"{tech.name} for {what}; split the logic into more, smaller chiplets",
                f"die above the {tech.reticle_area:g} mm^2 reticle")
    if values["compute_area"] <= 0:
        return ("design.chiplet_area", f"{area:g} mm^2",
                f"expected room for logic: the PHYs of {round(config['hbm_stacks'])} HBM "
                f"stacks and {round(config['scale_up_links'])} links take "
                f"{values['io_phy_area']:.0f} mm^2 of {n} x {area:g} mm^2",
                "no area left for logic")
    if pkg.carrier_max_area is not None and values["carrier_area"] > pkg.carrier_max_area:
        return ("design.packaging", pkg.name,
                f"expected a carrier within {pkg.carrier_max_area:g} mm^2; "
                f"{n} x {area:g} mm^2 and {round(config['hbm_stacks'])} stacks need "
                f"{values['carrier_area']:.0f} mm^2",
                f"carrier {values['carrier_area']:.0f} > {pkg.carrier_max_area:g} mm^2")
    if values.get("training_memory", 0.0) > values["hbm_capacity"]:
        gib = 2**30
        return ("design.hbm_stacks", round(config["hbm_stacks"]),
                f"expected HBM for the run's training case: it needs "
                f"{values['training_memory'] / gib:.1f} GiB per accelerator, "
                f"{round(config['hbm_stacks'])} stacks hold {values['hbm_capacity'] / gib:.0f} "
                "GiB", "training case does not fit in HBM")
    if cc.system is not None and not math.isfinite(values["fabric_tiers"]):
        return ("system.accelerators", round(config["accelerators"]),
                "expected at most the endpoints of a three-tier fat-tree of radix "
                f"{cc.system.fabric.switch_radix:g}", "beyond a 3-tier fat-tree")
    return None


#: Scale-out topologies whose bill of materials formulations.system writes out.
FAT_TREES = ("fat-tree", "rail")


def with_network_defaults(cc: CostCase, training_case: Any = None) -> CostCase:
    """``cc`` with the scale-up size and oversubscription its system leaves out taken from
    ``system.network``, else from the run's training case's network."""
    s = cc.system
    if s is None:
        return cc
    net = s.network or (training_case.network if training_case is not None else None)
    if net is None:
        return cc
    where = "system.network" if s.network is not None else "run.case"
    topology = net.scale_out.topology
    if topology and not any(t in topology for t in FAT_TREES):
        raise CaseError(where, net.name, f"expected a fat-tree or rail-optimised scale-out "
                        f"fabric for the bill of materials; {net.name} is '{topology}'")
    update = {"scale_up_size": s.scale_up_size or net.scale_up.size,
              "oversubscription": s.oversubscription or net.scale_out.oversubscription}
    return cc.model_copy(update={"system": s.model_copy(update=update)})


def price_case(cc: CostCase) -> CostResult:
    """Price every configuration of a cost case and pick the cheapest within the budget."""
    inputs = accelerator_inputs(cc.design)
    notes: list[str] = []
    training_case = None
    accelerators = None
    run = cc.run
    if run is not None and run.case is not None:
        training_case = problem.single(case_mod.load(run.case))
        fixed = problem.fixed_config(training_case)
        accelerators = fixed["tp"] * fixed["pp"] * fixed["dp"] * fixed["cp"]
        if cc.system is not None and cc.system.accelerators not in (None, accelerators):
            raise CaseError("system.accelerators", cc.system.accelerators,
                            f"expected {accelerators} (the GPUs of run.case) or nothing")
    if cc.system is not None:
        cc = with_network_defaults(cc, training_case)
    configs = configurations(cc, accelerators)
    if cc.system is None:
        formulation = acc.build_accelerator(inputs)
        objective = "price"
        values = evaluate_configurations(formulation, configs)
        training = None
    else:
        run_spec, training = _run_spec(cc, training_case)
        formulation = system.build_cluster(inputs, fabric_spec(cc.system),
                                           datacenter_spec(cc.system), run_spec)
        objective = "capex"
        values = evaluate_configurations(formulation, configs)
        if training_case is not None:
            times, memory, training = _training_times(cc, training_case, values)
            notes.append(f"run time from the training model: {run.case} on the designed "
                         "accelerator")
            values = evaluate_configurations(formulation, configs, {"run_time": np.array(times)})
            for v, m in zip(values, memory, strict=True):
                v["training_memory"] = m
    priced = []
    for c, v in zip(configs, values, strict=True):
        problem_ = why_unbuildable(cc, c, v)
        p = Priced(dict(c), v)
        if problem_ is not None:
            p.problem_field, p.problem_value, p.problem, p.short = problem_
        priced.append(p)
    feasible = [p for p in priced if p.problem is None]
    if not feasible:
        first = priced[0]
        raise CaseError(first.problem_field or "design", first.problem_value,
                        first.problem or "no feasible configuration")
    cheapest = min(feasible, key=lambda p: p.values[objective])
    budget = cc.constraints.budget
    chosen = cheapest
    if budget is not None:
        if cheapest.values[objective] > budget:
            raise CaseError("constraints.budget", f"{budget:,.0f} USD",
                            f"expected at least {cheapest.values[objective]:,.0f} USD, the "
                            f"{objective} of the cheapest feasible system "
                            f"({_describe(cheapest.config)})")
        within = [p for p in feasible if p.values[objective] <= budget]
        # Within the budget: the shortest run when there is one, else the highest peak.
        key = "run_time" if "run_time" in cheapest.values else "peak_flops"
        sign = 1.0 if key == "run_time" else -1.0
        chosen = min(within, key=lambda p: (sign * p.values[key], p.values[objective]))
        rule = "shortest run" if sign > 0 else "highest peak FLOP/s"
        notes.append(f"budget {budget:,.0f} USD: {len(within)} of {len(feasible)} feasible "
                     f"configurations fit; chosen by {rule}")
    return CostResult(cc, formulation, priced, chosen, objective,
                      run.case if run is not None else None, training, notes)


def _describe(config: Mapping[str, float]) -> str:
    parts = []
    for k, v in config.items():
        parts.append(f"{k}={v:g}" + (" mm^2" if k == "chiplet_area" else ""))
    return ", ".join(parts)


def _run_spec(cc: CostCase, training_case: Any) -> tuple[system.RunSpec, Any]:
    run = cc.run
    if run is None:
        raise CaseError("run", MISSING, "expected a [run] table (tokens and duration, or flops "
                        "and mfu, or a training case) to price a cluster")
    tokens = run.tokens
    if training_case is not None:
        tokens = tokens or training_case.training.tokens
        # A placeholder duration; the training model's time replaces it per configuration.
        return system.RunSpec(tokens=tokens, run_time=1.0), None
    if tokens is None:
        raise CaseError("run.tokens", MISSING, "expected the tokens the run trains on, like "
                        "15e12")
    if run.duration is not None:
        if run.duration <= 0:
            raise CaseError("run.duration", run.duration, "expected a duration greater than 0")
        return system.RunSpec(tokens=tokens, run_time=run.duration), None
    if run.flops is not None and run.mfu is not None:
        return system.RunSpec(tokens=tokens, flops=run.flops, mfu=run.mfu), None
    raise CaseError("run.duration", MISSING, "expected a duration, or run.flops and run.mfu, "
                    "or run.case (a training case)")


def designed_hardware(cc: CostCase, values: Mapping[str, float],
                      reference: HardwareSpec | None = None) -> HardwareSpec:
    """The training model's hardware for one evaluated design (unit price included)."""
    ref = reference or reference_hardware(cc.design.reference)
    name = f"{cc.name or 'design'} ({cc.design.technology.name}, "\
           f"{round(values['compute_chiplets'])} x {values['chiplet_area']:g} mm^2)"
    return acc.hardware_spec(name, values, ref)


def _training_times(cc: CostCase, training_case: Any,
                    values: Sequence[Mapping[str, float]]
                    ) -> tuple[list[float], list[float], dict[str, Any]]:
    """Time to train and memory per accelerator of the run's case on each designed
    accelerator (NaN where the design is not buildable); and a summary of the first."""
    from perfcost.formulations import training as training_mod
    from perfcost.formulations.registry import build

    specs = problem.specs(training_case)
    config = problem.fixed_config(training_case)
    codes = problem.decision_codes(config)
    reference = reference_hardware(cc.design.reference)
    times: list[float] = []
    memory: list[float] = []
    evaluator = None
    summary: dict[str, Any] = {}
    for v in values:
        if v["compute_area"] <= 0 or not math.isfinite(v["peak_flops"]):
            times.append(math.nan)
            memory.append(math.nan)
            continue
        hw = designed_hardware(cc, v, reference)
        if evaluator is None:
            # One formulation and one lambdify for every design: only parameters differ.
            evaluator = Evaluator(build("training", specs.model, hw, specs.network,
                                        specs.training))
        params = training_mod.parameter_values(specs.model, hw, specs.network, specs.training)
        result = evaluator(codes, params)
        times.append(result["time_to_train"])
        memory.append(result["memory_per_gpu"])
        if not summary:
            summary = {"case": training_case.name, "config": config,
                       "hardware": dataclasses.asdict(hw),
                       "iteration_time_s": result["iteration_time"],
                       "mfu": result["mfu"],
                       "memory_per_gpu_bytes": result["memory_per_gpu"],
                       "memory_fits": result["memory_per_gpu"] <= hw.hbm_capacity,
                       "time_to_train_s": result["time_to_train"]}
    return times, memory, summary


# -- the chiplet-versus-monolithic study --------------------------------------------------------

@dataclass(frozen=True)
class CrossoverRow:
    node: str
    chiplets: int
    crossover_area: float | None  # mm^2 of logic beyond which chiplets are cheaper
    ratio_small: float  # chiplet / monolithic cost at the smallest area
    ratio_large: float  # ... at the largest (the reticle limit)


def package_formulation(tech: chiplet.TechnologySpec, pkg: chiplet.PackagingSpec,
                        memory: chiplet.MemoryStackSpec, volume: float) -> Formulation:
    """The package cost quantities alone (no accelerator densities needed)."""
    ps = ParameterSet()
    dec = chiplet.design_decisions()
    t = chiplet.technology_symbols(ps, tech)
    p = chiplet.packaging_symbols(ps, pkg, memory)
    v = ps.add("production_volume", volume, "1", "units over which NRE is amortised")
    e = chiplet.package_cost(tech, pkg, t, p, dec["compute_chiplets"].symbol,
                             dec["chiplet_area"].symbol, dec["hbm_stacks"].symbol, v)
    return Formulation("package", e, {k: chiplet.PACKAGE_UNITS[k] for k in e},
                       {k: "" for k in e}, dec, ps.parameters)


def crossover(tech: chiplet.TechnologySpec, monolithic_pkg: chiplet.PackagingSpec,
              chiplet_pkg: chiplet.PackagingSpec, memory: chiplet.MemoryStackSpec,
              chiplets: int, areas: np.ndarray,
              quantity: str = "manufacturing_cost") -> tuple[np.ndarray, np.ndarray]:
    """Cost of ``areas`` mm^2 of logic as one die (on ``monolithic_pkg``) and as ``chiplets``
    dies, each carrying its share plus die-to-die PHYs (on ``chiplet_pkg``); no HBM."""
    return _crossover_costs(tech, _study_evaluator(tech, monolithic_pkg, memory, quantity),
                            _study_evaluator(tech, chiplet_pkg, memory, quantity), chiplets,
                            areas)


def _study_evaluator(tech: chiplet.TechnologySpec, pkg: chiplet.PackagingSpec,
                     memory: chiplet.MemoryStackSpec, quantity: str) -> Evaluator:
    volume = 1.0  # RE cost: the study compares manufacturing cost, NRE is not in it
    return Evaluator(package_formulation(tech, pkg, memory, volume), (quantity,))


def _crossover_costs(tech: chiplet.TechnologySpec, mono_e: Evaluator, split_e: Evaluator,
                     chiplets: int, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`crossover` with the two package evaluators built (and lambdified) once."""
    (quantity,) = mono_e.names
    zeros = np.zeros_like(areas)
    mono = mono_e({"compute_chiplets": np.ones_like(areas), "chiplet_area": areas,
                   "hbm_stacks": zeros})[quantity]
    each = areas / chiplets * (1 + tech.d2d_area_overhead)
    split = split_e({"compute_chiplets": np.full_like(areas, chiplets), "chiplet_area": each,
                     "hbm_stacks": zeros})[quantity]
    return np.asarray(mono, dtype=float), np.asarray(split, dtype=float)


def crossover_area(areas: np.ndarray, mono: np.ndarray, split: np.ndarray) -> float | None:
    """The smallest area from which the split design stays cheaper (linear interpolation
    between grid points), or None if it never is."""
    cheaper = split < mono
    if not cheaper.any():
        return None
    if cheaper.all():
        return float(areas[0])
    # the last change from dearer to cheaper
    last_dearer = int(np.nonzero(~cheaper)[0][-1])
    if last_dearer == len(areas) - 1:
        return None
    i = last_dearer
    d0, d1 = split[i] - mono[i], split[i + 1] - mono[i + 1]
    return float(areas[i] + (areas[i + 1] - areas[i]) * d0 / (d0 - d1))


@dataclass(frozen=True)
class StudySpecs:
    """The specs of one node of the chiplet study: the node, the monolithic die's packaging
    (organic), the split design's packaging and a memory stack (unused: no HBM)."""

    technology: chiplet.TechnologySpec
    monolithic: chiplet.PackagingSpec
    split: chiplet.PackagingSpec
    memory: chiplet.MemoryStackSpec


def study_specs(node: str, packaging: str = "organic", memory: str = "hbm3") -> StudySpecs:
    """Built-in entries of the study, validated like a case's."""
    def section(model: Any, kind: str, name: str) -> Any:
        try:
            return model.model_validate(builtin(kind, name, f"--{kind}"))
        except ValidationError as exc:
            raise _case_error(exc) from None

    tech = section(TechnologySection, "technology", node)
    mem = section(MemorySection, "memory", memory)
    mono = section(PackagingSection, "packaging", "organic")
    split = section(PackagingSection, "packaging", packaging)

    def design(pkg: Any) -> DesignSection:
        return DesignSection.model_construct(technology=tech, packaging=pkg, memory=mem)

    return StudySpecs(technology_spec(design(mono)), packaging_spec(design(mono)),
                      packaging_spec(design(split)), memory_spec(design(mono)))


def crossover_study(nodes: Sequence[str], chiplet_counts: Sequence[int],
                    packaging: str = "organic", memory: str = "hbm3",
                    step: float = 1.0) -> list[CrossoverRow]:
    """For each node and chiplet count: the logic area beyond which splitting is cheaper."""
    rows = []
    for node in nodes:
        s = study_specs(node, packaging, memory)
        areas = np.arange(step * 50, s.technology.reticle_area + step / 2, step)
        quantity = "manufacturing_cost"
        mono_e = _study_evaluator(s.technology, s.monolithic, s.memory, quantity)
        split_e = _study_evaluator(s.technology, s.split, s.memory, quantity)
        for k in chiplet_counts:
            mono, split = _crossover_costs(s.technology, mono_e, split_e, k, areas)
            rows.append(CrossoverRow(node, k, crossover_area(areas, mono, split),
                                     float(split[0] / mono[0]), float(split[-1] / mono[-1])))
    return rows


def cheapest_hardware(cc: CostCase) -> tuple[HardwareSpec, float]:
    """The designed accelerator of a single-design case as a :class:`HardwareSpec` and its unit
    price (for the training model and co-design)."""
    inputs = accelerator_inputs(cc.design)
    configs = configurations(cc.model_copy(update={"system": None}))
    formulation = acc.build_accelerator(inputs)
    values = evaluate_configurations(formulation, configs)
    ok = [(c, v) for c, v in zip(configs, values, strict=True) if why_unbuildable(cc, c, v) is None]
    if not ok:
        c, v = configs[0], values[0]
        field_, value, expected, _short = why_unbuildable(cc, c, v) or ("design", None, "", "")
        raise CaseError(field_, value, expected)
    _c, v = min(ok, key=lambda cv: cv[1]["price"])
    hw = designed_hardware(cc, v)
    return hw, hw.price
