"""What a scheduler's refusal or kill means for the user: one line naming the rule, the
resource and the profile key to change.

Snakemake's SLURM executor reports a refused submission (sbatch's error) or a killed job
(sacct's state) in the workflow's log, several lines per job and attempt; `diagnoses`
turns those into one line per rule and cause.
"""

import re
from collections.abc import Collection
from dataclasses import dataclass


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
    """One line per rule and cause for each job the scheduler refused or killed, and one
    per failed group job (`groups:` in a profile)."""
    lines: list[str] = []
    for job in failed_jobs(log):
        line = _diagnose(job, job.rule in resumable, profile)
        if line and line not in lines:
            lines.append(line)
    for group, rules in failed_groups(log).items():
        lines.append(
            f"inputspace [group {group}: {', '.join(rules)}]: its SLURM job was refused or "
            "stopped, and Snakemake does not pass on the scheduler's reason for a group job "
            "(snakemake-executor-plugin-slurm issue #456); take `groups:` out of "
            f"{profile} and run the same command again: each rule's job then names what to "
            "change"
        )
    return lines


def failed_groups(log: str) -> dict[str, list[str]]:
    """Each failed group job's group -> its rules (sorted), from Snakemake's group error
    blocks, which carry no reason: Snakemake 9 logs a group's error without the message
    the executor gave."""
    found: dict[str, list[str]] = {}
    blocks = r"^\s+message: Error in group (\S+)\n(?:\s+log: .*\n)?\s+jobs:\n((?:[ \t]{8,}.*\n?)*)"
    for block in re.finditer(blocks, log, re.MULTILINE):
        rules = re.findall(r"^\s+rule (\w+):", block.group(2), re.MULTILINE)
        found[block.group(1)] = sorted(set(found.get(block.group(1), [])) | set(rules))
    return found


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
