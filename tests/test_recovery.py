"""What a Snakemake run killed outright leaves, and what the next run clears: exactly the
killed run's own locks and SLURM jobs, never a live run's (on files and processes, without
Snakemake; tests/test_workflow_faults.py runs two Snakemake processes in one directory)."""

import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from inputspace.workflow import recovery


@pytest.fixture
def state(tmp_path):
    (tmp_path / ".snakemake/locks").mkdir(parents=True)
    return tmp_path / ".snakemake"


def lock(state, name, text):
    path = state / "locks" / name
    path.write_text(text)
    return path


def finished_process() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_run_notes_its_process_locks_and_slurm_run_and_forgets_them(state):
    path = lock(state, "0.input.lock", "results/a\n")
    run = recovery.this_run([path], "run-uuid")
    assert run.pid == os.getpid() and run.host == socket.gethostname()
    assert run.started == recovery.process_start(os.getpid()) and run.started.isdigit()
    assert run.locks == {str(path): "results/a\n"} and run.slurm_run == "run-uuid"
    recovery.note(state, run)
    assert recovery.noted(state) == [run] and recovery.is_alive(run)
    assert recovery.killed(state) == []
    recovery.forget(state, run)
    assert recovery.noted(state) == []


def test_a_killed_run_is_told_by_its_process_start_not_its_pid_alone(state):
    mine = recovery.this_run([], None)
    assert recovery.is_alive(mine)
    reused = replace(mine, started=str(int(mine.started) + 1))  # this pid, another process
    gone = replace(mine, pid=finished_process(), started="1")
    elsewhere = replace(gone, host="another-host")
    for run in (reused, gone, elsewhere):
        recovery.note(state, run)
    assert not recovery.is_alive(reused) and not recovery.is_alive(gone)
    assert recovery.is_alive(elsewhere)  # another host's cannot be told: left alone
    assert sorted(r.pid for r in recovery.killed(state)) == sorted([reused.pid, gone.pid])


def test_only_the_killed_runs_own_locks_are_cleared(state):
    killed = lock(state, "0.input.lock", "results/killed\n")
    live = lock(state, "1.input.lock", "results/live\n")
    run = recovery.Run(
        "h", 1, "1", {str(killed): "results/killed\n", str(live): "results/x\n"}, None
    )
    assert recovery.clear_locks(run) == 1  # the other file holds another run's locks now
    assert not killed.exists() and live.read_text() == "results/live\n"


def test_the_end_of_a_run_gives_live_runs_their_locks_back(state):
    """Snakemake removes the whole lock folder when any run ends; live runs keep theirs."""
    me = recovery.this_run([lock(state, "0.output.lock", "results/mine\n")], None)
    other = replace(me, pid=os.getppid(), started=recovery.process_start(os.getppid()))
    other = replace(other, locks={str(state / "locks/1.output.lock"): "results/other\n"})
    dead = replace(other, pid=finished_process(), started="1")
    dead = replace(dead, locks={str(state / "locks/2.output.lock"): "results/dead\n"})
    for run in (me, other, dead):
        recovery.note(state, run)
    for path in (state / "locks").iterdir():
        path.unlink()  # as Snakemake's unlock leaves it
    recovery.end(state, me)
    assert me not in recovery.noted(state)
    assert (state / "locks/1.output.lock").read_text() == "results/other\n"
    assert sorted(p.name for p in (state / "locks").iterdir()) == ["1.output.lock"]


def test_slurm_jobs_are_found_by_the_runs_own_name(monkeypatch, tmp_path):
    asked = []
    squeue = tmp_path / "squeue"
    squeue.write_text('#!/bin/sh\necho "$@" >> %s\necho 41\necho 42\n' % (tmp_path / "asked"))
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    run = recovery.Run("h", 1, "1", {}, "uuid-of-the-killed-run")
    assert recovery.slurm_jobs(run) == ["41", "42"]
    asked = (tmp_path / "asked").read_text()
    assert "--name uuid-of-the-killed-run" in asked and "--me" in asked
    assert recovery.slurm_jobs(replace(run, slurm_run=None)) == []  # a local run: none
