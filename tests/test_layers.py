"""The package's subpackages are layers: a module imports only from its own subpackage
or from those below it (ARCHITECTURE.md draws them), and no modules import each other
in a cycle."""

import ast
from pathlib import Path

from inputspace.provenance import code_digest

PACKAGE = Path(code_digest.__file__).resolve().parents[1]
LAYERS = ["", "model", "analysis", "optimisation", "studies", "provenance", "workflow"]  # bottom up


def layer(module: Path) -> int:
    parts = module.relative_to(PACKAGE).parts
    return LAYERS.index(parts[0] if len(parts) > 1 else "")


def package_imports(module: Path) -> set[Path]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inputspace"):
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("inputspace")]
        for name in names:
            path = PACKAGE.joinpath(*name.split(".")[1:])
            for file in (path.with_suffix(".py"), path / "__init__.py"):
                if file.is_file() and file != module:
                    found.add(file)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    assert all(layer(module) >= 0 for module in MODULES)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = {
        (m.relative_to(PACKAGE).as_posix(), i.relative_to(PACKAGE).as_posix())
        for m in MODULES
        for i in package_imports(m)
        if layer(i) > layer(m)
    }
    assert not upward


def test_no_modules_import_each_other_in_a_cycle():
    graph = {m: package_imports(m) - {m} for m in MODULES if m.name != "__init__.py"}
    done, on_path = set(), []

    def visit(module):
        assert module not in on_path, " -> ".join(p.name for p in [*on_path, module])
        if module in done:
            return
        on_path.append(module)
        for imported in graph.get(module, ()):
            visit(imported)
        on_path.pop()
        done.add(module)

    for module in graph:
        visit(module)
