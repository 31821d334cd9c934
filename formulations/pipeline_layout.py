"""Pipeline layouts: which layers each model chunk holds, and which chunks each rank holds.

A layout is written as Megatron-Core's ``--pipeline-model-parallel-layout`` string (Megatron-Core
developer guide, "Custom Pipeline Model Parallel Layout"): model chunks in forward order,
separated by ``|``; ``E`` the input embedding, ``t`` a decoder layer, ``m`` a multi-token
prediction module, ``L`` the output layer and its loss; ``x*N`` repeats a symbol, ``(...)*N`` a
group; commas are cosmetic and empty chunks are allowed. DeepSeek-V3's 61 decoder layers and one
MTP module on 16 chunks, with the embedding and the loss each counted as a layer (Megatron-Core's
``account_for_embedding_in_pipeline_split`` / ``account_for_loss_in_pipeline_split``), are
``Et*3|(t*4|)*14,ttmL``.

Chunk ``i`` of ``pp * v`` runs on rank ``i mod pp`` (virtual stage ``i div pp``) under 1F1B,
interleaved 1F1B and ZB-H1. DualPipe splits the model into ``pp`` chunks and rank ``r`` holds
chunks ``r`` and ``pp - 1 - r`` (one per direction: DeepSeek-V3 Sec. 3.2.1, the two parameter
copies); DualPipeV splits it into ``2 pp`` chunks, rank ``r`` holding ``r`` and ``2 pp - 1 - r``
(the V shape). Parsing needs no sympy: cases are checked before anything is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

#: Micro-batches DualPipe holds on a stage beyond 1F1B's ``p`` (DeepSeek-V3 Table 2:
#: ``PP + 1``).
DUALPIPE_EXTRA_IN_FLIGHT = 1
#: DualPipeV's stages per device (the V: two half-device chunks).
DUALPIPEV_STAGES_PER_DEVICE = 2

#: The symbols of a layout string and what each counts.
SYMBOLS = {"E": "embedding", "t": "decoder layer", "m": "MTP module", "L": "loss"}
#: A layout string longer than this is refused before it is expanded.
MAX_LAYOUT_CHARS = 2000
#: Expanded layouts of more symbols than this are refused (a repeat count can explode).
MAX_EXPANDED_SYMBOLS = 100_000

_GROUP = re.compile(r"\(([^()]*)\)\*(\d+)")
_SYMBOL_REPEAT = re.compile(r"([EtmL|])\*(\d+)")


@dataclass(frozen=True)
class Layout:
    """A layout string and the pipeline it was written for: ``pp`` ranks of ``v`` virtual
    stages under ``schedule``."""

    text: str
    pp: int
    v: int
    schedule: str


class LayoutError(ValueError):
    """A layout string that does not parse; the message says what was expected."""


@dataclass(frozen=True)
class Chunk:
    """What one model chunk holds: counts of decoder layers (the first ``dense`` of them dense
    in the model's order is decided by :func:`chunks_with_layer_kinds`), MTP modules, and
    whether it holds the embedding and the loss."""

    layers: int = 0
    mtp: int = 0
    embedding: int = 0
    loss: int = 0


def _expand(text: str) -> str:
    """The layout with every repeat written out (innermost groups first)."""
    if len(text) > MAX_LAYOUT_CHARS:
        raise LayoutError(f"a layout of at most {MAX_LAYOUT_CHARS} characters")
    out = text.replace(",", "").replace(" ", "")
    while True:
        match = _GROUP.search(out)
        if match is None:
            break
        body, count = match.group(1), int(match.group(2))
        if len(body) * count > MAX_EXPANDED_SYMBOLS:
            raise LayoutError(f"at most {MAX_EXPANDED_SYMBOLS} symbols once expanded")
        out = out[:match.start()] + body * count + out[match.end():]
    if "(" in out or ")" in out:
        raise LayoutError("parentheses only around a group followed by *N, as in (tt|)*3")

    def repeat(found: re.Match[str]) -> str:
        count = int(found.group(2))
        if count > MAX_EXPANDED_SYMBOLS:
            raise LayoutError(f"at most {MAX_EXPANDED_SYMBOLS} symbols once expanded")
        return found.group(1) * count

    out = _SYMBOL_REPEAT.sub(repeat, out)
    if len(out) > MAX_EXPANDED_SYMBOLS:
        raise LayoutError(f"at most {MAX_EXPANDED_SYMBOLS} symbols once expanded")
    stray = sorted(set(out) - set(SYMBOLS) - {"|"})
    if stray:
        raise LayoutError(f"only the symbols E, t, m, L, |, *N and (...)*N (found {stray[0]!r})")
    return out


def parse(text: str) -> tuple[Chunk, ...]:
    """The chunks of a layout string, in forward order."""
    chunks = []
    for part in _expand(text).split("|"):
        chunks.append(Chunk(layers=part.count("t"), mtp=part.count("m"),
                            embedding=part.count("E"), loss=part.count("L")))
    return tuple(chunks)


def chunk_count(schedule: str, pp: int, v: int) -> int:
    """Model chunks a layout must have for ``schedule`` on ``pp`` ranks of ``v`` virtual
    stages (DualPipe: ``pp``; DualPipeV: ``2 pp``; the others ``pp v``)."""
    if schedule == "dualpipe":
        return pp
    if schedule == "dualpipev":
        return 2 * pp
    return pp * v


def rank_chunks(schedule: str, pp: int, count: int) -> list[list[int]]:
    """The chunk indices each of the ``pp`` ranks holds (module docstring)."""
    if schedule == "dualpipe":
        return [sorted({r, pp - 1 - r}) if pp > 1 else [0] for r in range(pp)]
    if schedule == "dualpipev":
        return [[r, count - 1 - r] for r in range(pp)]
    return [list(range(r, count, pp)) for r in range(pp)]


def check(chunks: tuple[Chunk, ...], layers: int, mtp: int, schedule: str, pp: int,
          v: int) -> str | None:
    """What is wrong with a layout for this model and split, or None."""
    want = chunk_count(schedule, pp, v)
    if len(chunks) != want:
        return (f"{want} chunks separated by '|' for schedule {schedule} with pp = {pp} and "
                f"virtual_stages = {v} (found {len(chunks)})")
    found = {"decoder layers (t)": (sum(c.layers for c in chunks), layers),
             "MTP modules (m)": (sum(c.mtp for c in chunks), mtp),
             "embeddings (E)": (sum(c.embedding for c in chunks), 1),
             "losses (L)": (sum(c.loss for c in chunks), 1)}
    for what, (have, need) in found.items():
        if have != need:
            return f"{need} {what} in the layout (found {have})"
    if chunks[0].embedding != 1:
        return "the embedding E in the first chunk"
    if chunks[-1].loss != 1:
        return "the loss L in the last chunk"
    return None


def in_flight_chunks(schedule: str, p: int, v: int, rank: int) -> int:
    """Model-chunk micro-batches whose activations pipeline rank ``rank`` holds at its peak:
    1F1B and ZB-H1 ``p - rank`` (the warm-up forwards, Narayanan et al. 2021 Sec. 2.2);
    interleaved 1F1B ``(v - 1) p + 2 (p - 1 - rank) + 1`` (Megatron-LM's warm-up count of the
    interleaved schedule, plus the steady-state forward); DualPipe ``p + 1`` on every rank
    (DeepSeek-V3 Table 2); DualPipeV ``2 p + 1`` chunks of half a device. Rank 0 gets what
    ``schedules.in_flight_micro_batches`` counts in micro-batches of the rank's layers."""
    if schedule == "dualpipe":
        return p + DUALPIPE_EXTRA_IN_FLIGHT
    if schedule == "dualpipev":
        return DUALPIPEV_STAGES_PER_DEVICE * p + DUALPIPE_EXTRA_IN_FLIGHT
    if schedule == "1f1b" and v > 1:
        return (v - 1) * p + 2 * (p - 1 - rank) + 1
    return p - rank


def chunk_flights(schedule: str, p: int, v: int, rank: int,
                  held: list[int]) -> dict[int, Fraction]:
    """How the rank's in-flight count (:func:`in_flight_chunks`) falls on its chunks. Under
    DualPipe each direction is a 1F1B pipeline: rank ``r`` is stage ``r`` of one (``p - r``
    micro-batches of chunk ``r``) and stage ``p - 1 - r`` of the other (``r + 1`` of chunk ``p
    - 1 - r``), ``p + 1`` in all; a simulation of DualPipe's reference schedule (deepseek-ai/
    DualPipe) holds 16 of rank 0's 17 in its first chunk at PP16. Elsewhere an even share."""
    count = in_flight_chunks(schedule, p, v, rank)
    if schedule == "dualpipe" and len(held) == 2:
        return {i: Fraction(p - rank if i == rank else rank + 1) for i in held}
    return {i: Fraction(count, len(held)) for i in held}


@dataclass(frozen=True)
class RankContent:
    """What one pipeline rank holds: ``held``, the sums over its chunks of (dense decoder
    layers, MoE decoder layers, MTP modules, embeddings, losses); ``flight``, the same (less the
    losses) weighted by each chunk's micro-batches in flight; ``count``, those micro-batches
    (chunks' worth) and ``chunks``, its chunk count. ``first`` is the lowest rank holding exactly
    this."""

    first: int
    held: tuple[int, int, int, int, int]
    flight: tuple[Fraction, Fraction, Fraction, Fraction]
    count: int
    chunks: int


def distinct_ranks(chunks: tuple[Chunk, ...], schedule: str, pp: int, v: int,
                   first_dense: int, moe_every: int, moe: bool) -> list[RankContent]:
    """Ranks whose contents differ (:class:`RankContent`). Decoder layer ``i`` (in forward
    order) is MoE when the model is, ``i >= first_dense`` and ``(i - first_dense) % moe_every
    == 0`` (specs.ModelSpec.moe_layers). Where two ranks hold the same layers, the one with
    more in flight (the earlier) is kept."""
    kinds = []
    index = 0
    for c in chunks:
        moe_layers = sum(1 for i in range(index, index + c.layers)
                         if moe and i >= first_dense and (i - first_dense) % moe_every == 0)
        kinds.append((c.layers - moe_layers, moe_layers, c.mtp, c.embedding, c.loss))
        index += c.layers
    seen: dict[tuple[object, ...], RankContent] = {}
    for rank, held in enumerate(rank_chunks(schedule, pp, len(chunks))):
        weights = chunk_flights(schedule, pp, v, rank, held)
        sums = tuple(sum(kinds[i][k] for i in held) for k in range(5))
        flight = tuple(sum((weights[i] * kinds[i][k] for i in held), Fraction(0))
                       for k in range(4))
        # Outside DualPipe the in-flight count falls with the rank, so of two ranks holding
        # the same chunks' layers the earlier holds the most; under DualPipe ranks are
        # alike where their weighted layers are.
        key: tuple[object, ...] = (sums, flight if schedule == "dualpipe"
                                   else tuple(sorted(kinds[i] for i in held)))
        if key not in seen:
            seen[key] = RankContent(rank, sums, flight, in_flight_chunks(schedule, pp, v, rank),
                                    len(held))
    return list(seen.values())


def max_chunk_layers(chunks: tuple[Chunk, ...]) -> int:
    """Decoder layers of the fullest chunk (it paces the pipeline)."""
    return max(c.layers for c in chunks)
