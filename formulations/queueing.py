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
the sum of ``n`` inter-arrival times, a gamma variable of shape ``n m``),

* ``P(W = 0) = exp(-sum_n P(X_n > 0) / n)``,
* the cumulants of ``W`` are ``sum_n E[(X_n^+)^j] / n``: ``E[W] = sum_n E[X_n^+] / n``,
  ``Var W = sum_n E[(X_n^+)^2] / n``.

The first :data:`SPITZER_TERMS` terms are summed one by one, each with the Wilson--Hilferty
normal approximation of the gamma variable (E. B. Wilson and M. M. Hilferty, "The
distribution of chi-square", PNAS 17, 1931: the cube root of a gamma variable is nearly
normal), which gives its truncated moments in closed form. The rest of each series is its
integral over ``n`` in the normal (diffusion) approximation, in closed form for the moments
and through ``H(y) = int_y^inf Phi(-t) / t dt`` (a power series) for the probability; as the
utilisation tends to 1 these remainders are Kingman's heavy-traffic values (J. F. C. Kingman,
"The single server queue in heavy traffic", Proc. Cambridge Phil. Soc. 57, 1961). The standard
normal distribution is the Abramowitz & Stegun 7.1.26 rational approximation (absolute error
below 1.5e-7) and its inverse A&S 26.2.23 (below 4.5e-4).

**Percentiles**: the wait is 0 with probability ``P(W = 0)``; given that it waits it is taken
as gamma-distributed with the conditional mean and variance above (a two-moment fit), whose
quantiles are the Wilson--Hilferty inverse. ``tests/test_queueing.py`` checks them against a
discrete-event simulation of the slots (p50/p90/p99 of TTFT within 10 % for Poisson arrivals
at utilisations 0.3--0.9; what holds for bursty arrivals is stated there).

**As sympy.** The series and the conditional wait are named sympy functions of a few symbols
(:class:`WaitingProbability`, :class:`WaitMean`, :class:`WaitVariance` of the utilisation and
the shape ``c / ca2``; :class:`WaitQuantile`, :class:`WaitDistribution` of a level or a time and
those three), so the quantities of :mod:`serving` stay short, e.g. ``ttft_p99 = ttft + tau
WaitQuantile(0.99, P, M, V)``. Each function's definition is a *program*, an ordered list of
small named sympy steps (:class:`Program`; the series is a ``Sum`` over ``n`` of a term
function), built once. ``lambdify`` evaluates a function through its ``_imp_``: the program
lambdified (vectorised numpy), computed once per distinct argument tuple of a large array. The
code export prints the same programs as Python or C helpers (:func:`code_definition`), the
document export the function names. Written instead as one nested expression, the formulas
took seconds to build and tens of seconds to lambdify, per percentile.

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

#: Arrival processes and the squared coefficient of variation of their inter-arrival times
#: (gamma's is ``1 / shape``, given separately).
ARRIVALS: tuple[str, ...] = ("deterministic", "poisson", "gamma")
#: Percentiles reported for TTFT and TPOT.
PERCENTILES: tuple[int, ...] = (50, 90, 99)
#: Terms of Spitzer's series summed one by one; the rest is the series' diffusion limit.
#: 16 keeps the remainder's normal approximation within the simulation's 10 % down to one
#: slot at utilisation 0.3 (tests/test_queueing.py).
SPITZER_TERMS = 16
#: Abramowitz & Stegun 7.1.26: erfc(x) = t (a1 + t (a2 + ...)) exp(-x^2), t = 1/(1 + p x).
ERFC_P = 0.3275911
ERFC_A: tuple[float, ...] = (0.254829592, -0.284496736, 1.421413741, -1.453152027,
                             1.061405429)
#: Abramowitz & Stegun 26.2.23: the upper-tail normal quantile, t = sqrt(-2 ln q).
QUANTILE_C: tuple[float, ...] = (2.515517, 0.802853, 0.010328)
QUANTILE_D: tuple[float, ...] = (1.432788, 0.189269, 0.001308)
#: lim_{y -> 0} (H(y) + ln(y) / 2) for H(y) = int_y^inf Phi(-t)/t dt, by numerical quadrature
#: (scipy.integrate.quad of the two pieces on 0..1 and 1..inf; a test recomputes it).
H_CONSTANT = -0.31759071136536965
#: Terms of H's power series, and the argument up to which it is used; beyond, H falls as
#: the normal density over y^3 (its asymptotic form), joined at the limit.
H_SERIES_TERMS = 22
H_SERIES_LIMIT = 3.0
#: Utilisation at which the formulas are evaluated at most: at 1 and beyond the waits are
#: infinite (a division by zero outside the functions), never negative or undefined.
RHO_LIMIT = 1.0 - 1e-9
#: Smallest arrival SCV the formulas divide by: evenly spaced arrivals (0) become a gamma
#: shape so large that no request waits, without a division by zero.
MIN_ARRIVAL_SCV = 1e-12
#: Floor that keeps empty-queue ratios finite (0/0 would be undefined; a step() zeroes them);
#: its square is still a normal double.
TINY = 1e-100
#: Smallest squared coefficient of variation of the conditional wait over 1 (a wait of one
#: exact length) and the smallest quantile level handed to the inverse normal.
MIN_SCV = 1e-6
MIN_LEVEL = 1e-12


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


def normal_quantile(level: sp.Expr, let: Let = _inline) -> sp.Expr:
    """``Phi^{-1}(level)`` for ``0 < level < 1`` (A&S 26.2.23, by the normal's symmetry)."""
    t = let(sp.sqrt(-2 * sp.log(_min(level, 1 - level))))
    c0, c1, c2 = QUANTILE_C
    d1, d2, d3 = QUANTILE_D
    z = t - (c0 + c1 * t + c2 * t**2) / (1 + d1 * t + d2 * t**2 + d3 * t**3)
    return let(z * sp.sign(level - sp.Rational(1, 2), evaluate=False))


def _tail_integral(pr: Program, y: sp.Expr) -> sp.Expr:
    """``H(y) = int_y^inf Phi(-t)/t dt`` for ``y > 0``: ``H_CONSTANT - ln(y)/2`` plus the
    integrated power series of ``Phi(-t) - 1/2`` up to :data:`H_SERIES_LIMIT`, beyond it the
    value there times the decay of ``phi(y) / y^3``."""
    near = pr.let(_min(y, H_SERIES_LIMIT))
    far = pr.let(_max(y, H_SERIES_LIMIT))
    series = sp.Add(*(sp.Integer(-1)**j * near**(2 * j + 1)
                      / (2**j * math.factorial(j) * (2 * j + 1)**2)
                      for j in range(H_SERIES_TERMS)))
    value = pr.let(H_CONSTANT - sp.log(near) / 2 + series / sp.sqrt(2 * sp.pi))
    return pr.let(value * sp.exp(-(far**2 - H_SERIES_LIMIT**2) / 2)
                  * (H_SERIES_LIMIT / far)**3)


# -- Spitzer's series -------------------------------------------------------------------------

def _spitzer_term(pr: Program, order: int, rho: sp.Expr, root: sp.Expr, shape: sp.Expr
                  ) -> sp.Expr:
    """For ``G`` a gamma variable of shape ``shape`` and mean 1 (``root`` is ``rho^(1/3)``):
    ``P(G < rho)`` (order 0), ``E[(rho - G)^+]`` (1) or ``E[((rho - G)^+)^2]`` (2), with
    ``G^(1/3)`` normal of mean ``1 - 1/(9 k)`` and variance ``1/(9 k)`` (Wilson--Hilferty).
    The truncated moments of a standard normal ``Z`` below ``z``:
    ``M_j = (j - 1) M_{j-2} - z^(j-1) phi(z)``."""
    mean = pr.let(1 - 1 / (9 * shape))
    spread = pr.let(1 / (3 * sp.sqrt(shape)))
    z = pr.let((root - mean) / spread)
    below = normal_cdf(z, pr.let)
    if order == 0:
        return below
    density = pr.let(_normal_pdf(z))
    moments: list[sp.Expr] = [below, -density]
    for j in range(2, 3 * order + 1):
        moments.append(pr.let((j - 1) * moments[j - 2] - z**(j - 1) * density))

    def power(p: int) -> sp.Expr:  # E[Y^p; Y < rho^(1/3)], Y = mean + spread Z
        return pr.let(sp.Add(*(math.comb(p, i) * mean**(p - i) * spread**i * moments[i]
                               for i in range(p + 1))))

    if order == 1:
        return pr.let(_max(0, rho * below - power(3)))
    return pr.let(_max(0, rho**2 * below - 2 * rho * power(3) + power(6)))


def _remainder(pr: Program, order: int, rho: sp.Expr, m: sp.Expr) -> sp.Expr:
    """The terms of the series beyond :data:`SPITZER_TERMS`, as integrals over ``n`` in the
    normal approximation ``A_n / (n tau) ~ N(1, 1/(n m))`` (from ``n = N + 1/2``):
    ``2 H(y0)`` (order 0), ``(2 / ((1 - rho) m)) ((1 + y0^2) Phi(-y0) - y0 phi(y0)) / 2`` (1)
    and ``(2 / (m b^2)) ((1 - 2 y0^2 - y0^4) Phi(-y0) + (y0^3 + y0) phi(y0)) / 4`` (2), with
    ``b = (1 - rho) sqrt(m)`` and ``y0 = b sqrt(N + 1/2)``. Each is the heavy-traffic value
    (Kingman's) as ``y0 -> 0``."""
    b = pr.let((1 - rho) * sp.sqrt(m))
    y0 = pr.let(b * sp.sqrt(SPITZER_TERMS + sp.Rational(1, 2)))
    if order == 0:
        return pr.let(2 * _tail_integral(pr, y0))
    tail = normal_cdf(-y0, pr.let)
    density = pr.let(_normal_pdf(y0))
    if order == 1:
        return pr.let(_max(0, 2 / (b * sp.sqrt(m)) * ((1 + y0**2) * tail - y0 * density) / 2))
    return pr.let(_max(0, 2 / (m * b**2) * ((1 - 2 * y0**2 - y0**4) * tail
                                            + (y0**3 + y0) * density) / 4))


def _spitzer_sum(pr: Program, order: int) -> sp.Expr:
    """``sum_n E[(X_n^+)^order] / n`` in units of ``tau^order`` (order 0: ``P(X_n > 0)``):
    ``SPITZER_TERMS`` terms, a loop over ``n`` (a ``Sum``), and the remainder, at the
    arguments (utilisation, shape). Term ``n`` of the order-``j`` series is
    ``E[(X_n^+)^j] / n = n^(j-1) tau^j E[((rho - G)^+)^j]``, ``G`` of shape ``n m``."""
    rho, m = pr.arguments
    n = sp.Symbol("n", integer=True, positive=True)
    term = SPITZER_TERM[order](rho, n * m)
    series = pr.let(sp.Sum(n ** (order - 1) * term, (n, 1, SPITZER_TERMS)))
    return pr.let(series + _remainder(pr, order, rho, m))


# -- the named functions ----------------------------------------------------------------------

#: Evaluations with at least this many points are made on the distinct argument tuples only
#: (a search repeats the same utilisation and slots across many deployments).
DISTINCT_FROM = 64


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

        def implementation(*args: Any) -> Any:
            if cls.distinct:
                return _distinct(numeric(cls), args)
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
#: Arguments of the conditional wait: ``P(W > 0)``, ``E[W] / tau`` and ``Var W / tau^2``.
_MOMENTS = ("waits", "mean", "variance")


class _SpitzerTerm(_Defined):
    """One term of Spitzer's series for a gamma variable ``G`` of shape ``shape`` and mean
    1 (:func:`_spitzer_term`); evaluated inside the sums, on their arguments as given."""

    arguments = _SERIES
    nargs = len(_SERIES)
    distinct = False
    #: 0: ``P(G < rho)``; 1: ``E[(rho - G)^+]``; 2: ``E[((rho - G)^+)^2]``.
    moment = 0

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        rho, shape = pr.arguments
        return _spitzer_term(pr, cls.moment, rho, pr.let(rho ** sp.Rational(1, 3)), shape)


class SpitzerProbabilityTerm(_SpitzerTerm):
    """``P(G < rho)`` for ``G`` gamma of shape ``shape``, mean 1 (Wilson--Hilferty)."""

    moment = 0


class SpitzerMeanTerm(_SpitzerTerm):
    """``E[(rho - G)^+]`` for ``G`` gamma of shape ``shape``, mean 1 (Wilson--Hilferty)."""

    moment = 1


class SpitzerSquareTerm(_SpitzerTerm):
    """``E[((rho - G)^+)^2]`` for ``G`` gamma of shape ``shape``, mean 1 (Wilson--Hilferty)."""

    moment = 2


#: The term function of each order of Spitzer's series.
SPITZER_TERM: tuple[type[_Defined], ...] = (SpitzerProbabilityTerm, SpitzerMeanTerm,
                                            SpitzerSquareTerm)


class WaitingProbability(_Defined):
    """``P(W > 0) = 1 - exp(-sum_n P(X_n > 0) / n)`` (Spitzer's identity) at utilisation
    ``rho`` and single-server gamma shape ``c / ca2``."""

    arguments = _SERIES
    nargs = len(_SERIES)

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        return 1 - sp.exp(-_spitzer_sum(pr, 0))


class WaitMean(_Defined):
    """``E[W] / tau = sum_n E[X_n^+] / n / tau`` (Spitzer's identity), ``tau`` the single
    server's mean inter-arrival time ``S / rho``."""

    arguments = _SERIES
    nargs = len(_SERIES)

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        return _spitzer_sum(pr, 1)


class WaitVariance(_Defined):
    """``Var W / tau^2 = sum_n E[(X_n^+)^2] / n / tau^2`` (Spitzer's identity: the second
    cumulant)."""

    arguments = _SERIES
    nargs = len(_SERIES)

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        return _spitzer_sum(pr, 2)


def _conditional_gamma(pr: Program) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """``P(W > 0)`` and the shape and scale (units of ``tau``) of the gamma distribution with
    the conditional wait's mean and variance (a two-moment fit)."""
    waits, first, variance = pr.arguments[-3:]
    floor = pr.let(_max(waits, TINY))
    mean = pr.let(_max(first, TINY))
    second = pr.let(_max(variance + first**2, TINY))
    scv = pr.let(_max(second * floor / mean**2 - 1, MIN_SCV))
    return waits, pr.let(1 / scv), pr.let(mean / floor * scv)


class WaitQuantile(_Defined):
    """The ``level`` quantile of ``W / tau``: zero while at most ``1 - level`` of the requests
    wait, else the conditional gamma's ``1 - (1 - level) / P(W > 0)`` quantile (the
    Wilson--Hilferty inverse)."""

    arguments = ("level", *_MOMENTS)
    nargs = 1 + len(_MOMENTS)

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        level = pr.arguments[0]
        waits, k, scale = _conditional_gamma(pr)
        inner = pr.let(_max(1 - (1 - level) / _max(waits, TINY), MIN_LEVEL))
        z = normal_quantile(inner, pr.let)
        cube = pr.let(_max(0, 1 - 1 / (9 * k) + z / (3 * sp.sqrt(k))))
        return k * scale * cube**3 * step(waits - (1 - level))


class WaitDistribution(_Defined):
    """``P(W / tau <= t)`` for ``t >= 0``: ``1 - P(W > 0) (1 - G(t))``, ``G`` the conditional
    gamma's distribution (Wilson--Hilferty)."""

    arguments = ("t", *_MOMENTS)
    nargs = 1 + len(_MOMENTS)

    @classmethod
    def define(cls, pr: Program) -> sp.Expr:
        t = pr.arguments[0]
        waits, k, scale = _conditional_gamma(pr)
        z = pr.let(((t / (k * scale)) ** sp.Rational(1, 3) - 1 + 1 / (9 * k)) * 3 * sp.sqrt(k))
        return _max(0, 1 - waits * (1 - normal_cdf(z, pr.let)))


#: Every function of this module, each after those its definition calls.
FUNCTIONS: tuple[type[_Defined], ...] = (*SPITZER_TERM, WaitingProbability, WaitMean,
                                         WaitVariance, WaitQuantile, WaitDistribution)


@functools.cache
def program(function: type[_Defined]) -> Program:
    """The definition of ``function`` as steps over its arguments (built once)."""
    pr = Program(tuple(sp.Symbol(a) for a in function.arguments), [])
    pr.result = function.define(pr)
    return pr


@functools.cache
def numeric(function: type[_Defined]) -> Callable[..., Any]:
    """``function`` as a vectorised numpy function: lambdify of its program, the steps handed
    to lambdify as the common subexpressions it prints as assignments."""
    pr = program(function)
    # The steps reach lambdify as its common subexpressions, after it collected the
    # implementations the result calls: name those the steps call.
    called = {f.__name__: f._imp_ for f in _called([e for _s, e in pr.steps])}
    return sp.lambdify(pr.arguments, pr.result, modules=[called, "numpy"], docstring_limit=0,
                       cse=lambda result: (pr.steps, result))


def _distinct(fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    """``fn(*args)``, broadcast, computed once per distinct argument tuple (a lexicographic
    sort of the tuples: far cheaper than ``numpy.unique`` along an axis)."""
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
    values = np.broadcast_to(fn(*(c[first] for c in ordered)), (int(first.sum()),))
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
        todo = set().union(*(_called([e for _s, e in program(f).steps] + [program(f).result])
                             for f in todo)) - used
    return [f for f in FUNCTIONS if f in used]


def code_definition(function: type[_Defined], language: str) -> str:
    """The definition of ``function`` as a Python (standard library) or C99 function: its
    program's steps printed by sympy's code printers, a ``Sum`` step as a loop."""
    from sympy.printing.c import C99CodePrinter
    from sympy.printing.pycode import PythonCodePrinter

    pr = program(function)
    name = function.__name__
    doc = " ".join((function.__doc__ or name).split()) + " See perfcost.formulations.queueing."
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


# -- the quantities :mod:`serving` uses -------------------------------------------------------

def _clamped(rho: sp.Expr) -> sp.Expr:
    return _min(rho, RHO_LIMIT)


@dataclass(frozen=True)
class Queue:
    """The wait at ``servers`` slots held ``service`` seconds each, at utilisation ``rho``,
    arrival SCV ``ca2``: Spitzer's atom and moments (built once, shared by its quantities)."""

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
    def moments(self) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """``P(W > 0)``, ``E[W] / tau``, ``Var W / tau^2``."""
        shape = self.servers / _max(self.ca2, MIN_ARRIVAL_SCV)
        return (WaitingProbability(self.clamped, shape), WaitMean(self.clamped, shape),
                WaitVariance(self.clamped, shape))

    @functools.cached_property
    def saturation(self) -> sp.Expr:
        """1 below saturation; infinite at ``rho >= 1`` (a division by zero)."""
        return (1 - self.clamped) / _max(0, 1 - self.rho)

    def mean(self) -> sp.Expr:
        """Mean wait (seconds); infinite at ``rho >= 1``."""
        return self.moments[1] * self.tau * self.saturation

    def quantile(self, p: float) -> sp.Expr:
        """The ``p`` quantile of the wait (seconds, ``0 < p < 1``); infinite at ``rho >= 1``."""
        if not 0 < p < 1:
            raise ValueError(f"quantile {p} outside (0, 1)")
        return WaitQuantile(sp.Float(p), *self.moments) * self.tau * self.saturation

    def served(self, deadline: sp.Expr) -> sp.Expr:
        """Fraction of requests whose wait is at most ``deadline``; zero for a negative
        deadline and at ``rho >= 1`` (written with ``sign`` and ``Min``, not a case split)."""
        below = _min(1, _max(0, 1 - self.rho) / (1 - self.clamped))
        share = WaitDistribution(_max(0, deadline) / self.tau, *self.moments)
        return share * step(deadline) * below


def waiting_probability(rho: sp.Expr, servers: sp.Expr, ca2: sp.Expr = sp.S.One) -> sp.Expr:
    """P(a request waits) at utilisation ``rho`` below 1 with ``servers`` slots."""
    return Queue(rho, servers, sp.Integer(1), ca2).moments[0]


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
