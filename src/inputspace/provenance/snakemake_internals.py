"""Everything inputspace knows of Snakemake beyond its public interface, in one place.

Snakemake offers no public call for these; each may change in any minor release, so
tests/test_snakemake_internals.py exercises every one against the installed Snakemake and
fails on the release that breaks it (the workflow is tested with TESTED, requirements.txt).

- Where the file persistence keeps its records (.snakemake/metadata, one file per output
  named by its path in URL-safe base64, split into folders of at most a file name's length
  with '@' before each folder): read so that a run's history can be audited and published
  without Snakemake.
- Where it keeps its locks (.snakemake/locks/N.input.lock, N.output.lock): `unlock` does
  what `snakemake --unlock` does (the file persistence's cleanup_locks), without starting
  Snakemake again, while a run parses its Snakefile (before it locks).
- The name the SLURM executor gives every job of a run (its run_uuid), so that the jobs of
  a killed run can be found and cancelled.
- `Rule.set_params`, to give every scripted rule its code digest after parsing.
"""

import os
from base64 import urlsafe_b64decode, urlsafe_b64encode
from pathlib import Path
from typing import Any

TESTED = "9.27.1"
METADATA = Path(".snakemake/metadata")
LOCKS = Path(".snakemake/locks")


def metadata_path(workdir: Path, output: str) -> Path:
    """The file in which Snakemake keeps the record of `output` in `workdir`."""
    folder = Path(workdir) / METADATA
    longest = max((os.pathconf(folder, "PC_NAME_MAX") if folder.is_dir() else 255) or 255, 2)
    name = urlsafe_b64encode(output.encode()).decode()
    parts = [name[i : i + longest - 1] for i in range(0, len(name), longest - 1)]
    return folder.joinpath(*["@" + part for part in parts[:-1]], parts[-1])


def metadata_files(workdir: Path) -> dict[str, Path]:
    """Each output Snakemake keeps a record of in `workdir` -> the file that holds it."""
    folder = Path(workdir) / METADATA
    found = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
        parts = file.relative_to(folder).parts
        try:
            name = "".join(part.removeprefix("@") for part in parts)
            found[urlsafe_b64decode(name).decode()] = file
        except (ValueError, UnicodeDecodeError):
            continue  # not one of Snakemake's records
    return found


def lock_files(workdir: Path) -> list[Path]:
    """The lock files of the runs of `workdir` (empty when none holds a lock)."""
    folder = Path(workdir) / LOCKS
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def unlock(workdir: Path) -> None:
    """Remove every lock of `workdir`, as `snakemake --unlock` does (the folder stays: a
    run that has started writes its locks into it)."""
    for path in lock_files(workdir):
        path.unlink(missing_ok=True)


def slurm_run_id(workflow: Any) -> str | None:
    """The job name of this run's SLURM jobs (None when its executor is not SLURM's)."""
    executor = getattr(workflow.scheduler, "_executor", None)
    return getattr(executor, "run_uuid", None)


def set_params(rule: Any, **params: Any) -> None:
    """Add `params` to a parsed rule's params, as its params: directive would."""
    rule.set_params(**params)
