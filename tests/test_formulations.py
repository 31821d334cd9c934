"""The training formulation: registry, evaluation, published closed forms and properties.

Expected values come from the papers the formulations cite, never from the code:

* Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models"
  (MLSys'23, arXiv:2205.05198), Table 2: activation bytes per layer;
* Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM" (SC'21, arXiv:2104.04473), Sec. 5.1 and Appendix: FLOPs per layer and per
  iteration, and the GPT parameter count;
* Brown et al. 2020 and the Llama 3 report (arXiv:2407.21783) for published parameter counts.
"""

from __future__ import annotations

import itertools
import math
from functools import cache
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from perfcost.formulations import compute, memory, transformer
from perfcost.formulations.core import Formulation
from perfcost.formulations.registry import build, registered
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import Evaluator, evaluate_case, training_formulation

STUDY_CASES = ("gpt3-175b-a100", "llama3-70b-h100")


@cache
def _case(name: str, overrides: tuple[str, ...] = ()) -> case_mod.Case:
    return case_mod.load(name, list(overrides))


@cache
def _evaluation(name: str, overrides: tuple[str, ...] = ()):
    return evaluate_case(_case(name, overrides))


def _built_in(model: str, *, hardware: str = "h100-sxm", network: str = "dgx-h100",
              global_batch: int = 16, **parallelism: Any) -> case_mod.Case:
    return case_mod.from_dict(case_mod.resolve({
        "model": model, "hardware": hardware, "network": network,
        "training": {"global_batch": global_batch}, "parallelism": parallelism,
    }))


def _value(case: case_mod.Case, name: str) -> float:
    f = training_formulation(case)
    codes = problem.decision_codes(problem.fixed_config(case))
    return Evaluator(f, names=(name,))(codes)[name]


# -- 1. registry -----------------------------------------------------------------------------


def test_registry_has_training() -> None:
    builders = registered()
    assert "training" in builders
    assert callable(builders["training"])


def test_build_unknown_formulation_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="training"):
        build("no-such-formulation")


@pytest.mark.parametrize("name", STUDY_CASES)
def test_build_training_expressions_use_only_declared_symbols(name: str) -> None:
    s = problem.specs(_case(name))
    f = build("training", s.model, s.hardware, s.network, s.training)
    assert isinstance(f, Formulation)
    assert f.name == "training"
    for required in ("iteration_time", "memory_per_gpu", "mfu", "hfu", "parameters",
                     "activations", "per_layer_forward_time", "per_layer_backward_time"):
        assert required in f.expressions
    parameter_symbols = {p.symbol for p in f.parameters.values()}
    decision_symbols = {d.symbol for d in f.decisions.values()}
    assert not parameter_symbols & decision_symbols
    # Distinct names as well: a symbol printed twice with one name would make exports ambiguous.
    names = [str(x) for x in (*parameter_symbols, *decision_symbols)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    declared = parameter_symbols | decision_symbols
    for quantity, expr in f.expressions.items():
        assert isinstance(expr, sp.Expr), quantity
        stray = expr.free_symbols - declared
        assert not stray, f"{quantity} depends on undeclared symbols {stray}"
    for group, members in f.groups.items():
        assert group in f.expressions
        assert set(members) <= set(f.expressions)
    assert set(f.expressions) <= set(f.units)


# -- 2. evaluation (lambdify) equals substitution --------------------------------------------

#: Full substitution of the big expressions takes seconds each; a representative subset.
#: The terms of the iteration time, not their sum: substituting the whole of it costs ~25 s
#: since the framework terms joined it, and the breakdown test checks that the terms add up.
#: (GPT-3's TP traffic hides behind its GEMMs: a zero that would check nothing.)
SUBSTITUTED = {
    "gpt3-175b-a100": ("backward_compute", "pp_communication", "dp_communication",
                       "memory_per_gpu", "per_layer_forward_time", "activations",
                       "model_flops_per_gpu", "parameters", "optimizer_step"),
    "llama3-70b-h100": ("forward_compute", "pipeline_bubble", "memory_per_gpu", "activations",
                        "hardware_flops_per_gpu", "dp_communication", "optimizer_step"),
}


@pytest.mark.parametrize(("name", "quantity"),
                         [(n, q) for n, qs in SUBSTITUTED.items() for q in qs])
def test_evaluation_equals_substitution(name: str, quantity: str) -> None:
    result = _evaluation(name)
    codes = problem.decision_codes(result.config)
    expected = float(result.formulation.substituted(quantity, codes).evalf())
    assert math.isfinite(expected) and expected != 0.0
    assert result.values[quantity] == pytest.approx(expected, rel=1e-9)


# -- 3. Korthikanti et al. 2022, Table 2 -----------------------------------------------------

#: (name, hidden, heads, tensor-parallel, micro-batch) of the paper's models (Table 3).
PAPER_GPT = [
    ("22B", 6144, 64, 8, 4),
    ("175B", 12288, 96, 8, 1),
    ("530B", 20480, 128, 8, 1),
    ("1T", 25600, 160, 8, 1),
]
SEQ = 2048


def _gpt_dims(h: Any, a: Any, t: Any, b: Any, s: Any, sequence_parallel: bool,
              vocab: Any = 51200) -> transformer.Dims:
    h, a, t, b, s, vocab = (sp.sympify(x) for x in (h, a, t, b, s, vocab))
    return transformer.Dims(
        b=b, s=s, h=h, a=a, kv=a, ffn=4 * h, vocab=vocab, t=t, c=sp.Integer(1),
        sigma=1 / t if sequence_parallel else sp.Integer(1), e=sp.Integer(2),
        mask=sp.Integer(1), swiglu=False, dropout=True, gqa=False)


def _table2(h: Any, a: Any, t: Any, b: Any, s: Any) -> dict[tuple[bool, str], sp.Expr]:
    """Korthikanti Table 2, keyed by (sequence parallel, recompute)."""
    sbh = s * b * h
    return {
        (False, "none"): sbh * (10 + sp.Integer(24) / t + 5 * a * s / (h * t)),
        (True, "none"): sbh * (sp.Integer(34) / t + 5 * a * s / (h * t)),
        (False, "selective"): sbh * (10 + sp.Integer(24) / t),
        (True, "selective"): 34 * sbh / t,
        (False, "full"): 2 * sbh,
        (True, "full"): 2 * sbh / t,
    }


INDICATORS = {"none": (0, 0), "selective": (1, 0), "full": (0, 1)}
TABLE2_ROWS = list(itertools.product((False, True), INDICATORS))


@pytest.mark.parametrize(("sequence_parallel", "recompute"), TABLE2_ROWS)
@pytest.mark.parametrize(("model", "h", "a", "t", "b"), PAPER_GPT)
def test_activation_bytes_match_korthikanti_table2(model: str, h: int, a: int, t: int, b: int,
                                                   sequence_parallel: bool,
                                                   recompute: str) -> None:
    d = _gpt_dims(h, a, t, b, SEQ, sequence_parallel)
    selective, full = (sp.Integer(x) for x in INDICATORS[recompute])
    got = memory.layer_activation_bytes(memory.activation_terms(d), selective, full)
    expected = _table2(*(sp.Integer(x) for x in (h, a, t, b, SEQ)))[(sequence_parallel,
                                                                     recompute)]
    assert got == expected


def test_activation_bytes_without_parallelism_are_34_plus_5as_over_h() -> None:
    h, a, b = 12288, 96, 1
    d = _gpt_dims(h, a, 1, b, SEQ, False)
    got = memory.layer_activation_bytes(memory.activation_terms(d), sp.Integer(0),
                                        sp.Integer(0))
    assert got == SEQ * b * h * (34 + sp.Rational(5 * a * SEQ, h))


@pytest.mark.parametrize(("sequence_parallel", "recompute"), TABLE2_ROWS)
def test_activation_bytes_match_table2_symbolically(sequence_parallel: bool,
                                                    recompute: str) -> None:
    h, a, t, b, s = sp.symbols("h a t b s", positive=True, integer=True)
    d = _gpt_dims(h, a, t, b, s, sequence_parallel)
    selective, full = (sp.Integer(x) for x in INDICATORS[recompute])
    got = memory.layer_activation_bytes(memory.activation_terms(d), selective, full)
    expected = _table2(h, a, t, b, s)[(sequence_parallel, recompute)]
    assert sp.simplify(got - expected) == 0


@pytest.mark.parametrize(("case_name", "sequence_parallel", "recompute"), [
    ("korthikanti2022-fig1-gpt-22b-tp-only", False, "none"),
    ("korthikanti2022-fig1-gpt-22b-seqpar-selective", True, "selective"),
])
def test_whole_model_activations_are_layers_times_table2(case_name: str,
                                                         sequence_parallel: bool,
                                                         recompute: str) -> None:
    """One pipeline stage holding one micro-batch: L layers of Table 2 plus the embedding's
    dropout mask (1 byte per element, sharded by t with sequence parallelism; Sec. 4.3)."""
    c = _case(case_name)
    cfg = problem.fixed_config(c)
    assert cfg["pp"] == 1 and c.training.global_batch == cfg["dp"] * cfg["micro_batch"]
    m = c.model
    t, b = cfg["tp"], cfg["micro_batch"]
    per_layer = _table2(*(sp.Integer(x) for x in (m.hidden, m.heads, t, b, m.seq_len)))[
        (sequence_parallel, recompute)]
    embedding_mask = sp.Integer(m.seq_len * b * m.hidden) / (t if sequence_parallel else 1)
    expected = float(m.layers * per_layer + embedding_mask)
    assert _value(c, "activations") == pytest.approx(expected, rel=1e-12)


# -- 4. parameter counts ---------------------------------------------------------------------


@pytest.mark.parametrize(("model", "published", "rel"), [
    ("gpt3-175b", 174.6e9, 0.01),
    ("llama3-8b", 8.03e9, 0.015),
    ("llama3-70b", 70.6e9, 0.015),
    ("llama3-405b", 405.9e9, 0.015),
])
def test_parameter_count_matches_published(model: str, published: float, rel: float) -> None:
    c = _built_in(model, global_batch=16, tp=8, pp=1, dp=2)
    assert _value(c, "parameters") == pytest.approx(published, rel=rel)


@pytest.mark.parametrize("model", ["gpt-1.7b", "gpt-22b", "gpt3-175b", "mt-nlg-530b",
                                   "gpt-1t"])
def test_gpt_parameter_count_matches_narayanan_formula(model: str) -> None:
    """P = 12 l h^2 (1 + 13/(12h) + (V + s)/(12 l h)): biases, learned positions, tied
    embeddings (Narayanan et al. 2021, Sec. 5.1)."""
    c = _built_in(model, hardware="a100-80gb", network="dgx-a100", global_batch=8)
    m = c.model
    assert m.tied_embeddings and m.biases and m.positions == "learned" and m.ffn == 4 * m.hidden
    L, h, V, s = (sp.Integer(x) for x in (m.layers, m.hidden, m.vocab, m.seq_len))
    expected = 12 * L * h**2 * (1 + sp.Rational(13, 12) / h + (V + s) / (12 * L * h))
    assert _value(c, "parameters") == pytest.approx(float(expected), rel=1e-12)


# -- 5. FLOPs --------------------------------------------------------------------------------


def test_gpt_layer_forward_flops_match_narayanan() -> None:
    b, s, h, a, t = sp.symbols("b s h a t", positive=True, integer=True)
    d = _gpt_dims(h, a, t, b, s, False)
    fwd = compute.ops_flops(transformer.layer_forward(d))
    assert sp.simplify(fwd - (24 * b * s * h**2 / t + 4 * b * s**2 * h / t)) == 0
    # Backward: two GEMMs (data and weight gradient) per forward GEMM.
    assert sp.simplify(compute.ops_flops(transformer.layer_backward(d)) - 2 * fwd) == 0


def test_llama_layer_forward_flops_gqa_swiglu() -> None:
    """GQA projects K and V to kv_heads * head_dim; SwiGLU has three ffn-wide GEMMs."""
    h, a, kv, ffn, t, b, s = 8192, 64, 8, 28672, 8, 1, 8192
    I = sp.Integer  # noqa: E741
    d = transformer.Dims(b=I(b), s=I(s), h=I(h), a=I(a), kv=I(kv), ffn=I(ffn),
                         vocab=I(128256), t=I(t), c=I(1), sigma=I(1), e=I(2), mask=I(0),
                         swiglu=True, dropout=False, gqa=True)
    head_dim = h // a
    macs = b * s * (h * (h + 2 * kv * head_dim) + h * h + 3 * h * ffn) // t
    attention = 4 * b * s * s * h // t
    assert compute.ops_flops(transformer.layer_forward(d)) == 2 * macs + attention


def _narayanan_terms(c: case_mod.Case) -> tuple[float, float, float, int]:
    cfg = problem.fixed_config(c)
    m = c.model
    B, s, L, h, V = (c.training.global_batch, m.seq_len, m.layers, m.hidden, m.vocab)
    gpus = cfg["tp"] * cfg["pp"] * cfg["dp"] * cfg["cp"]
    return B * s * L * h**2, s / (6 * h), V, gpus


FLOP_CASES = [
    ("gpt3-175b-a100", ()),
    ("gpt3-175b-a100", ("parallelism.cp=2", "parallelism.dp=8", "parallelism.virtual_stages=1")),
    ("narayanan2021-t1-gpt-18.4b", ()),
]


@pytest.mark.parametrize(("name", "extra"), FLOP_CASES)
def test_model_flops_match_narayanan_with_three_passes(name: str,
                                                       extra: tuple[str, ...]) -> None:
    """Model FLOPs: forward + backward (3 passes) of the layers and of the logit layer:
    72 B s L h^2 (1 + s/(6h) + V/(12 L h)). (With Narayanan's 4 passes the layers' factor is
    96 while the logit layer, which is not recomputed, stays at 6 B s h V: hence his V/(16 L h);
    with 3 passes the same 6 B s h V is V/(12 L h) of 72 B s L h^2.)"""
    c = _case(name, ('parallelism.recompute="none"', *extra))
    bslh2, attn, V, gpus = _narayanan_terms(c)
    L, h = c.model.layers, c.model.hidden
    expected = 72 * bslh2 * (1 + attn + V / (12 * L * h)) / gpus
    assert _value(c, "model_flops_per_gpu") == pytest.approx(expected, rel=1e-6)
    assert _value(c, "hardware_flops_per_gpu") == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("name", "extra"), FLOP_CASES)
def test_hardware_flops_with_full_recompute_match_narayanan(name: str,
                                                            extra: tuple[str, ...]) -> None:
    """Narayanan et al. 2021 eq. (Sec. 5.1): 96 B s L h^2 (1 + s/(6h) + V/(16 L h))."""
    c = _case(name, ('parallelism.recompute="full"', *extra))
    bslh2, attn, V, gpus = _narayanan_terms(c)
    L, h = c.model.layers, c.model.hidden
    expected = 96 * bslh2 * (1 + attn + V / (16 * L * h)) / gpus
    assert _value(c, "hardware_flops_per_gpu") == pytest.approx(expected, rel=1e-6)


def test_selective_recompute_adds_only_the_attention_core() -> None:
    """Selective recomputation reruns Q K^T and P V: 4 B s^2 h L FLOPs per iteration."""
    c = _case("gpt3-175b-a100", ('parallelism.recompute="selective"',))
    bslh2, attn, V, gpus = _narayanan_terms(c)
    m = c.model
    model = 72 * bslh2 * (1 + attn + V / (12 * m.layers * m.hidden)) / gpus
    extra = 4 * c.training.global_batch * m.seq_len**2 * m.hidden * m.layers / gpus
    assert _value(c, "model_flops_per_gpu") == pytest.approx(model, rel=1e-6)
    assert _value(c, "hardware_flops_per_gpu") == pytest.approx(model + extra, rel=1e-6)


# -- 6. properties over many configurations at once (vectorised) -----------------------------

AXES: dict[str, tuple[Any, ...]] = {
    "tp": (1, 2, 4, 8),
    "pp": (1, 2, 4, 8),
    "dp": (1, 2, 4, 16),
    "cp": (1, 2),
    "micro_batch": (1, 2, 4),
    "virtual_stages": (1, 2, 3),
    "recompute": ("none", "selective", "full"),
    "sequence_parallel": (False, True),
    "zero": (0, 1, 2, 3),
    "placement": ("tp-cp-dp-pp", "tp-cp-pp-dp"),
}
#: Parameters scaled by hypothesis, by name in the formulation.
SCALED = ("peak_flops", "hbm_bandwidth", "scale_up_bandwidth", "scale_out_bandwidth",
          "scale_up_latency", "kernel_overhead")


@cache
def _space(name: str) -> tuple[Formulation, Evaluator, dict[str, np.ndarray]]:
    """The formulation of a study case, its evaluator and every valid config of AXES."""
    c = _case(name)
    f = training_formulation(c)
    rows = []
    for values in itertools.product(*AXES.values()):
        config = dict(zip(AXES, values, strict=True))
        try:
            problem.check_config(c, config, None)
        except CaseError:
            continue
        rows.append(problem.decision_codes(config))
    assert len(rows) > 100
    grid = {k: np.array([r[k] for r in rows]) for k in f.decisions}
    return f, Evaluator(f), grid


def _draw(name: str, picks: list[int], scales: dict[str, float]
          ) -> tuple[Formulation, Evaluator, dict[str, np.ndarray], dict[str, float]]:
    f, ev, grid = _space(name)
    idx = np.asarray(picks) % len(grid["tp"])
    decisions = {k: v[idx] for k, v in grid.items()}
    params = {k: f.parameters[k].value * s for k, s in scales.items()}
    return f, ev, decisions, params


def _with(decisions: dict[str, np.ndarray], **fixed: float) -> dict[str, np.ndarray]:
    out = dict(decisions)
    for k, v in fixed.items():
        out[k] = np.full_like(decisions[k], float(v))
    return out


def _stack(values: dict[str, Any], names: tuple[str, ...]) -> np.ndarray:
    """Quantities as rows of one array (a quantity free of decisions comes back scalar)."""
    return np.array(np.broadcast_arrays(*(values[k] for k in names)))


scenarios = st.tuples(
    st.sampled_from(STUDY_CASES),
    st.lists(st.integers(min_value=0, max_value=2**31), min_size=1, max_size=64),
    st.fixed_dictionaries({k: st.floats(min_value=0.25, max_value=4.0) for k in SCALED}),
)
PROPERTY = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
REL = 1e-12


@PROPERTY
@given(scenarios)
def test_iteration_time_positive_finite_and_breakdowns_add_up(scenario) -> None:
    f, ev, dec, params = _draw(*scenario)
    v = ev(dec, params)
    it = v["iteration_time"]
    assert np.all(np.isfinite(it)) and np.all(it > 0)
    terms = _stack(v, f.groups["iteration_time"])
    assert np.all(np.isfinite(terms)) and np.all(terms >= 0)
    np.testing.assert_allclose(terms.sum(axis=0), it, rtol=1e-9)
    mem = _stack(v, f.groups["memory_per_gpu"])
    # Terms may be zero (no logits on a first stage that is not the last, no recompute
    # working set without recomputation); the sum never is.
    assert np.all(mem >= 0) and np.all(v["memory_per_gpu"] > 0)
    np.testing.assert_allclose(mem.sum(axis=0), v["memory_per_gpu"], rtol=1e-9)
    assert np.all(v["tokens_per_s"] > 0) and np.all(np.isfinite(v["tokens_per_s"]))


@PROPERTY
@given(scenarios)
def test_recompute_trades_time_for_memory(scenario) -> None:
    """none -> selective -> full: memory and activations never grow, time never shrinks."""
    _, ev, dec, params = _draw(*scenario)
    runs = [ev(_with(dec, recompute=code), params) for code in (0, 1, 2)]
    for lighter, heavier in itertools.pairwise(runs):
        for k in ("memory_per_gpu", "activations"):
            assert np.all(heavier[k] <= lighter[k] * (1 + REL))
        assert np.all(heavier["iteration_time"] >= lighter["iteration_time"] * (1 - REL))
        assert np.all(heavier["hardware_flops_per_gpu"]
                      >= lighter["hardware_flops_per_gpu"] * (1 - REL))
        np.testing.assert_allclose(heavier["model_flops_per_gpu"],
                                   lighter["model_flops_per_gpu"], rtol=1e-12)


@PROPERTY
@given(scenarios)
def test_sequence_parallel_never_increases_activations(scenario) -> None:
    _, ev, dec, params = _draw(*scenario)
    off = ev(_with(dec, sequence_parallel=0), params)["activations"]
    on = ev(_with(dec, sequence_parallel=1), params)["activations"]
    assert np.all(on <= off * (1 + REL))
    single = dec["tp"] == 1
    np.testing.assert_allclose(on[single], off[single], rtol=1e-12)
    assert np.all(on[~single] < off[~single])


@PROPERTY
@given(scenarios)
def test_higher_zero_stage_never_increases_memory(scenario) -> None:
    _, ev, dec, params = _draw(*scenario)
    runs = [ev(_with(dec, zero=z), params)["memory_per_gpu"] for z in range(4)]
    for lower, higher in itertools.pairwise(runs):
        assert np.all(higher <= lower * (1 + REL))
    sharded = dec["dp"] > 1
    assert np.all(runs[3][sharded] < runs[0][sharded])


@PROPERTY
@given(scenarios, st.floats(min_value=1.0, max_value=8.0))
def test_more_network_bandwidth_never_slows_an_iteration(scenario, factor: float) -> None:
    f, ev, dec, params = _draw(*scenario)
    base = ev(dec, params)
    faster = dict(params)
    for k in ("scale_up_bandwidth", "scale_out_bandwidth"):
        faster[k] = params[k] * factor
    fast = ev(dec, faster)
    assert np.all(fast["iteration_time"] <= base["iteration_time"] * (1 + REL))
    for k in f.groups["iteration_time"]:
        if k.endswith("_communication") or k == "embedding_sync":
            assert np.all(fast[k] <= base[k] * (1 + REL)), k


@PROPERTY
@given(scenarios)
def test_utilisation_is_bounded_by_matmul_efficiency(scenario) -> None:
    """Every FLOP runs in a GEMM at most at peak * matmul_efficiency: mfu <= hfu <= eta."""
    f, ev, dec, params = _draw(*scenario)
    v = ev(dec, params)
    eta = f.parameters["matmul_efficiency"].value
    assert np.all(v["mfu"] > 0)
    assert np.all(v["mfu"] <= v["hfu"] * (1 + REL))
    assert np.all(v["hfu"] <= eta * (1 + REL))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios)
def test_vectorised_evaluation_equals_scalar_evaluation(scenario) -> None:
    _, ev, dec, params = _draw(*scenario)
    batch = ev(dec, params)
    for i in range(min(len(dec["tp"]), 4)):
        one = ev({k: float(v[i]) for k, v in dec.items()}, params)
        for k, value in one.items():
            got = np.broadcast_to(batch[k], dec["tp"].shape)[i]
            assert got == pytest.approx(value, rel=1e-12, abs=0.0), k
