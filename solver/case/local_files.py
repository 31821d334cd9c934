"""Bring-your-own entries: a case's ``model``, ``hardware`` or ``network`` given as a path to a
local file instead of the name of a built-in entry.

- ``hardware = "gpus/my-gpu.toml"`` and ``network = "nets/my-net.toml"``: a TOML table of the
  same keys as the built-in entries (``cases/hardware/*.toml``, ``cases/networks/*.toml``);
  what ``perfcost calibrate -o`` writes is such a file.
- ``model = "llama/config.json"``: a Hugging Face ``config.json`` (:mod:`.hf_config` maps it);
  ``model = "my-model.toml"`` a table like ``cases/models/*.toml``.

A value is a path when it ends in ``.toml`` or ``.json`` or holds a path separator (no
built-in name does). A relative path is taken from the case file's folder. A file of another
kind (a network file given as hardware, a whole case given as a model) is refused by name.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from perfcost.solver.case import catalog, files, hf_config
from perfcost.solver.case.errors import CaseError

#: Keys every entry of a folder has (the built-in entries all do), by which a file's kind is
#: recognised.
MARKERS: dict[str, tuple[str, ...]] = {
    "models": ("layers", "hidden", "heads"),
    "hardware": ("peak_flops", "hbm_bandwidth"),
    "networks": ("scale_up", "scale_out"),
}
#: Tables only a whole case (training, serving or cost) has.
CASE_KEYS = ("training", "serving", "cluster", "parallelism", "design", "system")
SUFFIXES = (".toml", ".json")


def is_path(value: str) -> bool:
    """Whether ``value`` names a file rather than a built-in entry."""
    return value.lower().endswith(SUFFIXES) or "/" in value or "\\" in value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, tables merged key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_entry(folder: str, value: str, field: str, base_dir: Path | None = None,
               rest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The table of entry ``value`` of ``folder`` (``models``, ``hardware``, ``networks``): a
    built-in name or a file path, with the keys of ``rest`` laid over it."""
    kind = catalog.KINDS[folder]
    if not is_path(value):
        try:
            table = catalog.load_entry(folder, value, field)
        except CaseError as exc:
            files = "a Hugging Face config.json or a TOML" if folder == "models" else "a TOML"
            raise CaseError(exc.field, exc.value, f"{exc.expected}; or the path of {files} "
                            f"{kind} file") from None
        return merge(table, rest or {})
    path = locate(value, base_dir)
    if path.suffix.lower() == ".json":
        if folder != "models":
            raise CaseError(field, value, f"expected a {kind} TOML file (.toml); a JSON file "
                            "is read only as a model's Hugging Face config.json")
        label = path.parent.name if path.name == "config.json" and path.parent.name else (
            path.stem)
        table, window = hf_config.model_table(_read_json(path, field, value), field,
                                              path.name, label)
        table = merge(table, rest or {})
        hf_config.check_window(window, table, field, path.name)
        return table
    data = _read_toml(path, field, value)
    found = what_is(data)
    if found != folder:
        raise CaseError(field, value, f"expected a {kind} file (a table with "
                        f"{', '.join(MARKERS[folder])}); this file looks like "
                        f"{_describe(found, data)}")
    return merge(data, rest or {})


def locate(value: str, base_dir: Path | None) -> Path:
    """The file ``value`` names: relative paths from ``base_dir`` (the case file's folder)."""
    path = Path(value)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def what_is(data: dict[str, Any]) -> str:
    """The folder whose entries ``data`` looks like, ``case``, or ``""``."""
    if any(key in data for key in CASE_KEYS) or ("model" in data and "hardware" in data):
        return "case"
    for folder, keys in MARKERS.items():
        if all(key in data for key in keys):
            return folder
    return ""


def _describe(found: str, data: dict[str, Any]) -> str:
    if found == "case":
        return "a whole case file"
    if found:
        return f"a {catalog.KINDS[found]} file"
    keys = ", ".join(list(data)[:6]) or "none"
    return f"none of them (its keys: {keys})"


def _read_text(path: Path, field: str, value: str) -> str:
    try:
        return files.read_text(path, field)  # a regular file of bounded size only
    except FileNotFoundError:
        raise CaseError(field, value, f"no such file (looked for {path}); expected a "
                        "built-in name or the path of a file, relative to the case "
                        "file's folder") from None
    except (OSError, ValueError) as exc:  # a folder, no permission, bad UTF-8, a NUL byte
        raise CaseError(field, value, f"expected a readable file; {path} cannot be read "
                        f"({type(exc).__name__})") from None


def _read_toml(path: Path, field: str, value: str) -> dict[str, Any]:
    try:
        return tomllib.loads(_read_text(path, field, value))
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(field, value, f"expected a TOML file: {exc}") from None


def _read_json(path: Path, field: str, value: str) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path, field, value))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CaseError(field, value, f"expected a Hugging Face config.json: not valid JSON "
                        f"({exc})") from None
    if not isinstance(data, dict):
        raise CaseError(field, value, "expected a Hugging Face config.json: a JSON object, "
                        f"not {type(data).__name__}")
    return data
