"""The package's shape, read from its imports: no cycles between packages, and no layer importing a higher one.

Layers, lowest first (a module may import its own layer and those below). Every import counts: inside functions
(a real dependency, made later) and inside ``if TYPE_CHECKING:`` (an annotation that points up is still a
dependency that points up, and closes circles the reader must follow). No two modules may import each other,
however long the way round (a package's ``__init__`` re-exporting its own modules is no exception: the modules
then import a leaf module, not the package).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "compressbench"
LAYERS = [
    {"infra"},
    {"config", "results"},
    {"data", "models", "report", "plots"},
    {"adapters"},
    {"runtimes"},
    {"measure"},
    {"engine"},
    {"techniques"},
    {"stages"},
    {"tracking"},  # reads a finished run dir (results, history) and logs it through adapters; pipeline calls it
    {"pipeline"},
]
FACADES = {"compressbench", "compressbench.__main__"}  # the public API and the CLI sit on top of everything


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The compressbench modules ``path`` imports (relative imports resolved), wherever the import statement is."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("compressbench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = here if path.name == "__init__.py" else here[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("compressbench"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if (ROOT.parent / f"{base}.{a.name}".replace(
                    ".", "/")).with_suffix(".py").exists() or (ROOT.parent / f"{base}.{a.name}".replace(".", "/")).is_dir()}
    return found


def package_of(module: str) -> str:
    """The unit a cycle is looked for between: ``techniques.X`` for techniques, else the first subpackage."""
    parts = module.split(".")
    if len(parts) == 1:
        return module
    return ".".join(parts[:3]) if parts[1] == "techniques" and len(parts) > 2 else ".".join(parts[:2])


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return next((i for i, layer in enumerate(LAYERS) if parts[1] in layer), None)


GRAPH = {module_name(p): imports(p) for p in ROOT.rglob("*.py")}


def test_every_package_has_a_layer():
    unplaced = sorted({m.split(".")[1] for m in GRAPH if m not in FACADES and layer_of(m) is None})
    assert not unplaced, f"put these in a layer of {__file__}: {unplaced}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m not in FACADES))
def test_no_module_imports_a_higher_layer(module: str):
    mine = layer_of(module)
    upward = sorted(dep for dep in GRAPH[module] if dep not in FACADES and (layer_of(dep) or 0) > mine)
    assert not upward, f"{module} (layer {mine}) imports higher layers: {upward}"


def test_measure_imports_no_technique_code():
    for module, deps in GRAPH.items():
        if module.startswith("compressbench.measure"):
            assert not {d for d in deps if d.split(".")[1] in ("techniques", "stages", "pipeline", "engine")}, module


def test_no_import_cycles_between_packages():
    edges: dict[str, set[str]] = {}
    for module, deps in GRAPH.items():
        if module in FACADES:
            continue
        a = package_of(module)
        edges.setdefault(a, set()).update(package_of(d) for d in deps if package_of(d) != a and d not in FACADES)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def module_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(d for d in graph.get(node, ()) if d in graph and d != node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules():
    cycles = module_cycles(GRAPH)
    assert not cycles, "modules that import each other (directly or round a circle): " + "; ".join(
        " <-> ".join(group) for group in cycles)


def test_the_cycle_finder_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert module_cycles(graph) == [["a", "b", "c"]]
    assert module_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package, text, found", [
    ("measure", "from compressbench.techniques.pruning import layers\n", "compressbench.techniques.pruning"),
    # an annotation that points up is still a dependency that points up
    ("config", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from compressbench.pipeline import plan\n",
     "compressbench.pipeline"),
])
def test_the_checker_sees_a_planted_upward_import(tmp_path: Path, package: str, text: str, found: str):
    """The test itself can fail: an upward import written into a file is found."""
    planted = tmp_path / "compressbench" / package / "x.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(text)
    global ROOT
    saved, ROOT = ROOT, tmp_path / "compressbench"
    try:
        assert found in imports(planted)
    finally:
        ROOT = saved
