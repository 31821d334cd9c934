"""Fleet planning (solver/fleet): the MILP against brute-force enumeration of the same options,
shadow prices against re-solves by enumeration, bad input and infeasible plans."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from perfcost.solver.case.errors import CaseError
from perfcost.solver.fleet import analysis, brute
from perfcost.solver.fleet import case as fleet_case
from perfcost.solver.fleet.instance import (
    Fleet,
    Service,
    ServingOption,
    Sku,
    Training,
    TrainingOption,
    costs,
    violations,
)
from perfcost.solver.fleet.options import pareto_serving, pareto_training

#: Random fleets of the conformance test (the acceptance asks for at least 100).
FLEETS = 120
REL = 1e-7


def random_fleet(rng: random.Random) -> Fleet:
    """2-4 workloads, 2-3 SKUs, 3-4 periods, integer prices: small enough to enumerate."""
    periods = rng.randint(3, 4)
    skus = []
    for s in range(rng.randint(2, 3)):
        rentable = rng.choice([0, 4, 8])
        skus.append(Sku(f"sku{s}", purchase=float(rng.randint(5, 40)),
                        rental=float(rng.randint(2, 12)) if rentable else 0.0,
                        operating=float(rng.randint(0, 2)), power=float(rng.randint(1, 5)),
                        available=rng.randint(2, 8), rentable=rentable,
                        gpus_per_rack=rng.choice([2, 4]), lead_time=rng.randint(0, 1)))
    workloads = rng.randint(2, 4)
    n_train = rng.randint(0, workloads)
    trainings = []
    for k in range(n_train):
        options = [TrainingOption(s, g, rng.randint(1, 3))
                   for s in rng.sample(range(len(skus)), rng.randint(1, len(skus)))
                   for g in rng.sample([1, 2, 3, 4], rng.randint(1, 2))]
        earliest = rng.randint(0, 1)
        deadline = rng.randint(min(periods - 1, earliest + 1), periods - 1)
        trainings.append(Training(f"t{k}", earliest, deadline, float(rng.randint(1, 50)),
                                  tuple(options)))
    services = []
    for w in range(workloads - n_train):
        options = tuple(ServingOption(s, rng.choice([1, 2]), float(rng.randint(1, 4)))
                        for s in rng.sample(range(len(skus)), rng.randint(1, len(skus))))
        traffic = tuple(float(rng.randint(0, 6)) for _ in range(periods))
        services.append(Service(f"w{w}", traffic, options))
    limits = {}
    for name, low, high, chance in (("capex", 20, 300, 0.5), ("opex", 20, 200, 0.4),
                                    ("power", 5, 40, 0.4), ("racks", 1, 5, 0.3)):
        if rng.random() < chance:
            limits[name] = float(rng.randint(low, high))
    objective = rng.choice(["cost", "cost", "value", "completion"])
    return Fleet(periods, 1.0, tuple(skus), tuple(trainings), tuple(services), limits,
                 objective, "random")


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(1.0, abs(a), abs(b))


def test_milp_equals_brute_force_on_random_small_fleets() -> None:
    feasible = 0
    for seed in range(FLEETS):
        fleet = random_fleet(random.Random(seed))
        _model, plan = analysis.solve(fleet)
        oracle = brute.solve(fleet)
        if oracle is None:
            assert plan.status == "infeasible", (seed, plan.status)
            assert plan.explanation, seed
            continue
        feasible += 1
        assert plan.status == "optimal", (seed, plan.status, plan.explanation)
        assert violations(fleet, plan) == [], seed
        assert _same(plan.objective_value, oracle[0]), (seed, plan.objective_value, oracle)
        # The second objective (least cost) of the lexicographic objectives agrees too.
        assert _same(costs(fleet, plan.buy, plan.rent)["total"], oracle[1]), (seed, oracle)
    # Both outcomes are exercised, feasible ones most.
    assert FLEETS // 2 < feasible < FLEETS


def test_shadow_prices_match_re_solving_by_enumeration() -> None:
    steps = {"capex": 10.0, "opex": 10.0, "power": 2.0, "racks": 1.0}
    checked = binding = 0
    for seed in range(400):
        fleet = random_fleet(random.Random(1000 + seed))
        if not fleet.limits and not fleet.trainings:
            continue
        model, plan = analysis.solve(fleet)
        if plan.status != "optimal":
            continue
        for shadow in analysis.shadow_prices(model, plan, steps):
            if shadow.name.startswith("deadline "):
                k = next(i for i, r in enumerate(fleet.trainings)
                         if shadow.name == f"deadline {r.name}")
                moved = fleet.with_deadline(k, fleet.trainings[k].deadline + 1)
            else:
                moved = fleet.with_limit(shadow.name, shadow.limit + shadow.step)
            oracle = brute.solve(moved)
            assert oracle is not None and shadow.after is not None
            assert _same(shadow.after, oracle[0]), (seed, shadow, oracle)
            # Moving a limit outwards never makes the optimum worse.
            assert shadow.worth is not None and shadow.worth >= -1e-9, (seed, shadow)
            checked += 1
            binding += shadow.binding
        if checked >= 40 and binding >= 8:
            break
    assert checked >= 40 and binding >= 8, (checked, binding)


def _tiny_fleet(**limits: float) -> Fleet:
    sku = Sku("gpu", purchase=10.0, rental=0.0, operating=0.0, power=1.0, available=4,
              rentable=0, gpus_per_rack=2, lead_time=0)
    run = Training("train", 0, 1, 1.0, (TrainingOption(0, 2, 2),))
    service = Service("serve", (3.0, 3.0), (ServingOption(0, 1, 2.0),))
    return Fleet(2, 1.0, (sku,), (run,), (service,), dict(limits), "cost", "tiny")


def test_tiny_fleet_by_hand() -> None:
    # Two periods: the run holds 2 GPUs in both, the service 2 replicas of 1 GPU (rate 2 each
    # for 3 req/s): 4 GPUs bought at 10 USD.
    _model, plan = analysis.solve(_tiny_fleet())
    assert plan.status == "optimal"
    assert plan.buy == [4] and plan.objective_value == pytest.approx(40.0)


def test_infeasible_plan_names_the_blocking_limit() -> None:
    _model, plan = analysis.solve(_tiny_fleet(capex=30.0))
    assert plan.status == "infeasible"
    assert any("capex limit blocks" in line and "40 USD" in line for line in plan.explanation)
    _model, plan = analysis.solve(_tiny_fleet(power=3.0))
    assert any("power limit blocks" in line for line in plan.explanation)
    _model, plan = analysis.solve(_tiny_fleet(racks=1.0))
    assert any("racks limit blocks" in line and "2 racks" in line for line in plan.explanation)


def test_infeasible_deadline_is_named() -> None:
    fleet = _tiny_fleet()
    late = Fleet(3, 1.0, fleet.skus, (Training("train", 0, 0, 1.0, fleet.trainings[0].options),),
                 (Service("serve", (3.0, 3.0, 3.0), fleet.services[0].options),), {}, "cost")
    _model, plan = analysis.solve(late)
    assert plan.status == "infeasible"
    assert "deadline of training 'train' blocks" in plan.explanation[0]


def test_pareto_pruning() -> None:
    options = [TrainingOption(0, 64, 3), TrainingOption(0, 128, 3), TrainingOption(0, 128, 2),
               TrainingOption(1, 256, 3)]
    assert pareto_training(options) == [options[0], options[2], options[3]]
    shapes = [ServingOption(0, 1, 10.0), ServingOption(0, 2, 19.0), ServingOption(0, 4, 45.0),
              ServingOption(1, 2, 5.0)]
    # Two 1-GPU replicas (20 req/s) replace a 2-GPU one (19); four do not replace the 4-GPU one.
    assert pareto_serving(shapes) == [shapes[0], shapes[2], shapes[3]]


def test_built_in_study_solves_to_a_proven_optimum() -> None:
    from perfcost.solver.fleet.options import build_fleet

    case = fleet_case.load("llm-org-2025")
    assert sum(1 for s in case.sku if s.design is not None) == 1
    fleet = build_fleet(case)
    assert len(fleet.trainings) + len(fleet.services) >= 20
    assert len(fleet.skus) == 6 and fleet.periods == 12
    _model, plan = analysis.solve(fleet)
    # HiGHS runs with relative and absolute gap 0: "optimal" is a proof.
    assert plan.status == "optimal", plan.explanation
    assert violations(fleet, plan) == []
    assert all(choice is not None for choice in plan.runs)


# -- the case file and the command ------------------------------------------------------------

SMALL = Path(fleet_case.__file__).resolve().parents[2] / "cases" / "fleets" / "small.toml"


def _raw() -> dict:
    from perfcost.solver.case.schema import read_toml

    return read_toml(SMALL)


@pytest.mark.parametrize(("path", "value", "field"), [
    (("training", 0, "deadline"), 1, "training.0.deadline"),
    (("serving", 0, "traffic"), [20, -5, 80], "serving"),
    (("serving", 0, "traffic"), [20, 40], "serving.0.traffic"),
    (("sku", 0, "power"), "700 USD", "sku"),
    (("fleet", "periods"), 0, "fleet.periods"),
])
def test_bad_input_is_one_line_naming_the_field(path: tuple, value: object, field: str) -> None:
    raw = _raw()
    if path[0] == "training":
        raw["training"][0]["earliest"] = 2
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(CaseError) as err:
        fleet_case.from_dict(raw)
    message = str(err.value)
    assert "\n" not in message and message.startswith(field), message
    if path[-1] == "traffic" and value == [20, -5, 80]:
        assert "traffic" in message and "below 0" in message


def test_workload_no_sku_can_run_is_named() -> None:
    from perfcost.solver.fleet.options import build_fleet

    raw = _raw()
    raw["sku"] = raw["sku"][:1]
    raw["serving"] = []
    raw["training"][0].update(model="llama3-405b", gpus=[8], global_batch=16)
    with pytest.raises(CaseError) as err:
        build_fleet(fleet_case.from_dict(raw))
    assert str(err.value).startswith("training.0.model = 'llama3-405b'"), str(err.value)


def test_plan_command_on_the_small_fleet(tmp_path: Path) -> None:
    from perfcost.solver.cli.main import app
    from typer.testing import CliRunner

    lp = tmp_path / "fleet.lp"
    runner = CliRunner()
    png = tmp_path / "gantt.png"
    out = runner.invoke(app, ["plan", str(SMALL), "--json", "--write-lp", str(lp),
                              "--plot", str(png)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["status"] == "optimal"
    assert data["objective_value"] == pytest.approx(data["cost_usd"]["total"])
    assert {row["workload"] for row in data["schedule"]} == {"finetune-8b", "chat-8b"}
    assert "cover" in lp.read_text()
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, ["plan", str(SMALL), "--set", "training.0.earliest=3"])
    assert bad.exit_code == 2
    assert "training.0.deadline = 2: expected a period at or after the earliest start" in (
        bad.output), bad.output
    tight = runner.invoke(app, ["plan", str(SMALL), "--set", "limits.opex='1000 USD'"])
    assert tight.exit_code == 1 and "opex limit blocks" in tight.output

