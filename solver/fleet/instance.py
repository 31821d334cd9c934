"""A fleet problem with its options computed: plain numbers that the MILP (:mod:`.milp`) and the
brute-force oracle (:mod:`.brute`) both read, so that the two solve exactly the same problem.

Cost model over the horizon (periods numbered from 0 here):

* a GPU bought is paid at the start (capex) and is usable from period ``lead_time`` on; from
  then to the end of the horizon it costs ``operating`` per period (opex), busy or not;
* a GPU rented for a period costs ``rental`` for that period (opex);
* a training run on option ``o`` started in period ``t`` holds ``gpus`` GPUs of the option's
  SKU in periods ``t .. t + periods - 1`` (its time to train rounded up to whole periods) and
  must end by its deadline;
* a serving service runs, in each period with traffic, on one of its options (one SKU and
  replica shape; a service does not split across SKUs within a period) with the fewest whole
  replicas whose request rate covers the period's traffic.

Owned GPUs count against the power and rack limits at full facility power (the envelope must
hold them all); rented GPUs sit in the provider's facility.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Objectives: least total cost; most value of the training runs finished (the rest optional);
#: earliest completion (least sum of the runs' finishing periods). The last two break ties by
#: least cost.
OBJECTIVES = ("cost", "value", "completion")
#: The limits a fleet may set, and their unit.
LIMIT_UNITS: dict[str, str] = {"capex": "USD", "opex": "USD", "power": "W", "racks": "racks"}


@dataclass(frozen=True)
class Sku:
    name: str
    #: Capex of one GPU, USD.
    purchase: float
    #: Rental of one GPU for one period, USD (0 with ``rentable`` 0 when it cannot be rented).
    rental: float
    #: Opex of one owned GPU per period, USD.
    operating: float
    #: Facility power of one owned GPU, W.
    power: float
    available: int
    rentable: int
    gpus_per_rack: int
    lead_time: int


@dataclass(frozen=True)
class TrainingOption:
    sku: int
    gpus: int
    #: Whole periods the run holds its GPUs.
    periods: int
    #: Time to train at the optimal split, seconds (for the report).
    time_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Training:
    name: str
    earliest: int
    #: Last period the run may hold GPUs in.
    deadline: int
    value: float
    options: tuple[TrainingOption, ...]

    def starts(self, option: TrainingOption) -> range:
        """The periods the run may start in on ``option``."""
        return range(self.earliest, self.deadline - option.periods + 2)


@dataclass(frozen=True)
class ServingOption:
    sku: int
    gpus: int
    #: Requests per second one replica serves within the SLOs.
    rate: float
    config: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Service:
    name: str
    traffic: tuple[float, ...]
    options: tuple[ServingOption, ...]

    def most_replicas(self, option: ServingOption, period: int) -> int:
        """The fewest replicas of ``option`` that cover the period's traffic."""
        return _ceil_ratio(self.traffic[period], option.rate)

    def gpus(self, o: int, period: int) -> int:
        """GPUs the service holds in ``period`` when it runs on option ``o``."""
        return self.most_replicas(self.options[o], period) * self.options[o].gpus


def _ceil_ratio(a: float, b: float) -> int:
    # A ratio a hair above an integer from rounding is that integer.
    q = a / b
    r = round(q)
    return int(r) if abs(q - r) <= 1e-9 * max(1.0, q) else int(q) + 1 if q > 0 else 0


@dataclass(frozen=True)
class Fleet:
    periods: int
    period_s: float
    skus: tuple[Sku, ...]
    trainings: tuple[Training, ...]
    services: tuple[Service, ...]
    #: Limit name (:data:`LIMIT_UNITS`) -> value; absent: unlimited.
    limits: dict[str, float]
    objective: str = "cost"
    name: str = ""

    def with_limit(self, name: str, value: float | None) -> Fleet:
        limits = dict(self.limits)
        if value is None:
            limits.pop(name, None)
        else:
            limits[name] = value
        return Fleet(self.periods, self.period_s, self.skus, self.trainings, self.services,
                     limits, self.objective, self.name)

    def with_deadline(self, index: int, deadline: int) -> Fleet:
        runs = list(self.trainings)
        r = runs[index]
        runs[index] = Training(r.name, r.earliest, deadline, r.value, r.options)
        return Fleet(self.periods, self.period_s, self.skus, tuple(runs), self.services,
                     self.limits, self.objective, self.name)


@dataclass
class Plan:
    """A solution: what to buy and rent, and the schedule."""

    status: str  # "optimal" or "infeasible" (or a solver stop)
    objective_value: float = 0.0
    buy: list[int] = field(default_factory=list)
    #: rent[s][t]
    rent: list[list[int]] = field(default_factory=list)
    #: Per training run: (option index, start period), or None when not run (value objective).
    runs: list[tuple[int, int] | None] = field(default_factory=list)
    #: replicas[w][o][t]
    replicas: list[list[list[int]]] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def demand(fleet: Fleet, plan: Plan) -> list[list[int]]:
    """GPUs each SKU must supply in each period, ``[s][t]``."""
    need = [[0] * fleet.periods for _ in fleet.skus]
    for run, choice in zip(fleet.trainings, plan.runs, strict=True):
        if choice is None:
            continue
        o, start = choice
        opt = run.options[o]
        for t in range(start, start + opt.periods):
            need[opt.sku][t] += opt.gpus
    for service, counts in zip(fleet.services, plan.replicas, strict=True):
        for opt, per_period in zip(service.options, counts, strict=True):
            for t, n in enumerate(per_period):
                need[opt.sku][t] += n * opt.gpus
    return need


def owned(fleet: Fleet, s: int, bought: int, t: int) -> int:
    """Owned GPUs of SKU ``s`` usable in period ``t``."""
    return bought if t >= fleet.skus[s].lead_time else 0


def owned_periods(fleet: Fleet, s: int) -> int:
    """Periods an owned GPU of SKU ``s`` runs (and costs ``operating``)."""
    return max(0, fleet.periods - fleet.skus[s].lead_time)


def costs(fleet: Fleet, buy: list[int], rent: list[list[int]]) -> dict[str, float]:
    """Capex, opex and their sum of a purchase and rental plan."""
    capex = sum(b * sku.purchase for b, sku in zip(buy, fleet.skus, strict=True))
    operating = sum(b * sku.operating * owned_periods(fleet, s)
                    for s, (b, sku) in enumerate(zip(buy, fleet.skus, strict=True)))
    rental = sum(sum(row) * sku.rental for row, sku in zip(rent, fleet.skus, strict=True))
    return {"capex": capex, "operating": operating, "rental": rental,
            "opex": operating + rental, "total": capex + operating + rental}


def racks(fleet: Fleet, buy: list[int]) -> int:
    return sum(-(-b // sku.gpus_per_rack) for b, sku in zip(buy, fleet.skus, strict=True))


def power(fleet: Fleet, buy: list[int]) -> float:
    return sum(b * sku.power for b, sku in zip(buy, fleet.skus, strict=True))


def objective_of(fleet: Fleet, plan: Plan) -> float:
    """The first objective of a plan, in the sense it is optimised (value is maximised)."""
    if fleet.objective == "value":
        return sum(run.value for run, c in zip(fleet.trainings, plan.runs, strict=True)
                   if c is not None)
    if fleet.objective == "completion":
        return float(sum(c[1] + run.options[c[0]].periods
                         for run, c in zip(fleet.trainings, plan.runs, strict=True)
                         if c is not None))
    return costs(fleet, plan.buy, plan.rent)["total"]


def violations(fleet: Fleet, plan: Plan, tol: float = 1e-6) -> list[str]:
    """Every rule the plan breaks (empty for a valid plan): checked in plain arithmetic,
    apart from the MILP, so that each answer of the MILP is re-evaluated."""
    out = []
    need = demand(fleet, plan)
    for s, sku in enumerate(fleet.skus):
        if not 0 <= plan.buy[s] <= sku.available:
            out.append(f"{sku.name}: buys {plan.buy[s]} of {sku.available} available")
        for t in range(fleet.periods):
            r = plan.rent[s][t]
            if not 0 <= r <= sku.rentable:
                out.append(f"{sku.name}: rents {r} in period {t + 1}, {sku.rentable} rentable")
            if need[s][t] > owned(fleet, s, plan.buy[s], t) + r:
                out.append(f"{sku.name}: {need[s][t]} GPUs needed in period {t + 1}")
    for run, choice in zip(fleet.trainings, plan.runs, strict=True):
        if choice is None:
            if fleet.objective != "value":
                out.append(f"{run.name}: not scheduled")
            continue
        o, start = choice
        if start not in run.starts(run.options[o]):
            out.append(f"{run.name}: starts in period {start + 1}, outside its window")
    for w, service in enumerate(fleet.services):
        for t in range(fleet.periods):
            if sum(1 for o in range(len(service.options)) if plan.replicas[w][o][t]) > 1:
                out.append(f"{service.name}: several options in period {t + 1}")
            served = sum(opt.rate * plan.replicas[w][o][t]
                         for o, opt in enumerate(service.options))
            if served < service.traffic[t] * (1 - tol):
                out.append(f"{service.name}: serves {served:.4g} of {service.traffic[t]:.4g} "
                           f"req/s in period {t + 1}")
    c = costs(fleet, plan.buy, plan.rent)
    used = {"capex": c["capex"], "opex": c["opex"], "power": power(fleet, plan.buy),
            "racks": float(racks(fleet, plan.buy))}
    for name, limit in fleet.limits.items():
        if used[name] > limit * (1 + tol) + tol:
            out.append(f"{name}: {used[name]:.6g} over the limit {limit:.6g}")
    return out
