"""From a validated :class:`Case` to the inputs of the training formulation: frozen specs, and
the configuration (one value per decision) with its structural rules checked."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from perfcost.formulations import pipeline_layout
from perfcost.formulations.pipeline_layout import Layout
from perfcost.formulations.specs import (
    DEFAULT_RECOMPUTE_MODULES,
    HOPS,
    NON_BLOCKING,
    PLACEMENTS,
    RECOMPUTE_MODES,
    FabricSpec,
    HardwareSpec,
    LinkLevel,
    ModelSpec,
    NetworkSpec,
    TrainingSpec,
)
from perfcost.solver.case import frameworks
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.case.frameworks import FrameworkSection
from perfcost.solver.case.schema import Case, first_dense_layers
from perfcost.solver.case.sections import NetworkSection
from perfcost.solver.problem import rules

#: Bytes per element of each number format.
FORMAT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
#: Activation format of each training precision: FP8 training keeps BF16 activations and
#: runs only the linear layers' GEMMs in FP8 (formulations.precision).
ACTIVATION_FORMAT = {"bf16": "bf16", "fp16": "fp16", "fp8": "bf16"}
#: The hardware entry's per-precision table that holds the FP8 GEMM rate of each recipe.
FP8_TABLE = {"delayed": "fp8", "current": "fp8", "block": "fp8_block", "mxfp8": "fp8"}
#: Mixed-precision Adam: fp32 main gradients (Megatron-LM keeps them in fp32; DeepSeek-V3
#: Sec. 3.3.3 too, "used for batch size accumulation") and fp32 master weight, first and
#: second moments (Rajbhandari et al. 2020, Sec. 3.1: 4 + 4 + 4 B); the moments' format is the
#: job's (training.optimizer_moment_precision).
GRAD_BYTES = 4.0
MASTER_WEIGHT_BYTES = 4.0
#: Adam's moments per parameter: first and second.
ADAM_MOMENTS = 2
#: HBM bytes one optimizer step moves per parameter beyond the fused Adam: unscale and
#: inf-check of the fp32 gradient (read 4, write 4), gradient-norm pass (read 4), copy of the
#: master weight into the 2-byte model weight (read 4, write 2). The fused Adam reads master,
#: gradient and moments and writes master and moments (28 B with FP32 moments).
ADAM_STEP_OTHER_BYTES = 8.0 + 4.0 + 6.0
#: Dropout masks are stored as one byte per element (Korthikanti et al. 2022, Sec. 4.1).
DROPOUT_MASK_BYTES = 1.0


def adam_bytes(moment_precision: str) -> tuple[float, float]:
    """Adam's state bytes per parameter and the HBM bytes one step moves per parameter, with
    the moments in ``moment_precision`` (FP32 master weight and gradient either way)."""
    moment = FORMAT_BYTES[moment_precision]
    state = MASTER_WEIGHT_BYTES + ADAM_MOMENTS * moment
    fused = 2 * MASTER_WEIGHT_BYTES + GRAD_BYTES + 2 * ADAM_MOMENTS * moment
    return state, ADAM_STEP_OTHER_BYTES + fused


DEFAULTS: dict[str, Any] = {
    "tp": 1, "pp": 1, "cp": 1, "micro_batch": 1, "virtual_stages": 1,
    "recompute": "none", "sequence_parallel": False, "zero": 0, "placement": PLACEMENTS[0],
    "ep": 1,
}


@dataclass(frozen=True)
class Specs:
    model: ModelSpec
    hardware: HardwareSpec
    network: NetworkSpec
    training: TrainingSpec


def single(case: Case) -> Case:
    """``case`` with one hardware and one network entry (a list must hold exactly one)."""
    for section in ("hardware", "network"):
        value = getattr(case, section)
        if isinstance(value, list):
            if len(value) != 1:
                raise CaseError(section, [v.name for v in value],
                                "evaluate needs one entry; use 'perfcost solve' to choose")
            case = case.model_copy(update={section: value[0]})
    return case


def fabric_spec(net: NetworkSection) -> FabricSpec:
    """The scale-out fabric of a network entry (formulations.topology), checked."""
    out = net.scale_out
    kind = out.topology
    if kind not in HOPS:
        if out.oversubscription > 1 or out.unit is not None or out.global_taper is not None:
            raise CaseError("network.scale_out.topology", kind,
                            f"expected one of {', '.join(HOPS)} to give unit, "
                            "oversubscription or global_taper")
        return NON_BLOCKING
    if out.unit is None:
        if kind == "dragonfly" or out.oversubscription > 1:
            raise CaseError("network.scale_out.unit", MISSING,
                            "expected the GPUs under one leaf switch, rail group or dragonfly "
                            "group (a positive integer)")
        return NON_BLOCKING
    if kind == "dragonfly":
        if out.global_taper is None:
            raise CaseError("network.scale_out.global_taper", MISSING,
                            "expected the global-link bandwidth per GPU as a fraction of its "
                            "injection bandwidth, like 0.5")
        taper = out.global_taper
    else:
        taper = 1.0 / out.oversubscription
    inside, across = HOPS[kind]
    return FabricSpec(kind, float(out.unit), taper, out.hop_latency, across - inside)


def flash_fields(case: Case, model: ModelSpec) -> dict[str, Any]:
    """The hardware's FlashAttention rates and SRAM, checked where the job runs FlashAttention:
    the generation the entry names must have rates, and one tile must fit its SRAM."""
    hw = case.hardware
    eff = hw.efficiency
    rates = getattr(eff, eff.flash_attention)
    out: dict[str, Any] = {"flash_attention": eff.flash_attention,
                           "shared_memory": hw.shared_memory or 0.0,
                           "l2_cache": hw.sram or 0.0}
    if rates is not None:
        out.update(flash_forward_efficiency=rates.forward,
                   flash_backward_efficiency=rates.backward,
                   flash_forward_tile_overhead=rates.forward_tile_overhead,
                   flash_backward_tile_overhead=rates.backward_tile_overhead)
    if case.training.attention != "flash":
        return out
    if rates is None:
        raise CaseError(f"hardware.efficiency.{eff.flash_attention}", MISSING,
                        f"expected the forward and backward efficiency of the "
                        f"{eff.flash_attention} kernels of {hw.name} (training.attention = "
                        f"'flash'); fit them with 'perfcost calibrate'")
    if hw.shared_memory is None:
        raise CaseError("hardware.shared_memory", MISSING,
                        "expected the on-chip shared memory per multiprocessor, like "
                        "'228 KiB' (training.attention = 'flash' sizes its tiles from it)")
    from perfcost.formulations import attention
    from perfcost.formulations.training import attention_head_dims

    try:
        attention.block_sizes(hw.shared_memory, *attention_head_dims(model),
                              FORMAT_BYTES[ACTIVATION_FORMAT[case.training.precision]])
    except attention.TileDoesNotFit as exc:
        raise CaseError("hardware.shared_memory", f"{hw.shared_memory / 1024:g} KiB",
                        f"expected room for one FlashAttention tile: {exc}") from None
    return out


def framework_of(case: Case) -> FrameworkSection:
    """The case's framework profile, with the job-level choices it must support checked:
    the pipeline schedule and the FP8 recipe."""
    job = case.training
    fw = frameworks.profile(job.framework)
    if job.schedule not in fw.rules.schedules:
        raise CaseError("training.schedule", job.schedule,
                        f"expected a schedule {fw.name} runs: {', '.join(fw.rules.schedules)}")
    if job.precision == "fp8" and job.fp8_recipe not in fw.rules.fp8_recipes:
        raise CaseError("training.fp8_recipe", job.fp8_recipe,
                        f"expected an FP8 recipe {fw.name} runs: "
                        f"{', '.join(fw.rules.fp8_recipes)}")
    return fw


def fp8_fields(case: Case) -> dict[str, float]:
    """The FP8 peak and GEMM efficiency of an FP8 job's recipe on the hardware entry.

    The efficiency is the entry's training GEMM efficiency times the measured FP8-over-BF16
    ratio of its per-precision tables (both fitted on one kernel database, so the ratio holds
    the FP8 kernels' own tile and pipeline behaviour while the training rate stays the one the
    BF16 validation uses); an entry with an FP8 table but no BF16 one takes the FP8 value."""
    job, hw = case.training, case.hardware
    if job.precision != "fp8":
        return {}
    table = FP8_TABLE[job.fp8_recipe]
    if "fp8" not in hw.peak_flops:
        raise CaseError("training.precision", "fp8",
                        f"expected hardware with an FP8 peak; {hw.name} has "
                        f"{', '.join(hw.peak_flops)}")
    tables = hw.efficiency.precision
    if table not in tables:
        raise CaseError(f"hardware.efficiency.precision.{table}", MISSING,
                        f"expected the FP8 GEMM efficiency of {hw.name} for the "
                        f"{job.fp8_recipe} recipe; fit it with 'perfcost calibrate --database'")
    fp8_eff = tables[table].matmul
    if "bf16" in tables:
        fp8_eff = hw.efficiency.matmul.value * fp8_eff / tables["bf16"].matmul
    return {"peak_flops_fp8": hw.peak_flops["fp8"], "matmul_efficiency_fp8": fp8_eff}


def specs(case: Case) -> Specs:
    case = single(case)
    m, hw, net, job = case.model, case.hardware, case.network, case.training
    model = ModelSpec(
        name=m.name, layers=m.layers, hidden=m.hidden, heads=m.heads,
        kv_heads=m.kv_heads or m.heads, ffn=m.ffn, ffn_kind=m.ffn_kind, vocab=m.vocab,
        seq_len=m.seq_len, tied_embeddings=m.tied_embeddings, biases=m.biases,
        learned_positions=m.positions == "learned", dropout=m.dropout,
        mtp_modules=m.mtp_modules, **moe_fields(m),
    )
    dense = ACTIVATION_FORMAT[job.precision]
    if dense not in hw.peak_flops:
        raise CaseError("training.precision", job.precision,
                        f"expected a precision with a hardware.peak_flops entry; hardware "
                        f"{hw.name} has {', '.join(hw.peak_flops) or 'none'}")
    hardware = HardwareSpec(
        name=hw.name, peak_flops=hw.peak_flops[dense], hbm_capacity=hw.hbm_capacity,
        hbm_bandwidth=hw.hbm_bandwidth, multiprocessors=hw.multiprocessors,
        matmul_efficiency=hw.efficiency.matmul.value,
        memory_efficiency=hw.efficiency.memory.value,
        gemm_tile_m=hw.efficiency.gemm_tile[0], gemm_tile_n=hw.efficiency.gemm_tile[1],
        kernel_overhead=hw.efficiency.kernel_overhead, price=hw.price, power=hw.power,
        gemm_wave_overhead=hw.efficiency.wave_overhead,
        gemm_row_granule=hw.efficiency.gemm_row_granule or 0, **flash_fields(case, model),
        **fp8_fields(case),
    )
    up, out = net.scale_up, net.scale_out
    if case.training.tp_algorithm == "in_network" and up.reduction_bandwidth is None:
        raise CaseError("training.tp_algorithm", "in_network",
                        f"expected a network with switch-side reduction; {net.name} has none")
    if up.topology == "torus":
        raise CaseError("network", net.name,
                        "expected a switched scale-up domain: the training model does not yet "
                        "place groups on a torus (use it with 'perfcost collective')")
    if up.size is None:
        raise CaseError("network.scale_up.size", MISSING,
                        "expected a positive integer: the GPUs per scale-up domain")
    network = NetworkSpec(
        name=net.name, scale_up_size=up.size,
        scale_up=LinkLevel(up.bandwidth, up.latency, up.efficiency),
        scale_out=LinkLevel(out.bandwidth, out.latency, out.efficiency),
        fabric=fabric_spec(net),
        scale_up_reduction=(LinkLevel(up.reduction_bandwidth, up.reduction_latency or 0.0, 1.0)
                            if up.reduction_bandwidth is not None else None),
    )
    element = FORMAT_BYTES[dense]
    price = case.cluster.gpu_hour_price
    fw = framework_of(case)
    fp8 = job.precision == "fp8"
    adam_state, adam_step = adam_bytes(job.optimizer_moment_precision)
    modules = case.parallelism.recompute_modules
    training = TrainingSpec(
        global_batch=job.global_batch, tokens=job.tokens, bytes_per_element=element,
        grad_reduce_bytes=FORMAT_BYTES[job.grad_reduce_precision or dense],
        weight_bytes=element, grad_bytes=GRAD_BYTES, optimizer_state_bytes=adam_state,
        optimizer_step_bytes=adam_step, dropout_mask_bytes=DROPOUT_MASK_BYTES,
        dp_overlap=job.dp_overlap, tp_algorithm=job.tp_algorithm, attention=job.attention,
        expert_tp=case.parallelism.expert_tp, uneven_stages=case.parallelism.uneven,
        ep_overlap=job.ep_overlap,
        gpu_hour_price=hw.gpu_hour_price if price is None else price,
        fp8_recipe=job.fp8_recipe if fp8 else "none", schedule=job.schedule,
        cp_algorithm=job.cp_algorithm,
        tp_overlap=fw.behaviour.tp_overlap if job.tp_overlap is None else job.tp_overlap,
        zero_reduce_per_micro_batch=fw.behaviour.zero_reduce_per_micro_batch,
        gather_bytes=1.0 if fp8 and fw.behaviour.fp8_weight_gather else element,
        memory_reserve=fw.memory.reserve, memory_fragmentation=fw.memory.fragmentation,
        step_overhead=fw.costs.step, micro_batch_overhead=fw.costs.micro_batch,
        recompute_modules=(DEFAULT_RECOMPUTE_MODULES if modules is None
                           else tuple(dict.fromkeys(modules))),
        attention_output_format=fw.behaviour.attention_output_format or "",
        dispatch_per_rank=fw.behaviour.dispatch_per_rank,
        fp8_weight_copies=fw.behaviour.fp8_weight_copies,
        pipeline_layout=layout_of(case, model),
    )
    return Specs(model, hardware, network, training)


def layout_of(case: Case, model: ModelSpec) -> Layout | None:
    """The case's pipeline layout, checked against the model and its fixed ``pp`` and
    ``virtual_stages`` (a layout describes one split, so neither may be searched)."""
    par = case.parallelism
    text = par.pipeline_layout
    if text is None:
        return None
    fixed: dict[str, int] = {}
    for name in ("pp", "virtual_stages"):
        value = getattr(par, name)
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        elif value is None and name == "virtual_stages":
            value = 1
        if not isinstance(value, int):
            raise CaseError(f"parallelism.{name}", value if value is not None else MISSING,
                            "expected one fixed value with parallelism.pipeline_layout "
                            "(a layout describes one split)")
        fixed[name] = value
    try:
        chunks = pipeline_layout.parse(text)
    except pipeline_layout.LayoutError as exc:
        raise CaseError("parallelism.pipeline_layout", text, f"expected {exc}") from None
    problem = pipeline_layout.check(chunks, model.layers, model.mtp_modules,
                                    case.training.schedule, fixed["pp"],
                                    fixed["virtual_stages"])
    if problem is not None:
        raise CaseError("parallelism.pipeline_layout", text, f"expected {problem}")
    return Layout(text, fixed["pp"], fixed["virtual_stages"], case.training.schedule)


def fixed_config(case: Case) -> dict[str, Any]:
    """The one configuration a case fixes (for ``evaluate``), with defaults filled in and every
    structural rule checked. Values are user-facing (labels for categorical decisions)."""
    par = case.parallelism
    config: dict[str, Any] = {}
    for name in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages", "recompute",
                 "sequence_parallel", "zero", "placement"):
        value = getattr(par, name)
        if isinstance(value, list):
            if len(value) != 1:
                raise CaseError(f"parallelism.{name}", value,
                                "expected one value: evaluate runs one configuration "
                                "('perfcost solve' chooses among several)")
            value = value[0]
        config[name] = DEFAULTS.get(name) if value is None else value
    gpus = case.cluster.gpus
    if isinstance(gpus, list):
        if len(gpus) != 1:
            raise CaseError("cluster.gpus", gpus,
                            "expected one GPU count: evaluate runs one configuration "
                            "('perfcost solve' chooses among several)")
        gpus = gpus[0]
    _check_degrees(case, config)
    inner = config["tp"] * config["pp"] * config["cp"]
    if config["dp"] is None:
        if gpus is None:
            config["dp"] = 1
        elif gpus % inner:
            raise CaseError("cluster.gpus", gpus,
                            f"expected a multiple of tp*pp*cp = {inner}")
        else:
            config["dp"] = gpus // inner
    check_config(case, config, gpus)
    return config


def check_config(case: Case, c: dict[str, Any], gpus: int | None) -> None:
    """Raise :class:`CaseError` on the first structural rule ``c`` breaks.

    Rules on one parallel degree come first (so ``tp = 5`` is reported against the model
    rather than as a wrong GPU count), then the rules that tie the degrees together.
    """
    _check_degrees(case, c)
    t, p, d, cp, b = (c[k] for k in ("tp", "pp", "dp", "cp", "micro_batch"))
    if not _positive_integer(d):
        raise CaseError("parallelism.dp", d, "expected a positive integer")
    product = t * p * d * cp
    if gpus is not None and not rules.product_is_gpus(t, p, d, cp, gpus):
        raise CaseError("cluster.gpus", gpus,
                        f"expected tp*pp*dp*cp = {t}*{p}*{d}*{cp} = {product}")
    gb = case.training.global_batch
    if not rules.batch_splits(gb, d, b):
        raise CaseError("training.global_batch", gb,
                        f"expected a multiple of dp*micro_batch = {d}*{b} = {d * b}")
    if not rules.enough_micro_batches(gb, d, b, p):
        raise CaseError("training.global_batch", gb,
                        f"expected at least pp = {p} micro-batches per step, i.e. at least "
                        f"pp*dp*micro_batch = {p}*{d}*{b} = {p * d * b} (the search's rule: "
                        "with fewer, pipeline stages sit idle)")
    ep, etp = c.get("ep", 1), case.parallelism.expert_tp
    if not rules.experts_split(t, cp, d, ep, etp):
        raise CaseError("parallelism.ep", ep,
                        f"expected ep*expert_tp = {ep}*{etp} to divide the ranks of one "
                        f"pipeline stage, tp*cp*dp = {t}*{cp}*{d} = {t * cp * d} "
                        "(expert data parallelism = tp*cp*dp / (ep*expert_tp))")


def framework_problems(case: Case, c: dict[str, Any]) -> list[str]:
    """The rules of the case's framework profile that configuration ``c`` breaks (empty when
    the framework runs it); the search applies the same rules (solver/problem/space.py)."""
    fw = frameworks.profile(case.training.framework)
    r = fw.rules
    out = []
    if c["zero"] not in r.zero_stages:
        out.append(f"ZeRO {c['zero']}: {fw.name} runs ZeRO stages {r.zero_stages}")
    elif c["pp"] > 1 and c["zero"] not in r.zero_stages_with_pipeline:
        out.append(f"ZeRO {c['zero']} with pp = {c['pp']}: {fw.name} runs ZeRO stages "
                   f"{r.zero_stages_with_pipeline} with pipeline parallelism")
    if c["virtual_stages"] > 1 and not r.interleaving:
        out.append(f"virtual_stages = {c['virtual_stages']}: {fw.name} has no interleaved "
                   "schedule")
    elif (c["virtual_stages"] > 1 and r.interleaving_needs_micro_batch_multiple
          and not rules.interleaving_micro_batches(case.training.global_batch, c["dp"],
                                                   c["micro_batch"], c["pp"],
                                                   c["virtual_stages"])):
        m = case.training.global_batch // (c["dp"] * c["micro_batch"])
        out.append(f"{m} micro-batches: {fw.name}'s interleaved schedule needs a multiple of "
                   f"pp = {c['pp']}")
    if c["cp"] > 1 and not r.context_parallel:
        out.append(f"cp = {c['cp']}: {fw.name} runs no context parallelism")
    if c.get("ep", 1) > 1 and not r.expert_parallel:
        out.append(f"ep = {c['ep']}: {fw.name} runs no expert parallelism")
    return out


def _check_degrees(case: Case, c: dict[str, Any]) -> None:
    """The rules on each decision other than ``dp`` (which may still be unknown)."""
    m = case.model
    for name in ("tp", "pp", "cp", "micro_batch", "virtual_stages"):
        if not _positive_integer(c[name]):
            raise CaseError(f"parallelism.{name}", c[name], "expected a positive integer")
    t, p, cp, v = (c[k] for k in ("tp", "pp", "cp", "virtual_stages"))
    if not isinstance(c["zero"], numbers.Integral) or c["zero"] not in (0, 1, 2, 3):
        raise CaseError("parallelism.zero", c["zero"], "expected a ZeRO stage: 0, 1, 2 or 3")
    if c["recompute"] not in RECOMPUTE_MODES:
        raise CaseError("parallelism.recompute", c["recompute"],
                        f"expected one of {', '.join(map(repr, RECOMPUTE_MODES))}")
    if c["placement"] not in PLACEMENTS:
        raise CaseError("parallelism.placement", c["placement"],
                        f"expected one of {', '.join(map(repr, PLACEMENTS))}")
    if c["sequence_parallel"] not in (False, True):
        raise CaseError("parallelism.sequence_parallel", c["sequence_parallel"],
                        "expected true or false")
    why = tp_problem(m, t)
    if why:
        raise CaseError("parallelism.tp", t, why)
    size = case.network.scale_up.size
    if size is None:
        raise CaseError("network.scale_up.size", MISSING,
                        "expected a positive integer: the GPUs per scale-up domain")
    if t > size:
        raise CaseError("parallelism.tp", t,
                        f"expected at most the scale-up domain of {case.network.name} "
                        f"(network.scale_up.size = {size} GPUs)")
    ep = c.get("ep", 1)
    if not _positive_integer(ep):
        raise CaseError("parallelism.ep", ep, "expected a positive integer")
    if ep > 1 and (m.experts is None or m.experts % ep):
        raise CaseError("parallelism.ep", ep,
                        f"expected a divisor of model.experts = {m.experts or 0}")
    if case.parallelism.uneven:
        if p * v > m.layers:
            raise CaseError("parallelism.pp", p,
                            f"expected pp*virtual_stages = {p}*{v} = {p * v} to be at most "
                            f"model.layers = {m.layers}")
    elif m.layers % (p * v):
        field, value = ("parallelism.pp", p) if v == 1 else ("parallelism.virtual_stages", v)
        raise CaseError(field, value,
                        f"expected pp*virtual_stages = {p}*{v} = {p * v} to divide "
                        f"model.layers = {m.layers}")
    if v > 1 and p == 1:
        raise CaseError("parallelism.virtual_stages", v,
                        "expected 1 without pipeline parallelism (pp = 1)")
    if m.seq_len % cp:
        raise CaseError("parallelism.cp", cp,
                        f"expected a divisor of model.seq_len = {m.seq_len}")
    if case.training.cp_algorithm == "a2a" and not rules.heads_split(m.heads, t, cp):
        raise CaseError("parallelism.cp", cp,
                        f"expected the local heads, model.heads / tp = {m.heads}/{t}, to divide "
                        "over cp (training.cp_algorithm = 'a2a' splits heads)")


def moe_fields(m: Any) -> dict[str, Any]:
    """The mixture-of-experts and attention-shape fields of a ModelSpec from a ModelSection
    (the spec's defaults -- a dense model with MHA/GQA -- where the case leaves them out)."""
    out: dict[str, Any] = {}
    if m.head_dim is not None:
        out["head_dim"] = m.head_dim
    if m.experts is not None:
        out.update(experts=m.experts, shared_experts=m.shared_experts, top_k=m.top_k,
                   expert_ffn=m.expert_ffn, moe_every=m.moe_every,
                   first_dense_layers=first_dense_layers(m),
                   capacity_factor=m.capacity_factor or 0.0, load_imbalance=m.load_imbalance,
                   route_domains=m.route_domains or 0)
    if m.kv_lora_rank is not None:
        out.update(q_lora_rank=m.q_lora_rank or 0, kv_lora_rank=m.kv_lora_rank,
                   qk_nope_head_dim=m.qk_nope_head_dim, qk_rope_head_dim=m.qk_rope_head_dim,
                   v_head_dim=m.v_head_dim)
    return out


def tp_problem(model: Any, t: int) -> str | None:
    """What a tensor-parallel degree ``t`` must be for ``model`` (None when it is fine).

    Shared by the checks of a fixed configuration and the pruning of search domains.
    """
    kv = model.kv_heads or model.heads
    if model.heads % t:
        return f"expected a divisor of model.heads = {model.heads}"
    if kv % t and t % kv:
        return f"expected a divisor or multiple of model.kv_heads = {kv}"
    if model.ffn % t:
        return f"expected a divisor of model.ffn = {model.ffn}"
    return None


def _positive_integer(value: Any) -> bool:
    """An integer (Python or numpy, not a bool) of at least 1."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value >= 1)


def decision_codes(config: dict[str, Any]) -> dict[str, float]:
    """User-facing configuration -> numeric decision codes."""
    out = {k: float(v) for k, v in config.items()
           if k not in ("recompute", "sequence_parallel", "placement")}
    out["recompute"] = float(RECOMPUTE_MODES.index(config["recompute"]))
    out["placement"] = float(PLACEMENTS.index(config["placement"]))
    out["sequence_parallel"] = float(bool(config["sequence_parallel"]))
    out.setdefault("ep", 1.0)  # dense configurations may leave expert parallelism out
    return out
