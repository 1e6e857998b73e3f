"""What a Snakemake run killed outright (SIGKILL, a lost login session) leaves in its working
directory, and how the next real run clears it.

Each real run notes itself in `.snakemake/inputspace-runs/` while it parses its Snakefile,
before it locks: its host and pid, the start time of that process (a pid used again later
names another process) and, once it has started, the name its SLURM jobs carry (Snakemake's
SLURM executor names every job of a run by that run's id). The note goes when the run ends.
A note of this host whose process is gone is a killed run's.

Snakemake keeps the locks of all runs of a directory in one folder, and removes the whole
folder when any of them ends. So the next real run clears a killed run's locks only when
no other run of the directory is alive: it cancels the killed runs' SLURM jobs (which could
still write their outputs), then unlocks as `snakemake --unlock` does. While another run
lives, the locks stay (they go when that run ends). A failing or hanging squeue or scancel
stops recovery with one line and leaves locks, jobs and notes as they are.
"""

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from inputspace.errors import InputspaceError
from inputspace.provenance import snakemake_internals

NOTES = "inputspace-runs"  # in .snakemake/
SLURM_TIMEOUT_S = 60
CANCEL_WAIT_S = 180.0  # for cancelled jobs to leave the queue


class RecoveryError(InputspaceError):
    """What a killed run left cannot be cleared safely now."""


@dataclass(frozen=True)
class Run:
    """A Snakemake run of this working directory, as its note holds it."""

    host: str
    pid: int
    started: str | None  # when the process started (clock ticks since boot), or None
    slurm_run: str | None = None  # the job name of this run's SLURM jobs, if it submits any

    @property
    def name(self) -> str:
        return f"pid {self.pid} on {self.host}"


def this_run(slurm_run: str | None = None) -> Run:
    """The calling process as a Run."""
    pid = os.getpid()
    return Run(socket.gethostname(), pid, process_start(pid), slurm_run)


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


def start(state: Path) -> tuple[Run, list[str]]:
    """Note this process as a run of the directory and clear what killed runs left, as one
    step that no other run starting at the same moment interleaves with. The run, and one
    line per thing done or left."""
    with _guard(state):
        me = this_run()
        note(state, me)
        try:
            return me, recover(Path(state), [run for run in noted(state) if run != me])
        except RecoveryError:
            forget(state, me)
            raise


def started(state: Path, run: Run, slurm_run: str | None) -> Run:
    """The run's note once its executor is known (the name of its SLURM jobs)."""
    if slurm_run == run.slurm_run:
        return run
    with _guard(state):
        forget(state, run)
        run = replace(run, slurm_run=slurm_run)
        note(state, run)
    return run


def recover(state: Path, others: list[Run]) -> list[str]:
    """Clear what the killed ones of `others` (the other noted runs) left; see the module."""
    dead = [run for run in others if not is_alive(run)]
    if not dead:
        return []
    live = [run for run in others if run not in dead]
    locked = snakemake_internals.lock_files(state.parent)
    if live and locked:
        return [
            f"the locks of killed runs ({_names(dead)}) stay while {_names(live)} runs in "
            "this directory: they go when it ends (or `snakemake --unlock` once no run is left)"
        ]
    said = []
    for run in dead:
        jobs = slurm_jobs(run)
        if jobs:
            cancel(jobs, run)
            said.append(f"cancelled SLURM jobs {', '.join(jobs)}, left by {run.name}")
    if locked and not live:
        snakemake_internals.unlock(state.parent)
        said.append(f"removed the locks of killed Snakemake runs ({_names(dead)})")
    for run in dead:
        forget(state, run)
    return said


def slurm_jobs(run: Run) -> list[str]:
    """The SLURM jobs of this user still queued or running under the run's job name."""
    if not run.slurm_run:
        return []
    listed = _slurm(["squeue", "-h", "--me", "--name", run.slurm_run, "-o", "%i"], run)
    return listed.split()


def cancel(job_ids: list[str], run: Run) -> None:
    """scancel the jobs (SIGTERM: the optimisation saves its checkpoint, then SIGKILL
    after SLURM's KillWait) and wait until they have left the queue."""
    _slurm(["scancel", *job_ids], run)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while _slurm(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i"], run).strip():
        if time.monotonic() > deadline:
            raise RecoveryError(
                f"SLURM jobs {', '.join(job_ids)} of killed run {run.name} are still queued "
                f"{CANCEL_WAIT_S:.0f} s after scancel; its locks are left as they are: run "
                "again once `squeue --me` no longer lists them"
            )
        time.sleep(1)


def _slurm(command: list[str], run: Run) -> str:
    """The output of a SLURM command about a killed run; RecoveryError if it fails."""
    left = f"the locks and SLURM jobs of killed run {run.name} are left as they are"
    if not shutil.which(command[0]):
        raise RecoveryError(
            f"killed run {run.name} submitted SLURM jobs, but {command[0]} is not on PATH; "
            f"{left}: run again where SLURM's commands are"
        )
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RecoveryError(
            f"{command[0]} gave no answer in {SLURM_TIMEOUT_S} s; {left}: run again when "
            "SLURM answers"
        ) from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RecoveryError(f"{command[0]} failed ({why}); {left}: run again when SLURM answers")
    return done.stdout


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command's name


@contextmanager
def _guard(state: Path) -> Iterator[None]:
    folder = Path(state) / NOTES
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".guard", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def _names(runs: list[Run]) -> str:
    return ", ".join(run.name for run in runs)


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
