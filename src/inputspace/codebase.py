"""What a rule's code is, by content: its script and every module of this package that the
script imports, directly or through other modules.

The workflow gives each rule this digest as a param, so Snakemake reruns a rule exactly
when code it runs changed, and a figure's record holds the same digest. The digest is of
each file's syntax tree without docstrings: comments, formatting and docstrings do not
count, and neither does where the checkout lies. Reading the files costs milliseconds
and imports nothing, so parsing the workflow stays fast.
"""

import ast
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "inputspace"


def digest(script: Path, package: Path) -> str:
    """sha256 over the script and the package modules it imports (package: the folder
    holding the package's modules)."""
    script, package = Path(script), Path(package)
    total = hashlib.sha256()
    for path in [script, *imported_modules(script, package)]:
        name = path.name if path == script else f"{PACKAGE}/{path.name}"
        total.update(name.encode())
        total.update(_read(path, path.stat().st_mtime_ns).digest.encode())
    return total.hexdigest()


def identity(script: Path, package: Path, root: Path) -> dict[str, str]:
    """What a rule runs, as its `code` param and its figures' records hold it: the script
    (relative to the workflow folder `root`) and the digest of it and its modules."""
    relative = Path(script).resolve().relative_to(Path(root).resolve())
    return {"script": relative.as_posix(), "digest": digest(script, package)}


def imported_modules(script: Path, package: Path) -> list[Path]:
    """The package's modules that `script` imports, directly or not, by name; the
    package's __init__ first when any is imported (Python runs it first)."""
    found: set[Path] = set()
    pending = [Path(script)]
    while pending:
        path = pending.pop()
        for name in _read(path, path.stat().st_mtime_ns).imports:
            module = Path(package) / f"{name}.py"
            if module not in found and module.is_file():
                found.add(module)
                pending.append(module)
    init = Path(package) / "__init__.py"
    if found and init.is_file():
        found.add(init)
    return sorted(found, key=lambda path: (path != init, path.name))


@dataclass(frozen=True)
class _Source:
    imports: frozenset[str]  # names that may be the package's modules
    digest: str


@functools.cache  # keyed by mtime too: an edit within one process is seen
def _read(path: Path, mtime_ns: int) -> _Source:
    tree = ast.parse(path.read_text(), filename=str(path))
    return _Source(_package_imports(tree), _digest_without_docstrings(tree))


def _package_imports(tree: ast.Module) -> frozenset[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = f"{PACKAGE}.{node.module or ''}" if node.level else node.module or ""
            names.add(base.rstrip("."))
            names.update(f"{base.rstrip('.')}.{alias.name}" for alias in node.names)
    parts = (name.split(".") for name in names)
    return frozenset(p[1] for p in parts if p[0] == PACKAGE and len(p) > 1)


def _digest_without_docstrings(tree: ast.Module) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            del body[0]
            if not body:
                body.append(ast.Pass())
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()
