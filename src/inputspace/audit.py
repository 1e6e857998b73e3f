"""Is each figure on disk still what the workflow would make? Snakemake's own plan says
whether it would make a figure again (and the plan's root causes say why); the prepared
models a figure shows must still hold what prepare_model wrote (Snakemake does not see a
file changed inside a folder it made); the figure's record says whether the file is still
the one the workflow made.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from inputspace import plan, provenance
from inputspace.hashing import sha256_file
from inputspace.manifest import damage
from inputspace.record import SIDECAR

FRESH, STALE, CHANGED, NOT_MADE = "fresh", "stale", "changed", "not made"


def plan_verdict(path: str, planned: plan.Plan) -> tuple[str, str]:
    """(status, why) of the output at `path` (relative to the working directory)."""
    output = planned.get(path)
    if output is None:
        return NOT_MADE, "the workflow with this config does not make it"
    if output.pending:
        return STALE, "Snakemake would make it again: " + "; ".join(plan.causes(path, planned))
    return FRESH, "Snakemake would not make it again"


def model_verdict(
    record: dict, workdir: Path, digest: Callable[[Path], str] = sha256_file
) -> tuple[str, str] | None:
    """(CHANGED, why) if a prepared model the figure shows no longer holds what
    prepare_model wrote (as found in `workdir`)."""
    for model in (record.get("models") or {}).values():
        folder = (model or {}).get("folder")
        damaged = folder and damage(Path(workdir) / folder, digest)
        if damaged:
            return CHANGED, f"its model {folder} changed after it was prepared: {damaged}"
    return None


def image_verdict(figure: Path, record: dict) -> tuple[str, str] | None:
    """(CHANGED, why) if the file's picture is not the one its record was made with."""
    recorded = record.get("image_sha256")
    if recorded and provenance.image_sha256(figure) != recorded:
        return CHANGED, "the file was changed after it was made (its image differs from its record)"
    return None


def audit_table(
    figures: Path, planned: plan.Plan, digest: Callable[[Path], str] = sha256_file
) -> pd.DataFrame:
    """One row per recorded figure under `figures` (relative to the working directory)."""
    rows = []
    for sidecar in sorted(Path(figures).rglob(f"*{SIDECAR}")):
        record = json.loads(sidecar.read_text())
        status, why = plan_verdict(record["figure"], planned)
        if status == FRESH:
            status, why = (
                model_verdict(record, Path(), digest)
                or image_verdict(Path(record["figure"]), record)
                or (status, why)
            )
        rows.append(
            {
                "figure": record["figure"],
                "status": status,
                "why": why,
                "made": record["created"],
                "git_commit": record["git"]["commit"],
            }
        )
    return pd.DataFrame(rows, columns=["figure", "status", "why", "made", "git_commit"])
