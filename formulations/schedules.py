"""Pipeline schedules: the idle time (bubble) of one pipeline flush, and what each schedule
keeps in memory.

Written in the times of one micro-batch on one stage: ``forward`` (F), the whole ``backward``
(B, input and weight gradients, recomputation included) and its ``weight_grad`` part (W, the
weight-gradient GEMMs that zero-bubble schedules defer), ``p`` stages and ``v`` model chunks
per stage:

* 1F1B, and interleaved 1F1B when ``v > 1``: ``(p - 1) / v * (F + B)`` (Narayanan et al.,
  SC'21, Sec. 2.2.1-2.2.2);
* ZB-H1: ``(p - 1) * (F + B - 2 W)``: deferring the weight gradients fills the cool-down, with
  1F1B's activation memory (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR'24, Sec. 3.1,
  whose ``T_B`` is the input gradient only: ``(p - 1)(T_F + T_B - T_W)``);
* DualPipe: ``(p/2 - 1) * (F&B + B - 3 W)`` with ``F&B = F + B`` the pair of mutually
  overlapped forward and backward chunks (their communication hidden); each stage holds two
  copies of its chunk's parameters and ``p + 1`` micro-batches of activations (DeepSeek-AI,
  "DeepSeek-V3 Technical Report", arXiv:2412.19437, Sec. 3.2.1, Table 2);
* DualPipeV: the V-shaped schedule "cut in half" from DualPipe runs ``2p`` stages of half a
  device's layers on ``p`` devices, with DualPipe's formulas in those stages
  (deepseek-ai/DualPipe README, "Pipeline Bubbles and Memory Usage Comparison (based on the
  same number of PP stages)": bubble ``(PP/2 - 1)(F&B + B - 3W)``, 2x a stage's parameters
  and ``PP + 1`` stages' activations per device, ``PP/2`` devices). In a device's own times
  that is ``(p - 1)/2 * (F + 2B - 3W)``, one copy of its layers and ``p + 1/2`` of its
  micro-batch activations.
"""

from __future__ import annotations

import sympy as sp

from .pipeline_layout import DUALPIPE_EXTRA_IN_FLIGHT, DUALPIPEV_STAGES_PER_DEVICE

SCHEDULES: tuple[str, ...] = ("1f1b", "zb-h1", "dualpipe", "dualpipev")
#: Schedules whose first rank also holds the last stage (and so the output layer): DualPipe
#: feeds micro-batches from both ends, rank ``i`` holding stages ``i`` and ``p - 1 - i``
#: (DeepSeek-V3 Sec. 3.2.3: "we deploy the shallowest layers (including the embedding layer)
#: and deepest layers (including the output head) of the model on the same PP rank"); the V
#: of DualPipeV puts stages ``0`` and ``2p - 1`` on device 0 (deepseek-ai/DualPipe README).
FIRST_RANK_HOLDS_LAST_STAGE: tuple[str, ...] = ("dualpipe", "dualpipev")
#: Parameter copies per stage (Table 2: DualPipe 2x, the others 1x).
PARAMETER_COPIES: dict[str, int] = {"1f1b": 1, "zb-h1": 1, "dualpipe": 2, "dualpipev": 1}


def bubble_time(schedule: str, p: sp.Expr, v: sp.Expr, forward: sp.Expr, backward: sp.Expr,
                weight_grad: sp.Expr) -> sp.Expr:
    """Idle time of one pipeline flush under ``schedule`` (see the module docstring)."""
    if schedule == "1f1b":
        return (p - 1) / v * (forward + backward)
    if schedule == "zb-h1":
        return (p - 1) * (forward + backward - 2 * weight_grad)
    if schedule == "dualpipe":
        overlapped_pair = forward + backward
        return sp.Max(0, p / 2 - 1) * (overlapped_pair + backward - 3 * weight_grad)
    if schedule == "dualpipev":
        k = DUALPIPEV_STAGES_PER_DEVICE
        stages = k * p
        overlapped_pair = (forward + backward) / k
        return (stages / 2 - 1) * (overlapped_pair + (backward - 3 * weight_grad) / k)
    raise ValueError(f"unknown pipeline schedule {schedule!r}; expected one of {SCHEDULES}")


def in_flight_micro_batches(schedule: str, p: sp.Expr) -> sp.Expr:
    """Micro-batches whose activations the first stage holds at its peak (1F1B: ``p``)."""
    if schedule == "dualpipe":
        return p + DUALPIPE_EXTRA_IN_FLIGHT
    if schedule == "dualpipev":
        # PP + 1 stages' worth, a stage being 1/k of the device's layers.
        k = DUALPIPEV_STAGES_PER_DEVICE
        return (k * p + DUALPIPE_EXTRA_IN_FLIGHT) / sp.Integer(k)
    return p

