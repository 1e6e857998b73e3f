"""Where a job ran (host, SLURM job and node); what a scheduler's refusal or kill means
for the user (one line naming the rule, the resource and the profile key to change); and
what a killed Snakemake leaves behind (its locks, its SLURM jobs still queued or running).

Snakemake's SLURM executor reports a refused submission (sbatch's error) or a killed job
(sacct's state) in the workflow's log, several lines per job and attempt; `diagnoses`
turns those into one line per rule and cause.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SLURM_VARIABLES = {  # record key -> variable SLURM sets in a job's environment
    "job_id": "SLURM_JOB_ID",
    "node": "SLURMD_NODENAME",
    "partition": "SLURM_JOB_PARTITION",
    "cluster": "SLURM_CLUSTER_NAME",
}


def where_made(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The host, and the SLURM job, node, partition and cluster when run inside one."""
    environ = os.environ if environ is None else environ
    slurm = {key: environ.get(name) for key, name in SLURM_VARIABLES.items()}
    return {"host": socket.gethostname(), "slurm": slurm if slurm["job_id"] else None}


def describe_place(made_on: dict[str, Any] | None) -> str:
    """'host (SLURM job 52 on node n7, partition gpu, cluster c)', or the host alone."""
    made_on = made_on or {}
    slurm = made_on.get("slurm")
    where = str(made_on.get("host"))
    if slurm:
        where += (
            f" (SLURM job {slurm['job_id']} on node {slurm['node']}, partition "
            f"{slurm['partition']}, cluster {slurm['cluster']})"
        )
    return where


@dataclass(frozen=True)
class FailedJob:
    rule: str
    message: str  # the executor's message, lines joined
    resources: dict[str, str]  # what Snakemake asked for (from the job's announcement)


def failed_jobs(log: str) -> list[FailedJob]:
    """Every 'Error in rule' block of a Snakemake log (up to a blank line), with the
    resources its job was announced with."""
    announced = announced_jobs(log)
    failed = []
    blocks = r"^Error in rule (\w+):\n(.*?)(?=^\s*$|^Error in rule |^\[|\Z)"
    for block in re.finditer(blocks, log, re.MULTILINE | re.DOTALL):
        body = block.group(2)
        jobid = re.search(r"^\s+jobid: (\d+)", body, re.MULTILINE)
        message = re.search(r"^\s+message: (.*?)(?=^\s+jobid: |\Z)", body, re.MULTILINE | re.DOTALL)
        failed.append(
            FailedJob(
                rule=block.group(1),
                message=" ".join(message.group(1).split()) if message else "",
                resources=announced.get(jobid.group(1) if jobid else "", ("", {}))[1],
            )
        )
    return failed


def announced_jobs(log: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Snakemake job id -> (rule, the resources printed when the job was announced)."""
    found = {}
    for block in re.finditer(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n?)*)", log, re.MULTILINE):
        jobid = re.search(r"^\s+jobid: (\d+)", block.group(2), re.MULTILINE)
        listed = re.search(r"^\s+resources: (.*)$", block.group(2), re.MULTILINE)
        if jobid:
            pairs = (item.split("=", 1) for item in listed.group(1).split(", ")) if listed else ()
            resources = {k: v for k, v in (p for p in pairs if len(p) == 2)}
            found[jobid.group(1)] = (block.group(1), resources)
    return found


# sbatch's refusal -> (the resource a user changes, what was asked for, why)
REFUSALS = [
    ("Memory specification can not be satisfied", "mem_mb", "memory"),
    ("CPU count per node can not be satisfied", "cpus_per_task", "CPUs"),
    ("More processors requested than permitted", "cpus_per_task", "CPUs"),
    ("Invalid generic resource (gres) specification", "gpu", "GPUs"),
    ("Requested time limit is invalid", "runtime", "time"),
    ("invalid partition name specified", "slurm_partition", "partition"),
    ("Requested node configuration is not available", "mem_mb, cpus_per_task or gpu", "node"),
]


def diagnoses(log: str, resumable: Collection[str] = (), profile: str = "the profile") -> list[str]:
    """One line per rule and cause for each job the scheduler refused or killed."""
    lines: list[str] = []
    for job in failed_jobs(log):
        line = _diagnose(job, job.rule in resumable, profile)
        if line and line not in lines:
            lines.append(line)
    return lines


def _diagnose(job: FailedJob, resumable: bool, profile: str) -> str | None:
    rule, asked = job.rule, job.resources
    prefix = f"inputspace [{rule}]:"
    resume = " (it resumes from its checkpoint)" if resumable else ""
    again = " and run the same command again" + resume
    if "SLURM sbatch failed" in job.message:
        asked = {**_sbatch_request(job.message), **asked}
        for text, key, what in REFUSALS:
            if text.lower() in job.message.lower():
                return (
                    f"{prefix} SLURM refused the job: no node of partition "
                    f"{asked.get('slurm_partition', '?')!r} has the {what} it asks for "
                    f"({_asked(asked, key)}); change `set-resources: {rule}: {key}` in "
                    f"{profile} (or name a partition with larger nodes){again}"
                )
        return f"{prefix} SLURM refused the job ({job.message[:200]}); check {profile}"
    state = re.search(r"SLURM status is: '(\w+)'", job.message)
    if not state:
        return None
    which = "its SLURM job"  # not the job id: one line per rule, however many attempts
    if state.group(1) == "TIMEOUT":
        return (
            f"{prefix} SLURM stopped {which} at its time limit (runtime="
            f"{asked.get('runtime', '?')} min); raise `set-resources: {rule}: runtime` "
            f"(minutes) in {profile}{again}"
        )
    if state.group(1) == "OUT_OF_MEMORY":
        return (
            f"{prefix} SLURM stopped {which}: out of memory (mem_mb="
            f"{asked.get('mem_mb', '?')}); raise `set-resources: {rule}: mem_mb` in {profile}"
            f"{again}"
        )
    if state.group(1) in ("CANCELLED", "PREEMPTED", "NODE_FAIL"):
        return (
            f"{prefix} {which} ended as {state.group(1)} (scancel, preemption or a node "
            f"failure); run the same command again{resume}"
        )
    return None


def _sbatch_request(message: str) -> dict[str, str]:
    """What the sbatch call in an executor's message asked for."""
    flags = {"slurm_partition": r"-p '?([\w.-]+)", "mem_mb": r"--mem (\d+)", "runtime": r"-t (\d+)"}
    found = {key: re.search(pattern, message) for key, pattern in flags.items()}
    return {key: match.group(1) for key, match in found.items() if match}


def _asked(resources: dict[str, str], keys: str) -> str:
    names = [k.strip() for k in re.split(r",| or ", keys) if k.strip()]
    return ", ".join(f"{k}={resources.get(k, '?')}" for k in names)


# ------------------------------------------------------------------ a killed Snakemake

OWNER = "inputspace-owner.json"  # in .snakemake/: the Snakemake process running here


def record_owner(state: Path) -> None:
    """Note this process as the Snakemake run that holds the locks in `state`."""
    state.mkdir(parents=True, exist_ok=True)
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    (state / OWNER).write_text(json.dumps(owner))


def dead_owner(state: Path) -> str | None:
    """'pid N on HOST' when the last Snakemake run recorded in `state` ran on this host
    and is gone (killed: it left its locks and maybe SLURM jobs behind); else None."""
    try:
        owner = json.loads((state / OWNER).read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname() or _is_snakemake(owner.get("pid")):
        return None
    return f"pid {owner.get('pid')} on {owner.get('host')}"


def _is_snakemake(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"snakemake" in command


def clear_locks(state: Path) -> int:
    """Remove the lock files of Snakemake's file persistence; how many there were."""
    locks = list((state / "locks").glob("*.lock"))
    for lock in locks:
        lock.unlink(missing_ok=True)
    return len(locks)


def queued_jobs(workdir: Path) -> list[str]:
    """SLURM jobs of this user that Snakemake's SLURM executor submitted from `workdir`
    (its jobs carry a `rule_...` comment and the workflow's working directory)."""
    if not shutil.which("squeue"):
        return []
    listed = subprocess.run(
        ["squeue", "-h", "--me", "-o", "%i|%k|%Z"], capture_output=True, text=True, timeout=60
    )
    here = os.path.realpath(workdir)
    return [
        job_id
        for job_id, comment, folder in (
            line.split("|", 2) for line in listed.stdout.splitlines() if line.count("|") >= 2
        )
        if comment.startswith("rule_") and os.path.realpath(folder) == here
    ]


def cancel(job_ids: list[str], wait_s: float = 180.0) -> bool:
    """scancel the jobs (SIGTERM: the optimisation saves its checkpoint, then SIGKILL
    after SLURM's KillWait) and wait until they have left the queue; whether they did."""
    if not job_ids:
        return True
    subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        left = subprocess.run(
            ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if not left.stdout.strip():
            return True
        time.sleep(1)
    return False
