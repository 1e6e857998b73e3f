"""A prepared model folder's manifest.json: what prepare_model made it from and wrote.
Light on purpose (no torch): figure records read it too."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inputspace.errors import InputspaceError
from inputspace.hashing import changed_files, sha256_file

MANIFEST = "manifest.json"


def is_prepared(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputspaceError(
            f"{folder} is not a prepared model folder (no {MANIFEST}); run prepare_model"
        )
    return json.loads(path.read_text())


def damage(folder: Path, digest: Callable[[Path], str] = sha256_file) -> str | None:
    """One line if a prepared folder's files are no longer what prepare_model wrote (a
    changed or missing file, named), with the command that prepares it again; else None."""
    if not is_prepared(folder):
        return None
    changed = changed_files(Path(folder), read_manifest(folder)["files_sha256"], digest)
    if not changed:
        return None
    return (
        f"{', '.join(changed)}: not what prepare_model wrote; make it again with: "
        f"snakemake --forcerun {folder} (and the run's --configfile)"
    )
