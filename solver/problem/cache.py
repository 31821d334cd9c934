"""A disk cache for what is slow to build and the same on every run: the numeric functions
lambdified from a formulation (and, in the engines, the compiled tables of a search).

Entries are JSON files under the user's cache folder (``$PERFCOST_CACHE_DIR``, else
``$XDG_CACHE_HOME/perfcost`` or ``~/.cache/perfcost``; on macOS ``~/Library/Caches/perfcost``,
on Windows ``%LOCALAPPDATA%\\perfcost``). Each key hashes the input in full (the frozen specs a
formulation is built from) together with a *fingerprint* of everything that shapes the output:
the cache format, perfcost's version, the source text of every module of
``perfcost.formulations``, and the versions of sympy and numpy. A change to any of them misses
the cache, so it never has to be cleared by hand; deleting the folder is always safe.
``PERFCOST_NO_CACHE=1`` turns it off. A damaged or unreadable entry is a miss, never an error.

What is stored is data and the Python source that ``sympy.lambdify`` generated; the source is
compiled again when read (see :mod:`.numeric`). The folder belongs to the user like any of their
files; perfcost never reads an entry it did not write under a key it computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

#: Environment variable naming the cache folder.
CACHE_DIR_ENV = "PERFCOST_CACHE_DIR"
#: Environment variable that turns the cache off (any non-empty value but "0").
NO_CACHE_ENV = "PERFCOST_NO_CACHE"
#: Bumped whenever the layout of an entry changes.
FORMAT = 1
#: Most entries of one kind kept: past it the oldest quarter is removed (a sweep over a
#: parameter writes one small entry per point; the cache must not grow without end).
MAX_ENTRIES = 4096


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is off."""
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "perfcost"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "perfcost"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perfcost"


@cache
def fingerprint() -> str:
    """A digest of everything, besides the key's own input, that shapes a cached entry."""
    from importlib import metadata

    import perfcost.formulations as formulations

    digest = hashlib.sha256(f"format {FORMAT}".encode())
    for dist in ("perfcost", "sympy", "numpy"):
        try:
            digest.update(f"{dist} {metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{dist} unknown".encode())
    folder = Path(formulations.__file__).parent
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def key(*parts: str) -> str:
    """The key of an entry: the fingerprint and every part of its input, hashed."""
    digest = hashlib.sha256(fingerprint().encode())
    for part in parts:
        digest.update(b"\0")
        digest.update(part.encode())
    return digest.hexdigest()


def _path(kind: str, entry_key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / kind / f"{entry_key}.json"


def read(kind: str, entry_key: str) -> dict[str, Any] | None:
    """The entry ``kind``/``entry_key``, or None (absent, off, unreadable or damaged)."""
    path = _path(kind, entry_key)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != entry_key:
        return None
    return data


def write(kind: str, entry_key: str, data: dict[str, Any]) -> None:
    """Store an entry (atomically: a reader sees the old entry, the new one, or none). A cache
    that cannot be written (read-only home, full disk) is silently skipped."""
    path = _path(kind, entry_key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                         suffix=".tmp", delete=False) as tmp:
            json.dump({**data, "key": entry_key}, tmp)
        os.replace(tmp.name, path)
        _trim(path.parent)
    except OSError:
        return


def _trim(folder: Path) -> None:
    """Keep at most :data:`MAX_ENTRIES` entries in ``folder``, dropping the oldest first."""
    entries = [e for e in os.scandir(folder) if e.name.endswith(".json")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for entry in entries[:len(entries) - MAX_ENTRIES * 3 // 4]:
        with contextlib.suppress(OSError):  # another process may have removed it first
            os.unlink(entry.path)
