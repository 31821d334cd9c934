"""Queueing delay of requests at a serving replica: waiting-time percentiles in closed form.

A continuously batching replica holds ``c`` sequences at once (its batch slots); a request
occupies a slot from admission to its last token, ``S`` seconds, and waits when every slot is
taken. That is a G/G/c queue with arrival rate ``lambda``, utilisation
``rho = lambda S / c``, arrival and service variability ``ca2``, ``cs2`` (squared
coefficients of variation). Closed forms, sympy throughout:

* probability of waiting, Sakasegawa's fit to the M/M/c delay probability
  (H. Sakasegawa, "An approximation formula L_q ~ alpha rho^beta / (1 - rho)", Annals of the
  Institute of Statistical Mathematics 29, 1977; the form ``rho^(sqrt(2(c+1)) - 1)`` of
  Hopp & Spearman, *Factory Physics*, 3rd ed., Eq. 8.13): exact for ``c = 1``, where it is
  ``rho``;
* mean wait, the Allen--Cunneen approximation for G/G/c (A. O. Allen, *Probability,
  Statistics and Queueing Theory*, 2nd ed., 1990, Sec. 6.4), which for ``c = 1`` is
  Kingman's heavy-traffic formula (J. F. C. Kingman, "The single server queue in heavy
  traffic", Proc. Cambridge Phil. Soc. 57, 1961):
  ``E[W] = (ca2 + cs2)/2 * P(wait) * S / (c (1 - rho))``;
* percentiles: a request waits with probability ``P(wait)`` and, given that it waits, the
  wait is exponential with mean ``E[W] / P(wait) = (ca2 + cs2)/2 * S / (c (1 - rho))`` (exact
  for M/M/c; the heavy-traffic limit of G/G/c, Kingman 1961 and Koellerstroem 1974), so
  ``w_p = max(0, E[W]/P(wait) * ln(P(wait) / (1 - p)))``.

Arrivals: ``deterministic`` (``ca2 = 0``, no queueing), ``poisson`` (``ca2 = 1``) or bursty
``gamma`` inter-arrival times of shape ``k`` (``ca2 = 1/k``; ``k < 1`` is burstier than
Poisson). The tests check these percentiles against a discrete-event simulation.
"""

from __future__ import annotations

import sympy as sp

#: Arrival processes and the squared coefficient of variation of their inter-arrival times
#: (gamma's is ``1 / shape``, given separately).
ARRIVALS: tuple[str, ...] = ("deterministic", "poisson", "gamma")
#: Percentiles reported for TTFT and TPOT.
PERCENTILES: tuple[int, ...] = (50, 90, 99)


def arrival_scv(arrivals: str, gamma_shape: float = 1.0) -> float:
    """Squared coefficient of variation of the inter-arrival times of ``arrivals``."""
    if arrivals == "deterministic":
        return 0.0
    if arrivals == "poisson":
        return 1.0
    if arrivals == "gamma":
        return 1.0 / gamma_shape
    raise ValueError(f"unknown arrival process {arrivals!r}; expected one of {ARRIVALS}")


def waiting_probability(rho: sp.Expr, servers: sp.Expr) -> sp.Expr:
    """P(a request waits) at utilisation ``rho`` with ``servers`` slots (Sakasegawa 1977)."""
    return rho ** (sp.sqrt(2 * (servers + 1)) - 1)


def step(x: sp.Expr) -> sp.Expr:
    """1 for ``x > 0``, 0 for ``x < 0`` (one half at 0), written with an unevaluated ``sign``:
    no case split and no sign query on a large expression."""
    return (1 + sp.sign(x, evaluate=False)) / 2


def _idle_share(rho: sp.Expr) -> sp.Expr:
    """``1 - rho``, floored at 0 so that a saturated queue's wait is infinite (a division by
    zero) rather than negative; no case split, which keeps large expressions cheap."""
    return sp.Max(0, 1 - rho, evaluate=False)


def conditional_wait(rho: sp.Expr, servers: sp.Expr, service: sp.Expr, ca2: sp.Expr,
                     cs2: sp.Expr) -> sp.Expr:
    """Mean wait of the requests that wait (Allen--Cunneen over the waiting probability)."""
    return (ca2 + cs2) / 2 * service / (servers * _idle_share(rho))


def mean_wait(rho: sp.Expr, servers: sp.Expr, service: sp.Expr, ca2: sp.Expr,
              cs2: sp.Expr) -> sp.Expr:
    """Mean wait in the queue, Allen--Cunneen (Kingman for one server); infinite at
    ``rho >= 1``."""
    return waiting_probability(rho, servers) * conditional_wait(rho, servers, service, ca2,
                                                                cs2)


def wait_quantile(p: float, rho: sp.Expr, servers: sp.Expr, service: sp.Expr, ca2: sp.Expr,
                  cs2: sp.Expr) -> sp.Expr:
    """The ``p`` quantile of the wait (``0 < p < 1``): zero while fewer than ``1 - p`` of the
    requests wait, else the exponential tail's; infinite at ``rho >= 1``."""
    if not 0 < p < 1:
        raise ValueError(f"quantile {p} outside (0, 1)")
    waits = waiting_probability(rho, servers)
    tail = conditional_wait(rho, servers, service, ca2, cs2) * sp.log(waits / (1 - p))
    return sp.Max(0, tail, evaluate=False)


def served_fraction(deadline: sp.Expr, rho: sp.Expr, servers: sp.Expr, service: sp.Expr,
                    ca2: sp.Expr, cs2: sp.Expr) -> sp.Expr:
    """Fraction of requests whose wait is at most ``deadline``: ``P(W <= t)`` of the same
    distribution, zero for a negative deadline (written with ``sign``, not a case split)."""
    waits = waiting_probability(rho, servers)
    mean = conditional_wait(rho, servers, service, ca2, cs2)
    # The exponent uses the deadline floored at 0: a negative deadline is zeroed by ``step``
    # anyway, and exp of a large positive number would overflow in exported scalar code.
    late = sp.exp(-sp.Max(0, deadline, evaluate=False) / mean)
    inside = sp.Max(0, 1 - waits * late, evaluate=False)
    return inside * step(deadline)
