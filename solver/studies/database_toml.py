"""TOML text of a database fit: a hardware entry's ``[efficiency.precision.<p>]`` tables and a
network entry's ``[[scale_up.collectives]]``, with provenance (package, version, framework,
table, date) and the held-out residuals.

An entry's text is kept as written (comments included); only the tables this module writes
are replaced: every earlier ``[efficiency.precision.*]`` or ``[[scale_up.collectives]]``
block is dropped and the new ones are appended at the end of the file.
"""

from __future__ import annotations

import json
from typing import Any

from perfcost.formulations.specs import LIBRARY_KERNELS
from perfcost.solver.studies.database_fit import (
    ROW_GRANULE,
    SPLIT_K_GRANULE,
    DatabaseFit,
    KindFit,
    collective_op,
    large_gemm_efficiency,
    split_counts,
)

PRECISION_HEADER = "[efficiency.precision."
COLLECTIVE_HEADER = "[[scale_up.collectives]]"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.3f} us"


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:.3f} ns"


def _residuals(fit: KindFit) -> str:
    parts = []
    for judged in fit.judged:
        if judged.errors.size:
            r = judged.row()
            parts.append(f"{r['subset']}: {r['rows']} held-out rows, median "
                         f"{r['median_pct']:.1f} %, p90 {r['p90_pct']:.1f} %")
    return "; ".join(parts)


def provenance(fit: DatabaseFit, table_source: str) -> str:
    db = fit.database
    return (f"perfcost calibrate --database {db.gpu} --framework {db.framework}: "
            f"aiconfigurator-core {db.package_version} (NVIDIA, Apache-2.0), "
            f"table {table_source}; fitted on a seeded 70 %, judged on the other 30 %")


def decode_keys(decode: KindFit) -> dict[str, Any]:
    """The decode attention keys of a ``[efficiency.precision.<p>]`` table
    (formulations.kernels.decode_kernel_time's parameters, solver/case/measured_sections.py)."""
    p = decode.params
    return {"decode_memory": p["memory_efficiency"], "decode_matmul": p["matmul_efficiency"],
            "decode_block_overhead": _us(p["block_overhead"]),
            "decode_row_overhead": _us(p["row_overhead"]),
            "decode_kernel_overhead": _us(p["kernel_overhead"]),
            "decode_fallback_vector": p["fallback_efficiency"],
            "decode_fallback_block_overhead": _us(p["fallback_block_overhead"]),
            "decode_fallback_kernel_overhead": _us(p["fallback_kernel_overhead"]),
            "decode_group_limit": int(p["group_limit"]), "decode_kv_chunk": int(p["kv_chunk"]),
            "decode_multi_block": p["multi_block"],
            "decode_block_stream_share": p["block_stream_share"],
            "decode_overlap": p["overlap"], "decode_kv_tile": int(p["kv_tile"]),
            "decode_token_time": _ns(p["token_time"]),
            "decode_row_token_time": _ns(p["row_token_time"]),
            "decode_fallback_stream_share": p["fallback_stream_share"],
            "decode_fixed_rows": p["fixed_rows"]}


def mla_decode_keys(mla: KindFit) -> dict[str, Any]:
    """The MLA decode keys of a ``[efficiency.precision.<p>]`` table (formulations.kernels.
    mla_decode_time's parameters, solver/case/measured_sections.py)."""
    p = mla.params
    return {"mla_decode_memory": p["memory_efficiency"],
            "mla_decode_matmul": p["matmul_efficiency"],
            "mla_decode_split_overhead": _us(p["split_overhead"]),
            "mla_decode_kernel_overhead": _us(p["kernel_overhead"]),
            "mla_decode_tile_reread": p["tile_reread"], "mla_decode_tiling": p["tiling"],
            # Only fmha_v2's fit states a least time per step (formulations.kernels.
            # mla_decode_time); the other kernels' entries need no key for it.
            **({"mla_decode_step_time": _us(p["step_time"])} if p.get("step_time") else {})}


def precision_tables(fit: DatabaseFit, as_of: str) -> dict[str, dict[str, Any]]:
    """The ``[efficiency.precision.<p>]`` tables: one per precision with a GEMM fit."""
    tables: dict[str, dict[str, Any]] = {}
    for gemm in (f for f in fit.fits if f.kind == "gemm"):
        p = gemm.params
        sources = [gemm.source]
        residuals = [f"gemm {_residuals(gemm)}"]
        tiles = [[int(a), int(b)] for a, b in p["tiles"]]
        table: dict[str, Any] = {
            # The achieved efficiency of a large square GEMM (its cast included), what the
            # training and serving models read; the kernel model's own rate beside it.
            "matmul": large_gemm_efficiency(gemm.precision, fit.machine, p),
            "gemm_efficiency": p["matmul_efficiency"], "memory": p["memory_efficiency"],
            # The largest candidate tile: the one a large GEMM runs with.
            "gemm_tile": max(tiles, key=lambda t: t[0] * t[1]),
            "gemm_tiles": tiles, "split_k_counts": list(split_counts(gemm.precision)),
            "stream_k": bool(p["stream_k"]),
            "boost": p["boost"], "power_window": _us(p["power_window"]),
            "kernel_overhead": _us(p["kernel_overhead"]),
            "wave_overhead": _us(p["wave_overhead"]),
            "gemm_row_granule": ROW_GRANULE, "split_k_granule": SPLIT_K_GRANULE,
            "quantised_activations": gemm.precision != "bf16",
            "amax_pass": bool(p["amax_pass"]),
        }
        if p.get("wave_overlapped"):
            # The cost per wave beside the HBM traffic (the kernel family of least loss).
            table["gemm_wave_overlapped"] = True
        if "overlap" in p:
            # The norm of the tensor cores' time and the HBM traffic's.
            table["gemm_overlap"] = p["overlap"]
        if "quantise_efficiency" in p:
            # The HBM rate of the kernels that quantise the activations.
            table["gemm_quantise_memory"] = p["quantise_efficiency"]
        if "l2_gain" in p:
            # The speed of the bytes the quantisation chain hands on through the L2.
            table["gemm_l2_gain"] = p["l2_gain"]
        if "kblock_time" in p:
            # The shortest main-loop step of a block-scaled kernel (its scales per k-block).
            table["gemm_kblock_time"] = _us(p["kblock_time"])
        kernels = p.get("kernels", LIBRARY_KERNELS)
        if kernels != LIBRARY_KERNELS:
            # DeepGEMM's tiles: its heuristic's pick (on the SM 100 family the swap-AB
            # kernel's too).
            table["gemm_kernels"] = kernels
        if "padded_row_time" in p:
            # On Hopper its padded rows cost, its multicast saves.
            table["gemm_padded_row_time"] = _ns(p["padded_row_time"])
            table["gemm_padded_row_shared_time"] = _ns(p["padded_row_shared_time"])
            table["gemm_multicast_gain"] = p["multicast_gain"]
        prefill = fit.of("context attention", gemm.precision)
        if prefill is not None:
            q = prefill.params
            table.update(prefill_forward=q["forward"],
                         prefill_tile_overhead=_us(q["forward_tile_overhead"]),
                         prefill_kernel_overhead=_us(q["kernel_overhead"]),
                         prefill_memory=q["memory_efficiency"],
                         prefill_preprocess_memory=q["preprocess_efficiency"],
                         prefill_softmax=q["softmax"],
                         prefill_query_tile=int(q["query_tile"]))
            sources.append(prefill.source)
            residuals.append(f"prefill attention {_residuals(prefill)}")
        decode = fit.of("generation attention", gemm.precision)
        if decode is not None:
            table.update(decode_keys(decode))
            sources.append(decode.source)
            residuals.append(f"decode attention {_residuals(decode)}")
        mla = fit.of("generation mla", gemm.precision)
        if mla is not None:
            table.update(mla_decode_keys(mla))
            sources.append(mla.source)
            residuals.append(f"mla decode {_residuals(mla)}")
        moe = fit.of("moe", gemm.precision)
        if moe is not None:
            table.update(moe_matmul=moe.params["matmul_efficiency"],
                         moe_memory=moe.params["memory_efficiency"],
                         moe_permute=moe.params["permute_efficiency"],
                         moe_overhead=_us(moe.params["overhead"]))
            sources.append(moe.source)
            residuals.append(f"moe {_residuals(moe)}")
        table["source"] = provenance(fit, ", ".join(sources))
        table["as_of"] = as_of
        table["residuals"] = "; ".join(residuals)
        tables[gemm.precision] = table
    return tables


def collective_entries(fit: DatabaseFit, as_of: str) -> list[dict[str, Any]]:
    """One ``[[scale_up.collectives]]`` entry per size range of each fitted collective table
    and rank count (solver/studies/collective_ranges.py)."""
    out = []
    for f in fit.fits:
        family = f.kind.split(" ", 1)[0]
        if family not in ("nccl", "custom"):
            continue
        ranges = f.params["ranges"]
        for i, r in enumerate(ranges, start=1):
            out.append({"op": collective_op(f.kind), "algorithm": f.params["algorithm"],
                        "implementation": family, "ranks": int(f.params["ranks"]),
                        "latency": _us(r["latency"]),
                        "bandwidth": f"{r['bandwidth'] / 1e9:.1f} GB/s",
                        "min_bytes": f"{r['min_bytes']} B",
                        "max_bytes": f"{r['max_bytes']} B",
                        "source": provenance(fit, f.source), "as_of": as_of,
                        "residuals": f"size range {i} of {len(ranges)} ({r['fit_rows']} fitted "
                                     f"rows); all ranges: {_residuals(f)}"})
    return out


def _without(text: str, keep: Any) -> list[str]:
    """The lines of ``text`` outside the blocks whose header ``keep`` rejects."""
    lines, dropping = [], False
    for line in text.splitlines():
        head = line.strip()
        if head.startswith("["):
            dropping = not keep(head)
        if not dropping:
            lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def hardware_text(original: str, fit: DatabaseFit, as_of: str) -> str:
    """The hardware entry's text with its per-precision tables replaced by the fit."""
    lines = _without(original, lambda head: not head.startswith(PRECISION_HEADER))
    for precision, table in precision_tables(fit, as_of).items():
        lines += ["", f"{PRECISION_HEADER}{precision}]"]
        lines += [f"{key} = {_value(v)}" for key, v in table.items()]
    return "\n".join(lines) + "\n"


def network_text(original: str, fit: DatabaseFit, as_of: str) -> str:
    """The network entry's text with its measured scale-up collectives replaced by the fit."""
    lines = _without(original, lambda head: head != COLLECTIVE_HEADER)
    for entry in collective_entries(fit, as_of):
        lines += ["", COLLECTIVE_HEADER]
        lines += [f"{key} = {_value(v)}" for key, v in entry.items()]
    return "\n".join(lines) + "\n"
