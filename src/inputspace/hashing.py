"""Content hashes for manifests and provenance."""

import hashlib
from collections.abc import Callable
from pathlib import Path

SNAKEMAKE_MARKER = ".snakemake_timestamp"  # Snakemake's own file in a directory output


def sha256_file(path: Path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file in `folder` but those named in `skip` and Snakemake's marker."""
    skipped = {*skip, SNAKEMAKE_MARKER}
    return {
        p.name: sha256_file(p)
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and p.name not in skipped
    }


def changed_files(
    folder: Path, recorded: dict[str, str], digest: Callable[[Path], str] = sha256_file
) -> list[str]:
    """'<path> (changed|missing)' for each file of `recorded` (name -> sha256) that
    `folder` no longer holds as recorded."""
    found = []
    for name, sha in sorted(recorded.items()):
        path = Path(folder) / name
        if not path.is_file():
            found.append(f"{path} (missing)")
        elif digest(path) != sha:
            found.append(f"{path} (changed)")
    return found
