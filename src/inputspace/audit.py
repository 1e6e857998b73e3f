"""Is each figure on disk still what the workflow would make? Snakemake's own plan says
whether it would make a figure again (and the plan's root causes say why); the figure's
record says whether the file is still the one the workflow made.
"""

import json
from pathlib import Path

import pandas as pd

from inputspace import plan, provenance

FRESH, STALE, CHANGED, NOT_MADE = "fresh", "stale", "changed", "not made"


def plan_verdict(path: str, planned: dict[str, plan.Output]) -> tuple[str, str]:
    """(status, why) of the output at `path` (relative to the working directory)."""
    output = planned.get(path)
    if output is None:
        return NOT_MADE, "the workflow with this config does not make it"
    if output.pending:
        return STALE, "Snakemake would make it again: " + "; ".join(plan.causes(path, planned))
    return FRESH, "Snakemake would not make it again"


def image_verdict(figure: Path, record: dict) -> tuple[str, str] | None:
    """(CHANGED, why) if the file's picture is not the one its record was made with."""
    recorded = record.get("image_sha256")
    if recorded and provenance.image_sha256(figure) != recorded:
        return CHANGED, "the file was changed after it was made (its image differs from its record)"
    return None


def audit_table(figures: Path, planned: dict[str, plan.Output]) -> pd.DataFrame:
    """One row per recorded figure under `figures` (relative to the working directory)."""
    rows = []
    for sidecar in sorted(Path(figures).rglob(f"*{provenance.SIDECAR}")):
        record = json.loads(sidecar.read_text())
        status, why = plan_verdict(record["figure"], planned)
        if status == FRESH:
            status, why = image_verdict(Path(record["figure"]), record) or (status, why)
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
