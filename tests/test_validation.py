"""The validation suite: predictions against published measurements, with tolerances asserted.

Run with ``pytest -s`` to see the error table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import evaluate_case
from perfcost.solver.studies import validate

#: A copy of the shared validation file (published measurements with their configurations), kept
#: with the tests so that a fresh clone checks its transcriptions too.
PUBLISHED = Path(__file__).parent / "data" / "published.json"
#: Recent published runs (NeMo 24.07 on H100 in FP8, DeepSeek-V3): a copy of the shared file.
MODERN = Path(__file__).parent / "data" / "modern-public.json"


@pytest.fixture(scope="module")
def rows() -> Iterator[list[validate.Row]]:
    result = validate.run()
    print()
    print(f"{'case':<50} {'metric':<24} {'unit':<8} {'measured':>12} {'predicted':>12} "
          f"{'error':>8} {'tol':>5}")
    for r in result:
        print(f"{r.case:<50} {r.metric:<24} {r.unit:<8} {r.measured:>12.5g} "
              f"{r.predicted:>12.5g} {r.error_pct:>+7.2f}% {r.tolerance_pct:>4g}%")
    for s in validate.summarise(result):
        print(f"suite {s.suite:<26} cases {s.cases:>3}  mean |error| "
              f"{s.mean_abs_error_pct:5.2f}% (<= {s.mean_tolerance_pct:g}%)  max "
              f"{s.max_abs_error_pct:5.2f}%  failures {s.failures}")
    yield result


def _suite(rows: list[validate.Row], suite: str) -> list[validate.Row]:
    out = [r for r in rows if r.suite == suite]
    assert out, f"no rows for suite {suite}"
    return out


def _describe(bad: list[validate.Row]) -> str:
    return "; ".join(f"{r.case} {r.metric} {r.error_pct:+.2f}% (tol {r.tolerance_pct}%)"
                     for r in bad)


def _training(rows: list[validate.Row]) -> list[validate.Row]:
    """Rows of the case files (the nccl-tests points are rows of their own, metric busbw)."""
    return [r for r in rows if r.metric != "busbw"]


def test_every_validation_case_is_evaluated(rows: list[validate.Row]) -> None:
    assert {r.case for r in _training(rows)} == set(catalog.entries("validation"))
    assert {r.suite for r in rows} <= set(validate.suites())


def test_predictions_are_finite_and_positive(rows: list[validate.Row]) -> None:
    for r in rows:
        assert r.measured > 0 and r.predicted > 0, r
        assert r.error_pct == pytest.approx((r.predicted - r.measured) / r.measured * 100)


@pytest.mark.parametrize("suite", validate.suites())
def test_suite_rows_within_tolerance(rows: list[validate.Row], suite: str) -> None:
    suite_rows = [r for r in rows if r.suite == suite]
    if not suite_rows:
        pytest.skip(f"suite {suite} has no cases")
    bad = [r for r in suite_rows if abs(r.error_pct) > r.tolerance_pct]
    assert not bad, _describe(bad)


@pytest.mark.parametrize("suite", validate.suites())
def test_suite_mean_error_within_suite_tolerance(rows: list[validate.Row], suite: str) -> None:
    suite_rows = [r for r in rows if r.suite == suite]
    if not suite_rows:
        pytest.skip(f"suite {suite} has no cases")
    mean_error = mean(abs(r.error_pct) for r in suite_rows)
    assert mean_error <= validate.suite_tolerances()[suite]


def test_summaries_agree_with_rows(rows: list[validate.Row]) -> None:
    summaries = {s.suite: s for s in validate.summarise(rows)}
    assert set(summaries) == {r.suite for r in rows}
    for suite, s in summaries.items():
        errors = [abs(r.error_pct) for r in rows if r.suite == suite]
        assert s.mean_abs_error_pct == pytest.approx(mean(errors))
        assert s.max_abs_error_pct == pytest.approx(max(errors))
        assert s.failures == 0
        assert s.ok


# -- the acceptance criteria, stated explicitly -----------------------------------------------


def test_korthikanti_table5_iteration_times(rows: list[validate.Row]) -> None:
    t5 = _suite(rows, "korthikanti2022-table5")
    assert len({r.case for r in t5}) == 8
    assert {r.metric for r in t5} == {"iteration_time"}
    assert mean(abs(r.error_pct) for r in t5) <= 3.0
    bad = [r for r in t5 if abs(r.error_pct) > 6.0]
    assert not bad, _describe(bad)


def test_korthikanti_table4_layer_times(rows: list[validate.Row]) -> None:
    t4 = _suite(rows, "korthikanti2022-table4")
    assert len({r.case for r in t4}) == 5
    assert len(t4) == 10
    assert {r.metric for r in t4} == {"per_layer_forward_time", "per_layer_backward_time"}
    bad = [r for r in t4 if abs(r.error_pct) > 10.0]
    assert not bad, _describe(bad)


def test_narayanan_table1_throughput(rows: list[validate.Row]) -> None:
    t1 = _suite(rows, "narayanan2021-table1")
    assert len({r.case for r in t1}) == 10
    assert mean(abs(r.error_pct) for r in t1) <= 5.0
    bad = [r for r in t1 if abs(r.error_pct) > 10.0]
    assert not bad, _describe(bad)


def test_korthikanti_fig1_memory(rows: list[validate.Row]) -> None:
    fig1 = _suite(rows, "korthikanti2022-fig1")
    assert len({r.case for r in fig1}) == 8
    assert {r.metric for r in fig1} == {"activations", "model_states_average"}
    bad = [r for r in fig1 if abs(r.error_pct) > 10.0]
    assert not bad, _describe(bad)


# -- the measured values are the published ones ----------------------------------------------

#: Metric -> (key in the published entry's ``measured``, scale to the metric's SI-ish unit).
PUBLISHED_KEYS: dict[str, tuple[str, float]] = {
    "iteration_time": ("iteration_time_s", 1.0),
    "per_layer_forward_time": ("forward_ms", 1e-3),
    "per_layer_backward_time": ("backward_ms", 1e-3),
    "hardware_tflops_per_gpu": ("tflops_per_gpu", 1.0),  # TFLOP/s
    "model_states_average": ("params_grads_optimizer_GiB_per_gpu", 2.0**30),
    "tokens_per_s_per_gpu": ("tokens_per_s_per_gpu", 1.0),
    # DeepSeek-V3: the case trains on 10^12 tokens, so its GPU-hours are per trillion tokens.
    "gpu_hours": ("h800_gpu_hours_per_trillion_tokens", 1.0),
}
EXPECTED_UNITS = {"iteration_time": "s", "per_layer_forward_time": "s",
                  "per_layer_backward_time": "s", "hardware_tflops_per_gpu": "TFLOP/s",
                  "model_states_average": "B", "activations": "B",
                  "tokens_per_s_per_gpu": "1/s", "gpu_hours": "h"}


@pytest.fixture(scope="module")
def published() -> dict[str, dict[str, Any]]:
    if not PUBLISHED.is_file():
        pytest.skip(f"published measurements not found at {PUBLISHED} (shared checkout absent)")
    entries = {e["id"]: e for e in json.loads(PUBLISHED.read_text(encoding="utf-8"))}
    modern = json.loads(MODERN.read_text(encoding="utf-8"))["cases"]
    return {**entries, **{e["id"]: e for e in modern}}


def _published_key(case: case_mod.Case, metric: str) -> tuple[str, float]:
    if metric == "activations":
        par = case.parallelism
        mode = (par.recompute, par.sequence_parallel)
        keys = {("none", False): "activations_GiB_no_recompute_tp_only",
                ("selective", True): "activations_GiB_seqpar_selective"}
        assert mode in keys, f"{case.name}: no published activations for {mode}"
        return keys[mode], 2.0**30
    assert metric in PUBLISHED_KEYS, f"{case.name}: no published counterpart for {metric}"
    return PUBLISHED_KEYS[metric]


#: Serving suites: their rows are the shared modern-public.json's, checked against it by
#: tests/test_serving_validation.py.
SERVING_SUITES = ("trtllm-ttft",)


def test_measured_values_equal_published(rows: list[validate.Row],
                                         published: dict[str, dict[str, Any]]) -> None:
    checked = 0
    rows = [r for r in rows if r.suite not in SERVING_SUITES]
    for r in rows:
        if r.metric == "busbw":
            entry = published[r.case]
            expected = entry["measured"]["busbw_GBps_out_of_place"] * 1e9
            assert r.measured == pytest.approx(expected, rel=1e-9), r.case
            checked += 1
            continue
        case = case_mod.load(r.case)
        assert case.validation is not None
        entry = published.get(case.validation.published_id)
        assert entry is not None, f"{r.case}: unknown published_id"
        assert r.unit == EXPECTED_UNITS[r.metric], (r.case, r.metric, r.unit)
        key, scale = _published_key(case, r.metric)
        assert key in entry["measured"], (r.case, key)
        assert r.measured == pytest.approx(entry["measured"][key] * scale, rel=1e-9), (
            r.case, r.metric)
        checked += 1
    assert checked == len(rows) > 0


def test_nccl_dgx_h100_busbw_within_the_networks_issue_tolerances(
        rows: list[validate.Row]) -> None:
    """15 % from 16 MiB up, 30 % at 1 MiB, with one physical parameter set (docs)."""
    nccl = [r for r in rows if r.suite == "nccl-dgx-h100"]
    assert len(nccl) == 6
    for r in nccl:
        size = int(r.case.rsplit("_", 1)[1].rstrip("B"))
        limit = 15.0 if size >= 16 * 2**20 else 30.0
        assert abs(r.error_pct) <= limit, (r.case, r.error_pct)


def test_validation_cases_match_published_setup(published: dict[str, dict[str, Any]]) -> None:
    """Model shape and parallel split of each case are the published ones where given."""
    for name in catalog.entries("validation"):
        case = case_mod.load(name)
        assert case.validation is not None
        if case.validation.suite in SERVING_SUITES:
            continue
        entry = published[case.validation.published_id]
        for key in ("layers", "hidden", "heads", "ffn", "vocab", "seq_len"):
            if isinstance(entry.get("model", {}).get(key), int):
                assert getattr(case.model, key) == entry["model"][key], (name, key)
        config = problem.fixed_config(case)
        ours = {"tp": config["tp"], "pp": config["pp"], "dp": config["dp"],
                "micro_batch": config["micro_batch"],
                "global_batch": case.training.global_batch,
                "virtual_pipeline_stages": config["virtual_stages"], "cp": config["cp"],
                "ep": config["ep"]}
        given = entry.get("parallelism", {})
        for key, value in ours.items():
            if isinstance(given.get(key), int):
                assert value == given[key], (name, key)
        if isinstance(given.get("sequence_parallel"), bool):
            assert config["sequence_parallel"] == given["sequence_parallel"], name
        if isinstance(given.get("recompute"), str):
            assert given["recompute"].startswith(config["recompute"]), name
        gpus = entry.get("system", {}).get("num_gpus")
        if gpus is not None:
            product = config["tp"] * config["pp"] * config["dp"] * config["cp"]
            assert product == gpus, name


def _generate() -> Any:
    from docs_pages import generator

    return generator()


def _validate_regions() -> list[Any]:
    generate = _generate()
    return [r for page in generate.PAGES for r in generate.regions(page)
            if r.command.split()[:2] == ["perfcost", "validate"]]


def test_readme_validation_table_is_current(rows: list[validate.Row]) -> None:
    """README's ``perfcost validate`` table, rendered by docs/generate.py from these rows (the
    command's --json), is what the page shows (tests/test_docs.py leaves this region here)."""
    generate = _generate()
    (region,) = [r for r in generate.regions("README.md") if r.command == "perfcost validate"]
    body = (f"```\n{generate._wrapped(region.command)}\n```\n\n"
            + generate.TABLES[region.table]([r.to_json() for r in rows]) + "\n")
    assert generate.normalise(body) == generate.normalise(region.body), (
        "README.md's validation table is stale: run python docs/generate.py")


@pytest.mark.parametrize("region", [r for r in _validate_regions() if r.kind == "output"],
                         ids=lambda r: f"{r.page}:{r.command}")
def test_docs_suite_output_is_current(rows: list[validate.Row], region: Any,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Each page's ``perfcost validate SUITE`` output is the command's table of these rows
    (tests/test_docs.py leaves these regions here): printed as the command prints it, at the
    width and without the colour docs/generate.py runs it with."""
    from perfcost.solver.report import tables as report

    generate = _generate()
    (suite,) = region.argv[1:]
    suite_rows = [r for r in rows if r.suite == suite]
    monkeypatch.setenv("NO_COLOR", "1")
    capsys.readouterr()
    report.console().print(report.validation(suite_rows, validate.summarise(suite_rows)))
    output = capsys.readouterr().out
    body = f"```\n$ {region.command}\n{generate._cut(output, region.lines)}\n```\n"
    assert generate.normalise(body) == generate.normalise(region.body), (
        f"{region.page}'s output of {region.command} is stale: run python docs/generate.py")


# -- DeepSeek-V3: its layout in 80 GB (issue 15), beside the suite that evaluates it ----------

def _deepseek_v3_bytes_per_token_per_moe_layer() -> float:
    """The hand count of docs/training.md: what one token keeps per MoE layer of DeepSeek-V3
    (TP1, EP64, FP8 with 1 x 128 tiles) with its norms, MLA up-projections and SwiGLU
    recomputed (arXiv:2412.19437, Sec. 3.2.3 and 3.3.4)."""
    h, heads, v_dim, latents = 7168, 128, 128, 1536 + 512 + 64
    experts, top_k, expert_ffn = 256, 8, 2048
    fp8 = 1 + 4 / 128  # one FP32 scale per 128 elements
    # Ranks a token's 8 experts sit on: 4 experts per rank, uniformly among the 128 experts of
    # the 4 nodes (32 ranks) node-limited routing lets it reach.
    distinct = 32 * (1 - math.comb(128 - 4, top_k) / math.comb(128, top_k))
    return (2 * 2 * h                              # the two norm inputs, BF16
            + 2 * latents                          # c_Q, c_KV and the RoPE key, BF16
            + heads * v_dim * (12 / 8 + 4 / 128)   # attention output in E5M6
            + 4 * heads                            # FlashAttention's FP32 log-sum-exp
            + 2 * experts                          # router scores
            + fp8 * 2 * expert_ffn                 # shared expert's SwiGLU input
            + fp8 * h * distinct                   # dispatched inputs, once per rank
            + fp8 * 2 * expert_ffn * top_k)        # routed experts' SwiGLU inputs


def test_deepseek_v3_layout_fits_as_counted_by_hand(rows: list[validate.Row],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The published layout (PP16 DualPipe, EP64, ZeRO-1, FP8 block scaling) on 2048 H800s:
    within 15 % of the reported 180K GPU-hours per trillion tokens, and within 80 GB with the
    framework's reserve. Rank 0 holds chunks 0 (the embedding and the 3 dense layers) and 15
    (2 MoE layers, the MTP module and the loss); its activations are the hand count, and it
    holds the logits of both heads."""
    # After ``rows``: this process has built the case's numeric functions already.
    assert any(r.case == "deepseek-v3-pretrain-h800" for r in rows)
    result = evaluate_case(case_mod.load("deepseek-v3-pretrain-h800"))
    values = result.values
    assert values["gpu_hours"] == pytest.approx(180_000, rel=0.15)
    assert values["framework_reserve"] > 0
    assert values["memory_per_gpu"] <= result.memory_capacity
    # A dense layer keeps what an MoE layer keeps up to its MLP (norms, latents, E5M6 output,
    # log-sum-exp), then its SwiGLU input in BF16 and the SwiGLU output as the FP8 input of
    # the down projection (only the experts' SwiGLU is recomputed, Sec. 3.3.4).
    h, heads, v_dim, latents, ffn = 7168, 128, 128, 1536 + 512 + 64, 18432
    fp8 = 1 + 4 / 128
    dense = (2 * 2 * h + 2 * latents + heads * v_dim * (12 / 8 + 4 / 128) + 4 * heads
             + 2 * 2 * ffn + fp8 * ffn)
    # PP + 1 = 17 micro-batches of one chunk (DualPipe README), 4096 tokens each: 16 of chunk 0
    # (3 dense layers), where rank 0 is the first stage of one direction, and 1 of chunk 15
    # (2 MoE layers and the MTP module), where it is the last stage of the other.
    in_flight = 16 * 3 * dense + 1 * 3 * _deepseek_v3_bytes_per_token_per_moe_layer()
    assert values["activations"] == pytest.approx(4096 * in_flight, rel=1e-9)
    # The main head and the MTP module's head: BF16 logits and FP32 probabilities each.
    assert values["logits_and_loss"] == pytest.approx(2 * 4096 * 129280 * (2 + 4))
    _check_page_region("docs/training.md", "perfcost evaluate deepseek-v3-pretrain-h800",
                       result, monkeypatch, capsys)


def _check_page_region(page: str, command: str, result: object,
                       monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    """The page's output of ``command`` is the report of ``result``, printed as the command
    prints it at the width and without the colour docs/generate.py runs it with
    (tests/test_docs.py leaves this region here rather than evaluate the case again)."""
    from docs_pages import generator
    from perfcost.solver.report import tables as report

    generate = generator()
    (region,) = [r for r in generate.regions(page) if r.command == command]
    monkeypatch.setenv("NO_COLOR", "1")
    capsys.readouterr()
    report.console().print(report.evaluation(result))
    output = capsys.readouterr().out
    body = f"```\n$ {command}\n{generate._cut(output, region.lines)}\n```\n"
    assert generate.normalise(body) == generate.normalise(region.body), (
        f"{page}'s output of {command} is stale: run python docs/generate.py")
