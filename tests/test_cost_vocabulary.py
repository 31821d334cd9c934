"""One cost vocabulary (docs/cost.md): manufacturing cost vs purchase price (a margin from a
public price point), owned vs rental cost, and a warning when a case prices GPUs alike."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.cli.main import app
from perfcost.solver.cost import case as cost_case
from perfcost.solver.cost import price as cost
from perfcost.solver.cost.codesign import alike_price_warning
from typer.testing import CliRunner

runner = CliRunner()
PUBLISHED = Path(__file__).parent / "data" / "published.json"  # copy of the shared file


def cli_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def price_raw(name: str, margin: float | None) -> cost.CostResult:
    raw = tomllib.loads((cost_case.catalog.root() / "designs" / f"{name}.toml").read_text())
    if margin is None:
        raw["design"].pop("margin", None)
    else:
        raw["design"]["margin"] = margin
    return cost.price_case(cost_case.from_dict(raw))


# -- the default margin is what its public price point says -----------------------------------

def test_default_margin_reproduces_the_public_price() -> None:
    entry = cost_case.margin_entry()
    published = {e["id"]: e for e in json.loads(PUBLISHED.read_text())}
    per_gpu = published["price_dgx_h100_semianalysis_per_gpu"]["measured"]["price_per_gpu_usd"]
    at_cost = price_raw(entry.reference_design, 0.0)
    host = at_cost.case.system.datacenter.host_price
    # The entry's public price is the published per-GPU system price less the host share.
    assert entry.public_price == pytest.approx(per_gpu - host, rel=1e-9)
    derived = 1 - at_cost.chosen.values["unit_cost"] / entry.public_price
    print(f"margin: stored {entry.margin}, derived {derived:.4f} "
          f"(unit cost {at_cost.chosen.values['unit_cost']:,.0f} USD, public price "
          f"{entry.public_price:,.0f} USD)")
    assert abs(derived - entry.margin) < 0.005
    # Priced at that margin, the designed part costs the public price within 1 %.
    priced = price_raw(entry.reference_design, None).chosen.values["price"]
    assert priced == pytest.approx(entry.public_price, rel=0.01)


def test_a_design_without_margin_is_priced_at_the_default() -> None:
    result = cost.price_case(cost_case.load("h100-like"))
    p = result.pricing()
    assert result.case.design.margin is None
    assert p["margin"] == cost_case.margin_entry().margin
    assert "h100-dgx-2023" in p["margin_source"]
    assert p["manufacturing_cost"] < p["unit_cost"] < p["purchase_price"]
    assert p["purchase_price"] == pytest.approx(p["unit_cost"] / (1 - p["margin"]), rel=1e-12)
    v = result.chosen.values
    # capex buys the parts at the purchase price, not at the manufacturing cost
    assert v["accelerators_capex"] == pytest.approx(1024 * p["purchase_price"], rel=1e-12)


def test_margin_zero_is_at_cost_and_said_so() -> None:
    p = price_raw("h100-like", 0.0).pricing()
    assert p["purchase_price"] == pytest.approx(p["unit_cost"], rel=1e-12)
    assert "at cost" in p["margin_source"]


def test_cost_command_labels_both_costs() -> None:
    result = runner.invoke(app, ["cost", "h100-like"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "manufacturing cost (per good package)" in out
    assert "purchase price (margin 0.79)" in out
    assert "owned cost of the run" in out and "rental cost of the run" in out
    assert "owned cost = capex amortised + energy + operations" in out
    assert "rental cost = GPU-hours x rental price per GPU-hour" in out
    data = cli_json("cost", "h100-like")
    pricing = data["pricing"]
    assert pricing["purchase_price"] == pytest.approx(data["accelerator"]["price"])
    assert pricing["manufacturing_cost"] == pytest.approx(data["package"]["manufacturing_cost"])
    assert pricing["rental_price_per_gpu_hour"] == pytest.approx(2.0)


def test_bad_margin_is_one_line_error() -> None:
    raw = tomllib.loads((cost_case.catalog.root() / "designs" / "h100-like.toml").read_text())
    raw["design"]["margin"] = 1.5
    with pytest.raises(cost_case.CaseError) as err:
        cost_case.from_dict(raw)
    assert err.value.field == "design.margin" and "0.99" in str(err.value)


# -- GPUs priced alike ------------------------------------------------------------------------

def test_warns_when_the_case_prices_different_gpus_alike() -> None:
    warning = alike_price_warning(case_mod.load("llama3-70b-codesign"))
    assert warning is not None and warning.startswith("warning:")
    for name in ("a100-80gb", "h100-sxm", "h200-sxm", "cluster.gpu_hour_price"):
        assert name in warning


def test_no_warning_when_entries_price_their_own_gpus() -> None:
    raw = case_mod.read_toml(catalog.find_case("llama3-70b-codesign"))
    raw["cluster"].pop("gpu_hour_price")
    raw["hardware"] = ["a100-80gb", "h100-sxm"]
    assert alike_price_warning(case_mod.from_dict(case_mod.resolve(raw))) is None
    # one GPU type: nothing to confuse
    assert alike_price_warning(case_mod.load("llama3-70b-h100")) is None


def test_warns_when_entries_are_alike() -> None:
    raw = case_mod.read_toml(catalog.find_case("llama3-70b-codesign"))
    raw["cluster"].pop("gpu_hour_price")
    raw["hardware"] = ["a100-80gb", "h100-sxm"]
    resolved = case_mod.resolve(raw)
    resolved["hardware"][0]["gpu_hour_price"] = "3.49 USD/h"  # as H100's entry
    warning = alike_price_warning(case_mod.from_dict(resolved))
    assert warning is not None and "hardware entries give the same" in warning
