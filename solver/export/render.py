"""From a case to the text of an export, in one format: what ``perfcost export`` writes and
what ``perfcost.export`` returns. The case is a training or serving case, or a cost case (a
design of cases/designs/, or a file with a ``[design]`` table)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perfcost.solver.case.errors import CaseError


@dataclass(frozen=True)
class Rendered:
    """An export: one text per file (C: a header and a source; other formats: one file), and
    for the JSON format the data itself."""

    format: str
    files: dict[str, str]
    data: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """Every file's text, one after the other (what ``export`` prints without ``-o``)."""
        if len(self.files) == 1:
            return next(iter(self.files.values()))
        return "".join(f"/* ==== {name} ==== */\n{text}"
                       + ("\n" if name.endswith(".h") else "")
                       for name, text in self.files.items())


def command_line(case: str, fmt: str, quantities: Sequence[str], fixes: Sequence[str],
                 sets: Sequence[str], output: str | None, standalone: bool = False) -> str:
    """The canonical command that regenerates an export (written into its header)."""
    words = ["perfcost", "export", case, "--format", fmt]
    for q in quantities:
        words += ["--quantity", q]
    for f in fixes:
        words += ["--fix", f]
    for s in sets:
        words += ["--set", s]
    if standalone:
        words.append("--standalone")
    if output:
        words += ["-o", output]
    return shlex.join(words)


def render(case: str, fmt: str = "markdown", quantities: Sequence[str] = (),
           fixes: Sequence[str] = (), sets: Sequence[str] = (), output: str | None = None,
           prefix: str | None = None, standalone: bool = False) -> Rendered:
    """The export of ``case`` in ``fmt``; ``output`` names the files (C: ``OUTPUT.h`` and
    ``OUTPUT.c``) and goes into the regenerating command written in the header;
    ``standalone`` makes a LaTeX export a complete document."""
    from perfcost.solver.case import schema as case_mod
    from perfcost.solver.export import closed_form as ex

    if fmt not in ex.FORMATS:
        raise CaseError("--format", fmt, f"expected one of {', '.join(ex.FORMATS)}")
    if standalone and fmt != "latex":
        raise CaseError("--standalone", fmt, "expected --format latex (a standalone document "
                        "is LaTeX)")
    command = command_line(case, fmt, quantities, fixes, sets, output, standalone)
    document = fmt in ("latex", "markdown")
    if ex.is_cost_case(case):
        target = ex.cost_target(ex.load_cost_case(case, sets))
        built = ex.cost_export(target, quantities, ex.parse_fix(fixes), document=document)
        if not target.case.name:
            built = replace(built, case=Path(case).stem)
        compiled = None
        if fmt == "json":
            compiled = {f.name: {"compiled": None, "not_compiled": ex.COST_NOT_COMPILED}
                        for f in built.forms}
        return _emit(built, fmt, output, prefix, command, compiled, standalone)
    loaded = case_mod.load(case, list(sets))
    for section in ("hardware", "network"):
        entries = getattr(loaded, section)
        if isinstance(entries, list) and len(entries) > 1:
            raise CaseError(section, [e.name for e in entries],
                            f"export needs one entry; pick one with --set {section}=NAME")
    formulation = ex.case_formulation(loaded)
    built = ex.build_export(formulation, quantities, ex.parse_fix(fixes),
                            loaded.name or Path(case).stem, document=document)
    compiled = None
    if fmt == "json":
        from perfcost.solver.problem.search import systems_of

        compiled = ex.compiled_forms(systems_of(loaded)[0][0], [f.name for f in built.forms])
    return _emit(built, fmt, output, prefix, command, compiled, standalone)


def _emit(built: Any, fmt: str, output: str | None, prefix: str | None, command: str,
          compiled: dict[str, Any] | None, standalone: bool = False) -> Rendered:
    from perfcost.solver.export import closed_form as ex

    if fmt == "json":
        data = ex.to_json(built, compiled)
        data["command"] = command
        name = output or "export.json"
        from perfcost.solver.export.strict_json import dumps

        return Rendered(fmt, {name: dumps(data) + "\n"}, data)
    if fmt == "c":
        pre = prefix or ex.c_prefix(built.case)
        if not pre.isidentifier():
            raise CaseError("--prefix", pre, "expected a C identifier prefix, like 'gpt3_'")
        stem = Path(output) if output else Path("perfcost")
        stem = stem.with_suffix("") if stem.suffix in (".c", ".h") else stem
        header, source = ex.to_c(built, pre, stem.name + ".h", command)
        return Rendered(fmt, {str(stem.with_name(stem.name + ".h")): header,
                              str(stem.with_name(stem.name + ".c")): source})
    suffix = {"python": ".py", "latex": ".tex", "markdown": ".md"}[fmt]
    if fmt == "latex":
        text = ex.to_latex(built, command, standalone=standalone)
    else:
        text = {"python": ex.to_python, "markdown": ex.to_markdown}[fmt](built, command)
    return Rendered(fmt, {output or f"export{suffix}": text})
