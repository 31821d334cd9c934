"""The one error type users see: a bad case, named by field, value and expectation."""

from __future__ import annotations

from typing import Any


class CaseError(Exception):
    """Bad input. ``str()`` is one line: ``field = value: what was expected``."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        shown = _short(value)
        super().__init__(f"{field} = {shown}: {expected}" if field else expected)


def _short(value: Any) -> str:
    text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."
