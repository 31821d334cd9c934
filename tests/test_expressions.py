"""The expression helpers that visit each distinct subexpression once give what sympy's own
tree walks give: the same free symbols, the same common subexpressions, the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations.queueing import WaitQuantile
from perfcost.solver.problem.expressions import (
    common_subexpressions,
    free_symbols,
    implementations,
    lambdify,
)

SYMBOLS = sp.symbols("a b c d", positive=True)


def _combine(parts: list[sp.Expr], how: int) -> sp.Expr:
    a, b = parts[0], parts[-1]
    return [a + b, a * b, sp.Max(a, b), sp.Min(a, b), sp.ceiling(a / (b + 1)),
            sp.Piecewise((a, b > 2), (b, True)), a ** 2 + b][how]


# Expressions that reuse their own parts (a DAG, as a formulation's quantities are).
expressions = st.recursive(
    st.sampled_from(SYMBOLS) | st.integers(1, 5).map(sp.Integer),
    lambda inner: st.builds(_combine, st.lists(inner, min_size=1, max_size=3),
                            st.integers(0, 6)),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(expressions)
def test_free_symbols_are_sympys(expr: sp.Expr) -> None:
    assert free_symbols(expr) == expr.free_symbols


def test_a_bound_variable_keeps_its_own_rule() -> None:
    a, b = SYMBOLS[:2]
    expr = sp.Integral(a * b, (b, 0, 1)) + sp.Max(a, 2)
    assert free_symbols(expr) == {a}


@settings(max_examples=30, deadline=None)
@given(st.lists(expressions, min_size=1, max_size=3))
def test_common_subexpressions_are_sympys_and_remembered(exprs: list[sp.Expr]) -> None:
    want = sp.cse(exprs)
    got = common_subexpressions(exprs)
    assert (list(got[0]), list(got[1])) == (list(want[0]), list(want[1]))
    again = common_subexpressions(exprs)
    assert again == got
    again[1].append(sp.Integer(0))  # a copy: the remembered answer stays as it was
    assert common_subexpressions(exprs) == got


def test_implemented_functions_are_found_and_evaluate() -> None:
    rho, shape = SYMBOLS[:2]
    quantile = WaitQuantile(sp.Float(0.99), rho, shape)
    expr = quantile * (rho + 1) + sp.Max(quantile, rho)
    assert set(implementations([expr])) == {"WaitQuantile"}
    fn = lambdify([rho, shape], [expr, rho * 2], cse=True)
    reference = sp.lambdify([rho, shape], [expr, rho * 2], modules="numpy")
    x = np.array([0.3, 0.6, 0.9])
    for got, want in zip(fn(x, 2.0), reference(x, 2.0), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert fn(0.5, 1.0)[1] == pytest.approx(1.0)
