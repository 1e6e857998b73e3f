"""What a rule runs, by content: its script, the package modules that compute its outputs,
and the libraries they import (or run, as `python -m <module>`).

The workflow gives each rule two params from here: `code` (the script's path and a digest
of it and of the package modules it imports) and `libraries` (the installed version of every
distribution that code imports, and of everything those require). Snakemake reruns a rule
exactly when one of them changes, and a figure's record holds both.

The code digest reads each file's syntax tree, so comments and formatting do not count, and
neither do docstrings, the messages of raised errors and warnings (a job that raises writes
no output), where the checkout lies, or which subpackage a module sits in (package imports
count by the names they bind, not by the path they name). The harness every script runs in
(log, threads, one-line errors, figure records: HARNESS) computes no output: neither it nor
what only it imports is part of a rule's code. Nothing here imports the libraries it
describes, so parsing the workflow stays fast.
"""

import ast
import functools
import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from inputspace.errors import InputspaceError
from inputspace.provenance.record import FIGURE_SUFFIXES

PACKAGE = "inputspace"
HARNESS = frozenset({f"{PACKAGE}.workflow.scripting", f"{PACKAGE}.errors"})
# What the harness does that shapes a job's outputs, and counts in its rule's code: torch's
# thread count in every job that imports torch (sums run in another order), the record
# written into every figure a job makes.
THREADS = f"{PACKAGE}.workflow.threads"
STAMP = f"{PACKAGE}.provenance.stamp"
# Build and install tools some libraries require (torch requires setuptools to compile
# extensions, which no job does): never part of a computation, so not a rule's library.
TOOLING = frozenset({"pip", "setuptools", "wheel"})
# Libraries a library loads at run time when they are installed, without requiring them:
# transformers reads GGUF files with gguf, loads weights through accelerate and imports
# scipy with a model's code; torch imports tqdm. They count as that library's
# requirements. (tests/test_audit.py holds the modules every job of a run had loaded
# against its rule's libraries: one missing here fails it.)
COMPANIONS = {"transformers": ("accelerate", "gguf", "scipy"), "torch": ("tqdm",)}


class UnresolvedImport(InputspaceError):
    """A package import that names no module of the package."""


def digest(script: Path, package: Path, effects: Iterable[str] = ()) -> str:
    """sha256 over the script and the package modules it imports (package: the folder
    holding the package's modules), with the harness modules in `effects` and what they
    import. Modules without statements (a subpackage's bare __init__) do not count, so
    that moving modules into subpackages is no change."""
    files = [Path(script), *imported_modules(script, package, effects=effects)]
    known: dict[Path, str] = {}
    contents = [
        _content_digest(path, Path(package), known) for path in files if not _read(path).empty
    ]
    total = hashlib.sha256(contents[0].encode())
    for module in sorted(contents[1:]):
        total.update(module.encode())
    return total.hexdigest()


def identity(
    script: Path, package: Path, root: Path, outputs: Iterable[str] = ()
) -> dict[str, str]:
    """What a rule runs, as its `code` param and its figures' records hold it: the script
    (relative to the workflow folder `root`) and the digest of it, its modules and the
    harness's effects on its `outputs`."""
    relative = Path(script).resolve().relative_to(Path(root).resolve())
    effects = harness_effects(script, package, outputs)
    return {"script": relative.as_posix(), "digest": digest(script, package, effects)}


def harness_effects(script: Path, package: Path, outputs: Iterable[str]) -> list[str]:
    """The harness modules that shape the outputs of a rule running `script`."""
    effects = [THREADS] if "torch" in third_party(script, package) else []
    if any(Path(output).suffix.lower() in FIGURE_SUFFIXES for output in outputs):
        effects.append(STAMP)
    return effects


def imported_modules(
    script: Path, package: Path, harness: bool = False, effects: Iterable[str] = ()
) -> list[Path]:
    """The package's module files that `script` imports, directly or through other
    modules, with the __init__ of every package on the way (Python runs them first);
    the harness and what only it imports are left out unless `harness`, but for the
    modules named in `effects` and what they import."""
    package = Path(package)
    found = {file for module in effects for file in _files_of(module, package, script, True)}
    pending = [Path(script), *found]
    while pending:
        path = pending.pop()
        importer = _module_name(path, package) if path.is_relative_to(package) else ""
        for module, required in _read(path).package_imports(importer, path.name == "__init__.py"):
            if module in HARNESS and not harness:
                continue
            for file in _files_of(module, package, path, required):
                if file not in found:
                    found.add(file)
                    pending.append(file)
    return sorted(found, key=lambda p: p.relative_to(package).as_posix())


def third_party(script: Path, package: Path, harness: bool = False) -> set[str]:
    """Top-level names of the modules outside the package and the standard library that
    the script and its package modules import (with the harness's: what the job's
    environment must hold)."""
    names: set[str] = set()
    for path in [Path(script), *imported_modules(script, package, harness)]:
        names |= _read(path).third_party
    return names


def _files_of(module: str, package: Path, importer: Path, required: bool) -> list[Path]:
    """The files Python runs to import `module` (a dotted name inside the package): each
    package's __init__ on the way, then the module itself. A name that may be a module or
    something a module defines (`from inputspace.a import b`) and is no module: none."""
    parts = module.split(".")[1:]
    if not required and not _module_file(package.joinpath(*parts)):
        return []
    files = []
    for depth in range(len(parts) + 1):
        folder = package.joinpath(*parts[:depth])
        file = _module_file(folder) if depth == len(parts) else folder / "__init__.py"
        if file is None or not file.is_file():
            raise UnresolvedImport(
                f"{importer} imports {module}, which is no module of {package}; fix the "
                "import (or the package layout) so that the code digest can follow it"
            )
        files.append(file)
    return files


def _module_file(name: Path) -> Path | None:
    """The file of the module or package at `name` (a path without suffix), if any."""
    for file in (name / "__init__.py", name.with_suffix(".py")):
        if file.is_file():
            return file
    return None


def _module_name(file: Path, package: Path) -> str:
    parts = list(file.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


# ------------------------------------------------------------------ one file, parsed


@dataclass(frozen=True)
class _Source:
    text: str
    content: str  # sha256 of the text
    imports: tuple[tuple[str, int, tuple[str, ...]], ...]  # (module, level, names) of each
    empty: bool  # no statement besides docstrings
    third_party: frozenset[str]

    def package_imports(self, name: str, is_package: bool) -> set[tuple[str, bool]]:
        """(dotted package module, whether it must exist) for each import of this file
        (module `name`, '' for a script): `from inputspace.a import b` needs inputspace.a,
        and names inputspace.a.b too, which may be a module or a name a.py defines."""
        found: set[tuple[str, bool]] = set()
        for module, level, names in self.imports:
            base = _absolute(module, level, name, is_package)
            if _in_package(base):
                found.add((base, True))
                found |= {
                    (f"{base}.{alias}", False) for alias, _ in names if alias and alias != "*"
                }
        return found


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(f"{PACKAGE}.")


def _absolute(module: str, level: int, importer: str, is_package: bool) -> str:
    """The absolute name an import names (a relative one, from module `importer`)."""
    if not level:
        return module
    parts = importer.split(".") if importer else []
    base = parts[: len(parts) - level + (1 if is_package else 0)]
    return ".".join([*base, *([module] if module else [])])


def _read(path: Path) -> _Source:
    stat = Path(path).stat()
    return _parsed(str(Path(path).resolve()), stat.st_ino, stat.st_ctime_ns, stat.st_size)


@functools.cache  # keyed by inode, change time and size: an edit within one process is seen
def _parsed(path: str, inode: int, ctime_ns: int, size: int) -> _Source:
    text = Path(path).read_text()
    content = hashlib.sha256(text.encode()).hexdigest()
    facts = _memo.facts_of(content)
    if facts is None:
        facts = _facts(text, path)
        _memo.add_facts(content, facts)
    imports, empty, third_party = facts
    return _Source(text, content, imports, empty, third_party)


def _facts(text: str, path: str) -> tuple:
    """(imports, whether empty, third-party top-level names) of a file's text."""
    tree = ast.parse(text, filename=path)
    imports = tuple(_imports(tree))
    top = {module.split(".")[0] for module, level, _ in imports if module and not level}
    third_party = {n for n in top if n != PACKAGE and n not in sys.stdlib_module_names}
    _drop_docstrings(tree)
    empty = all(isinstance(node, ast.Pass) for node in tree.body)
    return imports, empty, frozenset(third_party)


def _imports(tree: ast.Module):
    """(module, level, (name, as) bound from it) of every import statement, anywhere in
    the file, and of every module the file runs as `python -m <module>` (a command's list);
    `import a.b as c` gives ('a.b', 0, (('', 'c'),))."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0, (("", alias.asname),) if alias.asname else ()
        elif isinstance(node, ast.ImportFrom):
            names = tuple((alias.name, alias.asname) for alias in node.names)
            yield node.module or "", node.level, names
        elif isinstance(node, ast.List | ast.Tuple):
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, module in zip(words, words[1:]):
                if flag == "-m" and isinstance(module, str):
                    yield module, 0, ()


def _content_digest(path: Path, package: Path, known: dict[Path, str] | None = None) -> str:
    """sha256 of a file's syntax tree as the code digest counts it (see the module's
    docstring). Its package imports count by what each name they bind stands for: a
    module by that module's own digest, a name by the digest of the module it comes from,
    the harness by its name; so a module renamed or moved (and imported under its new
    name), or imports regrouped or reordered, is no change.
    `known`: the digests already taken within one digest() (a module imported twice)."""
    known = {} if known is None else known
    path, folder = Path(path).resolve(), Path(package)
    if known.get(path) == _PENDING:
        raise UnresolvedImport(
            f"{path} imports itself through other package modules (an import cycle); "
            "break the cycle so that the code digest can follow it"
        )
    if path not in known:
        known[path] = _PENDING
        stands_for = {
            name: _standing_for(module, folder, path, known)
            for name, module in _bindings(path, folder).items()
        }
        stat = path.stat()
        key = (str(path), stat.st_ino, stat.st_ctime_ns, stat.st_size)
        known[path] = _digested(*key, tuple(sorted(stands_for.items())))
    return known[path]


_PENDING = "digest pending"


def _bindings(path: Path, folder: Path) -> dict[str, str]:
    """Each name the file's package imports bind -> the dotted name it refers to (a module,
    or `module:name` for something a module defines)."""
    source = _read(path)
    importer = _module_name(path, folder) if path.is_relative_to(folder) else ""
    is_package = path.name == "__init__.py"
    bound = {}
    for module, level, names in source.imports:
        base = _absolute(module, level, importer, is_package)
        if not _in_package(base):
            continue
        for alias, as_name in names:
            if level == 0 and not alias:  # import inputspace.a.b as c
                bound[as_name] = base
            elif alias and alias != "*":
                dotted = f"{base}.{alias}"
                is_module = _module_file(folder.joinpath(*dotted.split(".")[1:])) is not None
                bound[as_name or alias] = dotted if is_module else f"{base}:{alias}"
        if level == 0 and not names and base != PACKAGE:  # import inputspace.a
            bound.setdefault(PACKAGE, PACKAGE)
    return bound


def _standing_for(target: str, folder: Path, importer: Path, known: dict[Path, str]) -> str:
    """What a bound name counts as: the harness by its name; a module (or what a module
    defines) by that module's digest and the name."""
    module, _, name = target.partition(":")
    if module in HARNESS:  # by no name of its own: moving the harness is no change either
        return "the harness" + (f" name {name}" if name else "")
    if module == PACKAGE:
        return target
    file = _module_file(folder.joinpath(*module.split(".")[1:]))
    if file is None or file.resolve() == importer:
        return target
    digest = _content_digest(file, folder, known)
    return f"module {digest}" + (f" name {name}" if name else "")


@functools.cache  # keyed by the file's stat and what its bound names stand for
def _digested(
    path: str, inode: int, ctime_ns: int, size: int, stands_for: tuple[tuple[str, str], ...]
) -> str:
    source = _read(Path(path))
    key = hashlib.sha256(f"{source.content} {stands_for!r}".encode()).hexdigest()
    found = _memo.digest_of(key)
    if found is None:
        found = _normalised_digest(source.text, path, stands_for)
        _memo.add_digest(key, found)
    return found


def _normalised_digest(text: str, path: str, stands_for: tuple[tuple[str, str], ...]) -> str:
    modules = {name: token for name, token in stands_for if " name " not in token}
    tree = _Normaliser(modules).visit(ast.parse(text, filename=path))
    _drop_docstrings(tree)
    # a module's name is replaced by its token where it is used; a name from a module is
    # used as itself
    imported = sorted(
        token if name in modules else f"{name} = {token}" for name, token in stands_for
    )
    return hashlib.sha256((ast.dump(tree) + repr(imported)).encode()).hexdigest()


class _Normaliser(ast.NodeTransformer):
    """Leave out what cannot change an output: the messages of raised errors and of
    warnings, the path of package imports, and the names package modules are bound to
    (each stands for the module's digest)."""

    def __init__(self, modules: dict[str, str]):
        self.modules = modules  # bound name -> what stands for it

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.modules.get(node.id, node.id)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.Raise:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return ast.Raise(exc=exc and self.visit(exc), cause=None)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "warn":
            if isinstance(func.value, ast.Name) and func.value.id == "warnings":
                return ast.Call(func=func, args=[], keywords=[])
        return self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> ast.Import | None:
        node.names = [alias for alias in node.names if not _in_package(alias.name)]
        return node if node.names else None  # package imports count by what they bind

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.ImportFrom | None:
        if node.level or _in_package(node.module or ""):
            return None  # counted by what it binds (see _content_digest)
        return node


def _drop_docstrings(tree: ast.Module) -> None:
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


# ------------------------------------------------------------------ between processes


class Memo:
    """What the code digest computed in earlier processes, kept in a JSON file: every
    Snakemake start digests every rule's code (the workflow's own, and two in each SLURM
    job), which means parsing each module's syntax tree twice. Each file's facts are kept
    by the sha256 of its text, each module's digest by that and what its imported names
    stand for: a key names content, so no entry can go stale. The file as a whole belongs
    to this module's own source and Python's version (a tree's dump differs between
    versions); another one's file is not read. Saving keeps only the entries this process
    used, so edits do not pile up."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.key = hashlib.sha256(Path(__file__).read_bytes() + sys.version.encode()).hexdigest()
        stored = _read_state(path, self.key) or {}
        self.stored = {kind: dict(stored.get(kind) or {}) for kind in ("facts", "digests")}
        self.used: dict[str, dict] = {"facts": {}, "digests": {}}

    def facts_of(self, content: str) -> tuple | None:
        found = self.stored["facts"].get(content)
        if found is None:
            return None
        self.used["facts"][content] = found
        imports, empty, third_party = found
        return (
            tuple((module, level, tuple(map(tuple, names))) for module, level, names in imports),
            empty,
            frozenset(third_party),
        )

    def add_facts(self, content: str, facts: tuple) -> None:
        imports, empty, third_party = facts
        self.used["facts"][content] = [imports, empty, sorted(third_party)]

    def digest_of(self, key: str) -> str | None:
        found = self.stored["digests"].get(key)
        if found is not None:
            self.used["digests"][key] = found
        return found

    def add_digest(self, key: str, digest: str) -> None:
        self.used["digests"][key] = digest

    def save(self) -> None:
        """Write the entries this process used, where they differ from the file's."""
        as_stored = json.loads(json.dumps(self.used))
        if as_stored != self.stored:
            _write_state(self.path, self.key, as_stored)


def _read_state(path: Path | None, key: str | list[str]) -> dict | None:
    """What `_write_state` wrote to `path` under `key`; None for a missing, damaged or another
    key's file."""
    try:
        stored = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and stored.get("key") == key else None


def _write_state(path: Path | None, key: str | list[str], body: dict) -> None:
    """Write `body` under `key` to `path` at once (a partial file, then a rename); a file
    that cannot be written is left as it was: it only saves work at the next start."""
    if not path:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps({"key": key, **body}))
        partial.replace(path)
    except OSError:
        pass


_memo = Memo()


def remember_in(path: Path) -> Memo:
    """Keep this process's digests in `path` (read now; written by the returned memo's
    save()) for the next process to start from."""
    global _memo
    _memo = Memo(path)
    return _memo


# ------------------------------------------------------------------ libraries


def libraries(script: Path, package: Path, environment: "Environment") -> dict[str, str]:
    """The `libraries` param: Python's version and the installed version of each
    distribution the rule's code imports, and of everything those require."""
    return {
        "python": platform.python_version(),
        **environment.versions(third_party(script, package)),
    }


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """The versions of these distributions in this process's environment (None where one
    is not installed): what a job records it ran with."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


class Environment:
    """The installed distributions as the code digest needs them: which distribution
    provides each top-level module, and each distribution's version and requirements.
    Read from the installed metadata once and remembered in a JSON file (keyed by the
    interpreter and the distributions' metadata folders on the import path), since reading
    every distribution's file list takes most of a second."""

    def __init__(self, cache: Path | None = None):
        self.cache = cache
        self.key = _environment_key()
        self._map: dict | None = None

    def versions(self, modules: Iterable[str]) -> dict[str, str]:
        """{distribution: version} of the distributions providing `modules` (top-level
        names) and everything they require, sorted by name."""
        return self.closure(self.providers(modules))

    def providers(self, modules: Iterable[str]) -> set[str]:
        """The installed distributions that provide these top-level modules."""
        found = self._map_of_installed()["providers"]
        return {dist for module in modules for dist in found.get(module, [])}

    def closure(self, distributions: Iterable[str]) -> dict[str, str]:
        """{distribution: version} of these distributions and everything they require
        (installed ones; build tooling left out), sorted by name."""
        installed = self._map_of_installed()["distributions"]
        pending = [_normalised(name) for name in distributions]
        found: dict[str, str] = {}
        while pending:
            dist = pending.pop()
            if dist in found or dist in TOOLING or dist not in installed:
                continue
            version, requires = installed[dist]
            found[dist] = version
            pending.extend(requires)
        return dict(sorted(found.items()))

    def _map_of_installed(self) -> dict:
        if self._map is None:
            self._map = self._remembered() or self._read_installed()
        return self._map

    def _remembered(self) -> dict | None:
        stored = _read_state(self.cache, self.key)
        return stored.get("map") if stored else None

    def _read_installed(self) -> dict:
        providers = {
            module: sorted({_normalised(d) for d in dists})
            for module, dists in metadata.packages_distributions().items()
        }
        distributions = {}
        for dist in metadata.distributions():
            name = _normalised(dist.metadata["Name"] or "")
            if name and name not in distributions:
                distributions[name] = [dist.version, _requirements(dist)]
        found = {"providers": providers, "distributions": distributions}
        _write_state(self.cache, self.key, {"map": found})
        return found


def _environment_key() -> list[str]:
    """The interpreter and every distribution's metadata folder on the import path (their
    names hold the versions: an install, upgrade or uninstall changes the list)."""
    found = [sys.prefix, platform.python_version()]
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found += sorted(f"{entry}/{n}" for n in names if n.endswith((".dist-info", ".egg-info")))
    return found


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: metadata.Distribution) -> list[str]:
    """The distributions `dist` requires here: not those of its extras, nor those whose
    environment marker does not hold on this Python and platform; with the libraries it
    loads at run time (COMPANIONS)."""
    names = list(COMPANIONS.get(_normalised(dist.metadata["Name"] or ""), ()))
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue  # metadata no installer could have acted on
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(_normalised(requirement.name))
    return names
