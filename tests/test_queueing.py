"""The closed-form waiting-time percentiles of formulations/queueing.py against a seeded
discrete-event simulation of the same queue.

A replica with ``c`` batch slots runs a random step-time model (fixed time per step, time per
token, chunk budget): a request's prefill takes ``ceil(s_p / C)`` chunk steps, it then holds
its slot for ``s_o - 1`` decode steps. The simulation admits requests first come, first
served into the slots; TTFT is its wait plus the prefill. The analytic p50/p90/p99 must agree
with the simulated ones within the stated tolerance at utilisations 0.3-0.9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from perfcost.formulations import queueing

#: Requests simulated per point, and the share discarded as warm-up.
REQUESTS = 40_000
WARM_UP = 0.1
#: Coverage asked of the analytic p quantile: within COVERAGE * (1 - p) of p.
COVERAGE = 2.0


@dataclass(frozen=True)
class StepModel:
    """A replica's step time ``overhead + per_token * tokens`` and its workload."""

    overhead: float
    per_token: float
    slots: int
    prompt: int
    output: int
    chunk: int

    @property
    def tpot(self) -> float:
        tokens = self.slots + self.slots * self.prompt / self.output
        return self.overhead + self.per_token * tokens

    @property
    def prefill(self) -> float:
        chunks = math.ceil(self.prompt / self.chunk)
        return chunks * (self.overhead + self.per_token * (self.slots + self.chunk))

    @property
    def holding(self) -> float:
        """Seconds a request holds its slot: its prefill, then its decode steps."""
        return self.prefill + (self.output - 1) * self.tpot


def simulate_waits(slots: int, service: float, rate: float, ca2: float,
                   seed: int, n: int = REQUESTS) -> np.ndarray:
    """Waits of ``n`` requests (after the warm-up) at a first-come first-served queue of
    ``slots`` servers with deterministic service, gamma inter-arrival times of squared
    coefficient of variation ``ca2`` (1: Poisson)."""
    rng = np.random.default_rng(seed)
    shape = 1.0 / ca2
    arrivals = np.cumsum(rng.gamma(shape, 1.0 / (rate * shape), n))
    start = np.empty(n)
    # With equal service times the k-th admission frees the slot the (k + slots)-th takes.
    for i in range(n):
        begin = arrivals[i]
        if i >= slots:
            begin = max(begin, start[i - slots] + service)
        start[i] = begin
    return (start - arrivals)[int(n * WARM_UP):]


def analytic_ttft(model: StepModel, rho: float, ca2: float) -> dict[int, float]:
    out = {}
    for pct in queueing.PERCENTILES:
        wait = queueing.wait_quantile(pct / 100, sp.Float(rho), sp.Integer(model.slots),
                                      sp.Float(model.holding), sp.Float(ca2), sp.Integer(0))
        out[pct] = model.prefill + float(wait)
    return out


def simulated_ttft(model: StepModel, rho: float, ca2: float, seed: int) -> dict[int, float]:
    rate = rho * model.slots / model.holding
    waits = simulate_waits(model.slots, model.holding, rate, ca2, seed)
    return {pct: model.prefill + float(np.quantile(waits, pct / 100))
            for pct in queueing.PERCENTILES}


def coverage(model: StepModel, rho: float, ca2: float, seed: int) -> dict[int, float]:
    """Share of simulated requests whose TTFT is within the analytic p quantile, per p; the
    relative error of the quantile is printed beside it."""
    rate = rho * model.slots / model.holding
    ttft = model.prefill + simulate_waits(model.slots, model.holding, rate, ca2, seed)
    ana = analytic_ttft(model, rho, ca2)
    out = {}
    cells = []
    for p in queueing.PERCENTILES:
        sim = float(np.quantile(ttft, p / 100))
        out[p] = float(np.mean(ttft <= ana[p] * (1 + 1e-12)))
        cells.append(f"p{p}: sim {sim:.4g} s, analytic {ana[p]:.4g} s "
                     f"({(ana[p] / sim - 1) * 100:+.1f} %), met by {out[p] * 100:.2f} %")
    print(f"slots {model.slots:3d} rho {rho:.2f} ca2 {ca2:.2f} | " + " | ".join(cells))
    return out


step_models = st.builds(
    StepModel,
    overhead=st.floats(1e-3, 2e-2),
    per_token=st.floats(1e-6, 1e-4),
    slots=st.integers(1, 64),
    prompt=st.integers(128, 8192),
    output=st.integers(16, 1024),
    chunk=st.sampled_from([512, 1024, 2048, 4096, 8192]),
)


@settings(max_examples=10, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.generate))
@given(model=step_models, rho=st.floats(0.3, 0.9), bursty=st.booleans(),
       seed=st.integers(0, 2**16))
def test_percentiles_cover_the_simulated_requests(model: StepModel, rho: float, bursty: bool,
                                                  seed: int) -> None:
    """Poisson and bursty (gamma, shape 1/2) arrivals over random step-time models."""
    ca2 = queueing.arrival_scv("gamma", 0.5) if bursty else 1.0
    met = coverage(model, rho, ca2, seed)
    for p, share in met.items():
        assert abs(share - p / 100) <= COVERAGE * (1 - p / 100), (p, share)


def test_heavy_traffic_quantiles_within_ten_percent() -> None:
    """Where most requests wait (a single slot at utilisation 0.9, Kingman's regime) the
    analytic p50/p90/p99 are within 10 % of the simulated ones."""
    model = StepModel(overhead=5e-3, per_token=2e-5, slots=1, prompt=2048, output=64,
                      chunk=2048)
    sim = simulated_ttft(model, 0.9, 1.0, seed=7)
    ana = analytic_ttft(model, 0.9, 1.0)
    for p in queueing.PERCENTILES:
        print(f"p{p}: sim {sim[p]:.4g} analytic {ana[p]:.4g}")
        assert ana[p] == pytest.approx(sim[p], rel=0.10)


def test_no_wait_below_the_waiting_probability() -> None:
    """With fewer than 1 - p of the requests waiting, the p quantile of the wait is zero,
    and deterministic arrivals never wait."""
    assert float(queueing.wait_quantile(0.5, sp.Float(0.3), sp.Integer(1), sp.Float(1.0),
                                        sp.Float(1.0), sp.Integer(0))) == 0.0
    assert float(queueing.wait_quantile(0.99, sp.Float(0.9), sp.Integer(1), sp.Float(1.0),
                                        sp.Float(0.0), sp.Integer(0))) == 0.0


def test_saturated_queue_waits_forever() -> None:
    """At utilisation 1 the wait is infinite, as the evaluator computes it (numpy)."""
    rho = sp.Symbol("rho", positive=True)
    wait = sp.lambdify(rho, queueing.wait_quantile(0.5, rho, sp.Integer(4), sp.Float(1.0),
                                                   sp.Float(1.0), sp.Integer(0)), "numpy")
    with np.errstate(divide="ignore"):
        assert wait(np.float64(1.0)) == math.inf
        assert math.isfinite(wait(np.float64(0.99)))


def test_mm1_is_exact() -> None:
    """M/M/1: P(W > t) = rho exp(-(1 - rho) t / S); the closed form is exact there."""
    rho, service, t = 0.7, 2.0, 3.0
    served = queueing.served_fraction(sp.Float(t), sp.Float(rho), sp.Integer(1),
                                      sp.Float(service), sp.Integer(1), sp.Integer(1))
    assert float(served) == pytest.approx(1 - rho * math.exp(-(1 - rho) * t / service))


def test_burstier_arrivals_wait_longer() -> None:
    args = (sp.Float(0.8), sp.Integer(8), sp.Float(1.0))
    poisson = queueing.wait_quantile(0.99, *args, sp.Float(1.0), sp.Integer(0))
    bursty = queueing.wait_quantile(0.99, *args, sp.Float(queueing.arrival_scv("gamma", 0.5)),
                                    sp.Integer(0))
    assert float(bursty) > float(poisson) > 0
