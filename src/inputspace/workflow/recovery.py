"""What a Snakemake run killed outright (SIGKILL, a lost login session) leaves in its working
directory, and how the next real run clears exactly that, whatever else runs there.

Snakemake allows several runs in one directory when their outputs differ. Each real run
notes itself in `.snakemake/inputspace-runs/` when it starts: its host and pid, the start
time of that process (a pid used again later names another process), its lock files with
what they hold, and the name its SLURM jobs carry (Snakemake's SLURM executor names every
job of a run by that run's id). The note goes when the run ends. A note of this host whose
process is gone is a killed run's: the next real run removes exactly its lock files (those
still holding what it wrote) and cancels exactly the SLURM jobs of its run id. Live runs'
notes, and other hosts', are left alone.
"""

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

NOTES = "inputspace-runs"  # in .snakemake/


@dataclass(frozen=True)
class Run:
    """A Snakemake run of this working directory, as its note holds it."""

    host: str
    pid: int
    started: str | None  # when the process started (clock ticks since boot), or None
    locks: dict[str, str]  # lock file -> what it holds (the files the run locked)
    slurm_run: str | None  # the job name of this run's SLURM jobs, if it submits any

    @property
    def name(self) -> str:
        return f"pid {self.pid} on {self.host}"


def this_run(lock_files: list[Path], slurm_run: str | None) -> Run:
    """The calling process as a Run holding `lock_files`."""
    pid = os.getpid()
    locks = {str(path): _text(Path(path)) for path in lock_files}
    return Run(socket.gethostname(), pid, process_start(pid), locks, slurm_run)


def note(state: Path, run: Run) -> None:
    folder = Path(state) / NOTES
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{_file_name(run)}.partial"
    partial.write_text(json.dumps(asdict(run)))
    partial.replace(folder / _file_name(run))


def forget(state: Path, run: Run) -> None:
    (Path(state) / NOTES / _file_name(run)).unlink(missing_ok=True)


def noted(state: Path) -> list[Run]:
    runs = []
    for path in sorted((Path(state) / NOTES).glob("*.json")):
        try:
            runs.append(Run(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # another run's note being written, or not one of ours
    return runs


def is_alive(run: Run) -> bool:
    """Whether the noted process still runs (on this host; another host's cannot be told,
    so it counts as alive)."""
    if run.host != socket.gethostname():
        return True
    return process_start(run.pid) == run.started if run.started else _exists(run.pid)


def killed(state: Path) -> list[Run]:
    """The noted runs of this host that are gone without ending."""
    return [run for run in noted(state) if not is_alive(run)]


def clear_locks(run: Run) -> int:
    """Remove the run's lock files that still hold what it wrote; how many."""
    removed = 0
    for path, text in run.locks.items():
        if Path(path).is_file() and _text(Path(path)) == text:
            Path(path).unlink(missing_ok=True)
            removed += 1
    return removed


def restore_locks(runs: list[Run]) -> int:
    """Write back the lock files of these (live) runs that are gone: Snakemake removes the
    whole lock folder when any run of the directory ends. How many were written."""
    written = 0
    for run in runs:
        for path, text in run.locks.items():
            if not Path(path).exists() and is_alive(run):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text)
                written += 1
    return written


def slurm_jobs(run: Run) -> list[str]:
    """The SLURM jobs of this user still queued or running under the run's job name."""
    if not run.slurm_run or not shutil.which("squeue"):
        return []
    listed = subprocess.run(
        ["squeue", "-h", "--me", "--name", run.slurm_run, "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return listed.stdout.split()


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


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command's name


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _file_name(run: Run) -> str:
    return f"{run.host}-{run.pid}-{run.started}.json"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def recover(state: Path) -> list[str]:
    """Clear what each killed run of this host left: cancel its SLURM jobs (which could
    still write its outputs), remove its locks, forget it. One line per thing done."""
    said = []
    for run in killed(state):
        orphans = slurm_jobs(run)
        if orphans and cancel(orphans):
            said.append(f"cancelled SLURM jobs {', '.join(orphans)}, left by {run.name}")
        elif orphans:
            said.append(
                f"SLURM jobs {', '.join(orphans)} of {run.name} are still queued; scancel them"
            )
        if clear_locks(run):
            said.append(f"removed the locks of a killed Snakemake run ({run.name})")
        forget(state, run)
    return said


def end(state: Path, run: Run | None) -> None:
    """At the end of a real run (after Snakemake has removed the whole lock folder, which
    it does at the end of every run that locks, even one with nothing to do): forget the
    run's note, remove what is left of its own locks, and give the live runs theirs back."""
    if run:
        forget(state, run)
        clear_locks(run)
    others = [other for other in noted(state) if other != run]
    written = restore_locks(others)
    if written:
        # a run that ended while its locks were written back leaves none behind
        for other in others:
            if other not in noted(state) or not is_alive(other):
                clear_locks(other)
