"""Dense transformer training: iteration time, throughput, utilisation, memory and cost.

Composes :mod:`transformer` (what each kernel does), :mod:`compute` (how long it takes),
:mod:`parallelism` and :mod:`collectives` (what crosses the network and when) and
:mod:`memory` (what stays resident) into the named quantities of one training job.

Iteration time (Narayanan et al., SC'21, Sec. 2.2 and 3):

    T = (m + (p-1)/v) * T_stage + T_dp,exposed + T_embedding_sync + T_optimizer

with ``m = B/(d b)`` micro-batches, ``T_stage`` the time of one micro-batch on the slowest
(last) stage -- its ``L/p`` layers forward, backward and recomputed, their tensor- and
context-parallel communication, the output layer and the pipeline sends -- and the optimizer
step streaming its states through HBM once.
"""

from __future__ import annotations

import sympy as sp

from . import compute, memory, parallelism, transformer
from .collectives import Link, ring_all_reduce
from .core import Decision, Formulation, ParameterSet, indicator, register
from .specs import (
    PLACEMENTS,
    RECOMPUTE_MODES,
    HardwareSpec,
    ModelSpec,
    NetworkSpec,
    TrainingSpec,
)
from .topology import Fabric

#: Passes of model FLOPs per step: forward plus a backward of twice its cost
#: (Kaplan et al. 2020, Sec. 2.1; the "6 N" rule).
MODEL_PASSES = 3
#: FLOP per TFLOP, for the TFLOP/s figures papers report.
TERA = 10**12

DECISIONS: dict[str, str] = {
    "tp": "tensor-parallel ranks",
    "pp": "pipeline stages",
    "dp": "data-parallel replicas",
    "cp": "context-parallel ranks",
    "micro_batch": "sequences per micro-batch",
    "virtual_stages": "model chunks per pipeline stage (interleaved schedule when > 1)",
    "sequence_parallel": "sequence parallelism on (1) or off (0)",
    "recompute": "activation recomputation: none, selective or full",
    "zero": "ZeRO stage (1: optimizer states sharded over dp, 2: + gradients, 3: + weights)",
    "placement": "order of the groups on consecutive ranks, innermost first",
}
LABELS: dict[str, tuple[str, ...]] = {
    "recompute": RECOMPUTE_MODES,
    "sequence_parallel": ("false", "true"),
    "placement": PLACEMENTS,
}
LATEX: dict[str, str] = {
    "tp": "t", "pp": "p", "dp": "d", "cp": "c", "micro_batch": "b", "virtual_stages": "v",
    "sequence_parallel": "q", "recompute": "r", "zero": "z", "placement": "o",
}

#: Named terms that add up to the iteration time, in report order.
TIME_TERMS: tuple[str, ...] = (
    "forward_compute",
    "backward_compute",
    "recompute_compute",
    "tp_communication",
    "cp_communication",
    "pp_communication",
    "pipeline_bubble",
    "dp_communication",
    "embedding_sync",
    "optimizer_step",
)
MEMORY_TERMS: tuple[str, ...] = ("weights", "gradients", "optimizer_states", "activations")


def _parameters(model: ModelSpec, hw: HardwareSpec, net: NetworkSpec,
                job: TrainingSpec) -> tuple[ParameterSet, dict[str, sp.Expr]]:
    ps = ParameterSet()
    add = ps.add
    sym = {
        "L": add("layers", model.layers, "1", "decoder layers", latex="L"),
        "h": add("hidden", model.hidden, "1", "hidden size", latex="h"),
        "a": add("heads", model.heads, "1", "attention heads", latex="a"),
        "ffn": add("ffn", model.ffn, "1", "MLP width", latex="f"),
        "V": add("vocab", model.vocab, "1", "vocabulary size", latex="V"),
        "s": add("seq_len", model.seq_len, "1", "sequence length", latex="s"),
        "P": add("peak_flops", hw.peak_flops, "FLOP/s", "dense peak FLOP rate", latex="F_peak"),
        "eta_mm": add("matmul_efficiency", hw.matmul_efficiency, "1",
                      "achievable fraction of peak for large GEMMs", latex="eta_mm"),
        "B_hbm": add("hbm_bandwidth", hw.hbm_bandwidth, "B/s", "HBM bandwidth", latex="B_hbm"),
        "eta_mem": add("memory_efficiency", hw.memory_efficiency, "1",
                       "achievable fraction of HBM bandwidth", latex="eta_mem"),
        "sms": add("multiprocessors", hw.multiprocessors, "1", "streaming multiprocessors",
                   latex="n_SM"),
        "tile_m": add("gemm_tile_m", hw.gemm_tile_m, "1", "GEMM output tile rows", latex="T_m"),
        "tile_n": add("gemm_tile_n", hw.gemm_tile_n, "1", "GEMM output tile columns",
                      latex="T_n"),
        "k_oh": add("kernel_overhead", hw.kernel_overhead, "s", "fixed time per kernel",
                    latex="tau_k"),
        "N_up": add("scale_up_size", net.scale_up_size, "1", "GPUs per scale-up domain",
                    latex="N_up"),
        "B_up": add("scale_up_bandwidth", net.scale_up.bandwidth, "B/s",
                    "scale-up bandwidth per GPU, one direction", latex="B_up"),
        "a_up": add("scale_up_latency", net.scale_up.latency, "s", "scale-up step latency",
                    latex="alpha_up"),
        "eta_up": add("scale_up_efficiency", net.scale_up.efficiency, "1",
                      "collective bus bandwidth over link bandwidth, scale-up", latex="eta_up"),
        "red": add("scale_up_reduction", 1.0 if net.scale_up_reduction else 0.0, "1",
                   "1 when the scale-up switches reduce (NVLink SHARP), else 0",
                   latex="sigma_red"),
        "B_red": add("scale_up_reduction_bandwidth", (net.scale_up_reduction or net.scale_up
                                                       ).bandwidth, "B/s",
                     "all-reduce bandwidth per rank with switch-side reduction",
                     latex="B_red"),
        "a_red": add("scale_up_reduction_latency", (net.scale_up_reduction or net.scale_up
                                                     ).latency, "s",
                     "latency of one switch-side reduce or multicast phase", latex="alpha_red"),
        "unit": add("scale_out_unit", net.fabric.unit, "1",
                    "GPUs that keep the full scale-out bandwidth among themselves",
                    latex="N_unit"),
        "taper": add("scale_out_taper", net.fabric.taper, "1",
                     "scale-out bandwidth fraction beyond one unit", latex="tau_out"),
        "hop": add("scale_out_hop_latency", net.fabric.hop_latency, "s",
                   "latency per switch hop", latex="alpha_hop"),
        "xhops": add("scale_out_extra_hops", net.fabric.extra_hops, "1",
                     "switch hops added when leaving a unit", latex="h_x"),
        "B_out": add("scale_out_bandwidth", net.scale_out.bandwidth, "B/s",
                     "scale-out bandwidth per GPU, one direction", latex="B_out"),
        "a_out": add("scale_out_latency", net.scale_out.latency, "s", "scale-out step latency",
                     latex="alpha_out"),
        "eta_out": add("scale_out_efficiency", net.scale_out.efficiency, "1",
                       "collective bus bandwidth over link bandwidth, scale-out",
                       latex="eta_out"),
        "GB": add("global_batch", job.global_batch, "1", "sequences per iteration", latex="B"),
        "D": add("tokens", job.tokens, "1", "training tokens", latex="D"),
        "e": add("bytes_per_element", job.bytes_per_element, "B", "bytes per activation",
                 latex="e"),
        "mask": add("dropout_mask_bytes", job.dropout_mask_bytes, "B",
                    "bytes per dropout-mask element", latex="e_mask"),
        "g_red": add("grad_reduce_bytes", job.grad_reduce_bytes, "B",
                     "bytes per gradient in the data-parallel reduction", latex="e_grad"),
        "w_b": add("weight_bytes", job.weight_bytes, "B", "bytes per weight", latex="e_w"),
        "g_b": add("grad_bytes", job.grad_bytes, "B", "bytes per stored gradient", latex="e_g"),
        "o_b": add("optimizer_state_bytes", job.optimizer_state_bytes, "B",
                   "optimizer-state bytes per parameter", latex="e_o"),
        "o_step": add("optimizer_step_bytes", job.optimizer_step_bytes, "B",
                      "HBM bytes moved per parameter by one optimizer step", latex="e_step"),
        "price": add("gpu_hour_price", job.gpu_hour_price, "USD/s", "price per GPU-second",
                     latex="c_gpu"),
    }
    sym["kv"] = (sym["a"] if model.kv_heads == model.heads else
                 add("kv_heads", model.kv_heads, "1", "key/value heads", latex="a_kv"))
    return ps, sym


def parameter_values(model: ModelSpec, hardware: HardwareSpec, network: NetworkSpec,
                     job: TrainingSpec) -> dict[str, float]:
    """Values of the training formulation's parameters for one system, without building it
    (a search over several hardware or network entries swaps these in)."""
    ps, _ = _parameters(model, hardware, network, job)
    return {name: p.value for name, p in ps.parameters.items()}


def _decisions() -> dict[str, Decision]:
    out = {}
    for name, doc in DECISIONS.items():
        # Categorical codes and the ZeRO stage may be 0; sizes are positive integers.
        if name in LABELS or name == "zero":  # (placement is categorical: in LABELS)
            symbol = sp.Symbol(LATEX[name], integer=True, nonnegative=True)
        else:
            symbol = sp.Symbol(LATEX[name], integer=True, positive=True)
        out[name] = Decision(symbol, doc, LABELS.get(name, ()))
    return out


@register("training")
def build_training(model: ModelSpec, hardware: HardwareSpec, network: NetworkSpec,
                   job: TrainingSpec, pipeline_filled: bool = False) -> Formulation:
    """Build every quantity of a dense-transformer training job as a sympy expression.

    With ``pipeline_filled`` the first stage is taken to hold ``p`` micro-batches in flight,
    which is exact whenever there are at least as many micro-batches as stages -- a rule the
    search imposes -- and keeps the memory expression separable for the compiled form.
    """
    ps, p_ = _parameters(model, hardware, network, job)
    dec = _decisions()
    t, pp, d, c = (dec[k].symbol for k in ("tp", "pp", "dp", "cp"))
    b, v = dec["micro_batch"].symbol, dec["virtual_stages"].symbol
    q, r, z, o = (dec[k].symbol for k in ("sequence_parallel", "recompute", "zero",
                                          "placement"))
    selective, full = indicator(r, 1), indicator(r, 2)
    sigma = 1 + q * (1 / t - 1)  # sequence-parallel shard factor: 1, or 1/t when q = 1

    dims = transformer.Dims(
        b=b, s=p_["s"], h=p_["h"], a=p_["a"], kv=p_["kv"], ffn=p_["ffn"], vocab=p_["V"], t=t,
        c=c, sigma=sigma, e=p_["e"], mask=p_["mask"] if model.dropout else sp.Integer(0),
        swiglu=model.ffn_kind == "swiglu", dropout=model.dropout,
        gqa=model.kv_heads != model.heads,
    )
    hw = compute.ComputeParams(p_["P"], p_["eta_mm"], p_["B_hbm"], p_["eta_mem"], p_["sms"],
                               p_["tile_m"], p_["tile_n"], p_["k_oh"])
    up = Link(p_["B_up"], p_["a_up"], p_["eta_up"])
    out = Link(p_["B_out"], p_["a_out"], p_["eta_out"])
    N_up = p_["N_up"]
    fabric = Fabric(p_["unit"], p_["taper"], p_["hop"], p_["xhops"])
    L = p_["L"]

    # -- kernels of one layer and of the output layer, per micro-batch ---------------------
    fwd = transformer.layer_forward(dims)
    bwd = transformer.layer_backward(dims)
    core_fwd = [op for op in fwd if op.region == "attention_core"]
    head_f, head_b = transformer.head_forward(dims), transformer.head_backward(dims)

    t_fwd = compute.ops_time(fwd, hw)
    t_bwd = compute.ops_time(bwd, hw)
    t_core = compute.ops_time(core_fwd, hw)
    t_head = compute.ops_time(head_f, hw) + compute.ops_time(head_b, hw)
    t_recompute = full * t_fwd + selective * t_core

    layer_activation_bytes = dims.tokens * p_["h"] * p_["e"]
    # Each tensor-parallel all-reduce takes the fastest algorithm the group has, as NCCL's
    # tuner does (textbook alpha-beta forms of formulations.algorithms).
    tp_algorithms = parallelism.tensor_parallel_all_reduces(
        layer_activation_bytes, t, up, Link(p_["B_red"], p_["a_red"], sp.Integer(1)),
        p_["red"])
    chosen = (sp.Min(*tp_algorithms.values(), evaluate=False) if job.tp_algorithm == "auto"
              else tp_algorithms[job.tp_algorithm])
    t_tp = parallelism.TP_ALL_REDUCES_PER_PASS * chosen
    kv_chunk = dims.tokens * 2 * dims.local_kv_heads * dims.head_dim * p_["e"]
    t_cp_raw = parallelism.context_parallel_time(kv_chunk, c, t, N_up, up, out, fabric)
    # Ring attention overlaps each K/V pass with the attention kernels of the previous chunk.
    t_cp_fwd = sp.Max(0, t_cp_raw - t_core)
    t_cp = t_cp_fwd * (1 + 2 + full + selective)  # forward, backward (dK and dV), recompute
    # Written as (no sends when p = 1) x (sends per micro-batch) so the compiled form keeps
    # the pipeline depth out of the table over the placement of the stages.
    # Placement: with data parallelism outside the pipeline (Megatron's order) neighbouring
    # stages are t*c*d ranks apart; with the pipeline inside, t*c apart and the data-parallel
    # replicas t*c*p apart.
    dp_inner, pp_inner = indicator(o, 0), indicator(o, 1)
    t_pp = (1 - indicator(pp, 1)) * (
        dp_inner * parallelism.pipeline_p2p_time(layer_activation_bytes, t, v, t * c * d,
                                                 N_up, up, out, fabric)
        + pp_inner * parallelism.pipeline_p2p_time(layer_activation_bytes, t, v, t * c,
                                                   N_up, up, out, fabric))

    layers_per_stage = L / pp
    m = p_["GB"] / (d * b)
    per_layer_comm = t_tp * (1 + 1 + full)  # forward, backward, recomputed forward
    stage_compute = layers_per_stage * (t_fwd + t_bwd + t_recompute) + t_head
    stage = stage_compute + layers_per_stage * (per_layer_comm + t_cp) + t_pp

    # -- parameters, gradient reduction and optimizer ----------------------------------------
    layer_params = transformer.layer_parameters(dims, model.biases)
    embed_params = transformer.embedding_parameters(dims, model.tied_embeddings,
                                                    model.learned_positions)
    total_params = L * layer_params + embed_params
    # The first stage holds the input embedding (vocabulary split over TP); positions are
    # replicated. Its parameter count bounds memory and the optimizer step.
    stage_params = layers_per_stage * layer_params / t + p_["V"] * p_["h"] / t + (
        p_["s"] * p_["h"] if model.learned_positions else 0)
    if not model.tied_embeddings:
        # Untied output layer sits on the last stage; with one stage it adds to the first.
        stage_params += sp.Piecewise((p_["V"] * p_["h"] / t, sp.Eq(pp, 1)), (0, True))

    # ZeRO replaces the all-reduce by reduce-scatter + all-gather of the same volume.
    def dp_all_reduce(size: sp.Expr) -> sp.Expr:
        """All-reduce over the data-parallel group where the placement puts it."""
        return (dp_inner * parallelism.group_all_reduce(size, d, t * c, N_up, up, out, fabric)
                + pp_inner * parallelism.group_all_reduce(size, d, t * c * pp, N_up, up, out,
                                                          fabric))

    t_dp_full = dp_all_reduce(stage_params * p_["g_red"])
    t_bwd_last = layers_per_stage * (t_bwd + t_recompute + per_layer_comm / 2)
    t_dp = sp.Max(0, t_dp_full - t_bwd_last) if job.dp_overlap else t_dp_full
    # ZeRO-3 gathers the stage's weights before each micro-batch's forward and backward pass
    # (Rajbhandari et al. 2020, Sec. 7.2.2: 1.5x the data-parallel volume per step without
    # gradient accumulation); an all-gather moves half of an all-reduce's volume.
    t_zero3 = indicator(z, 3) * m * dp_all_reduce(stage_params * p_["w_b"])
    t_embed_sync = sp.Integer(0)
    if model.tied_embeddings:
        # First and last stage all-reduce the shared word-embedding gradient.
        t_embed_sync = sp.Piecewise((0, sp.Eq(pp, 1)), (ring_all_reduce(
            p_["V"] * p_["h"] / t * p_["g_red"], 2, out), True))
    optimizer_params = memory.sharded(stage_params, d, z, 1)
    t_opt = optimizer_params * p_["o_step"] / (p_["B_hbm"] * p_["eta_mem"])

    # -- the iteration and its breakdown ------------------------------------------------------
    # The output layer runs on the last stage, which is the slowest and paces the pipeline.
    terms = {
        "forward_compute": m * (layers_per_stage * t_fwd + compute.ops_time(head_f, hw)),
        "backward_compute": m * (layers_per_stage * t_bwd + compute.ops_time(head_b, hw)),
        "recompute_compute": m * layers_per_stage * t_recompute,
        "tp_communication": m * layers_per_stage * per_layer_comm,
        "cp_communication": m * layers_per_stage * t_cp,
        "pp_communication": m * t_pp,
        "pipeline_bubble": parallelism.bubble_slots(pp, v) * stage,
        "dp_communication": t_dp + t_zero3,
        "embedding_sync": t_embed_sync,
        "optimizer_step": t_opt,
    }
    iteration = sp.Add(*terms.values())

    # -- FLOPs, throughput, utilisation -------------------------------------------------------
    layer_fwd_flops = compute.ops_flops(fwd)
    head_fwd_flops = compute.ops_flops(head_f)
    core_flops = compute.ops_flops(core_fwd)
    # Averaged over stages: every stage runs L/p layers, the output layer is on one of p.
    model_flops_gpu = m * MODEL_PASSES * (layers_per_stage * layer_fwd_flops
                                          + head_fwd_flops / pp)
    recompute_flops_gpu = m * layers_per_stage * (full * layer_fwd_flops + selective * core_flops)
    hardware_flops_gpu = model_flops_gpu + recompute_flops_gpu
    gpus = t * pp * d * c
    tokens_per_iteration = p_["GB"] * p_["s"]
    tokens_per_s = tokens_per_iteration / iteration
    time_to_train = p_["D"] / tokens_per_s

    # -- memory on the first stage ----------------------------------------------------------
    acts = memory.activation_terms(dims)
    act_layer = memory.layer_activation_bytes(acts, selective, full)
    # The embedding output's dropout mask is kept too (Korthikanti et al. Sec. 4.3).
    embed_act = dims.tokens * p_["h"] * sigma * dims.mask
    in_flight = memory.in_flight_layers(L, pp, v, pp if pipeline_filled else m)
    activations = in_flight * act_layer + in_flight / layers_per_stage * embed_act
    mem_terms = {
        "weights": memory.sharded(stage_params, d, z, 3) * p_["w_b"],
        "gradients": memory.sharded(stage_params, d, z, 2) * p_["g_b"],
        "optimizer_states": optimizer_params * p_["o_b"],
        "activations": activations,
    }
    memory_per_gpu = sp.Add(*mem_terms.values())
    model_states = mem_terms["weights"] + mem_terms["gradients"] + mem_terms["optimizer_states"]
    # The same states averaged over the pipeline stages (the first stage also holds the
    # embedding, so it is the largest); Korthikanti et al.'s Fig. 1 plots this average.
    mean_params = total_params / (t * pp)
    model_states_average = (memory.sharded(mean_params, d, z, 3) * p_["w_b"]
                            + memory.sharded(mean_params, d, z, 2) * p_["g_b"]
                            + memory.sharded(mean_params, d, z, 1) * p_["o_b"])

    expressions: dict[str, sp.Expr] = {
        **terms,
        "iteration_time": iteration,
        "per_layer_forward_time": t_fwd + t_tp + t_cp_fwd,
        "per_layer_backward_time": t_bwd + t_recompute + t_tp * (1 + full) + t_cp - t_cp_fwd,
        **{f"tp_all_reduce_{name}": value for name, value in tp_algorithms.items()},
        "scale_up_reduction_available": p_["red"],
        "micro_batches": m,
        "gpus": gpus,
        "tokens_per_s": tokens_per_s,
        "model_flops_per_gpu": model_flops_gpu,
        "hardware_flops_per_gpu": hardware_flops_gpu,
        "model_tflops_per_gpu": model_flops_gpu / iteration / TERA,
        "hardware_tflops_per_gpu": hardware_flops_gpu / iteration / TERA,
        "mfu": model_flops_gpu / (iteration * p_["P"]),
        "hfu": hardware_flops_gpu / (iteration * p_["P"]),
        "parameters": total_params,
        "stage_parameters": stage_params,
        **mem_terms,
        "model_states": model_states,
        "model_states_average": model_states_average,
        "memory_per_gpu": memory_per_gpu,
        "time_to_train": time_to_train,
        "cost": time_to_train * gpus * p_["price"],
    }
    units = {name: "s" for name in (*TIME_TERMS, "iteration_time", "per_layer_forward_time",
                                    "per_layer_backward_time", "time_to_train")}
    units.update({name: "B" for name in (*MEMORY_TERMS, "memory_per_gpu", "model_states",
                                                   "model_states_average")})
    units.update({f"tp_all_reduce_{name}": "s" for name in tp_algorithms})
    units["scale_up_reduction_available"] = "1"
    units.update({"micro_batches": "1", "gpus": "1", "tokens_per_s": "1/s",
                  "model_flops_per_gpu": "FLOP", "hardware_flops_per_gpu": "FLOP",
                  "model_tflops_per_gpu": "TFLOP/s", "hardware_tflops_per_gpu": "TFLOP/s",
                  "mfu": "1", "hfu": "1", "parameters": "1", "stage_parameters": "1",
                  "cost": "USD"})
    docs = {
        "iteration_time": "seconds per optimizer step",
        "per_layer_forward_time": "one layer's forward pass for one micro-batch, with TP comm",
        "per_layer_backward_time": "one layer's backward pass incl. recomputation and TP comm",
        "mfu": "model FLOPs utilisation (no recomputation counted)",
        "hfu": "hardware FLOPs utilisation (recomputation counted)",
        "memory_per_gpu": "peak memory on the first pipeline stage",
        "time_to_train": "wall time to train on the token budget",
        "cost": "GPU-hours times the price per GPU-hour",
    }
    return Formulation(
        name="training",
        expressions=expressions,
        units=units,
        docs=docs,
        decisions=dec,
        parameters=ps.parameters,
        groups={"iteration_time": TIME_TERMS, "memory_per_gpu": MEMORY_TERMS},
    )

