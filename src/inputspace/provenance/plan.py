"""Snakemake's own plan for a working directory: which outputs it would make again, and why.

The audit and the per-figure check take a figure's freshness from here, so they cannot
disagree with Snakemake: a figure is stale exactly when `snakemake` would make it again.
What Snakemake reruns on is declared once per rule, as its params (the config it reads,
its code's digest, its libraries' versions, its model source's content), and the figure's
record holds those params. Where a rule's params changed, the params Snakemake recorded
when it last ran the rule say which: the libraries (`torch 2.13.0 -> 2.14.0`), the code,
or the config and model source.

Anything this module cannot read (a plan that does not finish, a row of an unknown shape,
a status it does not know) is an error, never a guess: a figure is never called fresh, nor
"not made", on a plan that was not understood.
"""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inputspace.errors import InputspaceError
from inputspace.model import source_content
from inputspace.provenance import code_digest, history, snakemake_internals

HEADER = "output_file\tdate\trule\tlog-file(s)\tinput-file(s)\tshellcmd\tstatus\tplan"
TIMEOUT_S = 600
OWN_CAUSES = {
    "missing": "missing",
    "updated input files": "an input file on disk is newer and differs",
    "rule implementation changed": "its rule's code changed",
    "set of input files changed": "its set of input files changed",
    "params changed": "its params changed (its config, code, libraries or model's content)",
}
# Snakemake's other statuses (9.27, dag.summary): an output there, or one that is never kept
STATUSES = {
    "ok",
    "file local to node",
    "removed temp file",
    "pipe file",
    "service file",
    *OWN_CAUSES,
}
PLANS = {"update pending": True, "no update": False}


class PlanError(InputspaceError):
    """Snakemake's plan could not be made or read."""


@dataclass(frozen=True)
class Output:
    """One output file in Snakemake's detailed summary."""

    path: str
    rule: str
    status: str  # Snakemake's: ok, missing, params changed, ...
    pending: bool  # Snakemake would make it again
    inputs: tuple[str, ...]  # as recorded when it was last made


@dataclass(frozen=True)
class Plan:
    """Every output of the workflow's default target in a working directory."""

    outputs: dict[str, Output]
    workdir: Path  # where Snakemake's records of the last runs are (.snakemake/)
    root: Path  # the workflow's folder (Snakefile, scripts/, src/)

    def get(self, path: str) -> Output | None:
        return self.outputs.get(path)


def snakemake_plan(
    workdir: Path,
    snakefile: Path,
    configfile: Path | None = None,
    deployment: Sequence[str] = (),
) -> Plan:
    """Snakemake's plan for every output of the workflow's default target in `workdir`,
    with the run's software deployment (`--sdm`: with conda, a rule's libraries are its
    env, so the plan must be made as the run was)."""
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
        *(["--software-deployment-method", *deployment] if deployment else []),
    ]
    try:
        # from the working directory: Snakemake takes a profiles/default it finds there
        # before the workflow's own, so planning from elsewhere could plan another run
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=workdir
        )
    except subprocess.TimeoutExpired:
        raise PlanError(
            f"Snakemake did not finish planning the workflow in {workdir} within {TIMEOUT_S} s; "
            "run `snakemake --detailed-summary` there to see where it hangs"
        ) from None
    if done.returncode != 0 or HEADER not in done.stdout:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no output"]
        raise PlanError(f"Snakemake could not plan the workflow in {workdir}: {lines[-1].strip()}")
    return Plan(parse_summary(done.stdout), Path(workdir), Path(snakefile).parent)


def parse_summary(text: str) -> dict[str, Output]:
    """Path -> Output for each row of Snakemake's detailed summary."""
    rows = text[text.index(HEADER) + len(HEADER) :].strip("\n").splitlines()
    plan = {}
    for row in rows:
        fields = row.split("\t")
        # output, date, rule, logs, inputs, shell command (may hold tabs), status, plan
        if len(fields) < 8 or fields[-2] not in STATUSES or fields[-1] not in PLANS:
            raise PlanError(
                f"a row of Snakemake's plan is not one this version of inputspace reads "
                f"({row[:200]!r}); the audit is made for Snakemake 9.27 (requirements.txt)"
            )
        path, rule, inputs, status, pending = fields[0], fields[2], fields[4], *fields[-2:]
        listed = () if inputs == "-" else tuple(inputs.split(","))
        plan[path] = Output(path, rule, status, PLANS[pending], listed)
    return plan


def causes(path: str, plan: Plan) -> list[str]:
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
            found.append(f"{output.path} ({output.rule}): {own_cause(output, plan)}")
        pending.extend(output.inputs)
    return found or [f"{path}: Snakemake would make it again"]


def own_cause(output: Output, plan: Plan) -> str:
    if output.status != "params changed":
        return OWN_CAUSES[output.status]
    siblings = [
        o.path for o in plan.outputs.values() if (o.rule, o.inputs) == (output.rule, output.inputs)
    ]
    recorded = recorded_params(plan.workdir, output.path)
    changes = params_changes(recorded, plan.root, plan.workdir, siblings)
    return "its params changed: " + "; ".join(changes) if changes else OWN_CAUSES[output.status]


def params_changes(
    recorded: dict[str, object] | None, root: Path, workdir: Path, outputs: Sequence[str] = ()
) -> list[str]:
    """Which of the params a job ran with (by name, as its harness noted them) differ now:
    its model source's content, its libraries (each version that changed), its code (the
    job's `outputs` tell which of the harness's effects count); else which params it has
    beside those, one of which changed; [] when nothing was noted."""
    if not recorded:
        return []
    code, libraries = recorded.get("code"), recorded.get("libraries")
    script = root / code["script"] if isinstance(code, dict) and "script" in code else None
    if script is None or not script.is_file():
        return []
    package = root / "src" / code_digest.PACKAGE
    environment = code_digest.Environment(workdir / ".snakemake/inputspace-environment.json")
    found = source_changes(recorded, workdir)
    if isinstance(libraries, dict):
        moved = version_changes(libraries, code_digest.libraries(script, package, environment))
        if moved:
            found.append("its libraries: " + ", ".join(moved))
    if code_digest.identity(script, package, root, outputs)["digest"] != code.get("digest"):
        found.append(f"its code ({code['script']} or a package module it imports)")
    others = sorted(set(recorded) - {"code", "libraries", "source_content"})
    return found or [f"one of its params {', '.join(others)} (the config it reads)"]


def source_changes(recorded: dict[str, object], workdir: Path) -> list[str]:
    """For prepare_model: whether its model source holds other content now (which files)."""
    source, before = recorded.get("source"), recorded.get("source_content")
    if not isinstance(source, dict) or not isinstance(before, dict):
        return []
    digests = source_content.DigestCache(Path(workdir) / ".snakemake/inputspace-digests.json")
    with _in(workdir):
        now = source_content.identity(source, digests)
    if now == before:
        return []
    files = before.get("files"), now.get("files")
    if all(isinstance(f, dict) for f in files):
        differing = sorted(
            k for k in files[0].keys() | files[1].keys() if files[0].get(k) != files[1].get(k)
        )
        return [f"its model source's content: {', '.join(differing)}"]
    return ["its model source's content"]


@contextlib.contextmanager
def _in(folder: Path):
    """Relative paths (a local model's) as the workflow reads them: from its working directory."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def version_changes(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """'torch 2.13.0 -> 2.14.0', '+rich 15.0.0' (new), '-tqdm 4.70.1' (gone)."""
    changes = []
    for name in sorted(before.keys() | now.keys()):
        old, new = before.get(name), now.get(name)
        if old == new:
            continue
        if old is None:
            changes.append(f"+{name} {new}")
        elif new is None:
            changes.append(f"-{name} {old}")
        else:
            changes.append(f"{name} {old} -> {new}")
    return changes


def recorded_params(workdir: Path, output: str) -> dict[str, object] | None:
    """The params by name of the job that last made `output`, as its harness noted them in
    the first line of its log (Snakemake records their values only, sorted); None if it
    noted none."""
    try:
        stored = json.loads(snakemake_internals.metadata_path(workdir, output).read_text())
    except (OSError, ValueError):
        return None
    note = history.read_note(Path(workdir), stored.get("log") or [])
    params = (note or {}).get("params")
    return params if isinstance(params, dict) else None
