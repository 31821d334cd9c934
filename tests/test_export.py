"""Closed-form export: for every built-in case, the exported Python module and the compiled C
code give the numbers of ``perfcost evaluate`` at the case's configuration and at 20 random
valid configurations (relative 1e-12 for Python, 1e-9 for C)."""

from __future__ import annotations

import ctypes
import json
import math
import shutil
import subprocess
import types
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from perfcost.solver.case import catalog
from perfcost.solver.case import schema as case_mod
from perfcost.solver.case.errors import CaseError
from perfcost.solver.case.sections import ParallelismSection
from perfcost.solver.cli.main import app
from perfcost.solver.cost import case as cost_case
from perfcost.solver.cost import price as cost
from perfcost.solver.export import closed_form as export
from perfcost.solver.problem.evaluate import Evaluator, evaluate_case
from perfcost.solver.problem.search import systems_of
from perfcost.solver.problem.space import build_space, candidates
from perfcost.solver.problem.specs import check_config
from typer.testing import CliRunner

RANDOM_CONFIGS = 20
PYTHON_RTOL = 1e-12
C_RTOL = 1e-9
CC = shutil.which("cc")


def builtin_cases() -> list[str]:
    """Every runnable built-in case of the catalog, read when the tests are collected."""
    from case_selection import representative_cases

    # The studies span the formulation structures (tests/test_validation.py evaluates every
    # validation case; test_docs_pages_are_the_export renders the training export in full).
    return [n for n in representative_cases(validation=False) if n not in SLOW_STUDIES]


#: Left to tests/test_solve.py and tests/test_bound.py, which solve it: the Kimi K2 co-design
#: study's export takes ~10 s and repeats llama3-70b-chiplet-codesign's structure.
SLOW_STUDIES = ("kimi-k2-chiplet-codesign",)


def random_configs(case: Any, formulation: Any, count: int, seed: int
                   ) -> list[dict[str, float]]:
    """``count`` configurations of the case's model, cluster and system that pass every rule
    ``perfcost evaluate`` checks, drawn from the full space (the case's split left open)."""
    open_case = case.model_copy(update={"parallelism": ParallelismSection()})
    system = systems_of(open_case)[0][1]
    cands = candidates(build_space(open_case, [system]))
    assert len(cands) >= count, f"{case.name}: only {len(cands)} valid configurations"
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(cands), size=count, replace=False)
    out = []
    for i in picks:
        codes = {k: float(v[i]) for k, v in cands.columns.items()}
        user = {k: formulation.decisions[k].label(v) for k, v in codes.items()}
        user["sequence_parallel"] = user["sequence_parallel"] == "true"
        gpus = case.cluster.gpus
        check_config(case, user, gpus if isinstance(gpus, int) else None)
        out.append(codes)
    return out


#: Below this magnitude two values are both zero: a difference that cancels exactly (the
#: output-token cost of a deployment whose cost is all prefill) leaves rounding residue of
#: its terms (1e-12 of a cost of order 1), which a relative test would read as a mismatch.
ZERO = 1e-9


def close(got: float, want: float, rtol: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    if max(abs(got), abs(want)) <= ZERO:
        return True
    return got == want or abs(got - want) <= rtol * max(abs(want), 1e-300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


def build_c(built: export.Export, workdir: Path, name: str) -> ctypes.CDLL:
    prefix = "pc_"
    header, source = export.to_c(built, prefix, f"{name}.h")
    (workdir / f"{name}.h").write_text(header)
    (workdir / f"{name}.c").write_text(source)
    lib = workdir / f"{name}.so"
    done = subprocess.run([CC, "-std=c99", "-O0", "-ffp-contract=off", "-fPIC", "-shared",
                           "-o", str(lib), str(workdir / f"{name}.c"), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return ctypes.CDLL(str(lib))


def evaluated(case: Any) -> Any:
    """``perfcost evaluate``'s result, or None for a case that ``evaluate`` refuses because it
    leaves the split to ``perfcost solve`` (lists of values, or fields left out whose defaults
    do not fit the cluster); its random configurations are still checked."""
    try:
        return evaluate_case(case)
    except CaseError:
        return None


@pytest.mark.parametrize("name", builtin_cases())
def test_export_matches_evaluate(name: str, workdir: Path) -> None:
    loaded = case_mod.load(name)
    kind = export.case_kind(loaded)  # a kind export does not know raises: the test fails
    assert kind in export.KINDS
    pairs = systems_of(loaded)
    # A case offering several systems: its first and last (each its own parameter values).
    for index in sorted({0, len(pairs) - 1}):
        case = pairs[index][0]
        if len(pairs) == 1:
            case = loaded
        if kind == "serving":  # each deployment kind the case offers: its own formulation
            for mode in serving_modes(case):
                check_serving_export(name, index, with_mode(case, mode), workdir)
        else:
            check_case_export(name, index, case, workdir)


@dataclass
class Exported:
    """One export and its compiled forms, shared by every case of the same model structure:
    the expressions (and so the code) are the same, only the parameter values differ, and
    every call below passes the case's values explicitly."""

    built: export.Export
    module: types.ModuleType
    lib: ctypes.CDLL | None
    evaluator: Evaluator


_EXPORTS: dict[Any, Exported] = {}


def exported(name: str, formulation: Any, workdir: Path) -> Exported:
    key = (tuple(formulation.expressions.items()), tuple(formulation.decisions),
           tuple(formulation.parameters))
    found = _EXPORTS.get(key)
    if found is None:
        built = export.build_export(formulation, case=name)
        module = types.ModuleType(f"exported_{len(_EXPORTS)}")
        exec(compile(export.to_python(built, "test"), f"<export {name}>", "exec"),
             module.__dict__)
        lib = build_c(built, workdir, f"structure_{len(_EXPORTS)}") if CC else None
        if lib is not None:  # the C defaults are the case's values
            defaults = (ctypes.c_double * len(built.parameters)).in_dll(lib,
                                                                        "pc_default_params")
            assert list(defaults) == [p.value for p in built.parameters.values()]
        found = _EXPORTS[key] = Exported(built, module, lib, Evaluator(formulation))
    return found


def check_case_export(name: str, index: int, case: Any, workdir: Path) -> None:
    reference = evaluated(case)
    formulation = (reference.formulation if reference is not None
                   else export.case_formulation(case))
    shared = exported(name, formulation, workdir)
    built, module = shared.built, shared.module
    values = {n: p.value for n, p in formulation.parameters.items()}
    # The case's own export writes its values as the defaults.
    own = export.build_export(formulation, ["cost"], case=name)
    namespace: dict[str, Any] = {}
    exec(export.to_python(own), namespace)
    assert {n: v[0] for n, v in namespace["PARAMETERS"].items()} == values
    configs = random_configs(case, formulation, RANDOM_CONFIGS, seed=len(name) + index)
    if reference is not None:
        # The case's own configuration, against the real evaluate path and its JSON.
        configs.insert(0, export.case_decisions(case))
        got = module.evaluate({k: reference.config[k] for k in built.decisions}, **values)
        for q, value in reference.values.items():
            assert close(got[q], value, PYTHON_RTOL), (name, q, got[q], value)
        as_json = reference.to_json()
        assert close(got["iteration_time"], as_json["iteration_time_s"], PYTHON_RTOL)
        assert close(got["memory_per_gpu"], as_json["memory_per_gpu_bytes"], PYTHON_RTOL)
        assert close(got["cost"], as_json["cost_usd"], PYTHON_RTOL)

    check_codes(name, shared, formulation, configs, values)


# -- serving ---------------------------------------------------------------------------------

def serving_modes(case: Any) -> list[bool]:
    modes = case.serving.disaggregated
    return [bool(m) for m in (modes if isinstance(modes, list) else [modes])]


def with_mode(case: Any, disaggregated: bool) -> Any:
    return case.model_copy(update={"serving": case.serving.model_copy(
        update={"disaggregated": disaggregated})})


def open_serving(case: Any) -> Any:
    """The case with its splits and batch left to the search's default domains."""
    sv = case.serving
    prefill = sv.prefill.model_copy(update={"tp": None, "pp": None, "ep": None})
    return case.model_copy(update={"parallelism": ParallelismSection(), "serving": sv.model_copy(
        update={"batch": None, "prefill": prefill})})


def random_deployments(case: Any, formulation: Any, count: int, seed: int
                       ) -> list[dict[str, float]]:
    """``count`` deployments (decision codes) of the case's deployment kind that the serving
    search would accept but for the SLOs, drawn from its default domains."""
    cands = export.serving_candidates(open_serving(case))
    size = len(next(iter(cands.values())))
    assert size >= count, f"{case.name}: only {size} valid deployments"
    assert set(cands) == set(formulation.decisions)
    rng = np.random.default_rng(seed)
    return [{k: float(v[i]) for k, v in cands.items()}
            for i in rng.choice(size, size=count, replace=False)]


def deployment_sets(case: Any, formulation: Any, codes: dict[str, float]) -> list[str]:
    """``--set`` options that fix the deployment ``codes`` in the case (for ``evaluate``)."""
    where = {"tp": "parallelism.tp", "pp": "parallelism.pp", "ep": "parallelism.ep",
             "batch": "serving.batch", "precision": "serving.precision",
             "load": "serving.load", "dp_attention": "serving.dp_attention"}
    deployment = export.serving_deployment(case)
    sets = [f"hardware={deployment['hardware']}",
            f"serving.disaggregated={str(deployment['disaggregated']).lower()}"]
    if deployment["disaggregated"]:
        sets.append(f"serving.prefill.hardware={deployment['prefill_hardware']}")
    for name, value in codes.items():
        label = formulation.decisions[name].label(value)
        key = where.get(name) or "serving.prefill." + name.removeprefix("prefill_")
        sets.append(f"{key}={label!r}" if isinstance(label, str) else f"{key}={label}")
    return sets


def check_serving_export(name: str, index: int, case: Any, workdir: Path) -> None:
    formulation = export.case_formulation(case)
    shared = exported(name, formulation, workdir)
    built, module = shared.built, shared.module
    values = {n: p.value for n, p in formulation.parameters.items()}
    own = export.build_export(formulation, ["cost_per_million_tokens"], case=name)
    namespace: dict[str, Any] = {}
    exec(export.to_python(own), namespace)
    assert {n: v[0] for n, v in namespace["PARAMETERS"].items()} == values
    seed = len(name) + index + 2 * int(export.serving_deployment(case)["disaggregated"])
    configs = random_deployments(case, formulation, RANDOM_CONFIGS, seed)

    # The first deployment through the real command: `perfcost evaluate --set ... --json`.
    sets = deployment_sets(case, formulation, configs[0])
    fixed = case_mod.load(name, sets)
    assert export.case_decisions(fixed) == configs[0]
    run = CliRunner().invoke(app, ["evaluate", name, *[w for s in sets for w in ("--set", s)],
                                   "--json"])
    assert run.exit_code == 0, run.output
    as_json = json.loads(run.output)
    got = module.evaluate({k: as_json["config"][k] for k in built.decisions}, **values)
    for q, key in (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("e2e_latency", "e2e_latency_s"),
                   ("cost_per_million_tokens", "cost_per_million_tokens_usd"),
                   ("energy_per_token", "energy_per_token_j"),
                   ("kv_cache_bytes", "kv_cache_bytes"),
                   ("memory_per_gpu", "memory_per_gpu_bytes"),
                   ("throughput_tokens_per_s", "throughput_tokens_per_s")):
        assert close(got[q], as_json[key], PYTHON_RTOL), (name, q, got[q], as_json[key])
    assert round(got["gpus"]) == as_json["gpus"]
    check_codes(name, shared, formulation, configs, values)


def check_codes(name: str, shared: Exported, formulation: Any,
                configs: list[dict[str, float]], values: dict[str, float]) -> None:
    """Python and C against the evaluator (``perfcost evaluate``'s lambdified functions)."""
    built, module = shared.built, shared.module
    quantities = [f.name for f in built.forms]
    params = (ctypes.c_double * len(built.parameters))(*[values[n] for n in built.parameters])
    for codes in configs:
        want = shared.evaluator(codes, values)
        got = {q: getattr(module, q)(**codes, **values) for q in quantities}
        for q in quantities:
            assert close(got[q], want[q], PYTHON_RTOL), (name, codes, q, got[q], want[q])
        if shared.lib is not None:
            decisions = (ctypes.c_double * len(built.decisions))(
                *[codes[k] for k in built.decisions])
            out = (ctypes.c_double * len(quantities))()
            shared.lib.pc_evaluate(decisions, params, out)
            for i, q in enumerate(quantities):
                assert close(out[i], want[q], C_RTOL), (name, codes, q, out[i], want[q])


def test_serving_deployment_choices_are_one_line_errors() -> None:
    case = case_mod.load("serve-llama3-70b-disagg-wins")
    with pytest.raises(CaseError, match=r"pick one with --set serving\.disaggregated=true"):
        export.case_formulation(case)
    result = CliRunner().invoke(app, ["export", "serve-llama3-70b-disagg-wins"])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert result.output.count("\n") == 1


def test_c_compiler_present() -> None:
    """The C half of the acceptance needs ``cc``; say so instead of skipping quietly."""
    if CC is None:
        pytest.skip("no C compiler 'cc' on PATH: the C export is not compiled in this run")
    assert Path(CC).exists()


def test_parameters_are_overridable_and_fix_substitutes() -> None:
    case = case_mod.load("llama3-70b-h100")
    formulation = export.case_formulation(case)
    codes = export.case_decisions(case)
    faster = {"hbm_bandwidth": 2 * formulation.parameters["hbm_bandwidth"].value}
    want = Evaluator(formulation, ["iteration_time"])(codes, faster)["iteration_time"]

    full = export.build_export(formulation, ["iteration_time"])
    module = types.ModuleType("full")
    exec(export.to_python(full), module.__dict__)
    assert close(module.iteration_time(**codes, **faster), want, PYTHON_RTOL)

    fixed = export.build_export(formulation, ["iteration_time"],
                                {"hbm_bandwidth": str(faster["hbm_bandwidth"]),
                                 "recompute": "full", "zero": "1"})
    assert "hbm_bandwidth" not in fixed.parameters and "recompute" not in fixed.decisions
    module = types.ModuleType("fixed")
    exec(export.to_python(fixed), module.__dict__)
    rest = {k: v for k, v in codes.items() if k not in ("recompute", "zero")}
    want_fixed = Evaluator(formulation, ["iteration_time"])(
        {**codes, "zero": 1.0}, faster)["iteration_time"]
    assert codes["recompute"] == 2.0  # the case's own mode is full
    assert close(module.iteration_time(**rest), want_fixed, 1e-9)

    only_decisions = export.build_export(formulation, ["memory_per_gpu"],
                                         {export.ALL_PARAMETERS: None})
    assert not only_decisions.parameters


def test_bad_names_are_one_line_errors_with_suggestions() -> None:
    case = case_mod.load("llama3-70b-h100")
    formulation = export.case_formulation(case)
    with pytest.raises(CaseError, match="did you mean iteration_time"):
        export.build_export(formulation, ["iteration_tme"])
    with pytest.raises(CaseError, match="did you mean hbm_bandwidth"):
        export.build_export(formulation, [], {"hbm_bandwith": "1"})
    with pytest.raises(CaseError, match="expected a number"):
        export.build_export(formulation, [], {"hbm_bandwidth": "fast"})
    runner = CliRunner()
    result = runner.invoke(app, ["export", "llama3-70b-h100", "--format", "pdf"])
    assert result.exit_code == 2
    assert "expected one of latex, markdown, python, c, json" in result.output


def test_cli_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["export", "llama3-70b-h100", "--quantity", "iteration_time", "--quantity",
            "memory_per_gpu"]
    md = runner.invoke(app, [*base, "--format", "markdown"])
    assert md.exit_code == 0, md.output
    assert "perfcost export llama3-70b-h100 --format markdown" in md.output
    assert "| `hbm_bandwidth` | $B_{\\mathrm{hbm}}$ | B/s |" in md.output
    assert "\\mathrm{iteration\\_time} &=" in md.output
    tex = runner.invoke(app, [*base, "--format", "latex"])
    assert tex.exit_code == 0 and "\\begin{align*}" in tex.output
    out = tmp_path / "model"
    c = runner.invoke(app, [*base, "--format", "c", "-o", str(out)])
    assert c.exit_code == 0, c.output
    assert (tmp_path / "model.h").read_text().count("double llama3_70b_h100_") >= 2
    assert '#include "model.h"' in (tmp_path / "model.c").read_text()
    js = runner.invoke(app, [*base, "--format", "json"])
    assert js.exit_code == 0, js.output
    data = json.loads(js.output)
    it = data["quantities"]["iteration_time"]
    assert it["unit"] == "s" and it["expression"]
    # the compiled form of the search: a sum of products of tables
    assert it["compiled"]["objective_terms"], it.get("not_compiled")
    py = runner.invoke(app, [*base, "--format", "python", "--fix", "parameters"])
    assert py.exit_code == 0 and "def iteration_time(tp, pp," in py.output
    assert "hbm_bandwidth" not in py.output.split("def iteration_time")[1].split(":")[0]


DOCS = Path(__file__).resolve().parent.parent / "docs" / "formulations"


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_docs_pages_are_the_export(page: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page of docs/formulations/ is what the command at its top writes today."""
    import shlex

    text = (DOCS / page).read_text(encoding="utf-8")
    command = text.split("```\n", 2)[1].strip()
    words = shlex.split(command)
    assert words[:2] == ["perfcost", "export"] and words[-2:] == ["-o", f"docs/formulations/"
                                                                         f"{page}"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "formulations").mkdir(parents=True)
    result = CliRunner().invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "docs" / "formulations" / page).read_text(encoding="utf-8") == text


def test_serving_cli_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["export", "serve-llama3-70b-disagg-wins", "--set", "serving.disaggregated=true",
            "--quantity", "ttft", "--quantity", "tpot"]
    js = runner.invoke(app, [*base, "--format", "json"])
    assert js.exit_code == 0, js.output
    data = json.loads(js.output)
    assert data["formulation"] == "serving_disaggregated"
    assert set(data["decisions"]) >= {"prefill_tp", "tp", "batch", "precision"}
    assert data["quantities"]["ttft"]["compiled"] is None
    c = runner.invoke(app, [*base, "--format", "c", "-o", str(tmp_path / "serve")])
    assert c.exit_code == 0, c.output
    assert "double prefill_tp;" in (tmp_path / "serve.h").read_text()
    # A categorical decision fixed by its label; the rest of the deployment stays symbolic.
    py = runner.invoke(app, [*base, "--format", "python", "--fix", "precision=fp8",
                             "--fix", "prefill_precision=fp8"])
    assert py.exit_code == 0, py.output
    assert "def tpot(prefill_tp, prefill_pp, tp, pp, batch, *," in py.output
    md = runner.invoke(app, [*base, "--format", "markdown"])
    assert md.exit_code == 0 and "# The serving_disaggregated formulation" in md.output


# -- cost cases (perfcost cost): the accelerator and cluster formulations ---------------------

#: Values each design knob is widened with beyond the design's own choices: chiplet counts from
#: monolithic to an 8-way split, 2 to 12 HBM stacks, 8 to 36 links, and clusters from one
#: leaf switch past a three-tier fat-tree of radix 64 (65,536 endpoints; beyond it the tiers
#: are NaN, which the export must reproduce too).
WIDER: dict[str, tuple[float, ...]] = {
    "compute_chiplets": (1, 2, 3, 4, 8), "hbm_stacks": (2, 4, 6, 8, 12),
    "scale_up_links": (8, 12, 18, 24, 36),
    "accelerators": (8, 64, 1000, 2048, 4096, 65536, 300000), "scale_up_size": (1, 4, 8, 72)}
#: Die areas drawn uniformly (mm^2): small chiplets to beyond a 26 x 33 mm reticle.
AREA_RANGE = (50.0, 900.0)
#: Random configurations per design.
COST_CONFIGS = 24
#: Decisions and bookkeeping in ``perfcost cost --json`` that are not quantities.
COST_NOT_QUANTITIES = frozenset({"training_memory"})


def builtin_designs() -> list[str]:
    """Every built-in design (cases/designs/*.toml; components/ holds their parts)."""
    return sorted(catalog.entries("designs"))


def design_choices(target: export.CostTarget) -> dict[str, list[float]]:
    """The values the design lists for each decision (and the one ``perfcost cost`` picks)."""
    out = {k: {float(v)} for k, v in target.config.items()}
    sections = {**{k: target.case.design for k in cost.DESIGN_KEYS},
                **{k: target.case.system for k in cost.CLUSTER_KEYS}}
    for k in out:
        value = getattr(sections[k], k)
        if value is not None:
            out[k] |= {float(v) for v in (value if isinstance(value, list) else [value])}
    return {k: sorted(v) for k, v in out.items()}


def widened_configs(target: export.CostTarget, count: int, seed: int
                    ) -> list[dict[str, float]]:
    """``count`` configurations, each decision drawn from the design's own choices widened by
    :data:`WIDER` (die areas: the design's, or uniform over :data:`AREA_RANGE`)."""
    rng = np.random.default_rng(seed)
    choices = design_choices(target)
    out = []
    for _ in range(count):
        config = {}
        for k, own in choices.items():
            if k == "chiplet_area":
                config[k] = (float(rng.choice(own)) if rng.random() < 0.5
                             else float(rng.uniform(*AREA_RANGE)))
            else:
                config[k] = float(rng.choice(sorted(set(own) | set(WIDER[k]))))
        out.append(config)
    return out


def cost_module(built: export.Export) -> types.ModuleType:
    module = types.ModuleType(f"cost_{built.case}")
    exec(compile(export.to_python(built, "test"), f"<export {built.case}>", "exec"),
         module.__dict__)
    return module


def check_cost_export(name: str, cc: Any, as_json: dict[str, Any], workdir: Path) -> None:
    """The export of ``cc`` against ``perfcost cost --json`` (``as_json``: the chosen design
    and every configuration the case lists) and against solver.cost's evaluation at
    :data:`COST_CONFIGS` widened random configurations; Python to 1e-12, C to 1e-9."""
    target = export.cost_target(cc)
    formulation = target.formulation
    assert formulation.name == ("cluster" if cc.system is not None else "accelerator")
    built = export.cost_export(target)
    assert list(built.decisions) == list(cost.DESIGN_KEYS) + (
        list(cost.CLUSTER_KEYS) if cc.system is not None else [])
    module = cost_module(built)
    assert {n: v[0] for n, v in module.PARAMETERS.items()} == {
        n: p.value for n, p in formulation.parameters.items()}
    lib = build_c(built, workdir, f"cost_{name.replace('-', '_')}") if CC else None
    quantities = [f.name for f in built.forms]
    with_run_case = cc.run is not None and cc.run.case is not None

    # perfcost cost's own numbers: every quantity of the breakdown is a quantity exported.
    assert as_json["design"] == {k: (v if k == "chiplet_area" else round(v))
                                 for k, v in target.config.items()}
    got = module.evaluate(as_json["design"])
    reported = {k: v for group in cost.SECTIONS for k, v in as_json[group].items()
                if k not in target.config and k not in COST_NOT_QUANTITIES}
    assert reported and set(reported) <= set(quantities), set(reported) - set(quantities)
    for q, want in reported.items():
        assert close(got[q], math.nan if want is None else want, PYTHON_RTOL), (name, q)
    rows = [(row["config"], row["values"]) for row in as_json["alternatives"]
            if "values" in row]
    assert rows
    for config, values in rows:
        # perfcost cost sets a run.case's run time per design from the training model.
        extra = {"run_time": values["run_time"]} if with_run_case else {}
        got = module.evaluate(config, **extra)
        for q in quantities:
            want = values[q]
            assert close(got[q], math.nan if want is None else want, PYTHON_RTOL), (
                name, config, q, got[q], want)
        if lib is not None:
            c_values = c_evaluate(lib, built, {k: float(v) for k, v in config.items()},
                                  {**{n: p.value for n, p in built.parameters.items()},
                                   **extra})
            for q in quantities:
                want = values[q]
                assert close(c_values[q], math.nan if want is None else want, C_RTOL), (
                    name, config, q, c_values[q], want)

    # Widened random configurations: solver.cost's vectorised evaluation of the formulation.
    configs = widened_configs(target, COST_CONFIGS, seed=zlib.crc32(name.encode()))
    assert len({tuple(c.values()) for c in configs}) >= 20
    wants = cost.evaluate_configurations(formulation, configs)
    defaults = {n: p.value for n, p in built.parameters.items()}
    for config, want in zip(configs, wants, strict=True):
        got = {q: getattr(module, q)(**config) for q in quantities}
        c_values = c_evaluate(lib, built, config, defaults) if lib is not None else None
        for q in quantities:
            assert close(got[q], want[q], PYTHON_RTOL), (name, config, q, got[q], want[q])
            if c_values is not None:
                assert close(c_values[q], want[q], C_RTOL), (name, config, q, c_values[q],
                                                             want[q])


def c_evaluate(lib: ctypes.CDLL, built: export.Export, config: dict[str, float],
               parameters: dict[str, float]) -> dict[str, float]:
    decisions = (ctypes.c_double * len(built.decisions))(*[config[k] for k in built.decisions])
    params = (ctypes.c_double * len(built.parameters))(
        *[parameters[n] for n in built.parameters])
    out = (ctypes.c_double * len(built.forms))()
    lib.pc_evaluate(decisions, params, out)
    return {f.name: out[i] for i, f in enumerate(built.forms)}


def cost_json(args: list[str]) -> tuple[int, str]:
    run = CliRunner().invoke(app, args)
    return run.exit_code, run.output


#: What a design that ``perfcost cost`` refuses lacks, supplied for its export test: a cluster
#: size and a run (the h100-like design's 6 x 70e9 x 15e12 FLOPs at 40% MFU).
COMPLETION: dict[str, Any] = {"system": {"accelerators": [256, 1024]},
                              "run": {"tokens": 15e12, "flops": 6.3e24, "mfu": 0.4}}


@pytest.mark.parametrize("name", builtin_designs())
def test_cost_export_matches_perfcost_cost(name: str, workdir: Path) -> None:
    assert export.is_cost_case(name)
    code, output = cost_json(["cost", name, "--json"])
    if code == 0:
        check_cost_export(name, export.load_cost_case(name), json.loads(output), workdir)
        return
    # perfcost cost refuses the design as it stands: export refuses it with the same line...
    assert code == 2 and output.startswith("error: ") and output.count("\n") == 1, output
    code_x, output_x = cost_json(["export", name, "--format", "python"])
    assert (code_x, output_x) == (code, output)
    # ... and, with what it lacks supplied, exports what perfcost cost then prices.
    raw = case_mod.read_toml(cost_case.find(name))
    for section, values in COMPLETION.items():
        raw[section] = {**values, **raw.get(section, {})}
    completed = cost_case.from_dict(raw)
    check_cost_export(name, completed, cost.price_case(completed).to_json(), workdir)


def test_cost_docs_pages_exist() -> None:
    """One page per cost formulation, each checked by test_docs_pages_are_the_export."""
    for kind in export.COST_KINDS:
        text = (DOCS / f"{kind}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# The {kind} formulation (")
        assert f"-o docs/formulations/{kind}.md\n```" in text


def test_cost_cli_formats(tmp_path: Path) -> None:
    base = ["export", "h100-like", "--quantity", "capex", "--quantity", "price"]
    code, output = cost_json([*base, "--format", "json"])
    assert code == 0, output
    data = json.loads(output)
    assert data["formulation"] == "cluster" and list(data["quantities"]) == ["capex", "price"]
    assert data["quantities"]["capex"]["compiled"] is None
    assert data["quantities"]["capex"]["not_compiled"] == export.COST_NOT_COMPILED
    assert data["parameters"]["switch_radix"]["value"] == 64
    code, output = cost_json([*base, "--format", "python", "--fix", "parameters",
                              "--fix", "accelerators=1024"])
    assert code == 0, output
    assert "def capex(compute_chiplets, chiplet_area, hbm_stacks, scale_up_links, " \
           "scale_up_size):" in output
    namespace: dict[str, Any] = {}
    exec(output, namespace)
    want = json.loads(cost_json(["cost", "h100-like", "--json"])[1])["cluster"]["capex"]
    assert close(namespace["capex"](1, 814.0, 6, 18, 8), want, 1e-9)
    code, output = cost_json(["export", "b200-like", "--format", "c", "-o",
                              str(tmp_path / "b200")])
    assert code == 0, output
    assert "double chiplet_area;" in (tmp_path / "b200.h").read_text()
    code, output = cost_json(["export", "b200-like", "--format", "markdown", "--quantity",
                              "price"])
    assert code == 0 and output.startswith("# The accelerator formulation (b200-like)")
    assert "| `chiplet_area` | $A_{\\mathrm{c}}$ | mm^2 | decision |" in output
    assert "the expression `perfcost cost` computes" in output
    code, output = cost_json(["export", "b200-like", "--format", "latex", "--quantity",
                              "power"])
    assert code == 0 and "\\begin{align*}" in output
    # --set overrides the design before it is priced, inside a built-in entry too.
    code, output = cost_json(["export", "b200-like", "--format", "json", "--quantity",
                              "hbm_capacity", "--set", "design.memory.capacity='36 GB'"])
    assert code == 0, output
    capacity = json.loads(output)["parameters"]["hbm_stack_capacity"]["value"]
    assert capacity == pytest.approx(36e9)


def test_cost_case_from_a_file(tmp_path: Path) -> None:
    """A TOML file with a [design] table is a cost case; one without is not."""
    mine = tmp_path / "mine.toml"
    text = cost_case.find("b200-like").read_text(encoding="utf-8")
    mine.write_text(text.replace('name = "b200-like"', 'name = ""'), encoding="utf-8")
    assert export.is_cost_case(str(mine))
    assert not export.is_cost_case("llama3-70b-h100")
    code, output = cost_json(["export", str(mine), "--format", "python", "--quantity",
                              "price"])
    assert code == 0, output
    assert "for case mine." in output and "def price(compute_chiplets," in output


@pytest.mark.parametrize(("args", "expected"), [
    (["codesign-n5"], "system.accelerators is missing"),
    (["h100-like", "--quantity", "capx"], "did you mean capex"),
    (["h100-like", "--fix", "accelerators=many"], "expected a number"),
    (["h100-like", "--fix", "tp=2"], "expected a parameter or decision of the cluster"),
    (["b200-like", "--set", "design.chiplet_area='2000 mm^2'"], "reticle limit"),
    (["b200-like", "--set", "design.bogus=1"], "design.bogus"),
    (["b200-like", "--format", "pdf"], "expected one of latex"),
])
def test_cost_bad_input_is_one_line(args: list[str], expected: str) -> None:
    code, output = cost_json(["export", *args])
    assert code == 2, output
    assert output.startswith("error: ") and output.count("\n") == 1, output
    assert expected in output, output
