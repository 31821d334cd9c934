"""The wait distribution of the single GI/D/1 server that a replica's slots reduce to.

:mod:`queueing` reduces ``c`` slots held ``S`` seconds each to one server of service time
``S`` fed every ``c``-th arrival: its inter-arrival times are gamma of shape ``m = c / ca2``
and mean ``tau = S / rho``. In units of ``tau`` the service time is ``rho`` and ``A_n``, the
sum of ``n`` inter-arrival times, is gamma of shape ``n m`` and scale ``1 / m``. The wait is
the maximum ``W`` of the random walk ``X_n = n rho - A_n``.

**Spitzer's identity** (F. Spitzer, "A combinatorial lemma and its application to probability
theory", Trans. AMS 82, 1956; S. Asmussen, *Applied Probability and Queues*, 2nd ed., 2003,
Ch. VIII) gives the transform ``E[exp(-s W)] = exp(sum_n (E[exp(-s X_n^+)] - 1) / n)``: ``W``
is compound Poisson. It is the sum of ``K`` independent jumps, ``K`` Poisson of mean
``Lambda = sum_n P(X_n > 0) / n``, each jump distributed as ``nu / Lambda`` with
``nu(x, inf) = G(x) = sum_n P(X_n > x) / n``. So

    P(W <= x) = exp(-Lambda) (1 + Lambda J(x) + sum_{k >= 2} Lambda^k / k! J^{*k}(x)),

``J(x) = 1 - G(x) / Lambda``. (``exp(-G(x))`` is *not* the distribution beyond ``x = 0``: it
is the chance that no single jump exceeds ``x``; against Erlang's exact M/D/1 distribution it
is 0.540 instead of 0.445 at ``x = S``, utilisation 0.8.)

What is computed:

* ``P(W = 0) = exp(-Lambda)`` and the one-jump term ``Lambda J(x) = Lambda - G(x)`` exactly:
  ``P(X_n > x) = P(n m, m (n rho - x))``, ``P(a, y)`` the regularized lower incomplete gamma
  function.
* The jumps of ``k >= 2``: ``J`` replaced by the gamma distribution of the same mean and
  variance, ``kappa_1 / Lambda`` and ``kappa_2 / Lambda - (kappa_1 / Lambda)^2``, where
  ``kappa_j = sum_n E[(X_n^+)^j] / n`` (the cumulants of ``W``, exact terms); the sum of ``k``
  such jumps is gamma of shape ``k alpha``. This is the only approximation: where one jump
  dominates (low utilisation, one slot) the result is exact, and the several-jump terms keep
  the compound structure (a single gamma for the conditional wait, two moments, erred by
  17--19 % with one or two slots).
* **Series terms** ``n = 1 .. EXACT_TERMS`` one by one; a term whose bound
  ``exp(-a psi(r)) / (sqrt(2 pi a) (1 - r a / (a + 1)))`` (``a = n m``, ``r = rho - x / n``,
  ``psi(r) = r - 1 - ln r``: the Chernoff bound with Stirling's lower bound on ``Gamma(a + 1)``)
  is below :data:`NEGLIGIBLE` is left out. **The rest**, ``n > EXACT_TERMS`` (thousands of
  terms at utilisation 0.9 with one slot), is the integral of the same exact terms over ``n``
  from ``EXACT_TERMS + 1/2`` with the Euler--Maclaurin correction ``f'(N + 1/2) / 24``, in the
  variable ``ln n`` by :data:`REMAINDER_NODES`-point Gauss--Legendre quadrature, up to where
  every term is below :data:`NEGLIGIBLE`. Against brute-force sums of 400,000 terms, ``G`` is
  within 1.1e-4 (relative) at utilisations 0.3--0.95, shapes 0.5--1024.
* ``P(a, y)``: its power series (DLMF 8.7.1) below ``y = a + 1``, Legendre's continued fraction
  for the complement above (DLMF 8.9.2, modified Lentz), the prefactor
  ``y^a e^-y / Gamma(a + 1)`` through Stirling's series (DLMF 5.11.1) from
  :data:`STIRLING_FROM` (numpy iterates them on the points not yet converged). Beyond
  :data:`LARGE_SHAPE` it is the Lugannani--Rice saddle-point approximation (R. Lugannani and
  S. Rice, Adv. Appl. Prob. 12, 1980) in every implementation. The truncated moments
  ``E[X_n^+] = n ((rho - 1) P(a, y) + D)`` and ``E[(X_n^+)^2] = (n / m) (P(a, y) - D) - n (1 -
  rho) E[X_n^+]`` (``y = a rho``, ``D = y^a e^-y / Gamma(a + 1)``: the recurrence ``P(a + 1, y)
  = P(a, y) - D``).
* **Percentiles** solve ``P(W > x) = 1 - level``: zero where ``P(W > 0)`` is already at most
  ``1 - level``, else a safeguarded Newton iteration on ``ln P(W > x)`` (nearly linear: the tail
  is exponential) that falls back to bisection whenever a step leaves the bracket, until its
  step is below :data:`STEP_TOLERANCE` (the step taken then is accurate to about its square).

The same algorithm is written three times: vectorised numpy (what ``lambdify`` evaluates on
many points), standard-library Python (a few points; and what ``perfcost export`` writes: the
functions below, verbatim) and C99 (:mod:`queueing_code` holds the export's text).
``tests/test_queueing.py`` checks the Python against the numpy and the percentiles against a
simulation; ``tests/test_export.py`` compiles the C and checks it against the evaluator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Terms of the series summed one by one; the rest is integrated over ``n``.
EXACT_TERMS = 16
#: Gauss--Legendre nodes of the integral over ``ln n`` of the series' remainder.
REMAINDER_NODES = 16
#: Terms (and jump counts) whose bound is below this are left out: a probability, far below
#: what the sums are used for (a percentile solves ``P(W > x) = 1 - level >= 0.01``).
NEGLIGIBLE = 1e-12
#: Shape from which the prefactor of ``P(a, y)`` is computed through Stirling's series
#: (four terms: the first left out is below 1.6e-15 there).
STIRLING_FROM = 20.0
#: Shape beyond which ``P(a, y)`` is the Lugannani--Rice saddle-point approximation: against
#: scipy.special.gammainc, relative error below 7.9e-5 for ``y / a`` in 0.3--1 where
#: ``P > 1e-12``, absolute below 2.1e-6 for ``y / a`` in 0.3--2.5 (4e-6 relative at shape 150,
#: 2e-7 at 1000). The exact power series would take ~9 sqrt(a) terms a point; this keeps
#: ``perfcost solve`` of a serving case within ~10 % of its time with the two-moment fit.
LARGE_SHAPE = 50.0
#: Where ``|y / a - 1| sqrt(a)`` is below this the saddle-point formula takes its limit form
#: ``Phi(w) + phi(w) / (3 sqrt(a))``, ``w = (y / a - 1) sqrt(a)`` (its two terms cancel there).
SADDLE_LIMIT = 1e-4
#: The power series and continued fraction stop when a term changes the sum by less than
#: this share, or after SERIES_LIMIT terms (~9 sqrt(a) suffice below LARGE_SHAPE).
SERIES_TOLERANCE = 1e-17
SERIES_LIMIT = 100_000
#: The most jumps summed (the Poisson weights stop at NEGLIGIBLE long before).
JUMP_LIMIT = 400
#: Newton's iteration stops when its step is below STEP_TOLERANCE of the value, when the
#: bracket is narrower than BRACKET_TOLERANCE, when ``P(W > x)`` is within BRACKET_TOLERANCE
#: of its target (its last digits), or after NEWTON_STEPS steps.
STEP_TOLERANCE = 1e-6
BRACKET_TOLERANCE = 1e-14
NEWTON_STEPS = 200

_nodes, _weights = np.polynomial.legendre.leggauss(REMAINDER_NODES)
#: Gauss--Legendre nodes and weights on [-1, 1] (numpy.polynomial.legendre.leggauss).
NODES: tuple[float, ...] = tuple(float(v) for v in _nodes)
WEIGHTS: tuple[float, ...] = tuple(float(v) for v in _weights)
#: DLMF 5.11.1: ln Gamma(a + 1) - (a + 1/2) ln a + a - ln(2 pi) / 2 = sum_k STIRLING[k] / a^(2k+1).
STIRLING: tuple[float, ...] = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680)
#: -ln NEGLIGIBLE.
NEGLIGIBLE_EXPONENT = -math.log(NEGLIGIBLE)


# -- standard-library Python (written verbatim by the code export) -----------------------------

def spitzer_log_prefactor(a: float, y: float) -> float:
    """ln(y^a e^-y / Gamma(a + 1)) for y > 0, at large a without cancelling digits."""
    if a < STIRLING_FROM:
        return a * math.log(y) - y - math.lgamma(a + 1.0)
    u = y / a - 1.0
    stirling = sum(c / a ** (2 * k + 1) for k, c in enumerate(STIRLING))
    return a * (math.log1p(u) - u) - 0.5 * math.log(2.0 * math.pi * a) - stirling


def spitzer_gamma_lower(a: float, y: float) -> float:
    """P(a, y), the regularized lower incomplete gamma function."""
    if y <= 0.0:
        return 0.0
    if a > LARGE_SHAPE:  # Lugannani--Rice
        u = y / a - 1.0
        if abs(u) * math.sqrt(a) < SADDLE_LIMIT:
            w = u * math.sqrt(a)
            return (0.5 * math.erfc(-w / math.sqrt(2.0))
                    + math.exp(-w * w / 2.0) / math.sqrt(2.0 * math.pi) / (3.0 * math.sqrt(a)))
        w = math.copysign(math.sqrt(2.0 * a * (u - math.log1p(u))), u)
        return (0.5 * math.erfc(-w / math.sqrt(2.0))
                + math.exp(-w * w / 2.0) / math.sqrt(2.0 * math.pi)
                * (1.0 / w - 1.0 / (u * math.sqrt(a))))
    prefactor = math.exp(spitzer_log_prefactor(a, y))
    k = 1
    if y < a + 1.0:  # the power series
        term = total = 1.0
        while term > total * SERIES_TOLERANCE and k < SERIES_LIMIT:
            term *= y / (a + k)
            total += term
            k += 1
        return prefactor * total
    # The complement's continued fraction, modified Lentz (values below 1e-300 are zeros).
    b = y + 1.0 - a
    c = 1e300
    d = 1.0 / b
    h = d
    while k < SERIES_LIMIT:
        an = -k * (k - a)
        b += 2.0
        d = an * d + b
        d = d if abs(d) > 1e-300 else 1e-300
        c = b + an / c
        c = c if abs(c) > 1e-300 else 1e-300
        d = 1.0 / d
        h *= d * c
        k += 1
        if abs(d * c - 1.0) < SERIES_TOLERANCE * 100.0:
            break
    return 1.0 - prefactor * a * h


def spitzer_terms(n: float, x: float, rho: float, shape: float, moments: bool
                  ) -> tuple[float, float, float]:
    """P(X_n > x) and its derivative in x (moments false) or, at x = 0, P(X_n > 0), E[X_n^+]
    and E[(X_n^+)^2] (moments true); zeros where negligible."""
    y = shape * (n * rho - x)
    if y <= 0.0:
        return 0.0, 0.0, 0.0
    r = rho - x / n
    a = n * shape
    # P(a, a r) <= exp(-a psi(r)) / (sqrt(2 pi a) (1 - r a / (a + 1))): Stirling's lower
    # bound on Gamma(a + 1) and the series' ratios below r a / (a + 1).
    log_bound = (-a * (r - 1.0 - math.log(r)) - 0.5 * math.log(2.0 * math.pi * a)
                 - math.log1p(-r * a / (a + 1.0)))
    if log_bound < -NEGLIGIBLE_EXPONENT:
        return 0.0, 0.0, 0.0
    value = spitzer_gamma_lower(a, y)
    prefactor = math.exp(spitzer_log_prefactor(a, y))
    if not moments:
        return value, -shape * prefactor * a / y, 0.0
    first = n * ((rho - 1.0) * value + prefactor)
    second = n / shape * (value - prefactor) - n * (1.0 - rho) * first
    return value, max(first, 0.0), max(second, 0.0)


def spitzer_sums(x: float, rho: float, shape: float, moments: bool
                 ) -> tuple[float, float, float]:
    """sum_n of spitzer_terms / n: (G(x), G'(x), 0) or, at x = 0, (Lambda, kappa_1, kappa_2)."""
    sums = [0.0, 0.0, 0.0]
    previous = [0.0, 0.0, 0.0]
    current = [0.0, 0.0, 0.0]
    if rho <= 0.0:
        return 0.0, 0.0, 0.0
    for n in range(1, EXACT_TERMS + 1):
        terms = spitzer_terms(n, x, rho, shape, moments)
        for i in range(3):
            previous[i], current[i] = current[i], terms[i] / n
            sums[i] += current[i]
    rate = shape * (rho - 1.0 - math.log(rho))  # every term n is below exp(-rate n)
    first = EXACT_TERMS + 1.0
    bound = math.exp(-rate * first) / (first * -math.expm1(-rate))
    start = max(EXACT_TERMS + 0.5, x / rho)
    end = EXACT_TERMS + 0.5 + NEGLIGIBLE_EXPONENT / rate
    if bound > NEGLIGIBLE and end > start:  # the rest: its integral over ln n
        low = math.log(start)
        half = (math.log(end) - low) / 2.0
        for i in range(3):  # Euler--Maclaurin: + f'(N + 1/2) / 24, f' from the last terms
            sums[i] += (current[i] - previous[i]) / 24.0
        for node, weight in zip(NODES, WEIGHTS, strict=True):
            terms = spitzer_terms(math.exp(low + half * (node + 1.0)), x, rho, shape, moments)
            for i in range(3):
                sums[i] += weight * half * terms[i]
    return sums[0], sums[1], sums[2]


def spitzer_jumps(rho: float, shape: float) -> tuple[float, float, float]:
    """Lambda and the shape and rate of the gamma distribution with the jumps' mean and
    variance (kappa_1 / Lambda, kappa_2 / Lambda - mean^2)."""
    total, first, second = spitzer_sums(0.0, rho, shape, True)
    if total <= 0.0:
        return 0.0, 1.0, 1.0
    mean = max(first / total, 1e-300)
    variance = max(second / total - mean * mean, 1e-12 * mean * mean)
    return total, mean * mean / variance, mean / variance


def spitzer_tail(x: float, rho: float, shape: float, total: float, alpha: float,
                 beta: float) -> tuple[float, float]:
    """P(W > x) and its derivative in x: the compound Poisson sum, one jump exact."""
    g, slope, _ = spitzer_sums(x, rho, shape, False)
    weight = math.exp(-total)
    below = weight * (1.0 + total - g)
    density = -weight * slope
    weight *= total
    k = 2
    while k <= JUMP_LIMIT and (k <= total or weight > NEGLIGIBLE):
        weight *= total / k
        y = beta * x
        below += weight * spitzer_gamma_lower(k * alpha, y)
        if y > 0.0:
            density += weight * beta * math.exp(
                (k * alpha - 1.0) * math.log(y) - y - math.lgamma(k * alpha))
        k += 1
    return max(1.0 - below, 0.0), -density


def wait_distribution(t: float, rho: float, shape: float) -> float:
    """P(W <= t), W in units of tau."""
    total, alpha, beta = spitzer_jumps(rho, shape)
    if total <= 0.0:
        return 1.0
    return 1.0 - spitzer_tail(max(t, 0.0), rho, shape, total, alpha, beta)[0]


def wait_quantile(level: float, rho: float, shape: float) -> float:
    """The level quantile of W (units of tau), by safeguarded Newton on ln P(W > x) from
    the quantile of an exponential conditional wait of the same mean."""
    target = 1.0 - level
    total, alpha, beta = spitzer_jumps(rho, shape)
    waits = -math.expm1(-total)
    if waits <= target:
        return 0.0
    low, high = 0.0, math.inf
    x = total * alpha / beta / waits * math.log(waits / target)
    for _ in range(NEWTON_STEPS):
        value, slope = spitzer_tail(x, rho, shape, total, alpha, beta)
        if value > target:
            low = x
        else:
            high = x
        if value > 0.0 and slope < 0.0:
            new = x - math.log(value / target) * value / slope
        else:
            new = math.inf
        closed = high < math.inf and high - low <= BRACKET_TOLERANCE * high
        flat = abs(value - target) <= BRACKET_TOLERANCE * target
        if abs(new - x) <= STEP_TOLERANCE * new or closed or flat:
            return new if low <= new <= high else x
        if not low < new < high:
            new = (low + high) / 2.0 if high < math.inf else (2.0 * x if x > 0.0 else 1.0)
        x = new
    return x


# -- vectorised numpy (what lambdify evaluates) ------------------------------------------------

#: math.erfc and math.lgamma on arrays (numpy has neither; scipy.special would add a
#: quarter of a second to every command's start).
_erfc = np.frompyfunc(math.erfc, 1, 1)
_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _log_gamma(a: np.ndarray) -> np.ndarray:
    """ln Gamma(a), a > 0: math.lgamma below STIRLING_FROM, Stirling's series above."""
    small = a < STIRLING_FROM
    out = np.empty_like(a)
    out[small] = _lgamma(a[small]).astype(float)
    b = a[~small]
    stirling = sum(c / b ** (2 * k + 1) for k, c in enumerate(STIRLING))
    out[~small] = (b - 0.5) * np.log(b) - b + 0.5 * math.log(2.0 * math.pi) + stirling
    return out


def _log_prefactor(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    small = a < STIRLING_FROM
    out = np.empty_like(y)
    out[small] = a[small] * np.log(y[small]) - y[small] - _log_gamma(a[small] + 1.0)
    al, u = a[~small], y[~small] / a[~small] - 1.0
    stirling = sum(c / al ** (2 * k + 1) for k, c in enumerate(STIRLING))
    out[~small] = al * (np.log1p(u) - u) - 0.5 * np.log(2.0 * math.pi * al) - stirling
    return out


def _gamma_exact(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`spitzer_gamma_lower` below LARGE_SHAPE on arrays (y > 0): the power series or
    the continued fraction, iterated on the points that have not converged."""
    prefactor = np.exp(_log_prefactor(a, y))
    out = np.empty_like(y)
    series = np.flatnonzero(y < a + 1.0)
    ys, as_ = y[series], a[series]
    term = np.ones(series.size)
    total = np.ones(series.size)
    k = 1
    while series.size and k < SERIES_LIMIT:
        for _ in range(8):  # terms between checks: a converged sum changes by < 1e-16
            term *= ys / (as_ + k)
            total += term
            k += 1
        done = ~(term > total * SERIES_TOLERANCE)
        out[series[done]] = prefactor[series[done]] * total[done]
        keep = ~done
        series, ys, as_, term, total = (series[keep], ys[keep], as_[keep], term[keep],
                                        total[keep])
    out[series] = prefactor[series] * total
    fraction = np.flatnonzero(~(y < a + 1.0))
    af = a[fraction]
    b = y[fraction] + 1.0 - af
    c = np.full(fraction.size, 1e300)
    d = 1.0 / b
    h = d
    k = 1
    while fraction.size and k < SERIES_LIMIT:
        an = -k * (k - af)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) > 1e-300, d, 1e-300)
        c = b + an / c
        c = np.where(np.abs(c) > 1e-300, c, 1e-300)
        d = 1.0 / d
        h = h * d * c
        k += 1
        done = np.abs(d * c - 1.0) < SERIES_TOLERANCE * 100.0
        f = fraction[done]
        out[f] = 1.0 - prefactor[f] * af[done] * h[done]
        keep = ~done
        fraction, af, b, c, d, h = (fraction[keep], af[keep], b[keep], c[keep], d[keep],
                                    h[keep])
    out[fraction] = 1.0 - prefactor[fraction] * af * h
    return out


def _gamma_lower(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(y)
    large = a > LARGE_SHAPE
    exact = ~large & (y > 0.0)
    if exact.any():
        out[exact] = _gamma_exact(a[exact], y[exact])
    live = large & (y > 0.0)
    if live.any():
        al, u = a[live], y[live] / a[live] - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.copysign(np.sqrt(2.0 * al * (u - np.log1p(u))), u)
            value = (0.5 * _erfc(-w / math.sqrt(2.0)).astype(float)
                     + np.exp(-w * w / 2.0) / math.sqrt(2.0 * math.pi)
                     * (1.0 / w - 1.0 / (u * np.sqrt(al))))
        near = np.abs(u) * np.sqrt(al) < SADDLE_LIMIT
        v = u[near] * np.sqrt(al[near])
        value[near] = (0.5 * _erfc(-v / math.sqrt(2.0)).astype(float)
                       + np.exp(-v * v / 2.0) / math.sqrt(2.0 * math.pi)
                       / (3.0 * np.sqrt(al[near])))
        out[live] = value
    return out


def _terms(n: Any, x: np.ndarray, rho: np.ndarray, shape: np.ndarray, moments: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`spitzer_terms` on arrays (only the terms that are not negligible computed)."""
    n, x, rho, shape = np.broadcast_arrays(np.asarray(n, dtype=float), x, rho, shape)
    out = [np.zeros(n.shape), np.zeros(n.shape), np.zeros(n.shape)]
    y = shape * (n * rho - x)
    live = y > 0.0
    r = np.where(live, rho - x / n, 0.5)
    a = n * shape
    with np.errstate(divide="ignore", invalid="ignore"):
        log_bound = (-a * (r - 1.0 - np.log(r)) - 0.5 * np.log(2.0 * math.pi * a)
                     - np.log1p(-r * a / (a + 1.0)))
        live &= log_bound >= -NEGLIGIBLE_EXPONENT
    if not live.any():
        return out[0], out[1], out[2]
    n, a, y, s, rl = n[live], a[live], y[live], shape[live], rho[live]
    value = _gamma_lower(a, y)
    prefactor = np.exp(_log_prefactor(a, y))
    out[0][live] = value
    if not moments:
        out[1][live] = -s * prefactor * a / y
    else:
        first = n * ((rl - 1.0) * value + prefactor)
        out[1][live] = np.maximum(first, 0.0)
        out[2][live] = np.maximum(n / s * (value - prefactor) - n * (1.0 - rl) * first, 0.0)
    return out[0], out[1], out[2]


def _sums(x: np.ndarray, rho: np.ndarray, shape: np.ndarray, moments: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`spitzer_sums` on 1-d arrays."""
    out = np.zeros((3, x.size))
    live = rho > 0.0
    x, rho, shape = x[live], rho[live], shape[live]
    sums = np.zeros((3, x.size))
    ends = np.zeros((2, 3, x.size))  # the last two terms / n, for Euler--Maclaurin
    rate = shape * (rho - 1.0 - np.log(rho))
    # Term n is negligible for every point beyond NEGLIGIBLE_EXPONENT / rate.
    last = int(min(EXACT_TERMS, np.ceil(NEGLIGIBLE_EXPONENT / max(rate.min(), 1e-300)))
               ) if rho.size else 0
    for n in range(1, last + 1):
        some = n * rate < NEGLIGIBLE_EXPONENT
        terms = np.stack(_terms(n, x[some], rho[some], shape[some], moments)) / n
        sums[:, some] += terms
        if n >= EXACT_TERMS - 1:
            ends[n - EXACT_TERMS + 1][:, some] = terms
    first = EXACT_TERMS + 1.0
    with np.errstate(over="ignore", divide="ignore"):
        bound = np.exp(-rate * first) / (first * -np.expm1(-rate))
        start = np.maximum(EXACT_TERMS + 0.5, x / rho)
        end = EXACT_TERMS + 0.5 + NEGLIGIBLE_EXPONENT / rate
    rest = (bound > NEGLIGIBLE) & (end > start)
    if rest.any():
        sums[:, rest] += (ends[1][:, rest] - ends[0][:, rest]) / 24.0
        low = np.log(start[rest])[:, None]
        half = ((np.log(end[rest]) - low[:, 0]) / 2.0)[:, None]
        n = np.exp(low + half * (np.asarray(NODES) + 1.0))
        terms = _terms(n, x[rest, None], rho[rest, None], shape[rest, None], moments)
        w = np.asarray(WEIGHTS) * half
        for i in range(3):
            sums[i, rest] += np.sum(w * terms[i], axis=1)
    out[:, live] = sums
    return out[0], out[1], out[2]


def _jumps(rho: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`spitzer_jumps` on 1-d arrays."""
    total, first, second = _sums(np.zeros_like(rho), rho, shape, True)
    live = total > 0.0
    alpha = np.ones_like(rho)
    beta = np.ones_like(rho)
    mean = np.maximum(first[live] / total[live], 1e-300)
    variance = np.maximum(second[live] / total[live] - mean * mean, 1e-12 * mean * mean)
    alpha[live] = mean * mean / variance
    beta[live] = mean / variance
    return total, alpha, beta


def _tail(x: np.ndarray, rho: np.ndarray, shape: np.ndarray, total: np.ndarray,
          alpha: np.ndarray, beta: np.ndarray, derivative: bool = True
          ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`spitzer_tail` on 1-d arrays (its derivative only where ``derivative``)."""
    g, g_slope, _ = _sums(x, rho, shape, False)
    weight = np.exp(-total)
    below = weight * (1.0 + total - g)
    density = -weight * g_slope
    weight = weight * total
    y = beta * x
    live = np.ones(x.size, dtype=bool)
    for k in range(2, JUMP_LIMIT + 1):
        live &= (k <= total) | (weight > NEGLIGIBLE)
        if not live.any():
            break
        weight = np.where(live, weight * total / k, weight)
        idx = np.flatnonzero(live)
        a, yl, wl = k * alpha[idx], y[idx], weight[idx]
        below[idx] += wl * _gamma_lower(a, yl)
        if not derivative:
            continue
        positive = yl > 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            pdf = np.exp((a - 1.0) * np.log(yl) - yl - _log_gamma(a))
        density[idx] += np.where(positive, wl * beta[idx] * pdf, 0.0)
    return np.maximum(1.0 - below, 0.0), -density


def _distinct_pairs(rho: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """The distinct (rho, shape) pairs and, for each point, the index of its pair (a
    lexicographic sort: far cheaper than numpy.unique along an axis)."""
    order = np.lexsort((shape, rho))
    r, m = rho[order], shape[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (m[1:] != m[:-1])
    inverse = np.empty(order.size, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return r[first], m[first], inverse


#: The jumps of the last few sets of (rho, shape) pairs: a search evaluates the three
#: percentiles and the served share on the same pairs.
_JUMPS_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_JUMPS_CACHED = 4


def _pair_jumps(rho: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """:func:`_jumps` of each point, computed once per distinct pair."""
    rhos, shapes, inverse = _distinct_pairs(rho, shape)
    key = rhos.tobytes() + shapes.tobytes()
    found = _JUMPS_CACHE.get(key)
    if found is None:
        found = _jumps(rhos, shapes)
        if len(_JUMPS_CACHE) >= _JUMPS_CACHED:
            _JUMPS_CACHE.pop(next(iter(_JUMPS_CACHE)))
        _JUMPS_CACHE[key] = found
    total, alpha, beta = found
    return total[inverse], alpha[inverse], beta[inverse]


def distribution(t: Any, rho: Any, shape: Any) -> np.ndarray:
    """:func:`wait_distribution` on arrays (broadcast)."""
    t, rho, shape = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, rho, shape)))
    out_shape = t.shape
    t, rho, shape = (np.ravel(v) for v in (t, rho, shape))
    total, alpha, beta = _pair_jumps(rho, shape)
    out = np.ones(t.size)
    live = total > 0.0
    out[live] = 1.0 - _tail(np.maximum(t[live], 0.0), rho[live], shape[live], total[live],
                            alpha[live], beta[live], derivative=False)[0]
    return out.reshape(out_shape)


def quantile(level: Any, rho: Any, shape: Any) -> np.ndarray:
    """:func:`wait_quantile` on arrays (broadcast): the same steps, point by point."""
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (level, rho, shape)))
    out_shape = arrays[0].shape
    level, rho, shape = (np.ravel(a) for a in arrays)
    target = 1.0 - level
    total, alpha, beta = _pair_jumps(rho, shape)
    waits = -np.expm1(-total)
    x = np.zeros_like(rho)
    todo = np.flatnonzero(waits > target)
    low = np.zeros(todo.size)
    high = np.full(todo.size, math.inf)
    w, t = waits[todo], target[todo]
    xs = total[todo] * alpha[todo] / beta[todo] / w * np.log(w / t)
    for _ in range(NEWTON_STEPS):
        if not todo.size:
            break
        values, slopes = _tail(xs, rho[todo], shape[todo], total[todo], alpha[todo],
                               beta[todo])
        above = values > t
        low = np.where(above, xs, low)
        high = np.where(above, high, xs)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.where((values > 0.0) & (slopes < 0.0),
                           xs - np.log(values / t) * values / slopes, math.inf)
            done = ((np.abs(new - xs) <= STEP_TOLERANCE * new)
                    | (np.isfinite(high) & (high - low <= BRACKET_TOLERANCE * high))
                    | (np.abs(values - t) <= BRACKET_TOLERANCE * t))
        x[todo] = np.where(done & (low <= new) & (new <= high), new, xs)
        outside = ~((low < new) & (new < high))
        expand = np.where(xs > 0.0, 2.0 * xs, 1.0)
        new = np.where(outside, np.where(np.isinf(high), expand, (low + high) / 2.0), new)
        keep = ~done
        x[todo[keep]] = new[keep]
        todo, xs, low, high, t = todo[keep], new[keep], low[keep], high[keep], t[keep]
    return x.reshape(out_shape)
