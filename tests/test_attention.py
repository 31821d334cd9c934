"""FlashAttention's IO and time model and its wiring into training.

Expected values come from the papers, worked by hand here:

* Dao et al., "FlashAttention", NeurIPS 2022 (arXiv:2205.14135), Alg. 1 block sizes
  ``B_c = ceil(M/4d)``, ``B_r = min(B_c, d)`` and Thm. 2, HBM accesses ``Theta(N^2 d^2 / M)``;
* Korthikanti et al. 2022 (arXiv:2205.05198), Table 2: the ``5 a s^2 b`` bytes of the
  attention core (softmax output 2, dropout mask 1, dropout output 2 bytes per score), which
  FlashAttention does not keep.
"""

from __future__ import annotations

from functools import cache

import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from perfcost.formulations import attention, transformer
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError
from perfcost.solver.cli.main import app
from perfcost.solver.problem import specs as problem
from perfcost.solver.problem.evaluate import Evaluator, training_formulation
from typer.testing import CliRunner

KIB = 1024
E = 2  # bf16 bytes

# -- block sizes (Dao et al. 2022, Alg. 1) -----------------------------------------------------


def test_block_sizes_follow_algorithm_1() -> None:
    # H100/H200: 228 KiB = 116,736 bf16 elements; d = 128: B_c = 116736 / 512 = 228.
    assert attention.block_sizes(228 * KIB, 128, 128, E) == attention.Blocks(q=128, kv=228)
    # A100: 164 KiB = 83,968 elements: B_c = 164, B_r = min(164, 128).
    assert attention.block_sizes(164 * KIB, 128, 128, E) == attention.Blocks(q=128, kv=164)
    # d = 64: B_c = 116736 / 256 = 456, B_r = d = 64.
    assert attention.block_sizes(228 * KIB, 64, 64, E) == attention.Blocks(q=64, kv=456)
    # The wider of the two head dims sets the budget (MLA: 192 for Q.K, 128 for V).
    assert attention.block_sizes(228 * KIB, 192, 128, E) == attention.Blocks(q=152, kv=152)


def test_sram_too_small_for_one_tile() -> None:
    # One 16-row tile at d = 128 needs 4 x 128 x 16 x 2 B = 16 KiB.
    attention.block_sizes(16 * KIB, 128, 128, E)
    with pytest.raises(attention.TileDoesNotFit, match="16 KiB"):
        attention.block_sizes(16 * KIB - 1, 128, 128, E)


# -- FLOPs --------------------------------------------------------------------------------------

def _dims(b: int = 2, s: int = 1024, h: int = 1024, a: int = 8) -> transformer.Dims:
    one = sp.Integer(1)
    return transformer.Dims(b=sp.Integer(b), s=sp.Integer(s), h=sp.Integer(h),
                            a=sp.Integer(a), kv=sp.Integer(a), ffn=sp.Integer(4 * h),
                            vocab=one, t=one, c=one, sigma=one, e=sp.Integer(E),
                            mask=sp.Integer(1), swiglu=False, dropout=True, gqa=False)


def _core(ops: list[transformer.Op]) -> sp.Expr:
    return sp.Add(*(op.flops for op in ops if op.region == "attention_core"))


def test_flops_equal_the_materialised_gemms() -> None:
    d = _dims()
    shape = attention.AttentionShape(d.b, d.a, d.a, d.s, d.s, d.head_dim, d.head_dim, d.e,
                                     causal=False)
    fwd = _core(transformer.layer_forward(d))
    assert attention.forward_flops(shape) == fwd
    # 4 b a s^2 (h/a) = 4 b s^2 h (Narayanan et al. 2021).
    assert fwd == 4 * 2 * 1024**2 * 1024
    # Without recomputation the backward is twice the forward; FlashAttention's recomputes S.
    assert attention.materialized_backward_flops(shape) == _core(transformer.layer_backward(d))
    assert attention.backward_flops(shape) == sp.Rational(5, 2) * fwd
    causal = attention.AttentionShape(d.b, d.a, d.a, d.s, d.s, d.head_dim, d.head_dim, d.e)
    assert attention.forward_flops(causal) == fwd / 2


def test_use_flash_keeps_the_model_flops() -> None:
    d = _dims()
    blocks = attention.block_sizes(228 * KIB, 128, 128, E)
    for ops, backward in ((transformer.layer_forward(d), False),
                          (transformer.layer_backward(d), True)):
        flash = attention.use_flash(ops, d, blocks, backward)
        assert sum(1 for op in flash if op.region == "attention_core") == 1
        assert sp.Add(*(op.flops for op in flash)) == sp.Add(*(op.flops for op in ops))
        assert [op.name for op in flash if op.region != "attention_core"] == [
            op.name for op in ops if op.region != "attention_core"]


# -- HBM traffic (Thm. 2) -------------------------------------------------------------------------

def test_forward_io_by_hand() -> None:
    # b = h = 1, s = 1024, d = 64, non-causal, B_r = 64: Q and O once (2 x 1024 x 64 x 2 B),
    # the fp32 log-sum-exp (4 x 1024 B), and K, V re-read by each of 16 query blocks
    # (16 x 1024 x 128 x 2 B).
    one = sp.Integer(1)
    shape = attention.AttentionShape(one, one, one, sp.Integer(1024), sp.Integer(1024),
                                     sp.Integer(64), sp.Integer(64), sp.Integer(2),
                                     causal=False)
    blocks = attention.Blocks(q=64, kv=256)
    assert attention.forward_bytes(shape, blocks) == 262_144 + 4_096 + 4_194_304
    # With every re-read served by L2 only the compulsory traffic remains.
    assert attention.forward_bytes(shape, blocks, sp.Integer(0)) == 262_144 + 4_096


@settings(max_examples=30, deadline=None)
@given(s=st.sampled_from([2048, 4096, 8192]), d=st.sampled_from([64, 128, 256]),
       kib=st.sampled_from([16, 32, 64]))
def test_reread_traffic_scales_as_n2_d2_over_m(s: int, d: int, kib: int) -> None:
    """Where B_r = B_c < d (small SRAM), the K/V re-reads are (s / B_r) s 2d e: doubling the
    SRAM halves them, doubling s quadruples them (Thm. 2: Theta(N^2 d^2 / M))."""
    def rereads(seq: int, sram: int) -> sp.Expr:
        blocks = attention.block_sizes(sram * KIB, d, d, E)
        one = sp.Integer(1)
        shape = attention.AttentionShape(one, one, one, sp.Integer(seq), sp.Integer(seq),
                                         sp.Integer(d), sp.Integer(d), sp.Integer(E),
                                         causal=False)
        return (attention.forward_bytes(shape, blocks)
                - attention.forward_bytes(shape, blocks, sp.Integer(0)))

    assume(kib * KIB >= attention.SRAM_ROW_BLOCKS * d * attention.MIN_BLOCK * E)
    assume(attention.block_sizes(kib * KIB, d, d, E).kv < d)
    if attention.block_sizes(2 * kib * KIB, d, d, E).kv < d:
        assert rereads(s, 2 * kib) == pytest.approx(float(rereads(s, kib)) / 2, rel=0.02)
    assert rereads(2 * s, kib) == pytest.approx(4 * float(rereads(s, kib)), rel=1e-9)


def test_l2_serves_rereads_only_while_kv_fits() -> None:
    blocks = attention.block_sizes(228 * KIB, 128, 128, E)
    rates = attention.FlashRates(*(sp.Integer(1),) * 5, sp.Integer(132), sp.Integer(0),
                                 sp.Integer(0), sp.Integer(0), sp.Integer(50 * 2**20))

    def misses(s: int) -> sp.Expr:
        one = sp.Integer(1)
        shape = attention.AttentionShape(one, one, one, sp.Integer(s), sp.Integer(s),
                                         sp.Integer(128), sp.Integer(128), sp.Integer(E))
        return attention.reread_misses(shape, blocks, rates)

    # 16k tokens: 128 query blocks per head, one head in flight, K and V 8 MiB: in L2.
    assert misses(16384) == 0
    # 128k tokens: K and V of one head are 64 MiB, more than the 50 MiB L2.
    assert misses(131072) == 1


@settings(max_examples=30, deadline=None)
@given(s=st.sampled_from([1024, 2048, 4096, 8192, 16384]), b=st.integers(1, 8))
def test_time_grows_with_sequence_and_exceeds_roofline(s: int, b: int) -> None:
    blocks = attention.block_sizes(228 * KIB, 128, 128, E)
    rates = attention.FlashRates(sp.Float(989e12), sp.Float(0.35), sp.Float(0.32),
                                 sp.Float(4.8e12), sp.Float(0.64), sp.Integer(132),
                                 sp.Float(3e-6), sp.Float(55e-6), sp.Float(12e-6),
                                 sp.Float(50 * 2**20))

    def shape(seq: int) -> attention.AttentionShape:
        return attention.AttentionShape(sp.Integer(b), sp.Integer(32), sp.Integer(32),
                                        sp.Integer(seq), sp.Integer(seq), sp.Integer(128),
                                        sp.Integer(128), sp.Integer(E))

    t = float(attention.flash_forward_time(shape(s), blocks, rates))
    t2 = float(attention.flash_forward_time(shape(2 * s), blocks, rates))
    assert t2 > t
    assert t >= float(attention.forward_flops(shape(s))) / (989e12 * 0.35)
    tb = float(attention.flash_backward_time(shape(s), blocks, rates))
    assert tb > t  # 2.5x the FLOPs at a lower rate


@settings(max_examples=10, deadline=None)
@given(s=st.sampled_from([256, 1024, 4096]), d=st.sampled_from([64, 128]),
       rate=st.floats(1e12, 1e14))
def test_softmax_adds_its_scores_at_its_own_rate(s: int, d: int, rate: float) -> None:
    """FlashAttention-3 (Shah et al. 2024, Sec. 3.1): the exponentials run on units of their
    own. With the memory side negligible, the softmax term adds exactly the scores the
    causal kernel visits (diagonal tiles whole) over its rate, independent of the head dim."""
    blocks = attention.Blocks(q=128, kv=128)
    shape = attention.AttentionShape(sp.Integer(2), sp.Integer(8), sp.Integer(8),
                                     sp.Integer(s), sp.Integer(s), sp.Integer(d),
                                     sp.Integer(d), sp.Integer(E))

    def forward(softmax_rate: sp.Expr | None) -> float:
        rates = attention.FlashRates(sp.Float(989e12), sp.Float(0.6), sp.Float(0.5),
                                     sp.Float(1e30), sp.Float(1), sp.Integer(132),
                                     sp.Float(3e-6), sp.Float(0), sp.Float(5e-6),
                                     softmax_rate=softmax_rate)
        return float(attention.flash_forward_time(shape, blocks, rates))

    # Hand count: b h s^2 (1 + 128 / s) / 2 scores (the lower triangle and the diagonal tiles).
    scores = 2 * 8 * s * s * (1 + 128 / s) / 2
    assert float(attention.forward_scores(shape, blocks)) == pytest.approx(scores)
    assert forward(sp.Float(rate)) - forward(None) == pytest.approx(scores / rate, rel=1e-9)
    assert forward(sp.Float(rate / 2)) > forward(sp.Float(rate))


# -- training: memory and time ------------------------------------------------------------------

BASE = "korthikanti2022-t4-baseline-no-recompute"  # GPT-22B layer, A100, tp 8, b 4, dropout
FLASH_RATES = ("hardware.efficiency.fa2.forward=0.6", "hardware.efficiency.fa2.backward=0.5",
               "hardware.efficiency.fa2.source=test values")


@cache
def _values(*overrides: str) -> dict[str, float]:
    case = case_mod.load(BASE, list(overrides))
    f = training_formulation(case)
    names = ("activations", "model_flops_per_gpu", "per_layer_forward_time",
             "per_layer_backward_time", "memory_per_gpu", "recompute_working_set")
    return Evaluator(f, names)(problem.decision_codes(problem.fixed_config(case)))


def test_flash_removes_the_5as_over_h_term() -> None:
    """GPT-22B: a = 64, s = 2048, b = 4, t = 8, 48 layers (pp = 1, all in flight).

    Korthikanti Table 2 per layer: sbh(34 + 5as/h)/t with sequence parallelism off for the
    TP-split part; FlashAttention drops 5 a s^2 b / t bytes and keeps 4 a s b / t bytes of
    fp32 log-sum-exp instead."""
    materialized = _values(*FLASH_RATES)
    flash = _values("training.attention=flash", *FLASH_RATES)
    a, s, b, t, layers = 64, 2048, 4, 8, 48
    dropped = layers * (5 * a * s * s * b / t - 4 * a * s * b / t)
    assert materialized["activations"] - flash["activations"] == pytest.approx(dropped,
                                                                               rel=1e-12)
    assert materialized["model_flops_per_gpu"] == flash["model_flops_per_gpu"]
    assert flash["per_layer_forward_time"] < materialized["per_layer_forward_time"]


def test_full_recompute_memory_does_not_depend_on_attention() -> None:
    """What full recomputation keeps between the passes is each layer's input, whatever the
    attention kernel; only the layer being recomputed holds its attention core (the
    recompute working set), which the kernel sets."""
    full = ("parallelism.recompute=full", *FLASH_RATES)
    materialised, flash = _values(*full), _values("training.attention=flash", *full)
    assert materialised["activations"] == flash["activations"]
    assert flash["recompute_working_set"] < materialised["recompute_working_set"]


def test_validation_cases_run_materialised_attention() -> None:
    """Megatron-LM ran materialised softmax in 2021-22: the default keeps those cases as they
    were; the recent runs (NeMo 24.07, DeepSeek-V3) ran fused attention kernels."""
    for name in catalog.entries("validation"):
        case = case_mod.load(name)
        if case.training is None:
            continue
        era_2021 = case.training.framework == "megatron-lm-2021"
        assert case.training.attention == ("materialized" if era_2021 else "flash"), name


# -- bad input ----------------------------------------------------------------------------------

def test_sram_too_small_is_a_case_error() -> None:
    case = case_mod.load(BASE, ["training.attention=flash", *FLASH_RATES,
                                "hardware.shared_memory=8 KiB"])
    # GPT-22B: h/a = 6144 / 64 = 96; one 16-row tile needs 4 x 96 x 16 x 2 B = 12 KiB.
    expected = r"hardware\.shared_memory = '8 KiB'.*head dim 96 needs 12 KiB"
    with pytest.raises(CaseError, match=expected):
        problem.specs(case)


def test_missing_flash_rates_is_a_case_error() -> None:
    case = case_mod.load(BASE, ["training.attention=flash"])
    with pytest.raises(CaseError, match=r"hardware\.efficiency\.fa2 is missing"):
        problem.specs(case)


@pytest.mark.parametrize("overrides", [
    ["training.attention=flash", *FLASH_RATES, "hardware.shared_memory=8 KiB"],
    ["training.attention=flash"],
    ["training.attention=fast"],
])
def test_cli_errors_exit_2_with_one_line(overrides: list[str]) -> None:
    args = ["evaluate", BASE]
    for item in overrides:
        args += ["--set", item]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2, out.output
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
