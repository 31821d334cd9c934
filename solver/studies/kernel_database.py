"""Measured kernel tables of NVIDIA's ``aiconfigurator-core`` package (Apache-2.0), normalised.

The package ships, per GPU and serving framework, parquet tables of measured kernel latencies
(milliseconds) under ``aiconfigurator_core/systems/data/<gpu>/<kind>/<framework>/<version>/``;
a version that recollected only part of a table declares in its ``reuse.yaml`` the older
version the rest comes from, and both are read.
This module reads the tables ``perfcost calibrate --database`` fits and turns them into
:class:`Table` s of plain numpy columns in SI units (seconds, bytes), so the fit never sees the
package's layout:

* ``gemm``: ``m, n, k`` per precision (``bf16``, ``fp8`` per-tensor, ``fp8_block``
  block-scaled, ``fp4`` = NVFP4); where two kernel sources measured a shape the faster one
  is kept, as the framework would pick it.
* ``context attention`` (prefill, causal): ``b, s, heads, kv_heads, d``, full attention only.
* ``generation attention`` (decode of one token per sequence): ``b, kv_len, heads,
  kv_heads, d``; the precision is the KV cache's.
* ``generation mla`` (DeepSeek's multi-head latent attention decoding one token per
  sequence on its 512 + 64 wide latent cache): ``b, kv_len, heads`` (one rank's query heads);
  the precision is the cache's.
* ``moe``: ``tokens, hidden, inter, topk, experts, tp, ep`` of the balanced routing rows, and
  ``matrices`` per expert (3 gated, 2 for the kernels without a gate).
* ``nccl <op>`` and ``custom all_reduce``: ``ranks, bytes``. The tables' ``message_size``
  counts elements of the table's dtype (an 8-GPU H100 all-reduce of 2^28 half elements then
  runs at the 445 GB/s bus bandwidth nccl-tests reports; read as bytes it would be half that).

The same tables can be written to and read from a directory of CSV files (``tests/data``
keeps such an extract), so that tests need neither the package nor pyarrow.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from perfcost.solver.case.errors import CaseError

PACKAGE = "aiconfigurator_core"
INSTALL_HINT = "pip install 'perfcost[kernels]' (aiconfigurator-core and pyarrow)"
FRAMEWORKS = ("trtllm", "vllm", "sglang")
#: Seconds per millisecond: the package's latencies are in ms.
MS = 1e-3
#: Precision names of the tables -> the hardware entry's precision keys.
GEMM_PRECISIONS = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4"}
ATTENTION_PRECISIONS = {"bfloat16": "bf16", "fp8": "fp8"}
MOE_PRECISIONS = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4"}
#: Bytes per element of the communication tables' dtypes.
COMM_ELEMENT_BYTES = {"half": 2, "bfloat16": 2, "float16": 2, "int8": 1, "float32": 4}


@dataclass(frozen=True)
class Table:
    """One measured table: integer shape columns and the measured seconds per row."""

    kind: str
    precision: str
    columns: dict[str, np.ndarray]
    seconds: np.ndarray
    source: str  # "<gpu>/<kind>/<framework>/<version>/<file>"

    def __len__(self) -> int:
        return int(self.seconds.size)

    def take(self, index: np.ndarray) -> Table:
        return Table(self.kind, self.precision, {k: v[index] for k, v in self.columns.items()},
                     self.seconds[index], self.source)

    @property
    def framework_version(self) -> tuple[str, str]:
        """The framework and its version that measured the table, from :attr:`source`
        (empty strings for a source of another form)."""
        parts = self.source.split("/")
        return (parts[2], parts[3]) if len(parts) >= 4 else ("", "")


@dataclass(frozen=True)
class Database:
    gpu: str
    framework: str
    package_version: str
    tables: tuple[Table, ...]
    #: The GPU's compute capability as the package's system file states it (90 for SM 90),
    #: None where it states none: which kernels the framework runs depends on it.
    sm_version: int | None = None

    def of(self, kind: str) -> list[Table]:
        return [t for t in self.tables if t.kind == kind]


def version_key(text: str) -> tuple[tuple[int, str], ...]:
    """Order versions like 1.3.0rc9 < 1.3.0rc20 < 1.3.0 (numbers compare as numbers)."""
    parts = re.findall(r"\d+|[a-z]+", text.lower())
    # A release sorts after its pre-releases: pad with a marker above any letter.
    return (*((int(p), "") if p.isdigit() else (-1, p) for p in parts), (10**9, "~"))


def _data_root(gpu: str) -> tuple[Path, str]:
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise CaseError("--database", gpu, f"expected the kernel database extra: {INSTALL_HINT}")
    if any(importlib.util.find_spec(name) is None for name in ("pyarrow", "pandas")):
        raise CaseError("--database", gpu,
                        f"expected pyarrow and pandas to read the tables: {INSTALL_HINT}")
    root = Path(spec.origin).parent / "systems" / "data"
    known = sorted(p.name for p in root.iterdir() if p.is_dir())
    if gpu not in known:
        raise CaseError("--database", gpu, f"expected one of the database's GPUs: "
                        f"{', '.join(known)}")
    return root / gpu, importlib.metadata.version("aiconfigurator-core")


def _reused(version: Path, table: str) -> str | None:
    """The older version whose ``table`` a version folder declares it reuses, if any (its
    ``reuse.yaml``: ``- table: NAME`` then ``from_version: V``)."""
    path = version / "reuse.yaml"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"table:\s*{re.escape(table)}\s*\n\s*from_version:\s*(\S+)", text)
    return match.group(1).strip("'\"") if match else None


def _newest_files(folder: Path, file: str) -> list[Path]:
    """The files of the newest version of one table: the version's own file and, where it
    declares that it reuses an older collection for the rest, that one's (newest first)."""
    table = file.removesuffix(".parquet")
    versions = [p for p in folder.iterdir() if (p / file).is_file() or _reused(p, table)
                ] if folder.is_dir() else []
    if not versions:
        return []
    newest = max(versions, key=lambda p: version_key(p.name))
    files = [newest / file] if (newest / file).is_file() else []
    older = _reused(newest, table)
    if older is not None and (folder / older / file).is_file():
        files.append(folder / older / file)
    return files


def _read(paths: list[Path]):  # a pandas DataFrame; pandas is imported lazily
    import pandas as pd

    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def _ints(frame, names: dict[str, str]) -> dict[str, np.ndarray]:
    return {ours: frame[theirs].to_numpy(dtype=np.int64) for ours, theirs in names.items()}


def _fastest(frame, keys: list[str]):
    """One row per shape: the fastest kernel source, as the framework's tuner would choose."""
    return frame.sort_values("latency").drop_duplicates(keys, keep="first")


def _full_attention(frame):  # a pandas DataFrame in and out
    """The rows of an attention table that attend over the whole sequence (no sliding
    window). A table without the ``window_size`` column states no window, and its rows are
    read as full attention: the A100's vLLM and SGLang tables come from collectors older
    than that column."""
    if "window_size" not in frame.columns:
        return frame
    return frame[frame.window_size == 0]


def _tables_of(frame, kind: str, precision_column: str, precisions: dict[str, str],
               names: dict[str, str], source: str) -> list[Table]:
    out = []
    for theirs, ours in precisions.items():
        part = frame[frame[precision_column] == theirs]
        if len(part):
            part = _fastest(part, list(names.values()))
            out.append(Table(kind, ours, _ints(part, names),
                             part["latency"].to_numpy(dtype=float) * MS, source))
    return out


def read_database(gpu: str, framework: str = "trtllm") -> Database:
    """The normalised tables of ``gpu`` (the database's own name, like ``h100_sxm``) for
    ``framework``, each from the newest version the package holds; collectives from the
    newest NCCL table and the framework's custom all-reduce."""
    if framework not in FRAMEWORKS:
        raise CaseError("--framework", framework, f"expected one of {', '.join(FRAMEWORKS)}")
    root, package_version = _data_root(gpu)
    tables: list[Table] = []

    def newest(kind: str, file: str, fw: str = framework) -> tuple[list[Path], str] | None:
        files = _newest_files(root / kind / fw, file)
        if not files:
            return None
        return files, " + ".join(f"{gpu}/{kind}/{fw}/{f.parent.name}/{file}" for f in files)

    found = newest("gemm", "gemm_perf.parquet")
    if found:
        frame = _read(found[0])
        tables += _tables_of(frame, "gemm", "gemm_dtype", GEMM_PRECISIONS,
                             {"m": "m", "n": "n", "k": "k"}, found[1])
    found = newest("attention", "context_attention_perf.parquet")
    if found:
        frame = _read(found[0])
        frame = _full_attention(frame)
        frame = frame[frame.kv_cache_dtype == frame.attn_dtype]
        tables += _tables_of(frame, "context attention", "attn_dtype", ATTENTION_PRECISIONS,
                             {"b": "batch_size", "s": "isl", "heads": "num_heads",
                              "kv_heads": "num_key_value_heads", "d": "head_dim"}, found[1])
    found = newest("attention", "generation_attention_perf.parquet")
    if found:
        frame = _full_attention(_read(found[0]))
        tables += _tables_of(frame, "generation attention", "kv_cache_dtype",
                             ATTENTION_PRECISIONS,
                             {"b": "batch_size", "kv_len": "step", "heads": "num_heads",
                              "kv_heads": "num_key_value_heads", "d": "head_dim"}, found[1])
    found = newest("mla", "generation_mla_perf.parquet")
    if found:
        # The attention kernel alone on the latent cache (mla_generation_module_perf adds the
        # projections around it); ``num_heads`` is one rank's query heads.
        tables += _tables_of(_read(found[0]), "generation mla", "kv_cache_dtype",
                             ATTENTION_PRECISIONS,
                             {"b": "batch_size", "kv_len": "step", "heads": "num_heads"},
                             found[1])
    found = newest("moe", "moe_perf.parquet")
    if found:
        frame = _read(found[0])
        frame = frame[frame.distribution == "balanced"]
        # Gated MLP experts (gate, up, down) unless the kernel says it has no gate.
        gated = ~frame.kernel_source.str.contains("nongated")
        frame = frame.assign(matrices=gated.astype(int) + 2)
        tables += _tables_of(frame, "moe", "moe_dtype", MOE_PRECISIONS,
                             {"tokens": "num_tokens", "hidden": "hidden_size",
                              "inter": "inter_size", "topk": "topk",
                              "experts": "num_experts", "tp": "moe_tp_size",
                              "ep": "moe_ep_size", "matrices": "matrices"}, found[1])
    found = newest("comm", "nccl_perf.parquet", "nccl")
    if found:
        tables += _comm_tables(_read(found[0]), "nccl_dtype", "nccl", found[1])
    found = newest("comm", "custom_allreduce_perf.parquet")
    if found:
        tables += _comm_tables(_read(found[0]), "allreduce_dtype", "custom", found[1])
    if not tables:
        raise CaseError("--framework", framework,
                        f"expected a framework with measured tables for {gpu}")
    return Database(gpu, framework, package_version, tuple(tables), _sm_version(root, gpu))


def _sm_version(root: Path, gpu: str) -> int | None:
    """The compute capability in the package's system file of ``gpu`` (``systems/<gpu>.yaml``,
    its ``sm_version``), None where the file or the key is missing."""
    path = root.parent.parent / f"{gpu}.yaml"
    if not path.is_file():
        return None
    match = re.search(r"^\s*sm_version:\s*(\d+)\s*$", path.read_text(encoding="utf-8"),
                      re.MULTILINE)
    return int(match.group(1)) if match else None


def _comm_tables(frame, dtype_column: str, family: str, source: str) -> list[Table]:
    out = []
    # The widest dtype measured (half/bf16): what tensor-parallel all-reduces move.
    frame = frame[frame[dtype_column].isin(["half", "bfloat16", "float16"])]
    for op in sorted(frame.op_name.unique()):
        part = _fastest(frame[frame.op_name == op], ["num_gpus", "message_size"])
        element = np.array([COMM_ELEMENT_BYTES[d] for d in part[dtype_column]], dtype=np.int64)
        columns = {"ranks": part["num_gpus"].to_numpy(dtype=np.int64),
                   "bytes": part["message_size"].to_numpy(dtype=np.int64) * element}
        out.append(Table(f"{family} {op}", "bf16", columns,
                         part["latency"].to_numpy(dtype=float) * MS, source))
    return out


# -- CSV extracts (tests/data) ---------------------------------------------------------------

def _file_name(table: Table) -> str:
    return f"{table.kind.replace(' ', '_')}__{table.precision}.csv"


def write_extract(database: Database, folder: Path, rows: int, seed: int = 0) -> None:
    """A seeded random sample of at most ``rows`` rows of every table, as CSV files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for table in database.tables:
        keep = np.sort(rng.permutation(len(table))[:rows])
        part = table.take(keep)
        with (folder / _file_name(table)).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["# source", part.source])
            writer.writerow([*part.columns, "seconds"])
            for i in range(len(part)):
                writer.writerow([*(int(v[i]) for v in part.columns.values()),
                                 repr(float(part.seconds[i]))])
    (folder / "database.txt").write_text(
        f"gpu = {database.gpu}\nframework = {database.framework}\n"
        f"package = aiconfigurator-core {database.package_version}\n"
        + (f"sm_version = {database.sm_version}\n" if database.sm_version else ""),
        encoding="utf-8")


def read_extract(folder: str | Path) -> Database:
    """The tables of a CSV extract written by :func:`write_extract`."""
    folder = Path(folder)
    meta = folder / "database.txt"
    if not meta.is_file():
        raise CaseError("extract", str(folder), "expected a folder with database.txt")
    info = dict(line.split(" = ", 1) for line in meta.read_text(encoding="utf-8").splitlines()
                if " = " in line)
    tables = []
    for path in sorted(folder.glob("*__*.csv")):
        kind, precision = path.stem.split("__")
        with path.open(encoding="utf-8") as fh:
            lines = list(csv.reader(fh))
        source, header, body = lines[0][1], lines[1], lines[2:]
        values = np.array([[float(v) for v in row] for row in body], dtype=float)
        columns = {name: values[:, i].astype(np.int64) for i, name in enumerate(header[:-1])}
        tables.append(Table(kind.replace("_", " ", 1) if kind.startswith(("nccl", "custom"))
                            else kind.replace("_", " "), precision, columns, values[:, -1],
                            source))
    sm = info.get("sm_version", "")
    return Database(info.get("gpu", folder.name), info.get("framework", ""),
                    info.get("package", ""), tuple(tables), int(sm) if sm.isdigit() else None)
