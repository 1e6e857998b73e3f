"""What a Snakemake run killed outright leaves, and what the next run clears: a killed run's
locks only when no other run of the directory lives, its SLURM jobs cancelled first, and
nothing at all when SLURM does not answer (on files, processes and fake SLURM commands,
without Snakemake; tests/test_workflow_faults.py runs Snakemake processes in one directory)."""

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
    (tmp_path / ".snakemake/locks/0.output.lock").write_text("results/a\n")
    return tmp_path / ".snakemake"


def finished_process() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def killed_run(slurm_run=None) -> recovery.Run:
    return recovery.Run(socket.gethostname(), finished_process(), "1", slurm_run)


def live_run() -> recovery.Run:
    parent = os.getppid()
    return recovery.Run(socket.gethostname(), parent, recovery.process_start(parent))


@pytest.fixture
def slurm(monkeypatch, tmp_path):
    """Fake squeue and scancel on PATH: `slurm(squeue=..., scancel=...)` sets their shell
    bodies; every call is appended to the file returned."""
    bin_dir, asked = tmp_path / "bin", tmp_path / "asked"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def install(squeue="exit 0", scancel="exit 0"):
        for name, body in (("squeue", squeue), ("scancel", scancel)):
            (bin_dir / name).write_text(f'#!/bin/sh\necho {name} "$@" >> {asked}\n{body}\n')
            (bin_dir / name).chmod(0o755)
        return asked

    return install


def test_a_run_notes_its_process_and_slurm_run_and_forgets_them(state):
    run, said = recovery.start(state)
    assert run.pid == os.getpid() and run.host == socket.gethostname() and said == []
    assert run.started == recovery.process_start(os.getpid()) and run.started.isdigit()
    assert recovery.noted(state) == [run] and recovery.is_alive(run)
    run = recovery.started(state, run, "run-uuid")
    assert recovery.noted(state) == [run] and run.slurm_run == "run-uuid"
    recovery.forget(state, run)
    assert recovery.noted(state) == []


def test_a_killed_run_is_told_by_its_process_start_not_its_pid_alone():
    mine = recovery.this_run()
    assert recovery.is_alive(mine)
    reused = replace(mine, started=str(int(mine.started) + 1))  # this pid, another process
    gone = killed_run()
    elsewhere = replace(gone, host="another-host")
    assert not recovery.is_alive(reused) and not recovery.is_alive(gone)
    assert recovery.is_alive(elsewhere)  # another host's cannot be told: left alone


def test_the_locks_of_killed_runs_go_when_no_other_run_lives(state):
    dead = [killed_run(), killed_run()]
    for run in dead:
        recovery.note(state, run)
    _, said = recovery.start(state)
    assert not list((state / "locks").glob("*.lock"))
    assert said == [f"removed the locks of killed Snakemake runs ({dead[0].name}, {dead[1].name})"]
    assert [run.pid for run in recovery.noted(state)] == [os.getpid()]


def test_a_live_run_keeps_every_lock_and_the_killed_runs_note(state):
    dead, live = killed_run(), live_run()
    for run in (dead, live, replace(dead, host="another-host", pid=7)):
        recovery.note(state, run)
    _, said = recovery.start(state)
    assert (state / "locks/0.output.lock").read_text() == "results/a\n"
    assert len(said) == 1 and "stay while" in said[0] and live.name in said[0]
    assert dead in recovery.noted(state)  # cleared once the live run has ended


def test_a_killed_runs_slurm_jobs_are_cancelled_before_its_locks_go(state, slurm):
    asked = slurm(squeue='[ "$2" = "--me" ] && { echo 41; echo 42; }; exit 0')
    run = killed_run("uuid-of-the-killed-run")
    recovery.note(state, run)
    _, said = recovery.start(state)
    calls = asked.read_text().splitlines()
    assert calls[0] == "squeue -h --me --name uuid-of-the-killed-run -o %i"
    assert calls[1] == "scancel 41 42" and calls[2].startswith("squeue -h -j 41,42")
    assert said[0] == f"cancelled SLURM jobs 41, 42, left by {run.name}"
    assert not list((state / "locks").glob("*.lock")) and run not in recovery.noted(state)


@pytest.mark.parametrize(
    "squeue, scancel, why",
    [
        (
            "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
            "exit 0",
            "squeue failed (slurm_load_jobs error: Unable to contact slurm controller)",
        ),
        ("sleep 30", "exit 0", "squeue gave no answer in 1 s"),
        (
            "echo 41",
            "echo 'scancel: error: Access denied' >&2; exit 1",
            "scancel failed (scancel: error: Access denied)",
        ),
        ("echo 41", "exit 0", "SLURM jobs 41 of killed run"),  # still queued after scancel
    ],
)
def test_when_slurm_does_not_answer_locks_jobs_and_notes_stay(
    state, slurm, monkeypatch, squeue, scancel, why
):
    slurm(squeue=squeue, scancel=scancel)
    monkeypatch.setattr(recovery, "SLURM_TIMEOUT_S", 1)
    monkeypatch.setattr(recovery, "CANCEL_WAIT_S", 0.5)
    run = killed_run("uuid")
    recovery.note(state, run)
    with pytest.raises(recovery.RecoveryError) as error:
        recovery.start(state)
    assert why in str(error.value) and "\n" not in str(error.value)
    assert "left as they are" in str(error.value)
    assert (state / "locks/0.output.lock").read_text() == "results/a\n"
    assert recovery.noted(state) == [run]  # the killed run's note, not this one


def test_a_killed_slurm_run_without_squeue_on_path_is_left_alone(state, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    recovery.note(state, killed_run("uuid"))
    with pytest.raises(recovery.RecoveryError, match="squeue is not on PATH"):
        recovery.start(state)
    assert (state / "locks/0.output.lock").is_file()
