"""The package's shape: imports run one way, with no circles.

Every import of every module under ``formulations/`` and ``solver/`` counts, including those
inside functions (a lazy import is still a dependency: it only hides the circle until the
function runs). Two rules:

- **layers**: a subpackage of ``solver/`` imports only from subpackages of a lower layer (or
  from itself); ``formulations/`` imports nothing from ``solver/``;
- **no circles** between modules.

The listing of the layers printed on failure is the architecture in one screen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Package folder -> dotted prefix under the one import package ``perfcost``.
FOLDERS = {"formulations": "perfcost.formulations", "solver": "perfcost.solver"}
#: Layers, lowest first: a module may import from its own part or from a lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("formulations",),
    ("solver.case",),
    ("solver.problem",),
    ("solver.cost", "solver.serving"),
    ("solver.engines",),
    ("solver.export",),
    ("solver.studies",),
    ("solver.fleet",),
    ("solver.report",),
    ("solver.api",),
    ("solver.cli",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two source folders."""
    out = {}
    for folder, prefix in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix, *parts])] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The project modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            # The longest known module the import names (``from pkg import mod`` names mod).
            while target and target not in known:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: set(imports_of(name, path, known)) for name, path in mods.items()}


def part_of(module: str) -> str:
    """``perfcost.solver.engines.bound`` -> ``solver.engines``; formulations are one part."""
    parts = module.split(".")[1:]
    if parts[0] == "formulations":
        return "formulations"
    return ".".join(parts[:2]) if len(parts) > 2 or (len(parts) == 2 and
                                                      f"solver.{parts[1]}" in RANK) else "solver"


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(g.items()):
        src = part_of(source)
        for target in sorted(targets):
            dst = part_of(target)
            if src == dst or dst == "solver":
                continue
            if src == "solver" or RANK.get(dst, -1) >= RANK.get(src, -1):
                bad.append(f"{source} ({src}) imports {target} ({dst})")
    return bad


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_every_solver_module_lives_in_a_layer() -> None:
    homeless = [m for m in graph() if part_of(m) not in RANK and m != "perfcost.solver"]
    assert not homeless, f"modules outside the layers {LAYERS}: {homeless}"


def test_imports_run_downward() -> None:
    bad = upward_imports(graph())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_circles() -> None:
    found = circles(graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checks_catch_what_they_should() -> None:
    """The checker itself: a made-up upward import and a made-up circle are both reported."""
    g = {"perfcost.solver.case.a": {"perfcost.solver.engines.b"},
         "perfcost.solver.engines.b": {"perfcost.solver.case.a"}}
    assert upward_imports(g) == ["perfcost.solver.case.a (solver.case) imports "
                                 "perfcost.solver.engines.b (solver.engines)"]
    assert circles(g) == [["perfcost.solver.case.a", "perfcost.solver.engines.b"]]
