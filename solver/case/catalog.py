"""The built-in catalog: models, hardware, networks, studies and validation cases shipped as
package data under ``perfcost.cases``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from perfcost.solver.case.errors import CaseError

#: Folders of the catalog and what their entries are.
KINDS: dict[str, str] = {
    "models": "model",
    "hardware": "hardware",
    "networks": "network",
    "studies": "study case",
    "validation": "validation case",
    "technology": "process node",
    "packaging": "packaging",
    "designs": "design (perfcost cost)",
    "frameworks": "framework profile",
}
#: Folders whose entries are whole cases (runnable by name).
CASE_FOLDERS = ("studies", "validation")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    description: str
    path: Path


def root() -> Path:
    return Path(str(files("perfcost.cases")))


@cache
def entries(folder: str) -> dict[str, Path]:
    base = root() / folder
    if not base.is_dir():
        return {}
    return {p.stem: p for p in sorted(base.glob("*.toml"))}


def load_entry(folder: str, name: str, field: str) -> dict[str, Any]:
    """The table of built-in entry ``name`` in ``folder`` (``field`` names it in errors)."""
    path = entries(folder).get(name)
    if path is None:
        known = ", ".join(entries(folder)) or "none"
        raise CaseError(field, name, f"unknown built-in {KINDS[folder]}; expected one of: "
                        f"{known}")
    return dict(_read(path, field, name))


def _read(path: Path, field: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError included
        raise CaseError(field, name, f"the built-in file {path} cannot be read: "
                        f"{type(exc).__name__}: {exc}") from None


def find_case(source: str) -> Path:
    """A case file path, or the path of the built-in case named ``source``."""
    path = Path(source)
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        exists = False
    if source and (path.suffix == ".toml" or exists):
        return path
    for folder in CASE_FOLDERS:
        found = entries(folder).get(source)
        if found is not None:
            return found
    known = ", ".join(entries("studies"))
    raise CaseError("case", source, f"expected a case file or a built-in case: {known} "
                    "(and the validation cases, see 'perfcost cases')")


def listing() -> list[Entry]:
    """Every built-in entry with its one-line description."""
    out = []
    for folder, kind in KINDS.items():
        for name, path in entries(folder).items():
            data = _read(path, kind, name)
            out.append(Entry(kind, name, str(data.get("description", "")), path))
    return out
