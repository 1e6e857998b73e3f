"""Snakemake's own plan for a working directory: which outputs it would make again, and why.

The audit and the per-figure check take a figure's freshness from here, so they cannot
disagree with Snakemake: a figure is stale exactly when `snakemake` would make it again.
What Snakemake reruns on is declared once per rule, as its params (the config it reads,
its code's digest, its model source's content), and the figure's record holds those params.
"""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from inputspace.errors import InputspaceError

HEADER = "output_file\tdate\trule\tlog-file(s)\tinput-file(s)\tshellcmd\tstatus\tplan"
OWN_CAUSES = {
    "missing": "missing",
    "updated input files": "an input file on disk is newer and differs",
    "rule implementation changed": "its rule's code changed",
    "set of input files changed": "its set of input files changed",
    "params changed": "its params changed (the config it reads, its code, its model's content)",
}


@dataclass(frozen=True)
class Output:
    """One output file in Snakemake's detailed summary."""

    path: str
    rule: str
    status: str  # Snakemake's: ok, missing, params changed, ...
    pending: bool  # Snakemake would make it again
    inputs: tuple[str, ...]  # as recorded when it was last made


def snakemake_plan(
    workdir: Path, snakefile: Path, configfile: Path | None = None
) -> dict[str, Output]:
    """Path -> Output for every output of the workflow's default target in `workdir`."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--detailed-summary",
        "--nolock",
        *(["--configfile", str(configfile)] if configfile else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or HEADER not in done.stdout:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no output"]
        raise InputspaceError(
            f"Snakemake could not plan the workflow in {workdir}: {lines[-1].strip()}"
        )
    return parse_summary(done.stdout)


def parse_summary(text: str) -> dict[str, Output]:
    rows = text[text.index(HEADER) + len(HEADER) :].strip("\n").splitlines()
    plan = {}
    for row in rows:
        fields = row.split("\t")
        if len(fields) != 8:
            continue
        path, _, rule, _, inputs, _, status, pending = fields
        listed = () if inputs == "-" else tuple(inputs.split(","))
        plan[path] = Output(path, rule, status, pending == "update pending", listed)
    return plan


def causes(path: str, plan: dict[str, Output]) -> list[str]:
    """Why Snakemake would make `path` again: '<output> (<rule>): <reason>' for the
    output itself or for each upstream output at the root of it, nearest first."""
    found: list[str] = []
    seen: set[tuple] = set()
    pending = [path]
    while pending:
        output = plan.get(pending.pop(0))
        job = output and (output.rule, output.inputs, output.status)  # one job, many outputs
        if output is None or job in seen or not output.pending:
            continue
        seen.add(job)
        if output.status in OWN_CAUSES:
            found.append(f"{output.path} ({output.rule}): {OWN_CAUSES[output.status]}")
        pending.extend(output.inputs)
    return found or [f"{path}: Snakemake would make it again"]
