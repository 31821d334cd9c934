"""Helpers over sympy expressions that visit each distinct subexpression once.

A formulation's quantities share their terms many times over (every serving quantity reads the
same prefill and decode times), so an expression is a DAG far smaller than the tree it spells.
sympy's own walks -- ``free_symbols``, the search ``lambdify`` makes for implemented functions
-- go over the tree, every shared term again at each place it occurs, and ``cse`` is run again
on the same lists; on serving formulations those walks took most of the time of compiling and
exporting them. These do the same work once per distinct subexpression (or per list).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any


def implementations(exprs: Sequence[Any]) -> dict[str, Callable[..., Any]]:
    """The numeric implementations (``_imp_``) of the functions ``exprs`` call, by name: what
    ``lambdify`` looks for itself (``use_imps``) over the whole tree."""
    found: dict[str, Callable[..., Any]] = {}
    seen: set[Any] = set()
    stack = list(exprs)
    while stack:
        expr = stack.pop()
        if expr in seen:
            continue
        seen.add(expr)
        implementation = getattr(getattr(expr, "func", None), "_imp_", None)
        if implementation is not None:
            found[str(expr.func)] = implementation
        stack.extend(getattr(expr, "args", ()))
    return found


#: How many distinct expression lists :func:`common_subexpressions` remembers.
CSE_MEMO_SIZE = 64
_CSE_MEMO: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}


def common_subexpressions(exprs: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``sympy.cse(exprs)`` (subexpressions named x0, x1, ...), remembered per expression list.

    One formulation goes through ``cse`` several times over in a session -- its evaluator,
    its code export, a second export of the same case -- and ``cse`` is the slow step of each
    (seconds for a serving formulation). Expressions are immutable, so the answer for the
    same list is the same: the memo returns a copy of it."""
    import sympy as sp

    key = tuple(exprs)
    found = _CSE_MEMO.get(key)
    if found is None:
        replacements, reduced = sp.cse(list(key))
        if len(_CSE_MEMO) >= CSE_MEMO_SIZE:
            _CSE_MEMO.pop(next(iter(_CSE_MEMO)))
        found = _CSE_MEMO[key] = (replacements, reduced)
    return list(found[0]), list(found[1])


def lambdify(symbols: Sequence[Any], exprs: Any, cse: bool = False) -> Callable[..., Any]:
    """``sympy.lambdify`` to numpy with the implementations found by :func:`implementations`,
    the remembered :func:`common_subexpressions` where ``cse``, and no docstring (printing the
    expression into it costs more than generating the code)."""
    import sympy as sp

    listed = list(exprs) if isinstance(exprs, list | tuple) else [exprs]

    def named(given: Any) -> tuple[list[Any], Any]:
        replacements, reduced = common_subexpressions(listed)
        if isinstance(given, list | tuple):
            return replacements, type(given)(reduced)
        return replacements, reduced[0]

    return sp.lambdify(symbols, exprs, modules=[implementations(listed), "numpy"],
                       use_imps=False, docstring_limit=0, cse=named if cse else False)


@cache
def _own_rule(cls: type) -> bool:
    """Whether ``cls`` has a ``free_symbols`` of its own (a symbol, bound variables) rather
    than sympy's union over the arguments."""
    import sympy as sp

    definer = next(k for k in cls.__mro__ if "free_symbols" in k.__dict__)
    return definer is not sp.Basic


#: How many subexpressions' free symbols :func:`free_symbols` keeps before starting afresh.
FREE_MEMO_SIZE = 500_000
_FREE_MEMO: dict[Any, frozenset[Any]] = {}


def free_symbols(expr: Any) -> frozenset[Any]:
    """``expr.free_symbols``, each distinct subexpression's set computed once and remembered
    (formulations are shared by every problem of a structure, and their quantities by each
    other). A class with its own rule (a symbol, bound variables) keeps it."""
    memo = _FREE_MEMO
    if len(memo) > FREE_MEMO_SIZE:
        memo.clear()
    stack = [expr]
    while stack:
        node = stack[-1]
        if node in memo:
            stack.pop()
            continue
        if _own_rule(type(node)):
            memo[node] = frozenset(node.free_symbols)
            stack.pop()
            continue
        pending = [a for a in node.args if a not in memo]
        if pending:
            stack.extend(pending)
            continue
        memo[node] = frozenset().union(*(memo[a] for a in node.args))
        stack.pop()
    return memo[expr]
