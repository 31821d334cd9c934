"""Pipeline layouts (Megatron-Core's --pipeline-model-parallel-layout): parsing, which ranks hold
what, and memory taken on the rank that holds the most."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfcost.formulations import pipeline_layout as layout
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.schema import load
from perfcost.solver.problem.evaluate import evaluate_case

DEEPSEEK_V3 = "Et*3|(t*4|)*14,ttmL"


def test_megatron_core_example_parses_to_its_table() -> None:
    """The developer guide's DeepSeek-V3 example at PP16 VPP2: rank 0 holds the embedding and
    3 decoder layers, then 2; ranks 14 and 15 end with the MTP module and the loss."""
    chunks = layout.parse("Et*3|(tt|)*29,m|L")
    assert len(chunks) == 32
    assert chunks[0] == layout.Chunk(layers=3, embedding=1)
    assert chunks[16] == layout.Chunk(layers=2)
    assert chunks[30] == layout.Chunk(mtp=1) and chunks[31] == layout.Chunk(loss=1)
    assert layout.check(chunks, 61, 1, "1f1b", 16, 2) is None
    assert layout.rank_chunks("1f1b", 16, 32)[0] == [0, 16]


def test_dualpipe_rank_zero_holds_the_first_and_last_chunks() -> None:
    chunks = layout.parse(DEEPSEEK_V3)
    ranks = layout.distinct_ranks(chunks, "dualpipe", 16, 1, 3, 1, True)
    first, middle = ranks
    # 3 dense layers and the embedding; 2 MoE layers, the MTP module and the loss.
    assert first.first == 0 and first.held == (3, 2, 1, 1, 1)
    # 16 micro-batches of chunk 0 and 1 of chunk 15: PP + 1 in all.
    assert first.flight == (48, 2, 1, 16) and first.count == 17
    # Every middle rank holds 8 MoE layers and 17 chunks' worth of 4 of them.
    assert middle.held == (0, 8, 0, 0, 0) and middle.flight == (0, 68, 0, 0)
    assert len(ranks) == 2


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.integers(0, 3))
def test_in_flight_counts_add_up_over_a_rank_s_chunks(p: int, v: int, rank_offset: int) -> None:
    rank = min(rank_offset, p - 1)
    for schedule in ("1f1b", "dualpipe"):
        vv = 1 if schedule == "dualpipe" else v
        count = layout.chunk_count(schedule, p, vv)
        held = layout.rank_chunks(schedule, p, count)[rank]
        flights = layout.chunk_flights(schedule, p, vv, rank, held)
        assert sum(flights.values()) == Fraction(layout.in_flight_chunks(schedule, p, vv, rank))
        assert all(f > 0 for f in flights.values())


@pytest.mark.parametrize(("text", "expected"), [
    ("Et*3|(t*4|)*14,ttm", "1 losses (L)"),
    ("Et*3|(t*4|)*13,ttmL", "16 chunks"),
    ("Et*3|(t*4|)*14,tttmL", "61 decoder layers"),
    ("Ex|t", "only the symbols"),
    ("(t|" * 3, "parentheses"),
    ("t*999999999", "at most"),
])
def test_a_wrong_layout_is_a_one_line_error(text: str, expected: str) -> None:
    with pytest.raises(CaseError, match=r"parallelism\.pipeline_layout") as caught:
        evaluate_case(load("deepseek-v3-pretrain-h800",
                           [f'parallelism.pipeline_layout="{text}"']))
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_a_layout_needs_a_fixed_pipeline() -> None:
    with pytest.raises(CaseError, match=r"parallelism\.pp"):
        evaluate_case(load("deepseek-v3-pretrain-h800", ["parallelism.pp=[8, 16]"]))


def test_the_even_layout_keeps_the_first_stage_and_adds_the_last() -> None:
    """Written as a layout, the even split of GPT 39.1B over 2 stages gives the first rank
    exactly the memory terms of the model without one; the last rank's output layer and
    logits can only add to the largest rank's total."""
    name = "narayanan2021-t1-gpt-39.1b"
    plain = evaluate_case(load(name)).values
    laid = evaluate_case(load(name, ['parallelism.pipeline_layout="Et*24|t*24L"'])).values
    for term in ("weights", "gradients", "optimizer_states", "activations",
                 "logits_and_loss", "recompute_working_set", "framework_reserve"):
        assert laid[term] == pytest.approx(plain[term], rel=1e-12), term
    assert laid["memory_per_gpu"] >= plain["memory_per_gpu"]
    assert laid["memory_per_gpu"] == pytest.approx(
        plain["memory_per_gpu"] + laid["largest_rank_excess"], rel=1e-12)
    assert laid["iteration_time"] == pytest.approx(plain["iteration_time"], rel=1e-12)
