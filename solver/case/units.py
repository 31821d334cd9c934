"""Physical quantities at the boundary: parse ``"80 GiB"``, ``"2.039 TB/s"``, ``"312 TFLOP/s"``,
``"5 us"``, ``"2.5 USD/h"`` once, check their dimension, and return SI base units (s, B, FLOP,
USD, W).

The text is read by a small strict grammar of this module's own -- a decimal number whose
exponent lies within :data:`MAX_EXPONENT`, then a unit built from the names of :data:`UNITS`
(with SI or binary prefixes), ``*``, ``/``, parentheses and small integer powers -- so that no
text can make parsing slow or large (``9**9**9 GB/s`` is an error, not a computation), and no
unit library has to be imported to read a case (start-up time).
"""

from __future__ import annotations

import math
import re
from functools import cache, lru_cache
from typing import Any

#: The base quantities units are products of, as named in error messages.
BASES: tuple[str, ...] = ("[time]", "[information]", "[flop]", "[currency]", "[length]",
                          "[energy]")
#: A unit's dimension: the exponent of each of :data:`BASES`.
Dims = tuple[int, ...]
NONE: Dims = (0,) * len(BASES)


def _dims(**powers: int) -> Dims:
    """A dimension from powers of the bases named s, B, FLOP, USD, m, J."""
    order = ("s", "B", "FLOP", "USD", "m", "J")
    unknown = set(powers) - set(order)
    if unknown:
        raise KeyError(sorted(unknown))
    return tuple(powers.get(name, 0) for name in order)


#: Each unit perfcost reads: name -> (size in SI base units, dimension, takes a prefix).
#: Sizes: the SI definitions; a year is the Julian year (365.25 days), a byte 8 bits, a watt
#: hour 3600 J.
UNITS: dict[str, tuple[float, Dims, bool]] = {
    # time
    "s": (1.0, _dims(s=1), True), "sec": (1.0, _dims(s=1), False),
    "second": (1.0, _dims(s=1), False),
    "min": (60.0, _dims(s=1), False), "minute": (60.0, _dims(s=1), False),
    "h": (3600.0, _dims(s=1), False), "hr": (3600.0, _dims(s=1), False),
    "hour": (3600.0, _dims(s=1), False),
    "d": (86400.0, _dims(s=1), False), "day": (86400.0, _dims(s=1), False),
    "week": (7 * 86400.0, _dims(s=1), False),
    "month": (365.25 * 86400.0 / 12, _dims(s=1), False),
    "year": (365.25 * 86400.0, _dims(s=1), False), "yr": (365.25 * 86400.0, _dims(s=1), False),
    "Hz": (1.0, _dims(s=-1), True), "hertz": (1.0, _dims(s=-1), False),
    # information
    "B": (1.0, _dims(B=1), True), "byte": (1.0, _dims(B=1), False),
    "bit": (0.125, _dims(B=1), True), "baud": (0.125, _dims(B=1, s=-1), True),
    # work
    "FLOP": (1.0, _dims(FLOP=1), True), "flop": (1.0, _dims(FLOP=1), True),
    # money
    "USD": (1.0, _dims(USD=1), True), "usd": (1.0, _dims(USD=1), False),
    "dollar": (1.0, _dims(USD=1), False),
    # length
    "m": (1.0, _dims(m=1), True), "meter": (1.0, _dims(m=1), False),
    "metre": (1.0, _dims(m=1), False),
    # energy and power
    "J": (1.0, _dims(J=1), True), "joule": (1.0, _dims(J=1), False),
    "Wh": (3600.0, _dims(J=1), True),
    "W": (1.0, _dims(J=1, s=-1), True), "watt": (1.0, _dims(J=1, s=-1), False),
    # plain numbers
    "%": (0.01, NONE, False), "percent": (0.01, NONE, False),
}
#: Names that may be written in the plural ("5 seconds", "80 bytes").
PLURALS = frozenset({"sec", "second", "minute", "hour", "day", "week", "month", "year", "byte",
                     "bit", "dollar", "meter", "metre", "joule", "watt"})
#: SI prefixes (``u`` and both micro signs are micro) and binary prefixes (IEC 80000-13).
PREFIXES: dict[str, float] = {
    "Y": 1e24, "Z": 1e21, "E": 1e18, "P": 1e15, "T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3,
    "c": 1e-2, "m": 1e-3, "u": 1e-6, "\u00b5": 1e-6, "\u03bc": 1e-6, "n": 1e-9, "p": 1e-12,
    "f": 1e-15, "a": 1e-18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
#: Largest decimal exponent a number may carry: the range of a double. The field ranges
#: (:data:`RANGES`) then say what is sensible; the bound only keeps the digits few.
MAX_EXPONENT = 308
#: Largest power a unit may be raised to (``mm^2``, ``s^-1``).
MAX_POWER = 4
#: Longest quantity text read, and deepest nesting of parentheses in a unit.
MAX_LENGTH = 200
MAX_DEPTH = 4

#: Each dimension a case field may have: its SI target unit and an example for error messages.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "bytes": ("B", "80 GiB"),
    "bandwidth": ("B/s", "2 TB/s"),
    "flop_rate": ("FLOP/s", "312 TFLOP/s"),
    "time": ("s", "5 us"),
    "money": ("USD", "30000 USD"),
    "money_rate": ("USD/s", "2.5 USD/h"),
    "power": ("W", "700 W"),
    "count": ("", "1e12"),
}
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


class _Unreadable(ValueError):
    """Text outside the quantity grammar; the message says where."""


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE](?P<exp>[+-]?\d+))?", re.ASCII)
_TOKEN = re.compile(r"\s*(?:(?P<name>[^\W\d_]+|%)|(?P<pow>\*\*|\^)|(?P<op>[*/\u00b7()])"
                    r"|(?P<sup>[\u00b2\u00b3]))")
_POWER = re.compile(r"\s*(?P<sign>[+-]?)\s*(?P<digits>\d+)", re.ASCII)
_SUPERSCRIPTS = {"\u00b2": 2, "\u00b3": 3}


def read_number(text: str) -> tuple[float, str]:
    """The number at the start of ``text`` and the rest; the grammar's first half."""
    match = _NUMBER.match(text)
    if match is None:
        raise _Unreadable("expected a number first")
    exponent = match.group("exp")
    if exponent is not None and (len(exponent.lstrip("+-")) > 3
                                 or abs(int(exponent)) > MAX_EXPONENT):
        raise _Unreadable(f"exponent beyond +-{MAX_EXPONENT}")
    return float(match.group()), text[match.end():]


@lru_cache(maxsize=1024)  # the few units of a session, not every text a fuzzer sends
def read_unit(text: str) -> tuple[float, Dims]:
    """``"TB/s"`` -> (1e12, dimension of B/s). The empty text is the plain number 1."""
    if len(text) > MAX_LENGTH:
        raise _Unreadable("too long")
    parser = _UnitParser(text)
    return parser.read()


class _UnitParser:
    """Recursive descent over ``unit := ['/'] factor ((['*'|'/'|' ']) factor)*``,
    ``factor := (name | '(' unit ')') [('^'|'**') int]``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def read(self) -> tuple[float, Dims]:
        if not self.text.strip():
            return 1.0, NONE
        scale, dims = self._product(0)
        if self.text[self.at:].strip():
            raise _Unreadable(f"stray {self.text[self.at:].strip()[:20]!r}")
        return scale, dims

    def _peek(self) -> re.Match[str] | None:
        return _TOKEN.match(self.text, self.at)

    def _product(self, depth: int) -> tuple[float, Dims]:
        if depth > MAX_DEPTH:
            raise _Unreadable("parentheses nested too deeply")
        scale, dims = 1.0, NONE
        first = True
        while True:
            token = self._peek()
            if token is None or token.group("op") == ")":
                break
            divide = token.group("op") == "/"
            if token.group("op") in ("*", "/", "\u00b7"):
                if first and not divide:
                    raise _Unreadable("unit starts with an operator")
                self.at = token.end()
            elif not first and token.group("name") is None and token.group("op") != "(":
                raise _Unreadable(f"stray {token.group().strip()!r}")
            f_scale, f_dims = self._factor(depth)
            sign = -1 if divide else 1
            scale *= f_scale ** sign
            dims = tuple(a + sign * b for a, b in zip(dims, f_dims, strict=True))
            first = False
        if first:
            raise _Unreadable("expected a unit")
        return scale, dims

    def _factor(self, depth: int) -> tuple[float, Dims]:
        token = self._peek()
        if token is None:
            raise _Unreadable(f"stray {self.text[self.at:].strip()[:20]!r}")
        self.at = token.end()
        if token.group("op") == "(":
            scale, dims = self._product(depth + 1)
            close = self._peek()
            if close is None or close.group("op") != ")":
                raise _Unreadable("unclosed parenthesis")
            self.at = close.end()
        elif token.group("name") is not None:
            scale, dims = lookup(token.group("name"))
        else:
            raise _Unreadable(f"stray {token.group().strip()!r}")
        power = self._power()
        return scale ** power, tuple(d * power for d in dims)

    def _power(self) -> int:
        token = self._peek()
        if token is None:
            return 1
        if token.group("sup") is not None:
            self.at = token.end()
            return _SUPERSCRIPTS[token.group("sup")]
        if token.group("pow") is None:
            return 1
        match = _POWER.match(self.text, token.end())
        if match is None or len(match.group("digits")) > 1 \
                or int(match.group("digits")) > MAX_POWER:
            raise _Unreadable(f"expected a whole power from -{MAX_POWER} to {MAX_POWER}")
        self.at = match.end()
        return -int(match.group("digits")) if match.group("sign") == "-" else \
            int(match.group("digits"))


def lookup(name: str) -> tuple[float, Dims]:
    """A unit name, maybe prefixed or plural, -> (size in SI base units, dimension)."""
    if name in UNITS:
        scale, dims, _prefixable = UNITS[name]
        return scale, dims
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        base = name[len(prefix):]
        if name.startswith(prefix) and base in UNITS and UNITS[base][2]:
            return PREFIXES[prefix] * UNITS[base][0], UNITS[base][1]
    if name.endswith("s") and name[:-1] in PLURALS:
        return lookup(name[:-1])
    hint = ""
    if len(name) == 2 and name[1] == "b" and name[0] in PREFIXES:
        hint = f"; write bits as '{name[0]}bit' or bytes as '{name[0]}B'"
    raise _Unreadable(f"unknown unit {name[:20]!r}{hint}")


def read_quantity(text: str) -> tuple[float, Dims]:
    """``"2 TB/s"`` -> (2e12, dimension of B/s): the whole grammar."""
    if len(text) > MAX_LENGTH:
        raise _Unreadable("too long")
    number, rest = read_number(text.strip())
    scale, dims = read_unit(rest.strip())
    return number * scale, dims


@cache
def _target(unit: str) -> tuple[float, Dims]:
    return read_unit(unit)


def convert(value: str, unit: str) -> float:
    """The number ``value`` (text with a unit) makes in ``unit`` (a unit of this grammar, e.g.
    ``"mm^2"``, ``"USD/J"``, ``"/mm^2"``); :class:`UnitError` if it cannot be read or has
    another dimension."""
    try:
        x, dims = read_quantity(value)
    except _Unreadable as exc:
        raise UnitError(f"could not read it ({exc})") from None
    scale, target = _target(unit)
    if dims != target:
        raise UnitError(f"got {describe(dims, value)}")
    return x / scale


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
    if not value.strip() or len(value) > MAX_LENGTH:
        raise UnitError(f"expected {what} like '{example}'")
    try:
        x, dims = read_quantity(value)
    except _Unreadable as exc:
        raise UnitError(f"expected {what} like '{example}', could not read it ({exc})") from None
    scale, want = _target(target)
    if dims != want:
        raise UnitError(f"expected {what} like '{example}', got {describe(dims, value)}")
    return _finite(x / scale, example)


def describe(dims: Dims, text: str = "") -> str:
    """What a quantity of dimension ``dims`` is, in the words of :data:`NOUNS` where it is one
    of them (with the unit as written in ``text``)."""
    match = _NUMBER.match(text.strip())
    unit = " ".join(text.strip()[match.end():].split()) if match else ""
    for dimension, (target, _example) in DIMENSIONS.items():
        if dimension != "count" and _target(target)[1] == dims:
            return f"{NOUNS[dimension]} ({unit})" if unit else NOUNS[dimension]
    if dims == NONE:
        return "a plain number"
    parts = [name if power == 1 else f"{name}^{power}"
             for name, power in sorted(zip(BASES, dims, strict=True), key=lambda kv: -kv[1])
             if power]
    return "a quantity of dimension " + " ".join(parts)


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
