"""The package's shape, read from its imports: no cycles between packages, and no layer importing a higher one.

Layers, lowest first (a module may import its own layer and those below). Imports inside ``if TYPE_CHECKING:``
are annotations, never executed, and are left out; imports inside functions are real dependencies and count.
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


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path) -> set[str]:
    """The compressbench modules ``path`` imports (relative imports resolved), TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for block in ast.walk(tree) if _type_checking(block) for n in ast.walk(block)}
    here = module_name(path).split(".")
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path):
    """The test itself can fail: an upward import written into a file is found."""
    planted = tmp_path / "compressbench" / "measure" / "x.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from compressbench.techniques.pruning import layers\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path / "compressbench"
    try:
        assert "compressbench.techniques.pruning" in imports(planted)
    finally:
        ROOT = saved
