"""A serving case's sections as the frozen inputs of :mod:`perfcost.formulations.serving`."""

from __future__ import annotations

from typing import Any

from perfcost.formulations.inference import KV_ELEMENT_BYTES
from perfcost.formulations.queueing import arrival_scv
from perfcost.formulations.specs import (
    DecodeKernelSpec,
    HardwareSpec,
    InferenceSpec,
    LinkLevel,
    MlaDecodeKernelSpec,
    ModelSpec,
    NetworkSpec,
    ServingPoolSpec,
)
from perfcost.solver.case.errors import MISSING, CaseError
from perfcost.solver.case.sections import HardwareSection, NetworkSection
from perfcost.solver.case.serving_section import (
    ServingSection,
    draft_model_section,
    gpu_price,
    hardware_entries,
    network_entry,
)
from perfcost.solver.problem.specs import fabric_spec, moe_fields

#: Bytes per activation element: serving engines run activations in bf16.
ACTIVATION_BYTES = 2.0


def model_spec(case: Any) -> ModelSpec:
    """The model section as a :class:`ModelSpec`, its MoE and MLA fields as the training
    path reads them (:func:`problem.moe_fields`)."""
    return section_model_spec(case.model)


def section_model_spec(m: Any) -> ModelSpec:
    """A model section (the case's, or a draft model's) as a :class:`ModelSpec`."""
    return ModelSpec(
        name=m.name, layers=m.layers, hidden=m.hidden, heads=m.heads,
        kv_heads=m.kv_heads or m.heads, ffn=m.ffn, ffn_kind=m.ffn_kind, vocab=m.vocab,
        seq_len=m.seq_len, tied_embeddings=m.tied_embeddings, biases=m.biases,
        learned_positions=m.positions == "learned", dropout=m.dropout, **moe_fields(m),
    )


def network_spec(net: NetworkSection) -> NetworkSpec:
    up, out = net.scale_up, net.scale_out
    if up.size is None:
        raise CaseError("network.scale_up.size", MISSING,
                        "expected a positive integer: the GPUs per scale-up domain")
    return NetworkSpec(
        name=net.name, scale_up_size=up.size,
        scale_up=LinkLevel(up.bandwidth, up.latency, up.efficiency),
        scale_out=LinkLevel(out.bandwidth, out.latency, out.efficiency),
        fabric=fabric_spec(net),
        scale_up_reduction=(LinkLevel(up.reduction_bandwidth, up.reduction_latency or 0.0, 1.0)
                            if up.reduction_bandwidth is not None else None),
    )


def flash_fields(hw: HardwareSection) -> dict[str, Any]:
    """The forward FlashAttention rates of the generation the entry's stack runs, and its
    shared memory (none: prefill attention falls back to a roofline)."""
    eff = hw.efficiency
    rates = getattr(eff, eff.flash_attention, None)
    if rates is None or not hw.shared_memory:
        return {}
    return {"flash_attention": eff.flash_attention, "shared_memory": hw.shared_memory,
            "flash_forward_efficiency": rates.forward,
            "flash_backward_efficiency": rates.backward,
            "flash_forward_tile_overhead": rates.forward_tile_overhead,
            "flash_backward_tile_overhead": rates.backward_tile_overhead}


def hardware_spec(hw: HardwareSection) -> HardwareSpec:
    return HardwareSpec(
        name=hw.name, peak_flops=hw.peak_flops["bf16"], hbm_capacity=hw.hbm_capacity,
        hbm_bandwidth=hw.hbm_bandwidth, multiprocessors=hw.multiprocessors,
        matmul_efficiency=hw.efficiency.matmul.value,
        memory_efficiency=hw.efficiency.memory.value,
        gemm_tile_m=hw.efficiency.gemm_tile[0], gemm_tile_n=hw.efficiency.gemm_tile[1],
        kernel_overhead=hw.efficiency.kernel_overhead, price=hw.price, power=hw.power,
        gemm_wave_overhead=hw.efficiency.wave_overhead,
        gemm_row_granule=hw.efficiency.gemm_row_granule or 0, **flash_fields(hw),
    )


def pool_spec(case: Any, hw: HardwareSection) -> ServingPoolSpec:
    sv: ServingSection = case.serving
    overhead = (sv.kernel_overhead if sv.kernel_overhead is not None
                else hw.efficiency.kernel_overhead)
    caches = latent_caches(case)
    return ServingPoolSpec(
        hardware=hardware_spec(hw), network=network_spec(network_entry(case)),
        peak_flops_fp8=hw.peak_flops.get("fp8", hw.peak_flops["bf16"]),
        kernel_overhead=overhead, gpu_price=gpu_price(case, hw),
        matmul_efficiency_fp8=fp8_matmul_efficiency(hw),
        # Each decode kernel only where a model of the case decodes with it, so that a
        # formulation declares no parameter it never reads.
        decode_kernel=(decode_kernel_spec(hw, sv.kv_precision)
                       if False in caches else None),
        mla_decode_kernel=(mla_decode_kernel_spec(hw, sv.kv_precision)
                           if True in caches else None))


def latent_caches(case: Any) -> set[bool]:
    """Whether each model the case decodes (the target, and a draft model) caches an MLA
    latent (True) or keys and values (False)."""
    models = [case.model, draft_model_section(case.serving)]
    return {bool(m.kv_lora_rank) for m in models if m is not None}


#: The decode keys a precision table must state for the fitted decode kernels to be used.
DECODE_KEYS = ("decode_memory", "decode_matmul", "decode_fallback_vector",
               "decode_group_limit", "decode_kv_chunk", "decode_block_stream_share")


def decode_kernel_spec(hw: HardwareSection, kv_precision: str) -> DecodeKernelSpec | None:
    """The decode-attention kernels the hardware entry measured for this KV-cache format
    ([efficiency.precision.<kv_precision>], fitted on a kernel database by ``perfcost
    calibrate --database``), or None where it has no such table, the table predates the
    two-kernel decode model, or the entry states no fp32 peak or shared memory: the decode
    attention is then the roofline of formulations.inference."""
    table = getattr(hw.efficiency, "precision", {}).get(kv_precision)
    fp32 = hw.peak_flops.get("fp32")
    if (table is None or fp32 is None or hw.shared_memory is None
            or any(getattr(table, k) is None for k in DECODE_KEYS)):
        return None
    return DecodeKernelSpec(
        memory=table.decode_memory, matmul=table.decode_matmul,
        fallback_vector=table.decode_fallback_vector,
        block_overhead=table.decode_block_overhead, row_overhead=table.decode_row_overhead,
        kernel_overhead=table.decode_kernel_overhead,
        fallback_block_overhead=table.decode_fallback_block_overhead,
        fallback_kernel_overhead=table.decode_fallback_kernel_overhead,
        block_stream_share=table.decode_block_stream_share, overlap=table.decode_overlap,
        group_limit=table.decode_group_limit, kv_chunk=table.decode_kv_chunk,
        multi_block=table.decode_multi_block, fp32_peak=fp32, shared_memory=hw.shared_memory,
        kv_tile=table.decode_kv_tile, token_time=table.decode_token_time,
        row_token_time=table.decode_row_token_time,
        fallback_stream_share=table.decode_fallback_stream_share,
        fixed_rows=table.decode_fixed_rows)


def mla_decode_kernel_spec(hw: HardwareSection, kv_precision: str
                           ) -> MlaDecodeKernelSpec | None:
    """The MLA decode kernel the hardware entry measured for this KV-cache format
    ([efficiency.precision.<kv_precision>] ``mla_decode_*``), or None (the roofline). Its dot
    products run on the tensor cores of the cache's format (fp8 where the chip has them)."""
    table = getattr(hw.efficiency, "precision", {}).get(kv_precision)
    keys = ("mla_decode_memory", "mla_decode_matmul", "mla_decode_split_overhead",
            "mla_decode_kernel_overhead")
    if table is None or any(getattr(table, k) is None for k in keys):
        return None
    peak = hw.peak_flops.get(kv_precision, hw.peak_flops["bf16"])
    return MlaDecodeKernelSpec(
        memory=table.mla_decode_memory, matmul=table.mla_decode_matmul,
        split_overhead=table.mla_decode_split_overhead,
        kernel_overhead=table.mla_decode_kernel_overhead, matmul_peak=peak,
        tile_reread=table.mla_decode_tile_reread, tiling=table.mla_decode_tiling,
        step_time=table.mla_decode_step_time)


def fp8_matmul_efficiency(hw: HardwareSection) -> float:
    """The fp8 GEMM efficiency the hardware entry measured ([efficiency.precision.fp8],
    fitted on a kernel database), or 0: the entry's one matmul efficiency for every format."""
    fitted = getattr(hw.efficiency, "precision", {}).get("fp8")
    return float(fitted.matmul) if fitted is not None else 0.0


def inference_spec(case: Any) -> InferenceSpec:
    sv: ServingSection = case.serving
    draft = draft_model_section(sv)
    return InferenceSpec(
        # A fixed fleet's rate is a decision of the formulation; the parameter is unused.
        prompt_len=sv.prompt_len, output_len=sv.output_len,
        rate=sv.rate if sv.rate is not None else 1.0,
        slo_ttft=sv.slo_ttft, slo_tpot=sv.slo_tpot, batching=sv.batching,
        chunk_tokens=sv.chunk_tokens, block_size=sv.block_size,
        kv_bytes=KV_ELEMENT_BYTES[sv.kv_precision], activation_bytes=ACTIVATION_BYTES,
        memory_utilization=sv.memory_utilization, step_overhead=sv.step_overhead,
        engine=sv.engine, arrival_scv=arrival_scv(sv.arrivals, sv.gamma_shape or 1.0),
        slo_ttft_p99=sv.slo_ttft_p99 or 0.0, slo_tpot_p99=sv.slo_tpot_p99 or 0.0,
        gpus=sv.gpus or 0, speculative=sv.speculative, draft_tokens=sv.draft_tokens or 0,
        acceptance_rate=sv.acceptance_rate or 0.0,
        draft_model=section_model_spec(draft) if draft is not None else None,
        head_layers=sv.head_layers, prefix_hit_rate=sv.prefix_hit_rate,
        cached_prefixes=sv.cached_prefixes, dp_attention=sv.dp_attention is not None)


def pool_specs(case: Any) -> dict[str, ServingPoolSpec]:
    """The case's hardware entries by name, as pool specs."""
    return {hw.name: pool_spec(case, hw) for hw in hardware_entries(case)}
