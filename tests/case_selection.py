"""Which built-in cases the per-case tests run: every study, and of the validation cases one
per validation suite and model structure -- cases alike in both share their formulation's
structure, so the others add run time, not coverage (the suites themselves evaluate every case:
tests/test_validation.py, tests/test_serving_validation.py)."""

from __future__ import annotations

from perfcost.solver.case import catalog
from perfcost.solver.case.schema import load


def _serving_structure(name: str) -> tuple[object, ...] | None:
    """What shapes a serving study's formulation (None for a training study): a mixture of
    experts, latent attention, disaggregation, number formats, speculative decoding, cached
    prefixes, data-parallel attention and a fixed GPU count; sizes and rates are values."""
    case = load(name)
    sv = case.serving
    if sv is None:
        return None
    m = case.model

    def listed(value: object) -> tuple[object, ...]:
        return tuple(value) if isinstance(value, list) else (value,)

    return (m.experts is not None, m.kv_lora_rank is not None, listed(sv.disaggregated),
            listed(sv.precision), sv.speculative, bool(sv.cached_prefixes),
            sv.dp_attention is not None, sv.gpus is not None)


def representative_cases(validation: bool = True) -> list[str]:
    """Every training study, one serving study per structure, and, with ``validation``, one
    validation case per suite and structure."""
    by_structure: dict[str, str] = {}
    studies = []
    for name in sorted(catalog.entries("studies")):
        key = _serving_structure(name)
        if key is None:
            studies.append(name)
        elif str(key) not in by_structure:
            by_structure[str(key)] = name
            studies.append(name)
    if not validation:
        return sorted(studies)
    by_suite: dict[str, str] = {}
    for name in catalog.entries("validation"):
        case = load(name)
        suite = case.validation.suite if case.validation is not None else name
        # The first case of each suite and structure (dense or MoE, latent attention,
        # number format).
        m = case.model
        key = (suite, m.experts is not None, m.kv_lora_rank is not None,
               case.training.precision if case.training is not None else "serving")
        by_suite.setdefault(str(key), name)
    picked = set(by_suite.values()) - set(SLOW_TO_EXPORT)
    return sorted(studies + list(picked))


#: Left out, with the reason: DeepSeek-V3's published layout (MoE, latent attention, FP8,
#: DualPipe, uneven stages and MTP in one formulation) takes about a minute to export and
#: differentiate; the DeepSeek-V3 study covers MoE with latent attention, the NeMo case FP8,
#: and tests/test_validation.py evaluates it.
SLOW_TO_EXPORT = ("deepseek-v3-pretrain-h800",)
