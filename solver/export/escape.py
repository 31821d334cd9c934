"""Text a user wrote (a case's name, the command line, hardware names, labels) made safe for
each language ``perfcost export`` writes, so that it stays text there: it can never close the
string, docstring or comment it sits in, nor become code, markup or a TeX command.

One function per place text can land: a Python docstring, a C block comment, a C identifier or
header name, a LaTeX comment, LaTeX text, a Markdown paragraph, a Markdown table cell, a
Markdown code fence. Where text cannot be escaped (an identifier) it is checked and rejected
with a :class:`CaseError`.
"""

from __future__ import annotations

import keyword
import re

from perfcost.solver.case.errors import CaseError

_ASCII_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters of a C header name written into ``#include "..."`` and its include guard.
_HEADER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def _escaped(ch: str) -> str:
    """A character that is not printable (a control, a lone surrogate, U+2028) as its escape
    sequence in ASCII (``\\x07``, ``\\udcff``)."""
    return ch.encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with every non-printable character written as an escape sequence; newlines
    kept if ``newlines`` (else escaped too). Tabs become spaces."""
    out = []
    for ch in str(text):
        if ch == "\n" and newlines:
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(_escaped(ch))
    return "".join(out)


# -- Python ---------------------------------------------------------------------------------

def python_docstring(text: str) -> str:
    """Text for the inside of a triple-quoted (not raw) Python string: backslashes and double
    quotes escaped, so neither ``\"\"\"`` nor a trailing backslash can end it early; control
    characters escaped (a NUL byte is not even allowed in source)."""
    out = []
    for ch in printable(text, newlines=True):
        out.append("\\\\" if ch == "\\" else '\\"' if ch == '"' else ch)
    return "".join(out)


def python_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain ASCII Python identifier and no keyword; else a CaseError."""
    if not _ASCII_IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
        raise CaseError(what, name, "expected a plain identifier (letters, digits, '_')")
    return name


# -- C ----------------------------------------------------------------------------------------

def c_comment(text: str) -> str:
    """Text for the inside of a ``/* ... */`` comment: ``*/`` cannot end it and ``/*`` cannot
    open a nested one (the spaces keep the meaning readable); non-printables escaped, line
    breaks included, so nothing continues past the comment's line."""
    return printable(text).replace("*/", "* /").replace("/*", "/ *")


def c_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain ASCII C identifier; else a CaseError."""
    if not _ASCII_IDENTIFIER.fullmatch(name):
        raise CaseError(what, name, "expected a C identifier (ASCII letters, digits, '_', "
                        "not starting with a digit)")
    return name


def c_header_name(name: str) -> str:
    """A header's file name fit for ``#include "NAME"``; else a CaseError on ``-o``."""
    if not _HEADER_NAME.fullmatch(name) or "/*" in name or "*/" in name:
        raise CaseError("-o", name, "expected a C file name of ASCII letters, digits and "
                        "'_.+-' (it is written into #include \"...\")")
    return name


# -- LaTeX ------------------------------------------------------------------------------------

#: Characters with a meaning in LaTeX text mode, and how to write them as text.
_TEX_TEXT = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%",
    "#": r"\#", "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
    # In the default OT1 font encoding these print as other glyphs (``>`` as an inverted
    # question mark): their text commands print them as written.
    ">": r"\textgreater{}", "<": r"\textless{}", "|": r"\textbar{}",
}


def latex_text(text: str) -> str:
    """Text for a LaTeX paragraph or table cell: every special character as its text form, so
    nothing becomes a command, a group, math or a comment; on one line."""
    return "".join(_TEX_TEXT.get(ch, ch) for ch in printable(text))


def latex_comment(text: str) -> str:
    """Text after ``%``: one line (a line break would end the comment), and no ``^^``, TeX's
    notation for any character, line ends included."""
    line = printable(text)
    while "^^" in line:
        line = line.replace("^^", "^ ^")
    return line


# -- Markdown ---------------------------------------------------------------------------------

#: Characters Markdown (CommonMark, GitHub tables) gives a meaning; escaped with a backslash.
_MARKDOWN_PUNCTUATION = frozenset("\\`*_[]()<>#|!~$")


def markdown_text(text: str) -> str:
    """Text for a Markdown paragraph, heading or table cell: one line, every character with a
    meaning (emphasis, links, HTML, math, ``|``) escaped, so it renders as written."""
    line = printable(text)
    return "".join("&amp;" if ch == "&" else f"\\{ch}" if ch in _MARKDOWN_PUNCTUATION else ch
                   for ch in line)


#: A Sphinx cross-reference role: ``:func:`name```, ``:mod:`~pkg.module```, ``:py:class:`X```.
_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`~?([^`]+)`")


def without_roles(text: str) -> str:
    """Docstring text for Markdown: Sphinx roles (``:func:`~a.b```) as plain code (`` `b` ``;
    ``~`` keeps the last component, as Sphinx shows it)."""
    def code(match: re.Match[str]) -> str:
        target = match.group(1)
        shown = target.rsplit(".", 1)[-1] if match.group(0).count("~") else target
        return f"`{shown}`"

    return _ROLE.sub(code, text)


def markdown_cell(text: str) -> str:
    """Text the project wrote (a unit, a meaning) for a table cell: only what would break the
    table (``|``, a line break) or open HTML (``<``) escaped."""
    return printable(text).replace("|", r"\|").replace("<", "&lt;")


def markdown_fence(text: str) -> str:
    """A fenced code block holding ``text`` literally: the fence is longer than any run of
    backticks inside, so the text cannot close it."""
    body = printable(text, newlines=True)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{body}\n{fence}"
