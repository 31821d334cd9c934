"""The code the export writes for the wait's percentiles and distribution: the
standard-library Python of :mod:`queueing_wait` (its functions, verbatim) and their C99
translation, line for line (``tests/test_export.py`` compiles it and checks it against the
evaluator; ``tests/test_queueing.py`` checks the Python against the numpy definition)."""

from __future__ import annotations

import inspect
from typing import Any

from .queueing_wait import (
    BRACKET_TOLERANCE,
    EXACT_TERMS,
    JUMP_LIMIT,
    LARGE_SHAPE,
    NEGLIGIBLE,
    NEGLIGIBLE_EXPONENT,
    NEWTON_STEPS,
    NODES,
    REMAINDER_NODES,
    SADDLE_LIMIT,
    SERIES_LIMIT,
    SERIES_TOLERANCE,
    STEP_TOLERANCE,
    STIRLING,
    STIRLING_FROM,
    WEIGHTS,
    spitzer_gamma_lower,
    spitzer_jumps,
    spitzer_log_prefactor,
    spitzer_sums,
    spitzer_tail,
    spitzer_terms,
    wait_distribution,
    wait_quantile,
)

_EXPORTED = (spitzer_log_prefactor, spitzer_gamma_lower, spitzer_terms, spitzer_sums,
             spitzer_jumps, spitzer_tail)
_CONSTANTS = ("EXACT_TERMS", "NEGLIGIBLE", "NEGLIGIBLE_EXPONENT", "STIRLING_FROM",
              "LARGE_SHAPE", "SADDLE_LIMIT", "SERIES_TOLERANCE", "SERIES_LIMIT", "JUMP_LIMIT",
              "STEP_TOLERANCE", "BRACKET_TOLERANCE", "NEWTON_STEPS", "STIRLING", "NODES",
              "WEIGHTS")


def python_source(part: str) -> str:
    """Standard-library Python of ``part``: ``"helpers"`` (the constants and the sums),
    ``"WaitDistribution"`` or ``"WaitQuantile"`` (a function of that name)."""
    if part == "helpers":
        values = [f"{name} = {globals()[name]!r}" for name in _CONSTANTS]
        functions = [_plain(inspect.getsource(f)) for f in _EXPORTED]
        return "\n".join(values) + "\n\n\n" + "\n\n\n".join(functions)
    function = {"WaitDistribution": wait_distribution, "WaitQuantile": wait_quantile}[part]
    return _plain(inspect.getsource(function)).replace(f"def {function.__name__}(",
                                                         f"def {part}(", 1)


def _plain(source: str) -> str:
    """``source`` without its annotations (the export is annotation-free Python)."""
    head, rest = source.split(":\n", 1)
    head = head.split(") ->", 1)[0]
    name, params = head.split("(", 1)
    names = [p.split(":")[0].strip() for p in params.split(",") if p.strip()]
    return f"{name}({', '.join(names)}):\n{rest.rstrip()}"


def c_source(part: str) -> str:
    """C99 of ``part`` (as :func:`python_source`), the same algorithm line for line."""
    if part == "WaitDistribution":
        return _C_DISTRIBUTION
    if part == "WaitQuantile":
        return _C_QUANTILE.format(**_c_values())
    if part != "helpers":
        raise ValueError(f"unknown part {part!r}")
    arrays = "\n".join(
        f"static const double SPITZER_{name}[{len(values)}] = {{"
        + ", ".join(repr(v) for v in values) + "};"
        for name, values in (("STIRLING", STIRLING), ("NODES", NODES), ("WEIGHTS", WEIGHTS)))
    return _C_HELPERS.format(arrays=arrays, **_c_values())


def _c_values() -> dict[str, Any]:
    return {"terms": EXACT_TERMS, "nodes": REMAINDER_NODES, "stirlings": len(STIRLING),
            "negligible": repr(NEGLIGIBLE), "exponent": repr(NEGLIGIBLE_EXPONENT),
            "stirling_from": repr(STIRLING_FROM), "large": repr(LARGE_SHAPE),
            "saddle": repr(SADDLE_LIMIT), "tolerance": repr(SERIES_TOLERANCE),
            "limit": SERIES_LIMIT, "jumps": JUMP_LIMIT, "step": repr(STEP_TOLERANCE),
            "bracket": repr(BRACKET_TOLERANCE), "steps": NEWTON_STEPS}


_C_HELPERS = """\
{arrays}

/* ln(y^a e^-y / Gamma(a + 1)) for y > 0, at large a without cancelling digits. */
static double spitzer_log_prefactor(double a, double y) {{
    if (a < {stirling_from}) return a * log(y) - y - lgamma(a + 1.0);
    const double u = y / a - 1.0;
    double stirling = 0.0;
    for (int k = 0; k < {stirlings}; ++k) stirling += SPITZER_STIRLING[k] / pow(a, 2 * k + 1);
    return a * (log1p(u) - u) - 0.5 * log(2.0 * M_PI * a) - stirling;
}}

/* P(a, y), the regularized lower incomplete gamma function. */
static double spitzer_gamma_lower(double a, double y) {{
    if (y <= 0.0) return 0.0;
    if (a > {large}) {{
        const double u = y / a - 1.0;
        if (fabs(u) * sqrt(a) < {saddle}) {{
            const double v = u * sqrt(a);
            return 0.5 * erfc(-v / sqrt(2.0))
                   + exp(-v * v / 2.0) / sqrt(2.0 * M_PI) / (3.0 * sqrt(a));
        }}
        const double w = copysign(sqrt(2.0 * a * (u - log1p(u))), u);
        return 0.5 * erfc(-w / sqrt(2.0))
               + exp(-w * w / 2.0) / sqrt(2.0 * M_PI) * (1.0 / w - 1.0 / (u * sqrt(a)));
    }}
    const double prefactor = exp(spitzer_log_prefactor(a, y));
    long k = 1;
    if (y < a + 1.0) {{
        double term = 1.0, total = 1.0;
        while (term > total * {tolerance} && k < {limit}) {{
            term *= y / (a + k);
            total += term;
            k += 1;
        }}
        return prefactor * total;
    }}
    double b = y + 1.0 - a, c = 1e300, d = 1.0 / b, h = d;
    while (k < {limit}) {{
        const double an = -k * (k - a);
        b += 2.0;
        d = an * d + b;
        d = fabs(d) > 1e-300 ? d : 1e-300;
        c = b + an / c;
        c = fabs(c) > 1e-300 ? c : 1e-300;
        d = 1.0 / d;
        h *= d * c;
        k += 1;
        if (fabs(d * c - 1.0) < {tolerance} * 100.0) break;
    }}
    return 1.0 - prefactor * a * h;
}}

/* P(X_n > x) and its derivative in x (moments 0) or, at x = 0, P(X_n > 0), E[X_n^+] and
   E[(X_n^+)^2] (moments 1), in out[3]; zeros where negligible. */
static void spitzer_terms(double n, double x, double rho, double shape, int moments,
                          double out[3]) {{
    out[0] = out[1] = out[2] = 0.0;
    const double y = shape * (n * rho - x);
    if (y <= 0.0) return;
    const double r = rho - x / n;
    const double a = n * shape;
    const double log_bound = -a * (r - 1.0 - log(r)) - 0.5 * log(2.0 * M_PI * a)
                             - log1p(-r * a / (a + 1.0));
    if (log_bound < -{exponent}) return;
    const double value = spitzer_gamma_lower(a, y);
    const double prefactor = exp(spitzer_log_prefactor(a, y));
    out[0] = value;
    if (!moments) {{
        out[1] = -shape * prefactor * a / y;
        return;
    }}
    const double first = n * ((rho - 1.0) * value + prefactor);
    const double second = n / shape * (value - prefactor) - n * (1.0 - rho) * first;
    out[1] = fmax(first, 0.0);
    out[2] = fmax(second, 0.0);
}}

/* sum_n of spitzer_terms / n in sums[3]: G(x), G'(x), 0 or, at x = 0, Lambda, kappa_1,
   kappa_2. */
static void spitzer_sums(double x, double rho, double shape, int moments, double sums[3]) {{
    double previous[3] = {{0.0, 0.0, 0.0}}, current[3] = {{0.0, 0.0, 0.0}}, terms[3];
    sums[0] = sums[1] = sums[2] = 0.0;
    if (rho <= 0.0) return;
    for (int n = 1; n <= {terms}; ++n) {{
        spitzer_terms(n, x, rho, shape, moments, terms);
        for (int i = 0; i < 3; ++i) {{
            previous[i] = current[i];
            current[i] = terms[i] / n;
            sums[i] += current[i];
        }}
    }}
    const double rate = shape * (rho - 1.0 - log(rho));
    const double first = {terms} + 1.0;
    const double bound = exp(-rate * first) / (first * -expm1(-rate));
    const double start = fmax({terms} + 0.5, x / rho);
    const double end = {terms} + 0.5 + {exponent} / rate;
    if (bound > {negligible} && end > start) {{
        const double low = log(start), half = (log(end) - low) / 2.0;
        for (int i = 0; i < 3; ++i) sums[i] += (current[i] - previous[i]) / 24.0;
        for (int j = 0; j < {nodes}; ++j) {{
            spitzer_terms(exp(low + half * (SPITZER_NODES[j] + 1.0)), x, rho, shape, moments,
                          terms);
            for (int i = 0; i < 3; ++i) sums[i] += SPITZER_WEIGHTS[j] * half * terms[i];
        }}
    }}
}}

/* Lambda (returned) and the shape and rate of the gamma distribution with the jumps' mean
   and variance. */
static double spitzer_jumps(double rho, double shape, double *alpha, double *beta) {{
    double sums[3];
    spitzer_sums(0.0, rho, shape, 1, sums);
    *alpha = *beta = 1.0;
    if (sums[0] <= 0.0) return 0.0;
    const double mean = fmax(sums[1] / sums[0], 1e-300);
    const double variance = fmax(sums[2] / sums[0] - mean * mean, 1e-12 * mean * mean);
    *alpha = mean * mean / variance;
    *beta = mean / variance;
    return sums[0];
}}

/* P(W > x) (returned) and its derivative in x (*slope): the compound Poisson sum, one jump
   exact. */
static double spitzer_tail(double x, double rho, double shape, double total, double alpha,
                           double beta, double *slope) {{
    double sums[3];
    spitzer_sums(x, rho, shape, 0, sums);
    double weight = exp(-total);
    double below = weight * (1.0 + total - sums[0]);
    double density = -weight * sums[1];
    weight *= total;
    for (int k = 2; k <= {jumps} && (k <= total || weight > {negligible}); ++k) {{
        weight *= total / k;
        const double y = beta * x;
        below += weight * spitzer_gamma_lower(k * alpha, y);
        if (y > 0.0)
            density += weight * beta * exp((k * alpha - 1.0) * log(y) - y - lgamma(k * alpha));
    }}
    *slope = -density;
    return fmax(1.0 - below, 0.0);
}}"""

_C_DISTRIBUTION = """\
static double WaitDistribution(double t, double rho, double shape) {
    double alpha, beta, slope;
    const double total = spitzer_jumps(rho, shape, &alpha, &beta);
    if (total <= 0.0) return 1.0;
    return 1.0 - spitzer_tail(t > 0.0 ? t : 0.0, rho, shape, total, alpha, beta, &slope);
}"""

_C_QUANTILE = """\
static double WaitQuantile(double level, double rho, double shape) {{
    const double target = 1.0 - level;
    double alpha, beta, slope;
    const double total = spitzer_jumps(rho, shape, &alpha, &beta);
    const double waits = -expm1(-total);
    if (waits <= target) return 0.0;
    double low = 0.0, high = INFINITY;
    double x = total * alpha / beta / waits * log(waits / target);
    for (int i = 0; i < {steps}; ++i) {{
        const double value = spitzer_tail(x, rho, shape, total, alpha, beta, &slope);
        if (value > target) low = x; else high = x;
        double next = (value > 0.0 && slope < 0.0)
            ? x - log(value / target) * value / slope : INFINITY;
        if (fabs(next - x) <= {step} * next
            || (!isinf(high) && high - low <= {bracket} * high)
            || fabs(value - target) <= {bracket} * target)
            return (low <= next && next <= high) ? next : x;
        if (!(low < next && next < high))
            next = isinf(high) ? (x > 0.0 ? 2.0 * x : 1.0) : (low + high) / 2.0;
        x = next;
    }}
    return x;
}}"""
