"""Collective algorithms: textbook closed forms, the pipelined form, and `perfcost collective`."""

from __future__ import annotations

import json

import pytest
import sympy as sp
from perfcost.formulations import algorithms as alg
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

n, S, a, B = sp.symbols("n S alpha B", positive=True)


def _algorithm(op: str, name: str) -> alg.Algorithm:
    return alg.find(op, name)


def test_ring_all_reduce_is_the_textbook_formula() -> None:
    t = alg.alpha_beta_time(_algorithm("all_reduce", "ring"), S, n, a, B)
    assert sp.simplify(t - (2 * (n - 1) * a + 2 * (n - 1) / n * S / B)) == 0


def test_halving_doubling_all_reduce_is_rabenseifner() -> None:
    t = alg.alpha_beta_time(_algorithm("all_reduce", "halving_doubling"), S, n, a, B)
    assert sp.simplify(t - (2 * sp.log(n, 2) * a + 2 * (n - 1) / n * S / B)) == 0


def test_ring_reduce_scatter_and_all_gather_are_half_an_all_reduce() -> None:
    ar = alg.alpha_beta_time(_algorithm("all_reduce", "ring"), S, n, a, B)
    for op in ("reduce_scatter", "all_gather"):
        half = alg.alpha_beta_time(_algorithm(op, "ring"), S, n, a, B)
        assert sp.simplify(ar - 2 * half) == 0


def test_pipelined_time_bounds() -> None:
    """(sqrt(k a) + sqrt(V/B))^2 lies between the alpha-beta sum and twice it, and equals it
    when either the latency or the volume vanishes."""
    ring = _algorithm("all_reduce", "ring")
    values = {n: 8, S: 2**24, a: 2e-6, B: 4e11}
    piped = float(alg.pipelined_time(ring, S, n, a, B).subs(values))
    plain = float(alg.alpha_beta_time(ring, S, n, a, B).subs(values))
    assert plain <= piped <= 2 * plain
    no_latency = alg.pipelined_time(ring, S, n, 0, B) - alg.alpha_beta_time(ring, S, n, 0, B)
    assert sp.simplify(no_latency) == 0


def test_bus_bandwidth_conventions_follow_nccl_tests() -> None:
    assert alg.BUS_FACTOR["all_reduce"](sp.Integer(8)) == sp.Rational(7, 4)
    assert alg.BUS_FACTOR["all_gather"](sp.Integer(8)) == sp.Rational(7, 8)
    assert alg.BUS_FACTOR["broadcast"](sp.Integer(8)) == 1


runner = CliRunner()


def test_sweep_prints_one_row_per_size_and_json() -> None:
    res = runner.invoke(app, ["collective", "all_reduce", "--ranks", "8", "--network",
                              "dgx-h100", "--sweep", "1MiB..16GiB", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert len(data) == 15  # 1 MiB doubling to 16 GiB
    sizes = [rows[0]["bytes"] for rows in data]
    assert sizes == sorted(sizes)
    busbw = [rows[0]["busbw_Bps"] for rows in data]
    assert busbw == sorted(busbw)  # bus bandwidth grows with size towards its ceiling
    assert {"op", "algorithm", "time_s", "algbw_Bps", "busbw_Bps"} <= set(data[0][0])


def test_larger_groups_run_hierarchically() -> None:
    res = runner.invoke(app, ["collective", "all_reduce", "--ranks", "64", "--network",
                              "dgx-a100", "--bytes", "1 GiB", "--json"])
    assert res.exit_code == 0, res.output
    best = json.loads(res.output)[0][0]
    assert best["level"] == "hierarchical"
    # Slower than the scale-out link alone could be: 25 GB/s per GPU bounds the bus bandwidth.
    assert best["busbw_Bps"] < 8 * 25e9


@pytest.mark.parametrize("args, field", [
    (["all_reduce", "--network", "dgx-h100", "--ranks", "12", "--bytes", "1MiB"], "--ranks"),
    (["all_reduce", "--network", "dgx-h100", "--ranks", "6", "--bytes", "1MiB",
      "--algorithm", "halving_doubling"], "--algorithm"),
    (["all_reduce", "--network", "dgx-a100", "--ranks", "8", "--bytes", "1MiB",
      "--algorithm", "in_network"], "--algorithm"),
    (["all_reduce", "--network", "dgx-h100", "--ranks", "8", "--bytes", "lots"], "--bytes"),
    (["all_reduce", "--network", "dgx-h100", "--ranks", "8"], "--bytes"),
    (["all_reduce", "--network", "dgx-h100", "--ranks", "8", "--bytes", "1MiB", "--sweep",
      "1MiB..2MiB"], "--bytes"),
    (["all_reduce", "--network", "dgx-h100", "--ranks", "8", "--sweep", "2MiB..1MiB"],
     "--sweep"),
    (["allreduce", "--network", "dgx-h100", "--ranks", "8", "--bytes", "1MiB"], "OP"),
    (["all_reduce", "--network", "tpu-v9", "--ranks", "8", "--bytes", "1MiB"], "--network"),
    (["p2p", "--network", "dgx-h100", "--ranks", "4", "--bytes", "1MiB"], "--ranks"),
])
def test_bad_collective_input_is_one_line(args: list[str], field: str) -> None:
    res = runner.invoke(app, ["collective", *args])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), res.output


def test_torus_all_reduce_one_full_dimension_is_a_bidirectional_ring() -> None:
    d = sp.Symbol("d", positive=True)
    t = alg.torus_all_reduce(S, (d,), (True,), a, B)
    assert sp.simplify(t - (2 * (d - 1) * a + 2 * (d - 1) / d * S / (2 * B))) == 0


def test_torus_all_reduce_goes_dimension_by_dimension() -> None:
    x, y = sp.symbols("x y", positive=True)
    t = alg.torus_all_reduce(S, (x, y), (True, False), a, B)
    expected = (2 * ((x - 1) * a + (x - 1) / x * S / (2 * B))
                + 2 * ((y - 1) * a + (y - 1) / y * (S / x) / B))
    assert sp.simplify(t - expected) == 0


@pytest.mark.parametrize("ranks, group, wraps", [
    (16, (16,), (True,)), (64, (16, 4), (True, False)), (4096, (16, 16, 16), (True,) * 3),
    (8, (8,), (False,)),
])
def test_torus_groups_fill_dimensions_in_order(ranks: int, group: tuple[int, ...],
                                               wraps: tuple[bool, ...]) -> None:
    assert alg.torus_group(ranks, (16, 16, 16)) == (group, wraps)


def test_torus_rejects_groups_that_do_not_tile() -> None:
    with pytest.raises(ValueError):
        alg.torus_group(24, (16, 16, 16))


def test_torus_collective_and_its_bad_input() -> None:
    ok = runner.invoke(app, ["collective", "all_reduce", "--network", "tpu-v4", "--ranks",
                             "4096", "--bytes", "1GiB", "--json"])
    assert ok.exit_code == 0, ok.output
    best = json.loads(ok.output)[0][0]
    assert best["algorithm"] == "torus" and best["level"].startswith("torus 16x16x16")
    for ranks in ("5000", "24"):
        res = runner.invoke(app, ["collective", "all_reduce", "--network", "tpu-v4", "--ranks",
                                  ranks, "--bytes", "1GiB"])
        assert res.exit_code == 2 and res.output.startswith("error: --ranks"), res.output
