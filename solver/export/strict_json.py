"""Strict JSON (RFC 8259) for every ``--json`` output and JSON file perfcost writes.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which no strict parser accepts.
Here a number that is not finite becomes ``null``, and the object it sits in says so
explicitly under :data:`UNDEFINED_KEY` (key -> ``"infinite"`` / ``"-infinite"`` /
``"not a number"``), so a reader can tell "no value" (an infeasible best) from "zero".
numpy scalars and arrays become plain numbers and lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

#: The key, in an object that held a non-finite number, naming those numbers and what they were.
UNDEFINED_KEY = "undefined"
#: Deepest nesting written; deeper data is a bug, reported as such rather than a RecursionError.
MAX_DEPTH = 64


def dumps(data: Any, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (see the module docstring)."""
    return json.dumps(clean(data), indent=indent, allow_nan=False)


def clean(data: Any) -> Any:
    """``data`` made strict-JSON-ready: non-finite numbers -> ``None`` plus an explicit
    :data:`UNDEFINED_KEY` entry in the enclosing object; numpy values -> plain values."""
    return _clean(data, 0)


def _clean(x: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError("data nested too deeply for JSON output")
    x = _plain(x)
    if isinstance(x, Mapping):
        out: dict[str, Any] = {}
        undefined: dict[str, str] = {}
        for key, value in x.items():
            name = _key(key)
            value = _plain(value)
            if isinstance(value, float) and not math.isfinite(value):
                undefined[name] = _why(value)
                out[name] = None
            else:
                out[name] = _clean(value, depth + 1)
        if undefined:
            earlier = out.get(UNDEFINED_KEY)
            merged = dict(earlier) if isinstance(earlier, dict) else {}
            out[UNDEFINED_KEY] = {**merged, **undefined}
        return out
    if isinstance(x, list | tuple | set | frozenset):
        items = sorted(x, key=repr) if isinstance(x, set | frozenset) else x
        return [_clean(v, depth + 1) for v in items]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is None or isinstance(x, str | int | float | bool):
        return x
    return str(x)  # a path, an enum, a date: its text, never a crash of the writer


def _plain(x: Any) -> Any:
    """numpy scalars and arrays as Python values."""
    if hasattr(x, "tolist") and not isinstance(x, str | bytes):
        return x.tolist()
    if hasattr(x, "item") and not isinstance(x, str | bytes | Mapping):
        try:
            return x.item()
        except (TypeError, ValueError):
            return x
    return x


def _key(key: Any) -> str:
    key = _plain(key)
    if isinstance(key, float) and not math.isfinite(key):
        return _why(key)
    return key if isinstance(key, str) else str(key)


def _why(x: float) -> str:
    if math.isnan(x):
        return "not a number"
    return "infinite" if x > 0 else "-infinite"
