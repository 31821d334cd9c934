"""Paper-ready LaTeX and Markdown exports (solver/export/latex.py): named terms, broken lines,
upright multi-letter symbols, scientific numbers, no ``>`` in text, a standalone document;
compiled where a TeX engine is installed, checked for structure always."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.solver.cli.main import app
from perfcost.solver.export import escape
from perfcost.solver.export import latex as tex
from perfcost.solver.export.closed_form import substitute
from typer.testing import CliRunner

runner = CliRunner()
MAX_LINE = 200
#: A fast training export (two quantities) and a whole cost formulation.
TRAINING = ["export", "llama3-70b-h100", "--quantity", "iteration_time", "--quantity",
            "memory_per_gpu", "--format", "latex"]
COST = ["export", "b200-like", "--format", "latex"]


def export(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def training_tex() -> str:
    return export([*TRAINING, "--standalone"])


@pytest.fixture(scope="module")
def cost_tex() -> str:
    return export(COST)


# -- structure (always checked) ---------------------------------------------------------------

def code_of(text: str) -> list[str]:
    """Lines without their comments (``%`` not escaped as ``\\%``)."""
    return [re.split(r"(?<!\\)%", line, maxsplit=1)[0] for line in text.splitlines()]


def check_structure(text: str) -> None:
    lines = text.splitlines()
    longest = max(len(line) for line in lines)
    print(f"{len(lines)} lines, longest {longest} characters")
    assert longest <= MAX_LINE
    code = "\n".join(code_of(text))
    # Braces balance once escaped ones (\{ \}) are taken out.
    depth = 0
    for ch in re.sub(r"\\[{}]", "", code):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    # Environments nest.
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", code):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, name
    assert not stack
    # No text-mode > or <: outside align* blocks and $...$, none is left.
    text_mode = re.sub(r"\\begin\{align\*\}.*?\\end\{align\*\}", "", code, flags=re.S)
    text_mode = re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$", "", text_mode)
    assert ">" not in text_mode and "<" not in text_mode
    # Numbers in scientific notation, never 9.89e+14.
    assert not re.search(r"\d(\.\d+)?e[+-]?\d", code)
    # Every named term is defined before a line uses it.
    defined: set[str] = set()
    for block in re.findall(r"\\begin\{align\*\}(.*?)\\end\{align\*\}", code, flags=re.S):
        defined.clear()
        for line in block.split("\\\\\n"):
            lhs, _, rhs = line.partition("&=")
            for used in re.findall(r"x_\{\d+\}", rhs):
                assert used in defined, (used, line[:80])
            defined.update(re.findall(r"x_\{\d+\}", lhs))


def test_training_export_structure(training_tex: str) -> None:
    check_structure(training_tex)
    assert r"$\mathrm{ep}$" in training_tex and "$ep$" not in training_tex
    assert r"\times 10^{14}" in training_tex  # the H100's peak FLOP rate
    assert r"\textgreater{}" in training_tex  # "interleaved schedule when > 1"


def test_cost_export_structure(cost_tex: str) -> None:
    check_structure(cost_tex)
    assert "% Needs: " in cost_tex
    for package in tex.PACKAGES:
        assert rf"\usepackage{{{package}}}" in cost_tex.splitlines()[2]


def test_standalone_document(training_tex: str) -> None:
    assert training_tex.startswith(r"\documentclass")
    preamble, _, rest = training_tex.partition(r"\begin{document}")
    for package in tex.PACKAGES:
        assert rf"\usepackage{{{package}}}" in preamble
    assert rest.rstrip().endswith(r"\end{document}")
    bad = runner.invoke(app, ["export", "b200-like", "--format", "markdown", "--standalone"])
    assert bad.exit_code == 2 and "--standalone" in bad.output


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="no TeX engine (pdflatex) installed; the structure is checked by "
                           "test_training_export_structure and test_cost_export_structure")
def test_standalone_compiles(training_tex: str, tmp_path: Path) -> None:
    source = tmp_path / "model.tex"
    source.write_text(training_tex, encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           source.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "model.pdf").stat().st_size > 0


# -- the pieces -------------------------------------------------------------------------------

def test_numbers() -> None:
    assert tex.tex_number(9.89e14) == r"9.89 \times 10^{14}"
    assert tex.tex_number(1e15) == "10^{15}"
    assert tex.tex_number(-2.5e-6) == r"-2.5 \times 10^{-6}"
    assert tex.tex_number(0.803) == "0.803"


def test_text_mode_escapes() -> None:
    assert escape.latex_text("a > b < c | d") == (
        r"a \textgreater{} b \textless{} c \textbar{} d")


def test_markdown_has_no_sphinx_roles() -> None:
    md = export(["export", "llama3-70b-h100", "--quantity", "iteration_time", "--format",
                 "markdown"])
    assert not re.search(r":[a-z]+:`", md)
    assert escape.without_roles("see :func:`~perfcost.formulations.training.build` and "
                                ":mod:`perfcost.formulations.memory`") == (
        "see `build` and `perfcost.formulations.memory`")


SYMBOLS = sp.symbols("alpha_up B_hbm F_peak eta_mm n_SM tau_k ep h s L", positive=True)


def terms() -> st.SearchStrategy[sp.Expr]:
    """Random products of a few symbols and a coefficient."""
    return st.builds(lambda c, xs: sp.Integer(c) * sp.Mul(*xs),
                     st.integers(1, 9), st.lists(st.sampled_from(SYMBOLS), min_size=1,
                                                 max_size=4))


def expressions() -> st.SearchStrategy[sp.Expr]:
    sums = st.lists(terms(), min_size=1, max_size=30).map(lambda ts: sp.Add(*ts))
    return st.recursive(sums, lambda inner: st.one_of(
        st.builds(lambda a, b: sp.Max(a, b, evaluate=False), inner, inner),
        st.builds(lambda a, b: a / b, inner, inner),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: sp.Add(*xs))), max_leaves=6)


def render(e: sp.Basic) -> str:
    from perfcost.solver.export.closed_form import _latex

    return _latex(e)


@settings(max_examples=60, deadline=None)
@given(expressions())
def test_splitting_keeps_the_expression(expr: sp.Expr) -> None:
    """Named terms put back give the expression; lines stay short unless one piece is."""
    counter = iter(range(10**6))
    split = tex.split_long([("q", expr)], render, lambda e, m: substitute([e], m)[0],
                           lambda: sp.Symbol(f"y_{next(counter)}"))
    assert split[-1][0] == "q"
    back = split[-1][1]
    for name, value in reversed(split[:-1]):
        back = substitute([back], {name: value})[0]
    assert sp.simplify(back - expr) == 0
    for _lhs, rhs in split:
        for line in tex.broken(rhs, render):
            pieces = sp.Add.make_args(rhs) + sp.Mul.make_args(rhs) + rhs.args
            assert len(line) <= tex.LINE_LIMIT or any(
                len(render(p)) + 10 >= len(line) for p in pieces)
