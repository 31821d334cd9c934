"""The value types of case fields: validators that turn what a user wrote into a checked
number, unit or choice, each failing with an ``expected ...`` message (see :mod:`.schema`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from perfcost.formulations.specs import PLACEMENTS
from perfcost.solver.case import units
from perfcost.solver.case.errors import short_repr
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: Largest integer a size, count or parallel degree may be.
INT_MAX = 10**9
#: Smallest achievable fraction of a peak (efficiencies); smaller is a typo, and would make
#: every time overflow.
MIN_EFFICIENCY = 1e-3
#: Largest oversubscription of a scale-out fabric.
MAX_OVERSUBSCRIPTION = 1e6


class Expect:
    """Annotation marker: how a field's expected value is described in error messages."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Expect({self.text!r})"


# -- validators: each raises ValueError with an "expected ..." message, nothing else ----------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """A short description of what ``value`` is, for 'got ...' hints."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, float):
        return "a fraction" if math.isfinite(value) and not value.is_integer() else "a float"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "nothing"
    return type(value).__name__


def _numeric_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _int_problem(value: Any, low: int, high: int) -> str | None:
    """Why ``value`` is not an integer in [low, high], or None."""
    if not _is_int(value):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer() and (
                value >= 1):
            return f"got {value!r}; write it without a decimal point"
        if isinstance(value, str):
            return "got text; write the number without quotes" if _numeric_text(value) else (
                "got text")
        return f"got {_kind(value)}"
    if value < low:
        return "too small"
    if value > high:
        return "too large"
    return None


POSITIVE_INT = "a positive integer"


def _check_int(value: Any, expected: str = POSITIVE_INT) -> int:
    problem = _int_problem(value, 1, INT_MAX)
    if problem == "too large":
        raise ValueError(f"expected {expected}, at most {INT_MAX:.0e}")
    if problem == "too small":
        raise ValueError(f"expected {expected}")
    if problem is not None:
        raise ValueError(f"expected {expected}; {problem}")
    return int(value)


def _positive_int(value: Any) -> int:
    return _check_int(value)


def _int_choice(value: Any) -> Any:
    """A positive integer, or a non-empty list of them (the values to choose from)."""
    expected = f"{POSITIVE_INT} or a non-empty list of them"
    if isinstance(value, list):
        if not value:
            raise ValueError(f"expected {expected}; got an empty list")
        out = []
        for i, item in enumerate(value):
            if _int_problem(item, 1, INT_MAX) is not None:
                raise ValueError(f"expected {expected}; item {i} is {short_repr(item, 40)}")
            out.append(int(item))
        return out
    return _check_int(value, expected=expected)


def _choice_or_list(options: tuple[Any, ...], what: str) -> Callable[[Any], Any]:
    expected = f"{what}, or a non-empty list of them"

    def ok(item: Any) -> bool:
        # bool is an int, and 1 == True: compare types as well as values.
        return any(type(item) is type(o) and item == o for o in options)

    def check(value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError(f"expected {expected}; got an empty list")
            for i, item in enumerate(value):
                if not ok(item):
                    raise ValueError(f"expected {expected}; item {i} is {short_repr(item, 40)}")
            return value
        if not ok(value):
            raise ValueError(f"expected {expected}")
        return value

    return check


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[Any], float]:
    expected = (f"a number greater than {low:g} and at most {high:g}" if low_open
                else f"a number from {low:g} to {high:g}")

    def check(value: Any) -> float:
        if not _is_number(value):
            hint = ("; write the number without quotes"
                    if isinstance(value, str) and _numeric_text(value) else "")
            raise ValueError(f"expected {expected}{hint}")
        x = float(value)
        if not math.isfinite(x) or x < low or (low_open and x == low) or x > high:
            raise ValueError(f"expected {expected}")
        return x

    return check


def _int_pair(value: Any) -> tuple[int, int]:
    expected = f"two positive integers (at most {INT_MAX:.0e}), like [64, 64]"
    if not isinstance(value, list | tuple) or len(value) != 2 or any(
            _int_problem(v, 1, INT_MAX) is not None for v in value):
        raise ValueError(f"expected {expected}")
    return int(value[0]), int(value[1])


def _quantity(dimension: str, *, positive: bool) -> Any:
    def convert(value: Any) -> float:
        try:
            return units.check_range(units.parse(value, dimension), dimension,
                                     positive=positive)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(convert)


def _unit_text(dimension: str, *, positive: bool) -> Expect:
    _target, example = units.DIMENSIONS[dimension]
    noun = units.NOUNS[dimension]
    sign = "greater than 0" if positive else "of at least 0"
    return Expect(f"{noun} {sign}, like '{example}'")


def _unit_type(dimension: str, *, positive: bool) -> Any:
    return Annotated[float, _quantity(dimension, positive=positive),
                     _unit_text(dimension, positive=positive)]


Bytes = _unit_type("bytes", positive=True)
Bandwidth = _unit_type("bandwidth", positive=True)
FlopRate = _unit_type("flop_rate", positive=True)
Duration = _unit_type("time", positive=False)
Money = _unit_type("money", positive=False)
#: A limit on spending: zero would buy nothing, so a budget is greater than 0.
Budget = _unit_type("money", positive=True)
MoneyRate = _unit_type("money_rate", positive=False)
Power = _unit_type("power", positive=True)
Count = _unit_type("count", positive=True)
PositiveInt = Annotated[int, BeforeValidator(_positive_int), Expect(POSITIVE_INT)]
#: Most experts an MoE layer may have: the largest published router, PEER (He 2024, "Mixture
#: of A Million Experts"), uses 1024^2. Beyond it every expert-parallel choice is a divisor
#: search and a table of nothing real.
MAX_EXPERTS = 1024**2


def _experts(value: Any) -> int:
    n = _check_int(value)
    if n > MAX_EXPERTS:
        raise ValueError(f"expected {POSITIVE_INT} of at most {MAX_EXPERTS:,} (PEER, the "
                         "largest published router, has 1024^2)")
    return n


Experts = Annotated[int, BeforeValidator(_experts),
                    Expect(f"{POSITIVE_INT} of at most {MAX_EXPERTS:,}")]
Fraction = Annotated[float, BeforeValidator(_number(MIN_EFFICIENCY, 1.0)),
                     Expect(f"a number from {MIN_EFFICIENCY:g} to 1")]
#: A share that may be nothing at all (a fraction of traffic repeated, of work redone).
Share = Annotated[float, BeforeValidator(_number(0.0, 1.0)), Expect("a number from 0 to 1")]
Oversubscription = Annotated[float, BeforeValidator(_number(1.0, MAX_OVERSUBSCRIPTION)),
                             Expect(f"a number from 1 to {MAX_OVERSUBSCRIPTION:g}")]
Tolerance = Annotated[float, BeforeValidator(_number(0.0, 1e6, low_open=True)),
                      Expect("a number greater than 0")]
#: Largest capacity or load-imbalance factor of an MoE layer (far beyond any router).
MAX_MOE_FACTOR = 1e3
CapacityFactor = Annotated[float, BeforeValidator(_number(0.0, MAX_MOE_FACTOR, low_open=True)),
                           Expect(f"a number greater than 0 and at most {MAX_MOE_FACTOR:g}")]
LoadImbalance = Annotated[float, BeforeValidator(_number(1.0, MAX_MOE_FACTOR)),
                          Expect(f"a number from 1 to {MAX_MOE_FACTOR:g}")]


def _non_negative_int(value: Any) -> int:
    if _is_int(value) and value == 0:
        return 0
    return _check_int(value, expected="a non-negative integer")


NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int),
                           Expect("a non-negative integer")]
Flag = Annotated[bool, Field(strict=True), Expect("true or false")]
Text = Annotated[str, Field(strict=True), Expect("text in quotes")]
IntPair = Annotated[tuple[int, int], BeforeValidator(_int_pair),
                    Expect("two positive integers, like [64, 64]")]
IntChoice = Annotated[int | list[int], BeforeValidator(_int_choice),
                      Expect(f"{POSITIVE_INT} or a non-empty list of them")]

RECOMPUTE_OPTIONS = ("none", "selective", "full")
Recompute = Literal["none", "selective", "full"]
RecomputeChoice = Annotated[
    Recompute | list[Recompute],
    BeforeValidator(_choice_or_list(RECOMPUTE_OPTIONS, "one of 'none', 'selective', 'full'")),
    Expect("one of 'none', 'selective', 'full', or a non-empty list of them")]
PlacementChoice = Annotated[
    str | list[str],
    BeforeValidator(_choice_or_list(PLACEMENTS, "one of 'tp-cp-dp-pp', 'tp-cp-pp-dp'")),
    Expect("one of 'tp-cp-dp-pp', 'tp-cp-pp-dp', or a non-empty list of them")]
FlagChoice = Annotated[
    bool | list[bool], BeforeValidator(_choice_or_list((False, True), "true or false")),
    Expect("true or false, or a non-empty list of them")]
ZeroChoice = Annotated[
    int | list[int], BeforeValidator(_choice_or_list((0, 1, 2, 3), "a ZeRO stage 0, 1, 2 or 3")),
    Expect("a ZeRO stage 0, 1, 2 or 3, or a non-empty list of them")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)




class SourcedFraction(Strict):
    """An efficiency (a fraction of a peak) with its provenance."""

    value: Fraction
    source: Text
