"""Paper-ready LaTeX of closed forms: long equations split into named terms and broken lines,
numbers in scientific notation, and a standalone document that lists the packages it needs.

The splitting changes only how an expression is written: a long argument of an expression
becomes a new named symbol, defined on its own line before the line that uses it (the same
subexpression naming as the closed forms' ``cse``); what is still too long breaks at the
top-level terms of a sum (or factors of a product) onto continuation lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

#: Longest right-hand side (characters of LaTeX source) before it is split or broken; with
#: the left-hand side and ``&=`` a line stays under about 200 characters.
LINE_LIMIT = 160
#: Shortest argument worth a name of its own when an expression is too long (characters):
#: naming ``2 h`` would cost the reader more than it saves.
MIN_NAMED = 24
#: Packages a fragment of the export needs (``\toprule`` from booktabs, a symbol table over
#: several pages from longtable, ``\text`` and ``align*`` from amsmath).
PACKAGES: tuple[str, ...] = ("amsmath", "booktabs", "longtable")


def tex_number(value: float) -> str:
    """A number for math mode: six significant digits, powers of ten as ``\\times 10^{k}``
    (``9.89 \\times 10^{14}``, never ``9.89e+14``)."""
    text = f"{value:.6g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else (
        f"-{power}" if mantissa == "-1" else rf"{mantissa} \times {power}")


def _parts(e: sp.Basic) -> Iterator[sp.Basic]:
    """The arguments of ``e`` a name can stand for: expressions, not atoms, not conditions
    (a case split's pieces, not its conditions)."""
    for a in e.args:
        if isinstance(a, ExprCondPair):
            a = a.expr
        if isinstance(a, sp.Expr) and not a.is_Atom and a.args:
            yield a


def split_long(pairs: Sequence[tuple[Any, sp.Expr]], render: Callable[[sp.Basic], str],
               replace: Callable[[sp.Expr, dict[sp.Basic, sp.Expr]], sp.Expr],
               new_symbol: Callable[[], sp.Symbol]) -> list[tuple[Any, sp.Expr]]:
    """``pairs`` (left-hand side, expression) with every expression longer than
    :data:`LINE_LIMIT` shortened by naming its longest argument (recursively, definitions
    first) until it fits or no argument is long enough to name. ``replace`` puts a name in
    place of a subexpression (without re-evaluating ``max``/``min``)."""
    out: list[tuple[Any, sp.Expr]] = []

    def emit(lhs: Any, expr: sp.Expr) -> None:
        while len(render(expr)) > LINE_LIMIT:
            longest = max(_parts(expr), key=lambda a: len(render(a)), default=None)
            if longest is None or len(render(longest)) < MIN_NAMED:
                break
            name = new_symbol()
            expr = replace(expr, {longest: name})
            emit(name, longest)
        out.append((lhs, expr))

    for lhs, expr in pairs:
        emit(lhs, expr)
    return out


def broken(expr: sp.Expr, render: Callable[[sp.Basic], str]) -> list[str]:
    """The LaTeX of ``expr`` as lines of at most about :data:`LINE_LIMIT` characters: broken
    between the terms of a top-level sum or the factors of a product (one line if neither)."""
    whole = render(expr)
    if len(whole) <= LINE_LIMIT or not isinstance(expr, sp.Add | sp.Mul):
        return [whole]
    pieces = [render(a) for a in (sp.Add.make_args(expr) if isinstance(expr, sp.Add)
                                  else sp.Mul.make_args(expr))]
    lines: list[str] = []
    current = ""
    for piece in pieces:
        if isinstance(expr, sp.Add):
            joined = piece if not current else (
                f"{current} {piece}" if piece.startswith("-") else f"{current} + {piece}")
            lead = piece if piece.startswith("-") else f"+ {piece}"
        else:
            joined = piece if not current else rf"{current} \cdot {piece}"
            lead = rf"\cdot {piece}"
        if current and len(joined) > LINE_LIMIT:
            lines.append(current)
            current = lead
        else:
            current = joined
    lines.append(current)
    return lines


def equation_lines(lhs: str, rhs: list[str]) -> str:
    """One named term of an ``align*``: ``lhs &= ...``, continuation lines indented."""
    return " \\\\\n".join([f"{lhs} &= {rhs[0]}", *(rf"&\quad {r}" for r in rhs[1:])])


def standalone(body: str, title: str) -> str:
    """A complete document around an export: the packages it needs, then the body."""
    from perfcost.solver.export.escape import latex_text

    return "\n".join([
        r"\documentclass[10pt]{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[margin=2cm,landscape]{geometry}",
        *(rf"\usepackage{{{p}}}" for p in PACKAGES),
        r"\allowdisplaybreaks",
        r"\begin{document}",
        rf"\section*{{{latex_text(title)}}}",
        body,
        r"\end{document}",
        "",
    ])
