"""Is each figure on disk still what the workflow would make? Snakemake's own plan says
whether it would make a figure again (and the plan's root causes say why); the prepared
models a figure shows must still hold what prepare_model wrote (Snakemake does not see a
file changed inside a folder it made); the figure's record says whether the file is still
the one the workflow made.
"""

import json
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path

import pandas as pd

from inputspace.hashing import sha256_file
from inputspace.model.manifest import damage
from inputspace.provenance import plan, stamp
from inputspace.provenance.record import SIDECAR


class Verdict(StrEnum):
    """What the audit and figure_check say of a figure."""

    FRESH = "fresh"  # Snakemake would not make it again, and the file is as it was made
    STALE = "stale"  # Snakemake would make it again (or the checkout's copy differs)
    CHANGED = "changed"  # the file, or a prepared model it shows, changed after it was made
    NOT_MADE = "not made"  # the workflow with this config does not make it
    UNVERIFIABLE = "unverifiable"  # no record, a damaged one, no such file

    @property
    def exit_status(self) -> int:
        """figure_check's exit status for it: 0 fresh, 2 cannot tell, else 1."""
        return {Verdict.FRESH: 0, Verdict.UNVERIFIABLE: 2}.get(self, 1)


def plan_verdict(path: str, planned: plan.Plan) -> tuple[Verdict, str]:
    """(status, why) of the output at `path` (relative to the working directory)."""
    output = planned.get(path)
    if output is None:
        return Verdict.NOT_MADE, "the workflow with this config does not make it"
    if output.pending:
        return Verdict.STALE, "Snakemake would make it again: " + "; ".join(
            plan.causes(path, planned)
        )
    return Verdict.FRESH, "Snakemake would not make it again"


def model_verdict(
    record: dict, workdir: Path, digest: Callable[[Path], str] = sha256_file
) -> tuple[Verdict, str] | None:
    """(Verdict.CHANGED, why) if a prepared model the figure shows no longer holds what
    prepare_model wrote (as found in `workdir`)."""
    for model in (record.get("models") or {}).values():
        folder = (model or {}).get("folder")
        damaged = folder and damage(Path(workdir) / folder, digest)
        if damaged:
            return Verdict.CHANGED, f"its model {folder} changed after it was prepared: {damaged}"
    return None


def image_verdict(figure: Path, record: dict) -> tuple[Verdict, str] | None:
    """(Verdict.CHANGED, why) if the file's picture is not the one its record was made with."""
    recorded = record.get("image_sha256")
    if recorded and stamp.image_sha256(figure) != recorded:
        return (
            Verdict.CHANGED,
            "the file was changed after it was made (its image differs from its record)",
        )
    return None


def audit_table(
    figures: Iterable[str],
    planned: plan.Plan,
    digest: Callable[[Path], str] = sha256_file,
    leftovers_under: Path | None = None,
) -> pd.DataFrame:
    """One row per figure the workflow makes (`figures`, as its rules name them, relative
    to the working directory), and one per recorded figure under `leftovers_under` that it
    does not make (left by an earlier config: not made)."""
    made = sorted(set(figures))
    leftovers = sorted(set(recorded_under(leftovers_under)) - set(made)) if leftovers_under else []
    return pd.DataFrame(
        [figure_row(figure, planned, digest) for figure in [*made, *leftovers]], columns=COLUMNS
    )


COLUMNS = ["figure", "status", "why", "made", "git_commit"]


def recorded_under(folder: Path) -> list[str]:
    """The figures with a record beside them under `folder`."""
    return [str(sidecar).removesuffix(SIDECAR) for sidecar in Path(folder).rglob(f"*{SIDECAR}")]


def figure_row(figure: str, planned: plan.Plan, digest: Callable[[Path], str]) -> dict:
    status, why = plan_verdict(figure, planned)
    sidecar = Path(figure + SIDECAR)
    if not sidecar.exists():
        if status == Verdict.FRESH:  # Snakemake would not make it, yet it has no record
            status, why = Verdict.UNVERIFIABLE, f"no record beside it ({sidecar.name})"
        return _row(figure, status, why)
    record, damaged = read_sidecar(sidecar)
    try:
        if status == Verdict.FRESH and not damaged:
            status, why = (
                model_verdict(record, Path(), digest)
                or image_verdict(Path(figure), record)
                or (status, why)
            )
        made, commit = record.get("created", ""), (record.get("git") or {}).get("commit", "")
    except (AttributeError, TypeError, ValueError) as error:
        damaged = f"a field of the wrong kind: {error}"
    if damaged:
        return _row(
            figure, Verdict.UNVERIFIABLE, f"its record {sidecar.name} is damaged ({damaged})"
        )
    return _row(figure, status, why, made, commit)


def _row(figure: str, status: Verdict, why: str, made: str = "", commit: str = "") -> dict:
    return dict(zip(COLUMNS, (figure, status, why, made, commit), strict=True))


def read_sidecar(sidecar: Path) -> tuple[dict, str]:
    """(the record, "") or ({}, what is damaged about it): unreadable, not JSON, or JSON
    that is no record (not an object)."""
    try:
        record = json.loads(sidecar.read_bytes())
    except OSError as error:
        return {}, f"unreadable: {error.strerror or error}"
    except ValueError as error:
        return {}, f"not JSON: {str(error).splitlines()[0]}"
    if not isinstance(record, dict):
        return {}, f"not a record but a JSON {type(record).__name__}"
    return record, ""
