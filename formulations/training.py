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

from dataclasses import replace

import sympy as sp

from . import (
    attention,
    compute,
    memory,
    mla,
    moe,
    parallelism,
    pipeline_layout,
    precision,
    schedules,
    transformer,
)
from .collectives import Link, ring_all_reduce
from .core import Decision, Formulation, ParameterSet, exposed, indicator, register
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
#: Seconds per hour, for GPU-hours.
SECONDS_PER_HOUR = 3600
#: A multi-token prediction module projects the concatenation of two hidden vectors (the
#: previous depth's representation and the next token's embedding) back to one (DeepSeek-V3,
#: Sec. 2.2, the matrix M_k of d x 2d).
MTP_PROJECTION_INPUTS = 2

DECISIONS: dict[str, str] = {
    "tp": "tensor-parallel ranks",
    "pp": "pipeline stages",
    "dp": "data-parallel replicas",
    "cp": "context-parallel ranks",
    "ep": "expert-parallel ranks (formulations.moe; 1 for a dense model)",
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
    "tp": "t", "pp": "p", "dp": "d", "cp": "c", "ep": "ep", "micro_batch": "b",
    "virtual_stages": "v",
    "sequence_parallel": "q", "recompute": "r", "zero": "z", "placement": "o",
}

#: Named terms that add up to the iteration time, in report order.
TIME_TERMS: tuple[str, ...] = (
    "forward_compute",
    "backward_compute",
    "recompute_compute",
    "tp_communication",
    "cp_communication",
    "ep_communication",
    "pp_communication",
    "pipeline_bubble",
    "dp_communication",
    "embedding_sync",
    "optimizer_step",
    "framework_overhead",
)
MEMORY_TERMS: tuple[str, ...] = ("weights", "gradients", "optimizer_states", "activations",
                                 "logits_and_loss", "recompute_working_set",
                                 "framework_reserve")


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
    if model.head_dim:
        sym["hd"] = add("head_dim", model.head_dim, "1", "width of one attention head",
                        latex="d_head")
    sym.update(_framework_parameters(job, ps))
    if job.fp8_recipe != "none":
        sym["P8"] = add("peak_flops_fp8", hw.peak_flops_fp8, "FLOP/s", "dense FP8 peak",
                        latex="F_peak8")
        sym["eta8"] = add("matmul_efficiency_fp8", hw.matmul_efficiency_fp8, "1",
                          f"achievable fraction of the FP8 peak, {job.fp8_recipe} scaling",
                          latex="eta_mm8")
    sym["w_oh"] = add("gemm_wave_overhead", hw.gemm_wave_overhead, "s",
                      "fixed time per wave of GEMM output tiles", latex="tau_w")
    # Always a parameter, so that hardware entries with and without narrow tiles share one
    # expression (a search over several entries swaps parameter values only); an entry without
    # a granule takes the full tile height, which makes the narrow tile the full one.
    sym["g_m"] = add("gemm_row_granule", hw.gemm_row_granule or hw.gemm_tile_m, "1",
                     "rows of the narrow tiles of GEMMs with fewer rows than a tile",
                     latex="g_m")
    if job.attention == "flash":
        sym.update(_flash_parameters(hw, ps))
        sym["l2"] = add("l2_cache", hw.l2_cache, "B", "L2 cache", latex="M_L2")
    if model.mtp_modules:
        sym["mtp"] = add("mtp_modules", model.mtp_modules, "1",
                         "multi-token prediction modules", latex="D_mtp")
    if model.moe:
        sym.update(_moe_parameters(model, job, ps))
    if model.mla:
        sym.update(_mla_parameters(model, ps))
    return ps, sym


def _framework_parameters(job: TrainingSpec, ps: ParameterSet) -> dict[str, sp.Expr]:
    """The framework profile's memory reserve and fixed costs, and the ZeRO-3 gather format."""
    add = ps.add
    return {
        "reserve": add("memory_reserve", job.memory_reserve, "B",
                       "CUDA context, communication buffers and workspaces", latex="M_res"),
        "frag": add("memory_fragmentation", job.memory_fragmentation, "1",
                    "allocator fragmentation over the bytes a step allocates", latex="phi_frag"),
        "step_oh": add("step_overhead", job.step_overhead, "s",
                       "framework's fixed time per optimizer step", latex="tau_step"),
        "mb_oh": add("micro_batch_overhead", job.micro_batch_overhead, "s",
                     "framework's fixed time per micro-batch and model chunk", latex="tau_mb"),
        "gather_b": add("gather_bytes", job.gather_bytes, "B",
                        "bytes per weight in ZeRO-3 all-gathers", latex="e_gather"),
    }


def _flash_parameters(hw: HardwareSpec, ps: ParameterSet) -> dict[str, sp.Expr]:
    """Rates of the FlashAttention kernels of the hardware's software stack."""
    add = ps.add
    return {
        "eta_fa_f": add("flash_forward_efficiency", hw.flash_forward_efficiency, "1",
                        f"fraction of peak of the {hw.flash_attention} forward kernel",
                        latex="eta_fa_fwd"),
        "eta_fa_b": add("flash_backward_efficiency", hw.flash_backward_efficiency, "1",
                        f"fraction of peak of the {hw.flash_attention} backward kernel",
                        latex="eta_fa_bwd"),
        "fa_tile_f": add("flash_forward_tile_overhead", hw.flash_forward_tile_overhead, "s",
                         "fixed time per wave of FlashAttention forward tiles",
                         latex="tau_fa_fwd"),
        "fa_tile_b": add("flash_backward_tile_overhead", hw.flash_backward_tile_overhead,
                         "s", "fixed time per wave of FlashAttention backward tiles",
                         latex="tau_fa_bwd"),
    }


def _weight_gradients(ops: list[transformer.Op]) -> list[transformer.Op]:
    """The weight-gradient GEMMs of a backward pass (what zero-bubble schedules defer)."""
    return [op for op in ops if op.kind == "gemm" and op.name.endswith(".wgrad")]


def attention_head_dims(model: ModelSpec) -> tuple[int, int]:
    """Head dims of Q.K^T and of V: ``h/a``, or multi-head latent attention's."""
    if model.mla:
        return model.qk_nope_head_dim + model.qk_rope_head_dim, model.v_head_dim
    width = model.head_dim or model.hidden // model.heads
    return width, width


def _moe_parameters(model: ModelSpec, job: TrainingSpec, ps: ParameterSet
                    ) -> dict[str, sp.Expr]:
    """Parameter symbols of a mixture-of-experts model (formulations.moe)."""
    add = ps.add
    out = {
        "E": add("experts", model.experts, "1", "routed experts per MoE layer", latex="N_E"),
        "E_sh": add("shared_experts", model.shared_experts, "1",
                    "shared experts per MoE layer", latex="N_sh"),
        "k": add("top_k", model.top_k, "1", "routed experts per token", latex="k"),
        "f_e": add("expert_ffn", model.expert_ffn, "1", "width of one expert", latex="f_e"),
        "L_moe": add("moe_layers", model.moe_layers, "1", "MoE layers", latex="L_moe"),
        "moe_every": add("moe_every", model.moe_every, "1",
                         "every moe_every-th layer after the dense ones is MoE", latex="k_moe"),
        "imb": add("load_imbalance", model.load_imbalance, "1",
                   "busiest expert-parallel rank's tokens over the even share",
                   latex="lambda_imb"),
        "etp": add("expert_tp", job.expert_tp, "1", "expert tensor-parallel ranks",
                   latex="t_e"),
    }
    if model.route_domains > 0:
        out["route"] = add("route_domains", model.route_domains, "1",
                           "scale-up domains one token may be routed to", latex="M_route")
    if model.capacity_factor > 0:
        out["cf"] = add("capacity_factor", model.capacity_factor, "1",
                        "expert capacity over the even share (tokens beyond are dropped)",
                        latex="C_f")
    return out


def _mla_parameters(model: ModelSpec, ps: ParameterSet) -> dict[str, sp.Expr]:
    """Parameter symbols of multi-head latent attention (formulations.mla)."""
    add = ps.add
    out = {
        "kv_lora": add("kv_lora_rank", model.kv_lora_rank, "1", "KV latent width",
                       latex="d_c"),
        "nope": add("qk_nope_head_dim", model.qk_nope_head_dim, "1",
                    "query/key head dimension without RoPE", latex="d_nope"),
        "rope": add("qk_rope_head_dim", model.qk_rope_head_dim, "1",
                    "decoupled RoPE query/key head dimension", latex="d_rope"),
        "v_dim": add("v_head_dim", model.v_head_dim, "1", "value head dimension",
                     latex="d_v"),
    }
    if model.q_lora_rank:
        out["q_lora"] = add("q_lora_rank", model.q_lora_rank, "1", "query latent width",
                            latex="d_cq")
    return out


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
        gqa=model.kv_heads != model.heads, hd=p_.get("hd"),
        # Multi-head latent attention ropes only its small decoupled part (formulations.mla).
        rope=not model.learned_positions and not model.mla,
    )
    latent = None
    if model.mla:
        latent = mla.LatentDims(p_.get("q_lora"), p_["kv_lora"], p_["nope"], p_["rope"],
                                p_["v_dim"])
        dims = replace(dims, qk_dim=latent.qk, v_dim=latent.v)
    flash = job.attention == "flash"
    rates = (attention.FlashRates(p_["P"], p_["eta_fa_f"], p_["eta_fa_b"], p_["B_hbm"],
                                  p_["eta_mem"], p_["sms"], p_["fa_tile_f"],
                                  p_["fa_tile_b"], p_["k_oh"], p_["l2"])
             if flash else None)
    hw = compute.ComputeParams(p_["P"], p_["eta_mm"], p_["B_hbm"], p_["eta_mem"], p_["sms"],
                               p_["tile_m"], p_["tile_n"], p_["k_oh"], p_["w_oh"], rates,
                               row_granule=p_.get("g_m"), fp8_peak_flops=p_.get("P8"),
                               fp8_matmul_efficiency=p_.get("eta8"))
    up = Link(p_["B_up"], p_["a_up"], p_["eta_up"])
    out = Link(p_["B_out"], p_["a_out"], p_["eta_out"])
    N_up = p_["N_up"]
    fabric = Fabric(p_["unit"], p_["taper"], p_["hop"], p_["xhops"])
    L = p_["L"]

    # -- kernels of one layer and of the output layer, per micro-batch ---------------------
    fwd = transformer.layer_forward(dims)
    bwd = transformer.layer_backward(dims)
    if latent is not None:
        fwd = mla.replace_projections(fwd, dims, latent, backward=False)
        bwd = mla.replace_projections(bwd, dims, latent, backward=True)
    if flash:
        # Block sizes from the SRAM per multiprocessor (Dao et al. 2022, Alg. 1).
        blocks = attention.block_sizes(hardware.shared_memory, *attention_head_dims(model),
                                       job.bytes_per_element)
        fwd = attention.use_flash(fwd, dims, blocks, backward=False)
        bwd = attention.use_flash(bwd, dims, blocks, backward=True)
    fp8 = job.fp8_recipe != "none"
    # A framework that keeps one FP8 copy of each weight transposes it before every dgrad.
    transposed = job.fp8_weight_copies < precision.FP8_COPIES
    if fp8:
        fwd = precision.quantised(fwd, p_["e"], job.fp8_recipe)
        bwd = precision.quantised(bwd, p_["e"], job.fp8_recipe, transposed)
    core_fwd = [op for op in fwd if op.region == "attention_core"]
    head_f, head_b = transformer.head_forward(dims), transformer.head_backward(dims)

    t_fwd = compute.ops_time(fwd, hw)
    t_bwd = compute.ops_time(bwd, hw)
    t_core = compute.ops_time(core_fwd, hw)
    t_head = compute.ops_time(head_f, hw) + compute.ops_time(head_b, hw)
    t_head_fwd = compute.ops_time(head_f, hw)
    t_wgrad = compute.ops_time(_weight_gradients(bwd), hw)
    # Linear GEMMs a tensor-parallel collective can overlap (Transformer Engine userbuffers
    # pipeline the all-gather into the next GEMM and the reduce-scatter out of the previous).
    t_linear_fwd = compute.ops_time([op for op in fwd if op.kind == "gemm"
                                     and op.region == "layer"], hw)
    t_linear_bwd = compute.ops_time([op for op in bwd if op.kind == "gemm"
                                     and op.region == "layer"
                                     and not op.name.endswith(".wgrad")], hw)
    # Selective recomputation reruns its modules' forward kernels: the attention core and, in
    # MLA, the up-projections by default; DeepSeek-V3 the norms, the up-projections and the
    # experts' SwiGLU instead (Sec. 3.2.3, 3.3.4; formulations.memory.RECOMPUTE_MODULES).
    modules = job.recompute_modules
    recomputed_fwd = memory.recompute_ops(fwd, modules)
    t_recompute = full * t_fwd + selective * compute.ops_time(recomputed_fwd, hw)

    layer_activation_bytes = dims.tokens * p_["h"] * p_["e"]
    # Each tensor-parallel all-reduce takes the fastest algorithm the group has, as NCCL's
    # tuner does (textbook alpha-beta forms of formulations.algorithms).
    tp_algorithms = parallelism.tensor_parallel_all_reduces(
        layer_activation_bytes, t, up, Link(p_["B_red"], p_["a_red"], sp.Integer(1)),
        p_["red"])
    chosen = (sp.Min(*tp_algorithms.values(), evaluate=False) if job.tp_algorithm == "auto"
              else tp_algorithms[job.tp_algorithm])
    t_tp = parallelism.TP_ALL_REDUCES_PER_PASS * chosen
    t_tp_fwd_exposed, t_tp_bwd_exposed = t_tp, t_tp
    if job.tp_overlap:
        t_tp_fwd_exposed = exposed(t_tp - t_linear_fwd)
        t_tp_bwd_exposed = exposed(t_tp - t_linear_bwd)
    kv_chunk = dims.tokens * 2 * dims.local_kv_heads * dims.head_dim * p_["e"]
    t_cp_raw = parallelism.context_parallel_time(kv_chunk, c, t, N_up, up, out, fabric)
    # Ring attention overlaps each K/V pass with the attention kernels of the previous chunk.
    if job.cp_algorithm == "ring":
        t_cp_fwd = exposed(t_cp_raw - t_core)
        t_cp = t_cp_fwd * (1 + 2 + full + selective)  # forward, backward (dK, dV), recompute
    elif job.cp_algorithm == "all_gather":
        # K and V gathered before the attention kernel (the same (c-1) chunks as the ring,
        # none of it hidden); backward reduce-scatters dK and dV.
        t_cp_fwd = t_cp_raw
        t_cp = t_cp_fwd * (1 + 1 + full + selective)
    else:
        # Ulysses: Q, K, V to a head split before attention and the output back after, each
        # pass; the attention kernel then runs the whole sequence on heads / c.
        qkvo = dims.tokens * dims.head_dim * p_["e"] * (
            2 * dims.local_heads + 2 * dims.local_kv_heads)
        t_cp_fwd = parallelism.context_parallel_all_to_all(qkvo, c, t, N_up, up, out, fabric)
        t_cp = t_cp_fwd * (1 + 1 + full + selective)
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

    mean_layers = L / pp  # layers per stage, averaged over the stages (for FLOP counts)
    # With uneven stages the slowest holds ceil(L / (p v)) layers per model chunk; with a
    # layout, the fullest chunk's layers.
    layers_per_stage = v * sp.ceiling(L / (pp * v)) if job.uneven_stages else mean_layers
    if job.pipeline_layout is not None:
        layout_chunks = pipeline_layout.parse(job.pipeline_layout.text)
        layers_per_stage = v * pipeline_layout.max_chunk_layers(layout_chunks)
    m = p_["GB"] / (d * b)
    # forward, backward, recomputed forward
    per_layer_comm = t_tp_fwd_exposed * (1 + full) + t_tp_bwd_exposed

    # -- mixture of experts: the MoE layers of the stage that holds most of them --------------
    ep = dec["ep"].symbol
    moe_stage = sp.Integer(0)
    if model.moe:
        experts = moe.ExpertDims(p_["E"], p_["E_sh"], p_["k"], p_["f_e"], ep, p_["etp"],
                                 moe.load_factor(p_["imb"], p_.get("cf")), p_.get("route"))
        with_shared = model.shared_experts > 0
        moe_fwd_ops = moe.moe_forward(dims, experts, with_shared)
        moe_bwd_ops = moe.moe_backward(dims, experts, with_shared)
        if fp8:
            moe_fwd_ops = precision.quantised(moe_fwd_ops, p_["e"], job.fp8_recipe)
            moe_bwd_ops = precision.quantised(moe_bwd_ops, p_["e"], job.fp8_recipe, transposed)
        fwd_moe = moe.replace_mlp(fwd, moe_fwd_ops)
        bwd_moe = moe.replace_mlp(bwd, moe_bwd_ops)
        # Model FLOPs count every routed token once: no imbalance, no dropped tokens.
        model_fwd_moe = moe.replace_mlp(fwd, moe.moe_forward(
            dims, replace(experts, load=sp.Integer(1)), with_shared))
        t_fwd_moe = compute.ops_time(fwd_moe, hw)
        t_bwd_moe = compute.ops_time(bwd_moe, hw)
        t_recompute_moe = full * t_fwd_moe + selective * compute.ops_time(
            memory.recompute_ops(fwd_moe, modules), hw)
        t_wgrad_moe = compute.ops_time(_weight_gradients(bwd_moe), hw)
        # Expert-parallel ranks are expert_tp apart (etp innermost, Megatron-Core's order).
        t_ep_layer = moe.expert_parallel_time(dims, experts, p_["etp"], N_up, up, out,
                                              fabric) * (1 + 1 + full)
        moe_stage = moe.stage_moe_layers(layers_per_stage, p_["moe_every"], p_["L_moe"])
        dense_stage = moe.stage_dense_layers(layers_per_stage, p_["moe_every"], p_["L_moe"])
        # Expert data parallelism. It is below 1 only where ep * etp exceeds the stage's
        # ranks, which the structural rules exclude; the floor keeps the compiled tables over
        # those combinations non-negative.
        edp = sp.Max(1, t * c * d / (ep * p_["etp"]), evaluate=False)

    def per_stage(dense: sp.Expr, sparse: sp.Expr | None = None) -> sp.Expr:
        """A per-layer quantity summed over the stage's dense and MoE layers."""
        if not model.moe:
            return layers_per_stage * dense
        return dense_stage * dense + moe_stage * sparse

    stage_compute = per_stage(t_fwd + t_bwd + t_recompute,
                              (t_fwd_moe + t_bwd_moe + t_recompute_moe) if model.moe else None
                              ) + t_head
    if model.mtp_modules:
        # Each multi-token prediction module is one more layer (of the last layer's kind) and
        # one more pass of the shared output head, on the last stage (DeepSeek-V3 Sec. 2.2).
        last_layer = ((t_fwd_moe + t_bwd_moe + t_recompute_moe) if model.moe
                      else (t_fwd + t_bwd + t_recompute))
        stage_compute += p_["mtp"] * (last_layer + t_head)
    stage = stage_compute + layers_per_stage * (per_layer_comm + t_cp) + t_pp
    t_ep = sp.Integer(0)
    if model.moe:
        # With overlap (DualPipe: one micro-batch's dispatch and combine run during another's
        # attention and experts), only the all-to-all time beyond the layer's compute shows.
        t_ep = moe_stage * (exposed(t_ep_layer - (t_fwd_moe + t_bwd_moe + t_recompute_moe))
                            if job.ep_overlap else t_ep_layer)
    stage += t_ep
    # The stage's forward share, and the weight-gradient GEMMs zero-bubble schedules defer.
    forward_share = 1 / (2 + full)  # of the all-to-alls: forward, backward, recomputed forward
    stage_forward = (per_stage(t_fwd, t_fwd_moe if model.moe else None) + t_head_fwd
                     + layers_per_stage * (t_tp_fwd_exposed + t_cp_fwd) + t_pp / 2
                     + t_ep * forward_share)
    stage_weight_grad = per_stage(t_wgrad, t_wgrad_moe if model.moe else None)

    # -- parameters, gradient reduction and optimizer ----------------------------------------
    layer_params = transformer.layer_parameters(dims, model.biases)
    if latent is not None:
        layer_params += (mla.parameters(p_["h"], p_["a"], latent)
                         - transformer.attention_parameters(dims, model.biases))
    embed_params = transformer.embedding_parameters(dims, model.tied_embeddings,
                                                    model.learned_positions)
    total_params = L * layer_params + embed_params
    active_params = total_params
    expert_stage_params = sp.Integer(0)  # sharded over ep * etp, reduced over edp
    if model.moe:
        gate = dims.gate_factor
        # An MoE layer's non-expert weights: attention, norms, shared experts (tensor
        # parallel); the router is replicated on every rank.
        moe_dense = (layer_params - transformer.mlp_parameters(dims, model.biases)
                     + moe.shared_expert_parameters(p_["h"], experts, gate))
        router = moe.router_parameters(p_["h"], experts)
        routed = moe.expert_parameters(p_["h"], experts, gate)
        total_params += p_["L_moe"] * (moe_dense + router + routed - layer_params)
        active_params += p_["L_moe"] * (
            moe_dense - layer_params + moe.active_expert_parameters(p_["h"], experts, gate)
            - moe.shared_expert_parameters(p_["h"], experts, gate))
        expert_stage_params = moe_stage * routed / (ep * p_["etp"])
    # The first stage holds the input embedding (vocabulary split over TP); positions are
    # replicated. Its parameter count bounds memory and the optimizer step.
    # The embeddings, the output layer and the routers stay in BF16 in FP8 training
    # (formulations.precision): no FP8 copies of them.
    bf16_stage_params = p_["V"] * p_["h"] / t + (
        p_["s"] * p_["h"] if model.learned_positions else 0) + (
        moe_stage * router if model.moe else 0)
    if not model.tied_embeddings:
        # Untied output layer sits on the last stage; with one stage it adds to the first.
        bf16_stage_params += sp.Piecewise((p_["V"] * p_["h"] / t, sp.Eq(pp, 1)), (0, True))
    stage_params = per_stage(layer_params / t, moe_dense / t if model.moe else None
                             ) + bf16_stage_params

    # ZeRO replaces the all-reduce by reduce-scatter + all-gather of the same volume.
    def dp_all_reduce(size: sp.Expr) -> sp.Expr:
        """All-reduce over the data-parallel group where the placement puts it."""
        return (dp_inner * parallelism.group_all_reduce(size, d, t * c, N_up, up, out, fabric)
                + pp_inner * parallelism.group_all_reduce(size, d, t * c * pp, N_up, up, out,
                                                          fabric))

    def expert_all_reduce(size: sp.Expr) -> sp.Expr:
        """All-reduce over the expert-data-parallel group: members ep * etp ranks apart
        inside the stage (with the pipeline inside data parallelism, taken as ep * etp * p
        apart -- exact when ep * etp is a multiple of tp * cp)."""
        if not model.moe:
            return sp.Integer(0)
        span = ep * p_["etp"]
        return (dp_inner * parallelism.group_all_reduce(size, edp, span, N_up, up, out, fabric)
                + pp_inner * parallelism.group_all_reduce(size, edp, span * pp, N_up, up, out,
                                                          fabric))

    t_dp_full = (dp_all_reduce(stage_params * p_["g_red"])
                 + expert_all_reduce(expert_stage_params * p_["g_red"]))
    t_bwd_last = per_stage(t_bwd + t_recompute, (t_bwd_moe + t_recompute_moe + t_ep_layer / 2)
                           if model.moe else None) + layers_per_stage * per_layer_comm / 2
    t_dp_step = exposed(t_dp_full - t_bwd_last) if job.dp_overlap else t_dp_full
    # ZeRO-2 and ZeRO-3 as DeepSpeed and FSDP run them (Rajbhandari et al. 2020, Sec. 5 and
    # 7.2): the gradients are reduce-scattered after every micro-batch's backward -- a
    # reduce-scatter moves half of an all-reduce's volume -- and, ZeRO-2, the updated weights
    # all-gathered once per step; ZeRO-3 gathers each layer's weights before its forward and
    # again before its backward (1.5x the all-reduce volume per micro-batch), one collective
    # per layer, so its latency is paid per layer. With overlap, the gathers are prefetched
    # behind the previous layer's compute and the reduce-scatters run behind the next
    # layer's backward: what exceeds the micro-batch's compute is exposed, plus the first
    # layer's gather, which nothing precedes.
    def per_layer_collective(total_bytes: sp.Expr, expert_bytes: sp.Expr) -> sp.Expr:
        """One all-reduce-sized collective per layer of the stage, summed."""
        return layers_per_stage * (dp_all_reduce(total_bytes / layers_per_stage)
                                   + expert_all_reduce(expert_bytes / layers_per_stage))

    grads_rs = per_layer_collective(stage_params * p_["g_red"],
                                    expert_stage_params * p_["g_red"]) / 2
    weights_ag = per_layer_collective(stage_params * p_["gather_b"],
                                      expert_stage_params * p_["gather_b"]) / 2
    first_gather = weights_ag / layers_per_stage
    if job.dp_overlap:
        zero2_micro = exposed(grads_rs - (stage - stage_forward))
        zero3_micro = exposed(2 * weights_ag + grads_rs - stage_compute) + first_gather
    else:
        zero2_micro, zero3_micro = grads_rs, 2 * weights_ag + grads_rs
    zero2, zero3 = indicator(z, 2), indicator(z, 3)
    # Per micro-batch: the reduce-scatters, and the weights' all-gather after the step;
    # gradients accumulated locally and reduced once per step: ZeRO-1's traffic.
    t_zero2 = (m * zero2_micro + t_dp_full / 2 if job.zero_reduce_per_micro_batch
               else t_dp_step)
    t_dp = (1 - zero2 - zero3) * t_dp_step + zero2 * t_zero2 + zero3 * m * zero3_micro
    t_embed_sync = sp.Integer(0)
    if model.tied_embeddings:
        # First and last stage all-reduce the shared word-embedding gradient.
        t_embed_sync = sp.Piecewise((0, sp.Eq(pp, 1)), (ring_all_reduce(
            p_["V"] * p_["h"] / t * p_["g_red"], 2, out), True))
    optimizer_params = memory.sharded(stage_params, d, z, 1)
    if model.moe:
        optimizer_params += memory.sharded(expert_stage_params, edp, z, 1)
    step_bytes = optimizer_params * p_["o_step"]
    if fp8:
        # The FP8 weight copies are refreshed once per step from the updated weights.
        step_bytes += (stage_params - bf16_stage_params + expert_stage_params) * (
            precision.weight_cast_bytes_per_parameter(p_["w_b"], job.fp8_weight_copies))
    t_opt = step_bytes / (p_["B_hbm"] * p_["eta_mem"])

    # -- the iteration and its breakdown ------------------------------------------------------
    # The output layer runs on the last stage, which is the slowest and paces the pipeline.
    terms = {
        "forward_compute": m * (per_stage(t_fwd, t_fwd_moe if model.moe else None)
                                + compute.ops_time(head_f, hw)),
        "backward_compute": m * (per_stage(t_bwd, t_bwd_moe if model.moe else None)
                                 + compute.ops_time(head_b, hw)),
        "recompute_compute": m * per_stage(t_recompute,
                                           t_recompute_moe if model.moe else None),
        "tp_communication": m * layers_per_stage * per_layer_comm,
        "cp_communication": m * layers_per_stage * t_cp,
        "ep_communication": m * t_ep,
        "pp_communication": m * t_pp,
        "pipeline_bubble": schedules.bubble_time(job.schedule, pp, v, stage_forward,
                                                 stage - stage_forward, stage_weight_grad),
        "dp_communication": t_dp,
        "embedding_sync": t_embed_sync,
        "optimizer_step": t_opt,
        "framework_overhead": p_["step_oh"] + m * v * p_["mb_oh"],
    }
    iteration = sp.Add(*terms.values())

    # -- FLOPs, throughput, utilisation -------------------------------------------------------
    layer_fwd_flops = compute.ops_flops(fwd)
    head_fwd_flops = compute.ops_flops(head_f)
    # Averaged over stages: every stage runs L/p layers, the output layer is on one of p.
    model_flops_gpu = m * MODEL_PASSES * (mean_layers * layer_fwd_flops
                                          + head_fwd_flops / pp)
    recompute_flops_gpu = m * mean_layers * (full * layer_fwd_flops + selective
                                             * compute.ops_flops(recomputed_fwd))
    if model.moe:
        # MoE layers replace dense ones: add the difference, averaged over the stages.
        moe_fwd_flops = compute.ops_flops(model_fwd_moe)
        model_flops_gpu += (m * MODEL_PASSES * p_["L_moe"] / pp
                            * (moe_fwd_flops - layer_fwd_flops))
        recompute_flops_gpu += m * p_["L_moe"] / pp * full * (moe_fwd_flops - layer_fwd_flops)
    hardware_flops_gpu = model_flops_gpu + recompute_flops_gpu
    gpus = t * pp * d * c
    tokens_per_iteration = p_["GB"] * p_["s"]
    tokens_per_s = tokens_per_iteration / iteration
    time_to_train = p_["D"] / tokens_per_s

    # -- memory on the first stage ----------------------------------------------------------
    # FP8 training keeps the linear layers' inputs as their FP8 copies, with their scales;
    # the attention output in the framework's format where it names one (DeepSeek-V3's E5M6).
    cached = precision.cached_bytes(job.fp8_recipe) if fp8 else None
    out_bytes = (precision.cached_bytes(job.fp8_recipe, job.attention_output_format)
                 if fp8 and job.attention_output_format else None)
    acts = memory.activation_terms(dims, flash=flash, linear_input_bytes=cached,
                                   modules=modules, output_bytes=out_bytes)
    act_layer = memory.layer_activation_bytes(acts, selective, full)
    # The embedding output's dropout mask is kept too (Korthikanti et al. Sec. 4.3).
    embed_act = dims.tokens * p_["h"] * sigma * dims.mask
    in_flight = memory.in_flight_layers(L, pp, v, pp if pipeline_filled else m)
    activations = in_flight * act_layer + in_flight / layers_per_stage * embed_act
    if latent is not None:
        # MLA's projections; recomputed up-projections do not keep their outputs Q, K, V.
        mla_kept = mla.activation_bytes(dims, latent, output_bytes=out_bytes)
        up_drop = (mla_kept - mla.activation_bytes(dims, latent, 1, out_bytes)
                   if "mla_up_proj" in modules else 0)
        acts = replace(acts, attention_linear=mla_kept,
                       selective_drop=acts.selective_drop + up_drop)
        act_layer = memory.layer_activation_bytes(acts, selective, full)
    moe_acts = None
    if model.moe:
        # A rank that receives a token once, whatever the number of its experts the token
        # chose (a per-rank dispatch), keeps one copy of its fc1 input.
        inputs = None
        if job.dispatch_per_rank:
            domain_ranks = parallelism.ranks_per_domain(ep, p_["etp"], N_up)
            inputs = (moe.tokens_per_rank(dims) * experts.load * experts.etp
                      * moe.distinct_ranks_per_token(experts, domain_ranks, model.top_k))
        # A recomputed SwiGLU keeps its input at the linear-input width and not its output.
        moe_kept = moe.activation_bytes(dims, experts, cached, input_copies=inputs)
        act_drop = (moe_kept - moe.activation_bytes(dims, experts, cached, True, inputs)
                    if "moe_act" in modules else 0)
        moe_acts = replace(acts, mlp=moe_kept, selective_drop=acts.selective_drop + act_drop)
    if model.moe or job.uneven_stages or latent is not None:
        # Micro-batches in flight times the activations of the stage's own layers.
        act_moe = (memory.layer_activation_bytes(moe_acts, selective, full)
                   if moe_acts is not None else None)
        activations = in_flight / mean_layers * (per_stage(act_layer, act_moe) + embed_act)
    # DualPipe holds one micro-batch more than 1F1B, and two copies of the stage's
    # parameters (formulations.schedules).
    activations *= schedules.in_flight_micro_batches(job.schedule, pp) / pp
    copies = schedules.PARAMETER_COPIES[job.schedule]
    # Resident FP8 copies of the linear layers' weights beside the BF16 ones
    # (formulations.precision).
    fp8_copy_bytes = precision.weight_copy_bytes(job.fp8_weight_copies) if fp8 else 0
    # The recompute working set: the layer being recomputed holds its activations in full
    # (full recomputation) or its recomputed modules' outputs (selective) while its backward
    # runs.
    recompute_working_set = memory.recomputed_bytes(
        moe_acts if moe_acts is not None else acts, selective, full)
    # The first pipeline rank also runs the output layer with one stage, and under DualPipe
    # and DualPipeV, which place the first and last stages on one rank (schedules); each
    # multi-token prediction module adds one more pass of the shared head on that rank.
    first_is_last = (sp.Integer(1) if job.schedule in schedules.FIRST_RANK_HOLDS_LAST_STAGE
                     else indicator(pp, 1))
    heads = 1 + p_.get("mtp", 0)
    def state_terms(params: sp.Expr, bf16: sp.Expr, experts: sp.Expr,
                    held_copies: int) -> dict[str, sp.Expr]:
        """Weights (and the FP8 copies of all but the ``bf16`` ones), gradients and optimizer
        states of ``params`` sharded over dp and ``experts`` over expert dp, as the ZeRO
        stage says, ``held_copies`` times."""
        def share(count: sp.Expr, from_stage: int) -> sp.Expr:
            return memory.sharded(count, d, z, from_stage) + (
                memory.sharded(experts, edp, z, from_stage) if model.moe else 0)

        return {"weights": held_copies * (share(params, 3) * p_["w_b"]
                                          + share(params - bf16, 3) * fp8_copy_bytes),
                "gradients": held_copies * share(params, 2) * p_["g_b"],
                "optimizer_states": held_copies * share(params, 1) * p_["o_b"]}

    mem_terms = {
        **state_terms(stage_params, bf16_stage_params, expert_stage_params, copies),
        "activations": activations,
        # Where the first stage is also the last: one micro-batch's logits and the loss's
        # FP32 probabilities are live at the end of the forward pass (Megatron-LM's
        # vocabulary-parallel cross entropy), once per output-head pass.
        "logits_and_loss": first_is_last * heads * dims.tokens * p_["V"] / t * (
            p_["e"] + transformer.LOSS_FP32_BYTES),
        "recompute_working_set": recompute_working_set,
    }
    if job.pipeline_layout is not None:
        # Each rank's own chunks: the largest rank's memory, and its breakdown.
        def rank_terms(content: pipeline_layout.RankContent) -> dict[str, sp.Expr]:
            dense, sparse, mtp, embedding, loss = content.held
            # A multi-token prediction module is one more layer of the last layer's kind.
            if model.moe:
                sparse += mtp
            else:
                dense += mtp
            bf16 = embedding * (p_["V"] * p_["h"] / t + (
                p_["s"] * p_["h"] if model.learned_positions else 0)) + loss * (
                p_["V"] * p_["h"] / t) + (sparse * router if model.moe else 0)
            params = (dense * layer_params / t + (sparse * moe_dense / t if model.moe else 0)
                      + mtp * MTP_PROJECTION_INPUTS * p_["h"] ** 2 / t + bf16)
            experts = sparse * routed / (ep * p_["etp"]) if model.moe else sp.Integer(0)
            f_dense, f_sparse, f_mtp, f_embedding = (sp.Rational(x.numerator, x.denominator)
                                                     for x in content.flight)
            if model.moe:
                f_sparse += f_mtp
            else:
                f_dense += f_mtp
            activations = (f_dense * act_layer + (f_sparse * act_moe if model.moe else 0)
                           + f_embedding * embed_act)
            if not pipeline_filled:
                # Fewer micro-batches than the schedule keeps in flight: as many as there are.
                activations *= sp.Min(1, m * content.chunks / content.count)
            return {
                **state_terms(params, bf16, experts, 1),
                "activations": activations,
                "logits_and_loss": (loss + mtp) * dims.tokens * p_["V"] / t * (
                    p_["e"] + transformer.LOSS_FP32_BYTES),
                "recompute_working_set": recompute_working_set,
            }
        per_rank = []
        for content in pipeline_layout.distinct_ranks(
                layout_chunks, job.schedule, job.pipeline_layout.pp, job.pipeline_layout.v,
                model.first_dense_layers, model.moe_every, bool(model.moe)):
            held_terms = rank_terms(content)
            held_terms["framework_reserve"] = (p_["reserve"]
                                               + p_["frag"] * sp.Add(*held_terms.values()))
            per_rank.append(held_terms)
        mem_terms = memory.largest_rank(per_rank)
        memory_terms = (*MEMORY_TERMS, "largest_rank_excess")
    else:
        memory_terms = MEMORY_TERMS
        allocated = sp.Add(*mem_terms.values())
        mem_terms["framework_reserve"] = p_["reserve"] + p_["frag"] * allocated
    memory_per_gpu = sp.Add(*mem_terms.values())
    model_states = mem_terms["weights"] + mem_terms["gradients"] + mem_terms["optimizer_states"]
    # The same states averaged over the pipeline stages (the first stage also holds the
    # embedding, so it is the largest); Korthikanti et al.'s Fig. 1 plots this average.
    mean_params = total_params / (t * pp)
    model_states_average = (memory.sharded(mean_params, d, z, 3) * p_["w_b"]
                            + memory.sharded(mean_params, d, z, 2) * p_["g_b"]
                            + memory.sharded(mean_params, d, z, 1) * p_["o_b"])
    moe_expressions: dict[str, sp.Expr] = {}
    if model.moe:
        all_experts = p_["L_moe"] * routed
        mean_experts = all_experts / (ep * p_["etp"] * pp)
        mean_params = (total_params - all_experts) / (t * pp)
        model_states_average = sum(
            (memory.sharded(mean_params, d, z, stage) + memory.sharded(mean_experts, edp, z,
                                                                        stage)) * size
            for stage, size in ((3, p_["w_b"]), (2, p_["g_b"]), (1, p_["o_b"])))
        moe_expressions = {
            "expert_data_parallel": edp,
            "expert_parameters_per_gpu": expert_stage_params,
            "tokens_per_expert": moe.tokens_per_expert(dims, experts),
            "moe_dropped_fraction": moe.dropped_fraction(p_["imb"], p_.get("cf")),
            "ep_all_to_all_per_layer": t_ep_layer,
        }
    if latent is not None:
        moe_expressions["kv_cache_bytes_per_token"] = (
            L * mla.kv_cache_elements_per_token(latent) * p_["e"])

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
        "tokens_per_s_per_gpu": tokens_per_s / gpus,
        "model_flops_per_gpu": model_flops_gpu,
        "hardware_flops_per_gpu": hardware_flops_gpu,
        "model_tflops_per_gpu": model_flops_gpu / iteration / TERA,
        "hardware_tflops_per_gpu": hardware_flops_gpu / iteration / TERA,
        "mfu": model_flops_gpu / (iteration * p_["P"]),
        "hfu": hardware_flops_gpu / (iteration * p_["P"]),
        "parameters": total_params,
        "active_parameters": active_params,
        "stage_parameters": stage_params,
        **moe_expressions,
        **mem_terms,
        "model_states": model_states,
        "model_states_average": model_states_average,
        "memory_per_gpu": memory_per_gpu,
        "time_to_train": time_to_train,
        "gpu_hours": time_to_train * gpus / SECONDS_PER_HOUR,
        "cost": time_to_train * gpus * p_["price"],
    }
    units = {name: "s" for name in (*TIME_TERMS, "iteration_time", "per_layer_forward_time",
                                    "per_layer_backward_time", "time_to_train")}
    units.update({name: "B" for name in (*memory_terms, "memory_per_gpu", "model_states",
                                                   "model_states_average")})
    units.update({f"tp_all_reduce_{name}": "s" for name in tp_algorithms})
    units["scale_up_reduction_available"] = "1"
    units.update({"micro_batches": "1", "gpus": "1", "tokens_per_s": "1/s",
                  "tokens_per_s_per_gpu": "1/s",
                  "model_flops_per_gpu": "FLOP", "hardware_flops_per_gpu": "FLOP",
                  "model_tflops_per_gpu": "TFLOP/s", "hardware_tflops_per_gpu": "TFLOP/s",
                  "mfu": "1", "hfu": "1", "parameters": "1", "stage_parameters": "1",
                  "cost": "USD", "gpu_hours": "h"})
    units.update({"active_parameters": "1", "expert_data_parallel": "1",
                  "expert_parameters_per_gpu": "1", "tokens_per_expert": "1",
                  "moe_dropped_fraction": "1", "ep_all_to_all_per_layer": "s",
                  "kv_cache_bytes_per_token": "B"})
    units = {name: unit for name, unit in units.items() if name in expressions}
    docs = {
        "iteration_time": "seconds per optimizer step",
        "per_layer_forward_time": "one layer's forward pass for one micro-batch, with TP comm",
        "per_layer_backward_time": "one layer's backward pass incl. recomputation and TP comm",
        "mfu": "model FLOPs utilisation (no recomputation counted)",
        "hfu": "hardware FLOPs utilisation (recomputation counted)",
        "memory_per_gpu": "peak memory of the first pipeline rank (with a pipeline layout: "
                          "of the rank that holds the most)",
        "time_to_train": "wall time to train on the token budget",
        "cost": "GPU-hours times the price per GPU-hour",
        "gpu_hours": "GPU-hours to train on the token budget",
        "framework_reserve": "CUDA context, communication buffers, workspaces, fragmentation",
        "largest_rank_excess": "what the pipeline rank holding the most holds beyond the "
                               "first (with a pipeline layout; the other terms are the "
                               "first rank's)",
    }
    return Formulation(
        name="training",
        expressions=expressions,
        units=units,
        docs=docs,
        decisions=dec,
        parameters=ps.parameters,
        groups={"iteration_time": TIME_TERMS, "memory_per_gpu": memory_terms},
    )

