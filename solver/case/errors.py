"""The one error type users see: a bad case, named by field, value and expectation."""

from __future__ import annotations

from typing import Any, Final


class _Missing:
    """The value of a field that was not given."""

    def __repr__(self) -> str:
        return "<missing>"


#: Pass as ``value`` when a required field is absent: the message reads ``field is missing``.
MISSING: Final = _Missing()


class CaseError(Exception):
    """Bad input. ``str()`` is one line: ``field = value: what was expected``."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        field_text = one_line(field)
        expected_text = one_line(expected)
        if not field_text:
            message = expected_text
        elif value is MISSING:
            message = f"{field_text} is missing: {expected_text}"
        else:
            message = f"{field_text} = {short_repr(value)}: {expected_text}"
        super().__init__(message)


def one_line(text: str, limit: int = 400) -> str:
    """``text`` as one printable line: whitespace runs collapsed, control characters escaped,
    at most ``limit`` characters."""
    text = "".join(ch if ch.isprintable() or ch in " \t\n\r" else repr(ch)[1:-1]
                   for ch in str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` on one line, at most ``limit`` characters."""
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    return one_line(text, limit)
