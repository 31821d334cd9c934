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
#: Power of information (bits, bytes) each dimension carries. pint treats bits and bytes as
#: dimensionless, so without this check "80 GB" would pass as a count and "80" as bytes.
INFORMATION_POWER: dict[str, int] = {"bytes": 1, "bandwidth": 1}
#: pint's units of information (baud is bit/s).
INFORMATION_UNITS: dict[str, int] = {"bit": 1, "byte": 1, "baud": 1}
#: Range a case field of each dimension may take, in SI units, with the unit to print it in.
#: The bounds are generous beyond any real system; they keep every derived quantity finite
#: (a bandwidth of 1e-300 B/s would make every time overflow to infinity).
RANGES: dict[str, tuple[float, float, str]] = {
    "bytes": (1.0, 1e18, "B"),
    "bandwidth": (1.0, 1e18, "B/s"),
    "flop_rate": (1.0, 1e21, "FLOP/s"),
    "time": (0.0, 1e6, "s"),
    "money": (0.0, 1e15, "USD"),
    "money_rate": (0.0, 1e9, "USD/s"),
    "power": (1e-3, 1e9, "W"),
    "count": (1.0, 1e18, "1"),
}


#: How each dimension is named in error messages.
NOUNS: dict[str, str] = {
    "bytes": "a size in bytes",
    "bandwidth": "a bandwidth",
    "flop_rate": "a FLOP rate",
    "time": "a duration",
    "money": "an amount of money",
    "money_rate": "a price per time",
    "power": "a power",
    "count": "a number",
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


def _what(dimension: str) -> str:
    return NOUNS[dimension]


def parse(value: Any, dimension: str) -> float:
    """Return ``value`` in the SI unit of ``dimension``; raise :class:`UnitError` otherwise."""
    target, example = DIMENSIONS[dimension]
    what = _what(dimension)
    if isinstance(value, bool):
        raise UnitError(f"expected {what} like '{example}'")
    if isinstance(value, int | float):
        if dimension == "count":
            return _finite(float(value), example)
        raise UnitError(f"expected {what} with a unit, like '{example}'")
    if not isinstance(value, str):
        raise UnitError(f"expected {what} like '{example}'")
    if not value.strip() or len(value) > 200:
        raise UnitError(f"expected {what} like '{example}'")
    ureg = registry()
    try:
        quantity = ureg.Quantity(value.strip())
    except Exception as exc:  # pint raises several unrelated types for bad text
        raise UnitError(
            f"expected {what} like '{example}', "
            f"could not read it ({type(exc).__name__})") from None
    try:
        information = _information_power(quantity)
        magnitude = quantity.to(target).magnitude
        if information != INFORMATION_POWER.get(dimension, 0):
            raise ValueError("bits or bytes where none belong, or none where they do")
    except Exception:
        got = _dimension_of(quantity)
        if "gilbert" in str(getattr(quantity, "units", "")):
            got += " ('Gb' is the gilbert; write bits as 'Gbit')"
        raise UnitError(f"expected {what} like '{example}', got {got}") from None
    try:
        x = float(magnitude)
    except (TypeError, ValueError, OverflowError):
        raise UnitError(f"expected {what} like '{example}'") from None
    return _finite(x, example)


def check_range(x: float, dimension: str, *, positive: bool) -> float:
    """``x`` (SI) if it lies in the range a case field of ``dimension`` may take."""
    low, high, unit = RANGES[dimension]
    example = DIMENSIONS[dimension][1]
    what = _what(dimension)
    if positive and x <= 0:
        raise UnitError(f"expected {what} greater than 0, like '{example}'")
    if x < 0:
        raise UnitError(f"expected {what} of at least 0, like '{example}'")
    if x != 0 and x < low:
        raise UnitError(f"expected {what} of at least {_show(low, unit)}, like '{example}'")
    if x > high:
        raise UnitError(f"expected {what} of at most {_show(high, unit)}, like '{example}'")
    return x


def _show(x: float, unit: str) -> str:
    return f"{x:g} {unit}" if unit != "1" else f"{x:g}"


def _information_power(quantity: Any) -> int:
    ureg = registry()
    power = 0
    for name, exponent in quantity.unit_items():
        for _prefix, base, _suffix in ureg.parse_unit_name(name):
            power += INFORMATION_UNITS.get(base, 0) * exponent
            break
    return int(power) if float(power).is_integer() else -999


def _dimension_of(quantity: Any) -> str:
    """What ``quantity`` is, in the words of :data:`NOUNS` where it is one of them."""
    try:
        dims = dict(quantity.dimensionality)
        power = _information_power(quantity)
    except Exception:
        return "?"
    for dimension, (target, _example) in DIMENSIONS.items():
        if dimension == "count" or power != INFORMATION_POWER.get(dimension, 0):
            continue
        if quantity.is_compatible_with(target):
            return f"{NOUNS[dimension]} ({quantity.units:~})"
    if power:
        dims["[information]"] = power
    if not dims:
        return "a plain number"
    parts = [k if v == 1 else f"{k}^{v:g}" for k, v in sorted(dims.items(), key=lambda kv: -kv[1])]
    return "a quantity of dimension " + " ".join(parts)


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
