"""Physical quantities at the boundary: parse ``"80 GiB"``, ``"2.039 TB/s"``, ``"312 TFLOP/s"``,
``"5 us"``, ``"2.5 USD/h"`` once, check their dimension, and return SI base units (s, B, FLOP,
USD, W).

pint is imported lazily: evaluation of a case must stay fast, and most quantities are parsed
once per process.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

#: Each dimension a case field may have: its SI target unit and an example for error messages.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "bytes": ("byte", "80 GiB"),
    "bandwidth": ("byte / second", "2 TB/s"),
    "flop_rate": ("FLOP / second", "312 TFLOP/s"),
    "time": ("second", "5 us"),
    "money": ("USD", "30000 USD"),
    "money_rate": ("USD / second", "2.5 USD/h"),
    "power": ("watt", "700 W"),
    "count": ("dimensionless", "1e12"),
}


class UnitError(ValueError):
    """A value that is not a quantity of the expected dimension."""


@cache
def registry() -> Any:
    import pint

    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    ureg.define("FLOP = [flop] = flop")
    ureg.define("USD = [currency] = usd = dollar")
    # Counts written with a unit-like suffix ("15T tokens" is not accepted; plain numbers are).
    return ureg


def parse(value: Any, dimension: str) -> float:
    """Return ``value`` in the SI unit of ``dimension``; raise :class:`UnitError` otherwise."""
    target, example = DIMENSIONS[dimension]
    if isinstance(value, bool):
        raise UnitError(f"expected a {dimension.replace('_', ' ')} like '{example}'")
    if isinstance(value, int | float):
        if dimension == "count":
            return _finite(float(value), example)
        raise UnitError(
            f"expected a {dimension.replace('_', ' ')} with a unit, like '{example}'")
    if not isinstance(value, str):
        raise UnitError(f"expected a {dimension.replace('_', ' ')} like '{example}'")
    ureg = registry()
    try:
        quantity = ureg.Quantity(value.strip())
    except Exception as exc:  # pint raises several unrelated types for bad text
        raise UnitError(
            f"expected a {dimension.replace('_', ' ')} like '{example}', "
            f"could not read it ({type(exc).__name__})") from None
    try:
        magnitude = quantity.to(target).magnitude
    except Exception:
        got = str(getattr(quantity, "dimensionality", "?"))
        raise UnitError(f"expected a {dimension.replace('_', ' ')} like '{example}', "
                        f"got a quantity of dimension {got}") from None
    return _finite(float(magnitude), example)


def _finite(x: float, example: str) -> float:
    if not math.isfinite(x):
        raise UnitError(f"expected a finite number like '{example}'")
    return x


def format_quantity(value: float, unit: str) -> str:
    """Render an SI value with a readable prefix (binary prefixes for bytes)."""
    if unit == "B":
        for prefix, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {prefix}"
        return f"{value:.3g} B"
    if unit == "s":
        if abs(value) >= 86400 * 2:
            return f"{value / 86400:.3g} days"
        if abs(value) >= 3600 * 2:
            return f"{value / 3600:.3g} h"
        for prefix, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {prefix}"
        return f"{value * 1e9:.3g} ns"
    if unit == "USD":
        return f"{value:,.0f} USD"
    if unit == "1":
        return f"{value:.4g}"
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"
