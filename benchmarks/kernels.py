"""Measure a kernel file for ``perfcost calibrate`` on this machine's GPU (docs/kernels.md).

Needs PyTorch with CUDA and a GPU; it is not run by the test suite.

    python benchmarks/kernels.py -o my-gpu-kernels.json [--quick]
    perfcost calibrate my-gpu-kernels.json --hardware h100-sxm -o my-h100.toml

It times, in bf16 with CUDA events (median over samples of back-to-back calls, after warm-up):

* GEMMs ``C[m,n] = A[m,k] @ B[k,n]`` of the shapes of transformer layers (QKV, projection,
  MLP) for several hidden sizes and token counts, plus decode-sized GEMMs (small ``m``);
* attention through ``torch.nn.functional.scaled_dot_product_attention`` with the flash
  backend (FlashAttention-2 in PyTorch) and, where it fits in memory, the math backend
  (materialised softmax), forward and forward+backward;
* a 2 GiB device-to-device copy (achievable HBM bandwidth) and an 8192^3 GEMM.

The shapes run in a shuffled order and the 8192^3 reference GEMM is re-timed between groups;
its spread is written to ``ceilings.reference_spread``. A spread of several per cent means the
clock drifted (power or thermal limits) during the run: lock the clocks or let the GPU cool
between runs, because the fit cannot tell drift from shape effects.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Callable
from typing import Any

#: Hidden sizes and tensor-parallel widths of the layer shapes (Llama/GPT-like, MLP 4h).
HIDDEN = (2048, 4096, 8192, 12288)
TP = (1, 8)
TOKENS = (2048, 8192)
MLP_RATIO = 4
#: Decode-sized GEMMs: batch rows against the MLP weights of 8B- and 70B-class models.
DECODE_ROWS = (1, 8, 32, 128, 512)
DECODE_WEIGHTS = {"dec_fc1": (14336, 4096), "dec_big": (28672, 8192)}
#: Attention: tokens per batch held at 16k, as the FlashAttention papers' benchmarks do.
ATTENTION_TOKENS = 16384
ATTENTION_SEQ = (1024, 2048, 4096, 8192, 16384)
ATTENTION_HEADS = (32, 64)
HEAD_DIM = 128
#: The materialised (math) backend is timed only where its score matrix stays this small.
MATH_MAX_SCORE_BYTES = 4 * 2**30
COPY_BYTES = 2 * 2**30
REFERENCE = 8192
#: Warm-up per shape (seconds of back-to-back calls): lets the clocks settle after the
#: inputs were allocated.
WARMUP_S = 0.05
#: Samples per shape; each sample times back-to-back calls for at least SAMPLE_S seconds.
SAMPLES = 7
SAMPLE_S = 0.01
FLOPS_PER_MAC = 2
#: Forward+backward over forward FLOPs of attention with the score recomputation counted
#: as the papers do (2.5x backward).
FWD_BWD_FACTOR = 3.5


def _timer(torch: Any) -> Callable[[Callable[[], Any]], float]:
    def timed(fn: Callable[[], Any], calls: int) -> float:
        """Seconds per call of ``calls`` back-to-back calls (launches overlap execution, as
        in a training step)."""
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / calls

    def median_seconds(fn: Callable[[], Any]) -> float:
        once = timed(fn, 1)
        timed(fn, max(1, int(WARMUP_S / once)))
        calls = max(1, int(SAMPLE_S / timed(fn, 1)))
        return statistics.median(timed(fn, calls) for _ in range(SAMPLES))

    return median_seconds


def gemm_shapes(quick: bool) -> list[tuple[str, int, int, int]]:
    shapes = []
    for h in HIDDEN[:2] if quick else HIDDEN:
        for t in TP:
            for tokens in TOKENS:
                shapes += [("qkv", tokens, 3 * h // t, h), ("proj", tokens, h, h // t),
                           ("fc1", tokens, MLP_RATIO * h // t, h),
                           ("fc2", tokens, h, MLP_RATIO * h // t)]
    for rows in DECODE_ROWS:
        for name, (n, k) in DECODE_WEIGHTS.items():
            shapes.append((name, rows, n, k))
    return shapes


def measure(quick: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/kernels.py needs a CUDA GPU")
    time_it = _timer(torch)
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    bf16 = torch.bfloat16

    def gemm_seconds(m: int, n: int, k: int) -> float:
        a = torch.randn(m, k, device=dev, dtype=bf16)
        b = torch.randn(k, n, device=dev, dtype=bf16)
        return time_it(lambda: a @ b)

    reference: list[float] = []
    rows = []
    shapes = gemm_shapes(quick)
    random.Random(0).shuffle(shapes)
    for i, (op, m, n, k) in enumerate(shapes):
        if i % 8 == 0:
            reference.append(gemm_seconds(REFERENCE, REFERENCE, REFERENCE))
        s = gemm_seconds(m, n, k)
        flops = FLOPS_PER_MAC * m * n * k
        rows.append({"op": op, "m": m, "n": n, "k": k, "s": s, "tflops": flops / s / 1e12,
                     "bytes": 2 * (m * k + k * n + m * n)})

    attention = []
    backends = {"flash": torch.nn.attention.SDPBackend.FLASH_ATTENTION,
                "math": torch.nn.attention.SDPBackend.MATH}
    for heads in ATTENTION_HEADS:
        for s in ATTENTION_SEQ[:3] if quick else ATTENTION_SEQ:
            b = ATTENTION_TOKENS // s
            for backend, kind in backends.items():
                if backend == "math" and b * heads * s * s * 2 > MATH_MAX_SCORE_BYTES:
                    continue
                q, k_, v = (torch.randn(b, heads, s, HEAD_DIM, device=dev, dtype=bf16,
                                        requires_grad=True) for _ in range(3))
                grad = torch.randn_like(q)
                with torch.nn.attention.sdpa_kernel(kind):
                    def forward(q=q, k_=k_, v=v) -> Any:
                        return F.scaled_dot_product_attention(q, k_, v, is_causal=True)

                    def forward_backward(q=q, k_=k_, v=v, grad=grad) -> None:
                        out = F.scaled_dot_product_attention(q, k_, v, is_causal=True)
                        out.backward(grad)

                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    fwd = time_it(forward)
                    extra = torch.cuda.max_memory_allocated() - base
                    both = time_it(forward_backward)
                flops = FLOPS_PER_MAC * b * heads * s * s * HEAD_DIM  # causal half of 4bhs^2d
                attention.append({
                    "backend": backend, "b": b, "heads": heads, "s": s, "d": HEAD_DIM,
                    "causal": True, "fwd_s": fwd, "fwdbwd_s": both,
                    "fwd_tflops": flops / fwd / 1e12,
                    "fwdbwd_tflops": FWD_BWD_FACTOR * flops / both / 1e12,
                    "fwd_peak_extra_bytes": int(extra)})

    src = torch.empty(COPY_BYTES // 2, device=dev, dtype=bf16)
    dst = torch.empty_like(src)
    copy = time_it(lambda: dst.copy_(src))
    ref = statistics.median(reference)
    return {
        "what": f"Kernel timings measured by benchmarks/kernels.py on one {props.name}, bf16: "
                f"median over {SAMPLES} samples of back-to-back calls (each sample at least "
                f"{SAMPLE_S * 1e3:g} ms, after {WARMUP_S * 1e3:g} ms of warm-up), CUDA events.",
        "device": {"name": props.name, "sms": props.multi_processor_count,
                   "mem_gib": props.total_memory / 2**30,
                   "cc": f"{props.major}.{props.minor}", "torch": torch.__version__},
        "ceilings": {
            "copy_TBps_rw": 2 * COPY_BYTES / copy / 1e12,
            "gemm8192_TFLOPs": FLOPS_PER_MAC * REFERENCE**3 / ref / 1e12,
            "reference_spread": (max(reference) - min(reference)) / ref,
        },
        "gemm": rows,
        "attention": attention,
        "fields": {
            "gemm": "C[m,n] = A[m,k] @ B[k,n]; s = seconds",
            "attention": "scaled_dot_product_attention, causal; flash = FlashAttention-2, "
                         "math = materialised softmax; seconds of forward and "
                         "forward+backward",
            "ceilings": "copy_TBps_rw: bytes read + written per second of a device copy",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="kernel file to write (JSON)")
    parser.add_argument("--quick", action="store_true", help="fewer shapes (a few minutes)")
    args = parser.parse_args()
    data = measure(args.quick)
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
    print(f"{'op':8s} {'m':>6s} {'n':>6s} {'k':>6s} {'us':>10s} {'TFLOP/s':>8s}")
    for row in sorted(data["gemm"], key=lambda r: (r["op"], r["m"], r["n"], r["k"])):
        print(f"{row['op']:8s} {row['m']:6d} {row['n']:6d} {row['k']:6d} "
              f"{row['s'] * 1e6:10.1f} {row['tflops']:8.1f}")
    for row in data["attention"]:
        print(f"{row['backend']:6s} b{row['b']} h{row['heads']} s{row['s']}: fwd "
              f"{row['fwd_s'] * 1e3:.3f} ms, fwd+bwd {row['fwdbwd_s'] * 1e3:.3f} ms")
    c = data["ceilings"]
    print(f"copy {c['copy_TBps_rw']:.2f} TB/s; 8192^3 GEMM {c['gemm8192_TFLOPs']:.0f} TFLOP/s "
          f"(spread over the run {100 * c['reference_spread']:.1f} %)")


if __name__ == "__main__":
    main()
