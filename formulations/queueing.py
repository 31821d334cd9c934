"""Queueing delay of requests at a serving replica: waiting-time percentiles.

A continuously batching replica holds ``c`` sequences at once (its batch slots); a request
occupies a slot from admission to its last token, ``S`` seconds, and waits when every slot is
taken. Requests arrive at rate ``lambda`` with inter-arrival times of squared coefficient of
variation ``ca2`` (1: Poisson; gamma-distributed otherwise); the utilisation is
``rho = lambda S / c``.

**The slots are a single server in disguise.** With equal holding times and first come, first
served, the ``k``-th admission frees the slot the ``(k + c)``-th takes: request ``k`` waits
exactly as it would at a single server of service time ``S`` that receives every ``c``-th
arrival. That server's inter-arrival time is the sum of ``c`` arrival gaps: a gamma variable of
shape ``m = c / ca2`` and mean ``tau = c / lambda = S / rho``. So the wait is that of a GI/D/1
queue -- exact, no heavy-traffic assumption -- a function of ``m`` and ``rho`` in units of
``tau``.

**Its distribution from Spitzer's identity** (F. Spitzer, "A combinatorial lemma and its
application to probability theory", Trans. AMS 82, 1956; the GI/G/1 form in S. Asmussen,
*Applied Probability and Queues*, 2nd ed., 2003, Ch. VIII): with ``X_n = n S - A_n`` (``A_n``
the sum of ``n`` inter-arrival times, a gamma variable of shape ``n m``), the wait is compound
Poisson, a Poisson number (mean ``sum_n P(X_n > 0) / n``) of independent jumps whose measure
above ``x`` is ``sum_n P(X_n > x) / n``:

* the chance of not waiting, ``P(W = 0) = exp(-sum_n P(X_n > 0) / n)``, and the one-jump part
  of the distribution are exact (regularized incomplete gamma functions, the series summed
  term by term with an integral for its far terms); the sums of two jumps or more are gamma
  distributions with the jumps' exact mean and variance (from the cumulants
  ``sum_n E[(X_n^+)^j] / n``). :mod:`queueing_wait` computes this, states what is left out
  and bounds it; it gives the percentiles (:class:`WaitQuantile`) and the share of requests
  served within a deadline (:class:`WaitDistribution`);
* the mean ``E[W] = sum_n E[X_n^+] / n`` (:class:`WaitMean`): the first :data:`SPITZER_TERMS`
  terms one by one, each with the Wilson--Hilferty normal approximation of the gamma variable
  (E. B. Wilson and M. M. Hilferty, "The distribution of chi-square", PNAS 17, 1931), the rest
  of the series as its integral over ``n`` in the normal (diffusion) approximation, in closed
  form (Kingman's heavy-traffic value as the utilisation tends to 1: J. F. C. Kingman, "The
  single server queue in heavy traffic", Proc. Cambridge Phil. Soc. 57, 1961); the standard
  normal distribution is the Abramowitz & Stegun 7.1.26 rational approximation (absolute
  error below 1.5e-7). With one slot (the smallest shape) it is within 9 % of
  Pollaczek--Khinchine's at utilisations 0.3--0.9.

``tests/test_queueing.py`` checks the percentiles against a discrete-event simulation of the
slots (p50/p90/p99 of TTFT for Poisson and bursty arrivals at utilisations 0.3--0.9, any
number of slots; its docstring states the rule and the measured errors) and the distribution
against Erlang's exact M/D/1 formula.

**As sympy.** The wait is a few named sympy functions of a few symbols
(:class:`WaitQuantile` of a level, :class:`WaitDistribution` of a time, both of the
utilisation and the shape ``c / ca2``; :class:`WaitMean` of the last two), so the quantities
of :mod:`serving` stay short, e.g. ``ttft_p99 = ttft + tau WaitQuantile(0.99, rho, m)``.
``lambdify`` evaluates a function through its ``_imp_``, computed once per distinct argument
tuple of a large array. The mean's definition is a *program*, an ordered list of small named
sympy steps (:class:`Program`; the series is a ``Sum`` over ``n`` of a term function), built
once and lambdified (vectorised numpy); the percentiles' is an iteration (Newton's), written
in numpy and standard-library Python (:mod:`queueing_wait`) and C99 (:mod:`queueing_code`).
The code export prints the definitions as Python or C helpers (:func:`code_definition`), the
document export the function names.

**Where serving is not this queue.** The reduction is exact for equal holding times, first come
first served, and a renewal arrival stream at each replica. Serving departs from it: real
requests differ in prompt and output length (the model's ``S`` is the mean request's), a
replica steps faster when fewer slots are busy (so a request's holding time depends on the
load it meets), and requests are split among replicas (a random split of a Poisson stream is
Poisson, of a gamma stream it is not gamma). The percentiles are those of the model's own
queue: every request holding its slot ``S`` seconds.

Arrivals: ``deterministic`` (``ca2 = 0``, no queueing), ``poisson`` (``ca2 = 1``) or bursty
``gamma`` inter-arrival times of shape ``k`` (``ca2 = 1/k``; ``k < 1`` is burstier than
Poisson). At ``rho >= 1`` every wait is infinite.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from . import queueing_code, queueing_wait

#: Arrival processes and the squared coefficient of variation of their inter-arrival times
#: (gamma's is ``1 / shape``, given separately).
ARRIVALS: tuple[str, ...] = ("deterministic", "poisson", "gamma")
#: Percentiles reported for TTFT and TPOT.
PERCENTILES: tuple[int, ...] = (50, 90, 99)
#: Terms of the mean's series summed one by one; the rest is the series' diffusion limit.
SPITZER_TERMS = 16
#: Abramowitz & Stegun 7.1.26: erfc(x) = t (a1 + t (a2 + ...)) exp(-x^2), t = 1/(1 + p x).
ERFC_P = 0.3275911
ERFC_A: tuple[float, ...] = (0.254829592, -0.284496736, 1.421413741, -1.453152027,
                             1.061405429)
#: Utilisation at which the formulas are evaluated at most: at 1 and beyond the waits are
#: infinite (a division by zero outside the functions), never negative or undefined.
RHO_LIMIT = 1.0 - 1e-9
#: Smallest arrival SCV the formulas divide by: evenly spaced arrivals (0) become a gamma
#: shape so large that no request waits, without a division by zero.
MIN_ARRIVAL_SCV = 1e-12


def arrival_scv(arrivals: str, gamma_shape: float = 1.0) -> float:
    """Squared coefficient of variation of the inter-arrival times of ``arrivals``."""
    if arrivals == "deterministic":
        return 0.0
    if arrivals == "poisson":
        return 1.0
    if arrivals == "gamma":
        return 1.0 / gamma_shape
    raise ValueError(f"unknown arrival process {arrivals!r}; expected one of {ARRIVALS}")


def step(x: sp.Expr) -> sp.Expr:
    """1 for ``x > 0``, 0 for ``x < 0`` (one half at 0), written with an unevaluated ``sign``:
    no case split and no sign query on a large expression."""
    return (1 + sp.sign(x, evaluate=False)) / 2


def _max(*args: Any) -> sp.Expr:
    return sp.Max(*args, evaluate=False)


def _min(*args: Any) -> sp.Expr:
    return sp.Min(*args, evaluate=False)


# -- a program: ordered named steps -----------------------------------------------------------

@dataclass
class Program:
    """A function's definition as ordered steps ``t_i = expr_i`` over its arguments: each
    step is a small sympy expression, so building, printing and lambdifying stay cheap."""

    arguments: tuple[sp.Symbol, ...]
    steps: list[tuple[sp.Symbol, sp.Expr]]
    result: sp.Expr | None = None

    def let(self, expr: sp.Expr) -> sp.Expr:
        """A new step holding ``expr``; its symbol stands for it in later steps."""
        if expr.is_Atom:
            return expr
        name = sp.Symbol(f"t{len(self.steps)}")
        self.steps.append((name, expr))
        return name


def _inline(expr: sp.Expr) -> sp.Expr:
    """No step: the expression itself (for formulas written into the quantities)."""
    return expr


Let = Callable[[sp.Expr], sp.Expr]


# -- the standard normal distribution, elementary ---------------------------------------------

def _scaled_erfc(x: sp.Expr) -> sp.Expr:
    """``exp(x^2) erfc(x)`` for ``x >= 0`` (A&S 7.1.26 without its exponential)."""
    t = 1 / (1 + ERFC_P * x)
    poly = sp.Float(ERFC_A[-1])
    for a in reversed(ERFC_A[:-1]):
        poly = a + t * poly
    return t * poly


def normal_cdf(z: sp.Expr, let: Let = _inline) -> sp.Expr:
    """``Phi(z)``: the lower tail is computed directly (no ``1 - (1 - tail)`` cancellation,
    so a probability of 1e-12 keeps its digits)."""
    x = let(sp.Abs(z, evaluate=False) / sp.sqrt(2))
    tail = let(_scaled_erfc(x) * sp.exp(-x**2) / 2)
    return let(tail + (1 - 2 * tail) * step(z))


def _normal_pdf(z: sp.Expr) -> sp.Expr:
    return sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)


# -- the mean's series ------------------------------------------------------------------------

def _spitzer_mean_term(pr: Program, rho: sp.Expr, shape: sp.Expr) -> sp.Expr:
    """``E[(rho - G)^+]`` for ``G`` a gamma variable of shape ``shape`` and mean 1, with
    ``G^(1/3)`` normal of mean ``1 - 1/(9 k)`` and variance ``1/(9 k)`` (Wilson--Hilferty).
    The truncated moments of a standard normal ``Z`` below ``z``:
    ``M_j = (j - 1) M_{j-2} - z^(j-1) phi(z)``."""
    root = pr.let(rho ** sp.Rational(1, 3))
    mean = pr.let(1 - 1 / (9 * shape))
    spread = pr.let(1 / (3 * sp.sqrt(shape)))
    z = pr.let((root - mean) / spread)
    below = normal_cdf(z, pr.let)
    density = pr.let(_normal_pdf(z))
    moments: list[sp.Expr] = [below, -density]
    for j in range(2, 4):
        moments.append(pr.let((j - 1) * moments[j - 2] - z**(j - 1) * density))
    # E[Y^3; Y < rho^(1/3)], Y = mean + spread Z
    cube = pr.let(sp.Add(*(math.comb(3, i) * mean**(3 - i) * spread**i * moments[i]
                           for i in range(4))))
    return pr.let(_max(0, rho * below - cube))


def _mean_remainder(pr: Program, rho: sp.Expr, m: sp.Expr) -> sp.Expr:
    """The terms of the mean's series beyond :data:`SPITZER_TERMS`, as an integral over ``n``
    in the normal approximation ``A_n / (n tau) ~ N(1, 1/(n m))`` (from ``n = N + 1/2``):
    ``(2 / ((1 - rho) m)) ((1 + y0^2) Phi(-y0) - y0 phi(y0)) / 2`` with
    ``b = (1 - rho) sqrt(m)`` and ``y0 = b sqrt(N + 1/2)``; Kingman's heavy-traffic value as
    ``y0 -> 0``."""
    b = pr.let((1 - rho) * sp.sqrt(m))
    y0 = pr.let(b * sp.sqrt(SPITZER_TERMS + sp.Rational(1, 2)))
    tail = normal_cdf(-y0, pr.let)
    density = pr.let(_normal_pdf(y0))
    return pr.let(_max(0, 2 / (b * sp.sqrt(m)) * ((1 + y0**2) * tail - y0 * density) / 2))


# -- the named functions ----------------------------------------------------------------------

#: Evaluations with at least this many points are made on the distinct argument tuples only
#: (a search repeats the same utilisation and slots across many deployments).
DISTINCT_FROM = 64
#: How many argument tuples each function remembers the value of, then it starts afresh
#: (about 17 MB each when full; a serving solve with sensitivities fills 10,000).
REMEMBERED = 1 << 16


class _Defined(sp.Function):
    """A sympy function whose definition is a :class:`Program` over :attr:`arguments`;
    ``lambdify`` evaluates it through ``_imp_``, the code export prints its definition."""

    #: Argument names, in order (the parameter names of the printed definitions).
    arguments: tuple[str, ...] = ()
    #: Whether a large evaluation is made on the distinct argument tuples only.
    distinct = True

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        """Add the steps of the definition to ``pr``; return the result."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

        remembered: dict[tuple[float, ...], float] = {}

        def implementation(*args: Any) -> Any:
            if cls.distinct:
                return _distinct(numeric(cls), args, remembered)
            return numeric(cls)(*args)

        implementation.__name__ = cls.__name__
        cls._imp_ = staticmethod(implementation)

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        if not all(a.is_number for a in self.args):
            return None
        return sp.Float(float(numeric(type(self))(*(float(a) for a in self.args))), prec)

    def _call(self, printer: Any) -> str:
        return f"{type(self).__name__}({', '.join(printer._print(a) for a in self.args)})"

    _pythoncode = _numpycode = _ccode = _call


#: Arguments of Spitzer's sums: the utilisation (below 1) and the gamma shape ``c / ca2`` of
#: the single server's inter-arrival time.
_SERIES = ("rho", "shape")


class SpitzerMeanTerm(_Defined):
    """``E[(rho - G)^+]`` for ``G`` gamma of shape ``shape``, mean 1 (Wilson--Hilferty);
    evaluated inside the mean's sum, on its arguments as given."""

    arguments = _SERIES
    nargs = len(_SERIES)
    distinct = False

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        return _spitzer_mean_term(pr, *pr.arguments)


class WaitMean(_Defined):
    """``E[W] / tau = sum_n E[X_n^+] / n / tau`` (Spitzer's identity), ``tau`` the single
    server's mean inter-arrival time ``S / rho``: :data:`SPITZER_TERMS` Wilson--Hilferty
    terms and the diffusion limit of the rest."""

    arguments = _SERIES
    nargs = len(_SERIES)

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        rho, m = pr.arguments
        n = sp.Symbol("n", integer=True, positive=True)
        series = pr.let(sp.Sum(SpitzerMeanTerm(rho, n * m), (n, 1, SPITZER_TERMS)))
        return pr.let(series + _mean_remainder(pr, rho, m))


class _Written(_Defined):
    """A function whose definition is written out in numpy, Python and C
    (:mod:`queueing_wait`) instead of a :class:`Program`."""

    #: The functions whose code the definition calls (printed before it).
    requires: tuple[type[_Defined], ...] = ()

    @staticmethod
    def vectorised(*args: Any) -> Any:
        """The definition on arrays (numpy)."""
        raise NotImplementedError

    @staticmethod
    def pointwise(*args: float) -> float:
        """The definition at one point (the standard-library Python the export writes)."""
        raise NotImplementedError


#: Evaluations of a written function with at most this many points are made point by point
#: in Python (a point costs ~1 ms there, a numpy evaluation ~25 ms whatever its size).
POINTWISE_UP_TO = 32


def _written_numeric(function: type[_Written]) -> Callable[..., Any]:
    def evaluate(*args: Any) -> Any:
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))
        if arrays[0].size > POINTWISE_UP_TO:
            return function.vectorised(*arrays)
        points = zip(*(a.ravel().tolist() for a in arrays), strict=True)
        return np.array([function.pointwise(*p) for p in points]).reshape(arrays[0].shape)

    return evaluate


class SpitzerSeries(_Written):
    """``G(x) = sum_n P(X_n > x) / n`` in units of ``tau``: the jumps of Spitzer's compound
    Poisson wait above ``x`` (``G(0)`` all of them), each term a regularized incomplete gamma
    function (:mod:`perfcost.formulations.queueing_wait`); its code holds the helpers the
    wait's percentiles and distribution call."""

    arguments = ("x", *_SERIES)
    nargs = 1 + len(_SERIES)

    @staticmethod
    def vectorised(*args: Any) -> Any:
        x, rho, shape = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))
        g, _, _ = queueing_wait._sums(x.ravel(), rho.ravel(), shape.ravel(), False)
        return g.reshape(x.shape)

    @staticmethod
    def pointwise(*args: float) -> float:
        return queueing_wait.spitzer_sums(*args, False)[0]


class WaitQuantile(_Written):
    """The ``level`` quantile of ``W / tau`` at utilisation ``rho`` and single-server gamma
    shape ``c / ca2``: zero while at most ``1 - level`` of the requests wait, else the root of
    ``P(W > x) = 1 - level`` (Spitzer's compound Poisson wait, one jump exact, several jumps
    gamma-fitted; safeguarded Newton)."""

    arguments = ("level", *_SERIES)
    nargs = 1 + len(_SERIES)
    requires = (SpitzerSeries,)
    vectorised = staticmethod(queueing_wait.quantile)
    pointwise = staticmethod(queueing_wait.wait_quantile)


class WaitDistribution(_Written):
    """``P(W / tau <= t)`` for ``t >= 0`` at utilisation ``rho`` and single-server gamma shape
    ``c / ca2`` (Spitzer's compound Poisson wait, one jump exact, several jumps
    gamma-fitted)."""

    arguments = ("t", *_SERIES)
    nargs = 1 + len(_SERIES)
    requires = (SpitzerSeries,)
    vectorised = staticmethod(queueing_wait.distribution)
    pointwise = staticmethod(queueing_wait.wait_distribution)


#: Every function of this module, each after those its definition calls.
FUNCTIONS: tuple[type[_Defined], ...] = (SpitzerMeanTerm, WaitMean, SpitzerSeries,
                                         WaitQuantile, WaitDistribution)


@functools.cache
def program(function: type[_Defined]) -> Program:
    """The definition of ``function`` as steps over its arguments (built once)."""
    pr = Program(tuple(sp.Symbol(a) for a in function.arguments), [])
    pr.result = function.define(pr)
    return pr


@functools.cache
def numeric(function: type[_Defined]) -> Callable[..., Any]:
    """``function`` as a vectorised numpy function: lambdify of its program, the steps handed
    to lambdify as the common subexpressions it prints as assignments (a written function:
    its numpy definition, or for a few points its Python one, point by point)."""
    if issubclass(function, _Written):
        return _written_numeric(function)
    pr = program(function)
    # The steps reach lambdify as its common subexpressions, after it collected the
    # implementations the result calls: name those the steps call.
    called = {f.__name__: f._imp_ for f in _called([e for _s, e in pr.steps])}
    return sp.lambdify(pr.arguments, pr.result, modules=[called, "numpy"], docstring_limit=0,
                       cse=lambda result: (pr.steps, result))


def _distinct(fn: Callable[..., Any], args: Sequence[Any],
              remembered: dict[tuple[float, ...], float]) -> Any:
    """``fn(*args)``, broadcast, computed once per distinct argument tuple (a lexicographic
    sort of the tuples: far cheaper than ``numpy.unique`` along an axis) and, across calls,
    once per tuple while ``remembered`` holds it: a sensitivity range or a sweep evaluates the
    same deployments again with one parameter moved, and most of the waits' arguments recur.
    ``fn`` works point by point, so a value does not depend on the points beside it."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))
    shape = arrays[0].shape
    if arrays[0].size < DISTINCT_FROM:
        return fn(*args)
    columns = [a.ravel() for a in arrays]
    order = np.lexsort(columns)
    ordered = [c[order] for c in columns]
    first = np.zeros(order.size, dtype=bool)
    first[0] = True
    for c in ordered:
        first[1:] |= c[1:] != c[:-1]  # NaN differs from itself: computed as given
    points = [c[first] for c in ordered]
    keys = list(zip(*(p.tolist() for p in points), strict=True))
    known = [remembered.get(k) for k in keys]
    missing = np.array([v is None for v in known])
    values = np.array([np.nan if v is None else v for v in known])
    if missing.any():
        fresh = np.broadcast_to(fn(*(p[missing] for p in points)), (int(missing.sum()),))
        values[missing] = fresh
        if len(remembered) + fresh.size > REMEMBERED:
            remembered.clear()
        remembered.update(zip([k for k, m in zip(keys, missing, strict=True) if m],
                              fresh.tolist(), strict=True))
    out = np.empty(order.size)
    out[order] = values[np.cumsum(first) - 1]
    return out.reshape(shape)


def _called(exprs: Sequence[sp.Basic]) -> set[type[_Defined]]:
    return {type(f) for e in exprs for f in e.atoms(sp.Function) if isinstance(f, _Defined)}


def defined_functions(exprs: Sequence[sp.Basic]) -> list[type[_Defined]]:
    """The functions of this module that ``exprs`` call, directly or through a definition,
    in :data:`FUNCTIONS` order (the code export writes their definitions first)."""
    used: set[type[_Defined]] = set()
    todo = _called(exprs)
    while todo:
        used |= todo
        todo = set().union(*(_calls(f) for f in todo)) - used
    return [f for f in FUNCTIONS if f in used]


def _calls(function: type[_Defined]) -> set[type[_Defined]]:
    if issubclass(function, _Written):
        return set(function.requires)
    pr = program(function)
    return _called([e for _s, e in pr.steps] + [pr.result])


def code_definition(function: type[_Defined], language: str) -> str:
    """The definition of ``function`` as a Python (standard library) or C99 function: its
    program's steps printed by sympy's code printers, a ``Sum`` step as a loop."""
    from sympy.printing.c import C99CodePrinter
    from sympy.printing.pycode import PythonCodePrinter

    name = function.__name__
    doc = " ".join((function.__doc__ or name).split()) + " See perfcost.formulations.queueing."
    if issubclass(function, _Written):
        return _written_definition(function, language, doc)
    pr = program(function)
    if language == "python":
        py = PythonCodePrinter({"standard": "python3"})
        lines = [f"def {name}({', '.join(a.name for a in pr.arguments)}):", f'    """{doc}"""']
        for s, e in pr.steps:
            if isinstance(e, sp.Sum):
                (i, low, high), = e.limits
                lines += [f"    {s.name} = 0.0", f"    for {i.name} in range({low}, {high + 1}):",
                          f"        {s.name} += {py.doprint(e.function)}"]
            else:
                lines.append(f"    {s.name} = {py.doprint(e)}")
        return "\n".join([*lines, f"    return {py.doprint(pr.result)}"])
    if language == "c":
        c = C99CodePrinter()
        args = ", ".join(f"double {a.name}" for a in pr.arguments)
        lines = [f"/* {doc} */", f"static double {name}({args}) {{"]
        for s, e in pr.steps:
            if isinstance(e, sp.Sum):
                (i, low, high), = e.limits
                lines += [f"    double {s.name} = 0.0;",
                          f"    for (int {i.name}_ = {low}; {i.name}_ <= {high}; ++{i.name}_) {{",
                          f"        const double {i.name} = {i.name}_;",
                          f"        {s.name} += {c.doprint(e.function)};", "    }"]
            else:
                lines.append(f"    const double {s.name} = {c.doprint(e)};")
        return "\n".join([*lines, f"    return {c.doprint(pr.result)};", "}"])
    raise ValueError(f"unknown language {language!r}; expected 'python' or 'c'")


def _written_definition(function: type[_Written], language: str, doc: str) -> str:
    """A written function's code (:mod:`queueing_wait`), under its docstring."""
    part = "helpers" if function is SpitzerSeries else function.__name__
    if language == "python":
        return f"# {doc}\n{queueing_code.python_source(part)}"
    if language == "c":
        return f"/* {doc} */\n{queueing_code.c_source(part)}"
    raise ValueError(f"unknown language {language!r}; expected 'python' or 'c'")


# -- the quantities :mod:`serving` uses -------------------------------------------------------

def _clamped(rho: sp.Expr) -> sp.Expr:
    return _min(rho, RHO_LIMIT)


@dataclass(frozen=True)
class Queue:
    """The wait at ``servers`` slots held ``service`` seconds each, at utilisation ``rho``,
    arrival SCV ``ca2`` (its pieces built once, shared by its quantities)."""

    rho: sp.Expr
    servers: sp.Expr
    service: sp.Expr
    ca2: sp.Expr

    @functools.cached_property
    def clamped(self) -> sp.Expr:
        return _clamped(self.rho)

    @functools.cached_property
    def tau(self) -> sp.Expr:
        """Mean inter-arrival time at the single server, ``S / rho`` (seconds)."""
        return self.service / self.clamped

    @functools.cached_property
    def shape(self) -> sp.Expr:
        """Gamma shape ``c / ca2`` of the single server's inter-arrival time."""
        return self.servers / _max(self.ca2, MIN_ARRIVAL_SCV)

    @functools.cached_property
    def saturation(self) -> sp.Expr:
        """1 below saturation; infinite at ``rho >= 1`` (a division by zero)."""
        return (1 - self.clamped) / _max(0, 1 - self.rho)

    def mean(self) -> sp.Expr:
        """Mean wait (seconds); infinite at ``rho >= 1``."""
        return WaitMean(self.clamped, self.shape) * self.tau * self.saturation

    def quantile(self, p: float) -> sp.Expr:
        """The ``p`` quantile of the wait (seconds, ``0 < p < 1``); infinite at ``rho >= 1``."""
        if not 0 < p < 1:
            raise ValueError(f"quantile {p} outside (0, 1)")
        return (WaitQuantile(sp.Float(p), self.clamped, self.shape) * self.tau
                * self.saturation)

    def served(self, deadline: sp.Expr) -> sp.Expr:
        """Fraction of requests whose wait is at most ``deadline``; zero for a negative
        deadline and at ``rho >= 1`` (written with ``sign`` and ``Min``, not a case split)."""
        below = _min(1, _max(0, 1 - self.rho) / (1 - self.clamped))
        share = WaitDistribution(_max(0, deadline) / self.tau, self.clamped, self.shape)
        return share * step(deadline) * below


def waiting_probability(rho: sp.Expr, servers: sp.Expr, ca2: sp.Expr = sp.S.One) -> sp.Expr:
    """P(a request waits) at utilisation ``rho`` below 1 with ``servers`` slots."""
    queue = Queue(rho, servers, sp.Integer(1), ca2)
    return 1 - WaitDistribution(sp.Integer(0), queue.clamped, queue.shape)


def mean_wait(rho: sp.Expr, servers: sp.Expr, service: sp.Expr, ca2: sp.Expr) -> sp.Expr:
    """Mean wait in the queue; infinite at ``rho >= 1``."""
    return Queue(rho, servers, service, ca2).mean()


def wait_quantile(p: float, rho: sp.Expr, servers: sp.Expr, service: sp.Expr,
                  ca2: sp.Expr) -> sp.Expr:
    """The ``p`` quantile of the wait (``0 < p < 1``); infinite at ``rho >= 1``."""
    return Queue(rho, servers, service, ca2).quantile(p)


def served_fraction(deadline: sp.Expr, rho: sp.Expr, servers: sp.Expr, service: sp.Expr,
                    ca2: sp.Expr) -> sp.Expr:
    """Fraction of requests whose wait is at most ``deadline`` (:meth:`Queue.served`)."""
    return Queue(rho, servers, service, ca2).served(deadline)
