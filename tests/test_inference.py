"""The serving formulations (formulations/inference.py, formulations/serving.py).

Physics checks against hand arithmetic from the model's dimensions: decode at batch 1 of a
model that fills most of HBM is the weight bytes over the achievable bandwidth; KV-cache bytes
per token for GQA; weights per GPU per format; the largest batch beside the weights; prefill
is compute-bound; disaggregation's KV transfer; and properties (hypothesis) that must hold for
any batch, split and workload.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations import inference as inf
from perfcost.formulations import serving
from perfcost.formulations.core import ParameterSet
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case import serving_section as serving_case
from perfcost.solver.serving.evaluate import ServingModel

CALIBRATION = Path(__file__).resolve().parent / "data" / "h200-kernels.json"  # shared file copy


def serving_case_text(model: str, hardware: str, **serving_fields: Any) -> str:
    fields = {"prompt_len": 1024, "output_len": 256, "rate": 1, "slo_ttft": '"10 s"',
              "slo_tpot": '"1 s"', "kernel_overhead": '"1 us"',
              "prices": '{ "h200-sxm" = "4 USD/h", "h100-sxm" = "3.49 USD/h" }'}
    fields.update(serving_fields)
    body = "\n".join(f"{k} = {v}" for k, v in fields.items())
    return (f'model = "{model}"\nhardware = "{hardware}"\nnetwork = "dgx-h100"\n'
            f"[serving]\n{body}\n")


def load(tmp_path: Path, text: str, name: str = "case.toml") -> Any:
    path = tmp_path / name
    path.write_text(text)
    return case_mod.load(path)


def values(case: Any, **config: Any) -> dict[str, float]:
    model = ServingModel(case)
    full = {"hardware": model.hardware_names[0], "disaggregated": False, "tp": 1, "pp": 1,
            "precision": "bf16", "batch": 1, **config}
    if case.model.experts:
        full.setdefault("ep", full["tp"])
    return model.evaluate(full)


# -- Llama-3 70B dimensions, by hand (Llama Team 2024, Table 3) -------------------------------
L, H, HEADS, KV, FFN, VOCAB = 80, 8192, 64, 8, 28672, 128256
HEAD_DIM = H // HEADS
LAYER_WEIGHTS = H * (H + 2 * KV * HEAD_DIM) + H * H + 3 * H * FFN + 2 * H


def test_weight_precisions_match_the_case_schema() -> None:
    assert serving_case.WEIGHT_PRECISIONS == inf.WEIGHT_PRECISIONS


def test_decode_at_batch_one_is_weight_reads_over_achievable_bandwidth(tmp_path: Path) -> None:
    """Acceptance: Llama-3 70B in fp8 fills 88 % of an H100's 80 GiB; one decode step at
    batch 1 streams every layer weight (1 B) and the bf16 output layer once. The achievable
    bandwidth is hbm_bandwidth x memory_efficiency of the hardware entry (0.883: the H200
    copy-kernel ceiling of the shared calibration file)."""
    case = load(tmp_path, serving_case_text("llama3-70b", "h100-sxm", precision='"fp8"'))
    v = values(case, precision="fp8", batch=1)
    hw = case.hardware
    achievable = hw.hbm_bandwidth * hw.efficiency.memory.value
    streamed = L * LAYER_WEIGHTS * 1.0 + VOCAB * H * 2.0
    physics = streamed / achievable
    resident = v["weights_per_gpu"] / hw.hbm_capacity
    decode = v["decode_step_weights_and_gemms"] + v["decode_step_head"] + v[
        "decode_step_attention"] + v["decode_step_elementwise"]
    error = decode / physics - 1
    print(f"\nweights {v['weights_per_gpu'] / 2**30:.1f} GiB = {100 * resident:.0f} % of HBM; "
          f"decode step {1e3 * decode:.2f} ms, physics {1e3 * physics:.2f} ms, "
          f"error {100 * error:+.1f} %")
    assert resident > 0.8
    assert abs(error) < 0.10
    # The step is bound by weight reads, not FLOPs.
    assert v["decode_step_gemm_memory_bound"] > 3 * v["decode_step_gemm_compute_bound"]


def test_achievable_bandwidth_parameter_matches_measured_decode_gemms() -> None:
    """The H200 kernel file's batch-1 and batch-8 GEMMs (decode shapes) stream their weights
    at a slope within 10 % of the copy ceiling that sets memory_efficiency (the fixed part of
    each timing is launch latency, which CUDA graphs remove)."""
    data = json.loads(CALIBRATION.read_text()) if CALIBRATION.exists() else None
    if data is None:
        pytest.skip("shared calibration file not present")
    ceiling = data["ceilings"]["copy_TBps_rw"] * 1e12
    rows = []
    for m in (1, 8):
        pts = sorted((g["bytes"], g["s"]) for g in data["gemm"] if g["m"] == m)
        (b0, s0), (b1, s1) = pts[0], pts[-1]
        slope = (b1 - b0) / (s1 - s0)
        rows.append((m, slope))
        print(f"m={m}: streaming {slope / 1e12:.2f} TB/s vs copy ceiling {ceiling / 1e12:.2f}")
    for _m, slope in rows:
        assert abs(slope / ceiling - 1) < 0.10


def test_kv_cache_per_token_gqa(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-70b", "h100-sxm"))
    per_token = 2 * L * KV * HEAD_DIM * 2  # K and V, bf16: 320 KiB
    assert values(case, tp=1)["kv_bytes_per_token"] == pytest.approx(per_token)
    assert values(case, tp=8)["kv_bytes_per_token"] == pytest.approx(per_token / 8)
    # More TP ranks than KV heads would replicate them; tp = 8 = kv_heads is the last split.
    assert values(case, tp=4, pp=2)["kv_bytes_per_token"] == pytest.approx(per_token / 8)


def test_fp8_kv_cache_halves_it(tmp_path: Path) -> None:
    bf16 = load(tmp_path, serving_case_text("llama3-8b", "h100-sxm"), "a.toml")
    fp8 = load(tmp_path, serving_case_text("llama3-8b", "h100-sxm", kv_precision='"fp8"'),
               "b.toml")
    assert values(fp8)["kv_bytes_per_token"] == pytest.approx(
        values(bf16)["kv_bytes_per_token"] / 2)


def test_weight_bytes_per_format(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-70b", "h200-sxm"))
    vocab = 2 * VOCAB * H * 2.0  # embedding and output layer, kept in bf16
    for precision, per_weight in (("bf16", 2.0), ("fp8", 1.0), ("int4", 0.5 + 2 / 128)):
        got = values(case, precision=precision)["weights_per_gpu"]
        assert got == pytest.approx(L * LAYER_WEIGHTS * per_weight + vocab, rel=1e-9)


def test_max_batch_is_the_paged_cache_beside_the_weights(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-8b", "h100-sxm", block_size=16))
    v = values(case)
    blocks = math.ceil((1024 + 256) / 16)
    cache = blocks * 16 * v["kv_bytes_per_token"]
    # The step's workspace grows with the batch: one more sequence adds its cache and its
    # share of the workspace.
    per_sequence = values(case, batch=2)["activation_workspace"] - v["activation_workspace"]
    fixed = v["activation_workspace"] - per_sequence
    free = v["memory_capacity"] - v["weights_per_gpu"] - fixed
    assert v["max_batch"] == math.floor(free / (cache + per_sequence))
    at_max = values(case, batch=int(v["max_batch"]))
    beyond = values(case, batch=int(v["max_batch"]) + 1)
    assert at_max["memory_per_gpu"] <= at_max["memory_capacity"]
    assert beyond["memory_per_gpu"] > beyond["memory_capacity"]


def _decode_layer_with_and_without(case: Any, kernel: str, tp: int, precision: int,
                                   batch: int, context: float,
                                   kv_bytes: int = 1) -> tuple[float, float]:
    """One layer's decode attention on the case's first pool (bf16 activations, a cache of
    ``kv_bytes`` per element), with the entry's measured ``kernel`` (a field of the pool
    spec) and without it (the roofline)."""
    model = ServingModel(case)
    spec = model.pools[model.hardware_names[0]]
    assert getattr(spec, kernel) is not None
    times = []
    for pool_spec in (spec, replace(spec, **{kernel: None})):
        ps = ParameterSet()
        ms = inf.model_symbols(ps, model.model_spec, activation_bytes=2, kv_bytes=kv_bytes)
        pool = inf.pool_parameters(ps, "", pool_spec, sp.Integer(tp), sp.Integer(1),
                                   sp.Integer(precision))
        layer = inf.decode_attention_time(ms, pool, sp.Integer(batch), sp.Float(context))
        times.append(float(layer.xreplace({p.symbol: p.value for p in ps.parameters.values()})))
    return times[0], times[1]


def test_decode_attention_is_the_entrys_measured_kernels(tmp_path: Path) -> None:
    """Where the hardware entry has decode keys fitted for the KV-cache format, a decode
    layer's attention is the fitted kernel model (kernels.decode_kernel_time at the entry's
    values), not the roofline; the entry without them falls back to the roofline,
    which at a small batch leaves out the blocks' fixed work and comes out faster."""
    from perfcost.formulations import kernels

    text = serving_case_text("llama3-8b", "h100-sxm", kv_precision='"fp8"')
    hw = load(tmp_path, text).hardware
    table = hw.efficiency.precision["fp8"]
    heads, kv_heads, head_dim = 32, 8, 128
    context = 1024 + 256 / 2  # the prompt and half the output, the step's average history
    per_layer = kernels.decode_kernel_time(
        batch=16, kv_len=context - 1, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        kv_bytes=1, activation_bytes=2, hbm_bandwidth=hw.hbm_bandwidth,
        memory_efficiency=table.decode_memory, vector_flops=hw.peak_flops["fp32"],
        matmul_efficiency=table.decode_matmul, fallback_efficiency=table.decode_fallback_vector,
        multiprocessors=hw.multiprocessors, block_overhead=table.decode_block_overhead,
        fallback_block_overhead=table.decode_fallback_block_overhead,
        kernel_overhead=table.decode_kernel_overhead, group_limit=table.decode_group_limit,
        kv_chunk=table.decode_kv_chunk,
        fallback_kernel_overhead=table.decode_fallback_kernel_overhead,
        block_stream_share=table.decode_block_stream_share, overlap=table.decode_overlap,
        matmul_flops=hw.peak_flops["bf16"], multi_block=table.decode_multi_block,
        row_overhead=table.decode_row_overhead, shared_memory=hw.shared_memory,
        token_time=table.decode_token_time, row_token_time=table.decode_row_token_time,
        kv_tile=table.decode_kv_tile,
        fallback_stream_share=table.decode_fallback_stream_share)
    assert table.decode_kv_tile is not None and table.decode_token_time > 0
    kernel, roofline = _decode_layer_with_and_without(
        load(tmp_path, text), "decode_kernel", tp=1, precision=0, batch=16, context=context)
    assert kernel == pytest.approx(float(per_layer), rel=1e-9)
    assert roofline < 0.9 * kernel


@pytest.mark.parametrize(("hardware", "tiling", "cache"), [
    ("h200-sxm", "flashmla", "fp8"), ("b200", "trtllm-gen", "fp8"),
    ("a100-80gb", "fmha-v2", "bf16")])
def test_mla_decode_attention_is_the_entrys_measured_kernel(tmp_path: Path, hardware: str,
                                                            tiling: str, cache: str) -> None:
    """DeepSeek-V3's decode: a layer's MLA attention is the entry's fitted kernel model
    (kernels.mla_decode_time at the entry's mla_decode keys, the latent cache of 512 + 64
    elements, 16 query heads per rank at tp 8, the tensor cores of the cache's format):
    FlashMLA's tiles on the H200, trtllm-gen's on the B200 (an fp8 cache), fmha_v2's CTAs
    walking whole caches on the A100 (bf16: TensorRT-LLM runs no fp8 latent cache there);
    the same pool without the keys falls back to the roofline."""
    from perfcost.formulations import kernels

    fp8 = cache == "fp8"
    text = serving_case_text("deepseek-v3", hardware, kv_precision=f'"{cache}"',
                             precision=f'"{cache}"', prompt_len=2048, output_len=512,
                             prices=f'{{ "{hardware}" = "4 USD/h" }}')
    hw = load(tmp_path, text).hardware
    table = hw.efficiency.precision[cache]
    context = 2048 + 512 / 2
    per_layer = kernels.mla_decode_time(
        batch=64, kv_len=context - 1, heads=128 / 8, kv_lora=512, rope=64,
        kv_bytes=1 if fp8 else 2, activation_bytes=2, hbm_bandwidth=hw.hbm_bandwidth,
        memory_efficiency=table.mla_decode_memory, matmul_flops=hw.peak_flops[cache],
        matmul_efficiency=table.mla_decode_matmul, multiprocessors=hw.multiprocessors,
        split_overhead=table.mla_decode_split_overhead,
        kernel_overhead=table.mla_decode_kernel_overhead, tiling=table.mla_decode_tiling,
        tile_reread=table.mla_decode_tile_reread, step_time=table.mla_decode_step_time)
    assert table.mla_decode_tiling == tiling
    kernel, roofline = _decode_layer_with_and_without(
        load(tmp_path, text), "mla_decode_kernel", tp=8, precision=int(fp8), batch=64,
        context=context, kv_bytes=1 if fp8 else 2)
    assert kernel == pytest.approx(float(per_layer), rel=1e-9)
    print(f"\nMLA layer: kernel {kernel * 1e6:.1f} us, roofline {roofline * 1e6:.1f} us")
    # 16 heads fill a quarter of FlashMLA's 64-row query tile, and each block pays its fixed
    # work: the measured kernel is far slower than the roofline (43 against 22 us); on the
    # B200 they fill trtllm-gen's 16-row tile; on the A100 each sequence's two CTAs walk
    # its whole cache, 36 steps one after another.
    assert kernel > (1.0 if tiling == "trtllm-gen" else 1.5) * roofline


def test_prefill_is_compute_bound_and_decode_memory_bound(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-70b", "h100-sxm", batching='"static"',
                                            prompt_len=4096))
    v = values(case, tp=8, batch=8)
    assert v["prefill_step_gemm_compute_bound"] > 5 * v["prefill_step_gemm_memory_bound"]
    assert v["decode_step_gemm_memory_bound"] > v["decode_step_gemm_compute_bound"]
    # Model FLOPs of the prompt over the chosen rates bound the prefill from below.
    flops = 2 * L * LAYER_WEIGHTS * 8 * 4096
    peak = case.hardware.peak_flops["bf16"] * case.hardware.efficiency.matmul.value * 8
    assert v["ttft"] > flops / peak


def test_tensor_parallel_all_reduces_appear_with_tp(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-70b", "h100-sxm"))
    assert values(case, tp=1)["decode_step_tp_communication"] == 0
    assert values(case, tp=8)["decode_step_tp_communication"] > 0
    # Splitting weights over 8 GPUs cuts the weight-read time by about 8.
    ratio = (values(case, tp=1)["decode_step_weights_and_gemms"]
             / values(case, tp=8)["decode_step_weights_and_gemms"])
    assert 6 < ratio < 8.5


def test_static_batching_latencies(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-8b", "h100-sxm", batching='"static"'))
    v = values(case, batch=16)
    assert v["e2e_latency"] == pytest.approx(v["ttft"] + 255 * v["tpot"])
    assert v["throughput_tokens_per_s"] == pytest.approx(16 * 256 / v["e2e_latency"])


def test_disaggregated_kv_transfer(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-70b", "h100-sxm", prompt_len=4096,
                                            disaggregated="true"))
    model = ServingModel(case)
    cfg = {"hardware": "h100-sxm", "prefill_hardware": "h100-sxm", "disaggregated": True,
           "tp": 4, "pp": 1, "precision": "bf16", "batch": 16, "prefill_tp": 8,
           "prefill_pp": 1, "prefill_precision": "bf16"}
    v = model.evaluate(cfg)
    kv = 4096 * 2 * L * KV * HEAD_DIM * 2
    assert v["kv_transfer_bytes"] == pytest.approx(kv)
    net = case.network.scale_out
    assert v["kv_transfer"] == pytest.approx(net.latency + kv / (8 * net.bandwidth
                                                                 * net.efficiency))
    assert v["ttft"] == pytest.approx(v["prefill_time"] + v["kv_transfer"])


def test_cost_per_token_is_price_over_tokens(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-8b", "h100-sxm", rate=10))
    v = values(case, batch=32)
    price = 3.49 / 3600
    assert v["cost_per_million_tokens"] == pytest.approx(
        v["gpus"] * price / (10 * (1024 + 256)) * 1e6)
    split = (v["cost_per_million_input_tokens"] * 1024 + v["cost_per_million_output_tokens"]
             * 256) / (1024 + 256)
    assert split == pytest.approx(v["cost_per_million_tokens"])
    assert v["energy_per_token"] == pytest.approx(v["gpus"] * 700 / (10 * 1280))


@functools.cache
def continuous() -> ServingModel:
    path = Path(tempfile.mkdtemp()) / "c.toml"
    path.write_text(serving_case_text("llama3-8b", "h100-sxm"))
    return ServingModel(case_mod.load(path))


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 512), tp=st.sampled_from([1, 2, 4, 8]))
def test_properties_of_a_continuous_deployment(batch: int, tp: int) -> None:
    cfg = {"hardware": "h100-sxm", "disaggregated": False, "tp": tp, "pp": 1,
           "precision": "bf16"}
    v = continuous().evaluate({**cfg, "batch": batch})
    bigger = continuous().evaluate({**cfg, "batch": batch + 1})
    # A bigger batch makes a step faster only where the decode kernel's multi-block rule
    # cuts every sequence's cache into fewer blocks (XQA keeps to 8 waves of blocks in all:
    # on the H100 entry a step of 45 sequences is 1.3 % faster than one of 44, 7 such steps
    # up to 512), saving their fixed work -- never by more than 2 % over this domain.
    assert bigger["tpot"] >= 0.98 * v["tpot"]
    assert bigger["memory_per_gpu"] > v["memory_per_gpu"]
    # Whole replicas serve the rate: never fewer than the rate needs, never a spare one.
    need = 1.0 / v["requests_per_s_per_replica"]
    assert v["replicas"] >= need - 1e-9
    assert v["replicas"] < need + 1
    assert v["ttft"] > 0 and v["tpot"] > 0
    parts = sum(v[f"mixed_step_{k}"] for k in inf.STEP_PARTS)
    assert v["tpot"] == pytest.approx(parts)


def test_formulations_are_registered() -> None:
    from perfcost.formulations import core

    assert core._REGISTRY["serving"] is serving.build_serving
    assert core._REGISTRY["serving_disaggregated"] is serving.build_disaggregated


# -- MoE and MLA (DeepSeek-V3: arXiv:2412.19437, Sec. 4.2) ------------------------------------

def test_deepseek_v3_parameters_and_latent_cache(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("deepseek-v3", "h200-sxm", prompt_len=2048,
                                            output_len=512))
    v = values(case, tp=8, precision="fp8", batch=1)
    # 671B in the report (the MTP module excluded).
    assert v["parameters"] == pytest.approx(671e9, rel=0.01)
    # MLA caches the 512-wide latent and the 64-wide RoPE key per layer, on every TP rank.
    assert v["kv_bytes_per_token"] == pytest.approx(61 * (512 + 64) * 2)
    # The routed experts are split over the 8 GPUs: about 671 GB / 8 of fp8 weights each.
    assert v["weights_per_gpu"] == pytest.approx(671e9 / 8, rel=0.03)
    assert v["decode_step_ep_communication"] > 0


def test_decode_reads_only_the_experts_a_small_batch_touches(tmp_path: Path) -> None:
    """At batch 1 a token reads 8 of 256 routed experts per layer (plus the shared expert
    and attention): the step reads far less than the resident weights; at a large batch
    every expert is read."""
    case = load(tmp_path, serving_case_text("deepseek-v3", "h200-sxm", prompt_len=2048,
                                            output_len=512))
    small = values(case, tp=8, precision="fp8", batch=1)
    large = values(case, tp=8, precision="fp8", batch=512)
    hw = case.hardware
    rate = hw.hbm_bandwidth * hw.efficiency.memory.value
    resident = small["weights_per_gpu"] / rate
    assert small["decode_step_gemm_memory_bound"] < 0.25 * resident
    assert large["decode_step_gemm_memory_bound"] > 0.9 * resident


#: One Llama-3 70B decode step's 320 weight GEMMs (tp = 2, bf16) in a CUDA graph, measured on
#: an H200 SXM on 2026-11-26 with PyTorch 2.11 + CUDA 13 (docs/inference.md gives the table
#: and the method): rows m -> seconds per step; and the copy kernel's rate in the same run.
H200_GRAPH_DECODE_STEP_S = {1: 17.31e-3, 8: 17.71e-3, 32: 17.46e-3}
H200_COPY_RW_BPS = 4.277e12


@pytest.mark.parametrize("batch", sorted(H200_GRAPH_DECODE_STEP_S))
def test_decode_traffic_matches_a_measured_h200_step(tmp_path: Path, batch: int) -> None:
    """The bytes the decode GEMMs move, at the copy ceiling measured in the same run, give
    the measured step within 10 %; the full model with the H200 entry's calibrated GEMM model
    (memory efficiency at the copy ceiling, narrow tiles for few rows: docs/calibration.md)
    gives it within 15 %."""
    case = load(tmp_path, serving_case_text("llama3-70b", "h200-sxm"))
    model = ServingModel(case)
    params = {"memory_efficiency": H200_COPY_RW_BPS / case.hardware.hbm_bandwidth}
    v = model.evaluate({"hardware": "h200-sxm", "disaggregated": False, "tp": 2, "pp": 1,
                        "precision": "bf16", "batch": batch}, parameters=params)
    measured = H200_GRAPH_DECODE_STEP_S[batch]
    traffic = v["decode_step_gemm_memory_bound"]
    entry = values(case, tp=2, batch=batch)["decode_step_weights_and_gemms"]
    print(f"\nm={batch}: measured {1e3 * measured:.2f} ms, HBM traffic at the copy ceiling "
          f"{1e3 * traffic:.2f} ms ({100 * (traffic / measured - 1):+.1f} %), model with the "
          f"H200 entry {1e3 * entry:.2f} ms ({100 * (entry / measured - 1):+.1f} %)")
    assert abs(traffic / measured - 1) < 0.10
    assert abs(entry / measured - 1) < 0.15


def test_pipeline_sends_cross_domains_beyond_a_node(tmp_path: Path) -> None:
    case = load(tmp_path, serving_case_text("llama3-70b", "h100-sxm"))
    inside = values(case, tp=4, pp=2, batch=64)["decode_step_pp_communication"]
    across = values(case, tp=8, pp=2, batch=64)["decode_step_pp_communication"]
    # Half the bytes per rank at tp = 8, but over a NIC of 50 GB/s instead of NVLink.
    assert across > inside > 0


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 256), tp=st.sampled_from([1, 2, 4, 8]),
       precision=st.sampled_from(list(inf.WEIGHT_PRECISIONS)))
def test_disaggregated_decode_is_the_colocated_decode_step(batch: int, tp: int,
                                                           precision: str) -> None:
    """Both deployments build their decode step from the same expressions: a disaggregated
    TPOT is the colocated formulation's decode-only step at the same split and batch."""
    colocated = continuous()
    split = disaggregated_model()
    base = {"hardware": "h100-sxm", "tp": tp, "pp": 1, "precision": precision,
            "batch": batch}
    co = colocated.evaluate({**base, "disaggregated": False})
    dis = split.evaluate({**base, "disaggregated": True, "prefill_hardware": "h100-sxm",
                          "prefill_tp": 8, "prefill_pp": 1, "prefill_precision": "bf16"})
    assert dis["tpot"] == pytest.approx(sum(co[f"decode_step_{k}"] for k in inf.STEP_PARTS))
    assert dis["kv_cache_bytes"] == pytest.approx(co["kv_cache_bytes"])


@functools.cache
def disaggregated_model() -> ServingModel:
    path = Path(tempfile.mkdtemp()) / "d.toml"
    path.write_text(serving_case_text("llama3-8b", "h100-sxm", disaggregated="true"))
    return ServingModel(case_mod.load(path))


def test_expert_parallelism_below_tp_adds_expert_tensor_parallel_traffic(
        tmp_path: Path) -> None:
    """DeepSeek-V3 on 8 GPUs: ep = 8 puts 32 whole experts on each GPU; ep = 2 splits each of
    128 experts over 4 GPUs. The weights per GPU are the same; the expert-TP gathers add
    communication and the per-expert GEMMs get more rows."""
    case = load(tmp_path, serving_case_text("deepseek-v3", "h200-sxm", prompt_len=2048,
                                            output_len=512))
    full = values(case, tp=8, ep=8, precision="fp8", batch=64)
    folded = values(case, tp=8, ep=2, precision="fp8", batch=64)
    assert folded["weights_per_gpu"] == pytest.approx(full["weights_per_gpu"])
    assert folded["decode_step_ep_communication"] > full["decode_step_ep_communication"]


def test_prefill_attention_is_the_flashattention_model(tmp_path: Path) -> None:
    """Prompt attention is timed by formulations.attention's FlashAttention forward model with
    the hardware entry's rates (one layer of Llama-3 8B, one 1024-token prompt, H100)."""
    from perfcost.formulations import attention

    case = load(tmp_path, serving_case_text("llama3-8b", "h100-sxm", batching='"static"'))
    hw = case.hardware
    rates = getattr(hw.efficiency, hw.efficiency.flash_attention)
    if rates is None or not hw.shared_memory:
        pytest.skip("the hardware entry has no FlashAttention rates")
    v = values(case, batch=1)
    shape = attention.AttentionShape(batch=1, heads=32, kv_heads=8, q_len=1024, kv_len=1024,
                                     d_qk=128, d_v=128, e=2, causal=True)
    flash = attention.FlashRates(
        peak_flops=hw.peak_flops["bf16"], forward_efficiency=rates.forward,
        backward_efficiency=rates.backward, hbm_bandwidth=hw.hbm_bandwidth,
        memory_efficiency=hw.efficiency.memory.value, multiprocessors=hw.multiprocessors,
        forward_tile_overhead=rates.forward_tile_overhead,
        backward_tile_overhead=rates.backward_tile_overhead, kernel_overhead=1e-6)
    blocks = attention.block_sizes(hw.shared_memory, 128, 128, 2)
    expected = 32 * float(attention.flash_forward_time(shape, blocks, flash))
    assert v["prefill_step_attention"] == pytest.approx(expected, rel=1e-9)
