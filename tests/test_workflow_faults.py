"""Faults through the snakemake command line, on one tiny model: killed jobs, damaged
inputs, a full disk, a diverging run, changed weights. What the README promises: the
README's command after any of them gives exactly the outputs of an undisturbed run,
and every failure is one line naming the file, step or model, with no output left."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import (
    RUN,
    SPLIT_WORD,
    TABLES,
    copy_without_run,
    fault_config,
    run_targets,
    snakemake_command,
)

pytestmark = pytest.mark.slow  # runs Snakemake: minutes

REPO = Path(__file__).resolve().parents[1]
KL_FIGURE = "results/figures/prompt_pairs/kl.png"
ELLIPSE_FIGURE = "results/figures/geometry/tiny_llama_ellipse_spectrum.png"


def snakemake(workdir: Path, *args: str, fault: str | None = None, config: dict | None = None):
    """The README's command (plus targets) in `workdir`, with `fault` injected by
    tests/faulty/sitecustomize.py."""
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config or fault_config()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if fault:
        env["INPUTSPACE_FAULT"] = fault
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests/faulty"), env.get("PYTHONPATH", "")])
    # --configfile takes every word after it
    command = snakemake_command(workdir, *args, "--cores", "1", "--configfile", str(path))
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("inputspace [") and "] warning:" not in line
    ]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> Path:
    """A run of the optimize job and two figures with nothing going wrong."""
    workdir = tmp_path_factory.mktemp("undisturbed")
    result = snakemake(workdir, *run_targets(), KL_FIGURE, ELLIPSE_FIGURE)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_a_split_watch_word_is_warned_about_on_the_console_and_in_the_log(undisturbed, tmp_path):
    workdir = copy_without_run(undisturbed, tmp_path)
    result = snakemake(workdir, *run_targets())
    warned = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("inputspace [optimize] warning")
    ]
    assert len(warned) == 1 and repr(SPLIT_WORD) in warned[0] and "first piece" in warned[0], (
        result.stderr[-2000:]
    )
    log = (workdir / "results/logs/optimize/tiny_llama_prompt_pairs.log").read_text()
    assert f"WARNING: watch word {SPLIT_WORD!r}" in log


@pytest.mark.parametrize(
    "fault, resumed_at",
    [("kill:advance:5", None), ("kill:advance:30", 20), ("kill:saving:40", 20)],
    ids=["before the first checkpoint", "between checkpoints", "while writing a checkpoint"],
)
def test_a_killed_optimize_job_ends_as_if_undisturbed(undisturbed, tmp_path, fault, resumed_at):
    workdir = copy_without_run(undisturbed, tmp_path)
    killed = snakemake(workdir, *run_targets(), fault=fault)
    assert killed.returncode != 0
    saved = checkpoint_files(workdir)
    if fault == "kill:saving:40":
        assert any(name.endswith(".partial") for name in saved), saved  # the write was cut short
    assert any(name.endswith(".pt") for name in saved) == (resumed_at is not None), saved

    rerun = snakemake(workdir, *run_targets())  # the README's command, nothing else
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = (workdir / "results/logs/optimize/tiny_llama_prompt_pairs.log").read_text()
    assert ("resumed from results/checkpoints" in log) == (resumed_at is not None)
    if resumed_at:
        assert f"at step {resumed_at}" in log
    for name in TABLES:
        assert (workdir / RUN / name).read_bytes() == (undisturbed / RUN / name).read_bytes(), name
    assert not checkpoint_files(workdir), "no checkpoint or partial write is left behind"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_table_stops_the_rule_that_reads_it(undisturbed, tmp_path, damage):
    workdir = tmp_path / "work"
    shutil.copytree(undisturbed, workdir, symlinks=True)
    steps = workdir / RUN / "steps.parquet"
    if damage == "truncate":
        os.truncate(steps, steps.stat().st_size // 2)
    else:
        flip_byte(steps, 100)
    (workdir / KL_FIGURE).unlink()
    line = one_line(snakemake(workdir, KL_FIGURE))
    assert f"{RUN}/steps.parquet is damaged or incomplete" in line and "delete it" in line
    assert not (workdir / KL_FIGURE).exists()


def test_a_damaged_matrix_stops_the_rule_that_reads_it(undisturbed, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(undisturbed, workdir, symlinks=True)
    matrix = workdir / "results/tiny_llama/vocab.safetensors"
    flip_byte(matrix, matrix.stat().st_size - 100)
    drawn = (workdir / ELLIPSE_FIGURE).read_bytes()
    line = one_line(snakemake(workdir, ELLIPSE_FIGURE))  # newer input: fit_ellipse reruns
    assert "results/tiny_llama/vocab.safetensors is damaged or incomplete" in line
    assert not (workdir / "results/tiny_llama/ellipse.safetensors").exists()
    assert not (workdir / "results/tiny_llama/ellipse_spectrum.parquet").exists()
    assert (workdir / ELLIPSE_FIGURE).read_bytes() == drawn  # its job never ran


def test_a_full_disk_names_the_path_and_leaves_no_output(undisturbed, tmp_path):
    workdir = copy_without_run(undisturbed, tmp_path)
    line = one_line(snakemake(workdir, *run_targets(), fault="enospc:embeddings.safetensors"))
    assert (
        f"could not write {RUN}/embeddings.safetensors" in line
        and "No space left on device" in line
    )
    assert not (workdir / RUN).exists() or not list((workdir / RUN).iterdir())


def test_a_diverging_run_stops_with_the_step_and_leaves_no_output(undisturbed, tmp_path):
    workdir = copy_without_run(undisturbed, tmp_path)
    line = one_line(snakemake(workdir, *run_targets(), config=fault_config(lr=1e20)))
    assert (
        "non-finite embeddings at step 1 in sequence 0" in line
        and "lower the learning rate" in line
    )
    assert not (workdir / RUN).exists() or not list((workdir / RUN).iterdir())
    assert not checkpoint_files(workdir)


def test_a_changed_weight_byte_stops_every_run_until_the_model_is_made_again(undisturbed, tmp_path):
    """Snakemake does not see a file changed inside the prepared model (a folder it made):
    every run, dry or not, refuses with one line naming the file and the command that
    prepares it again; that command makes it again, and what follows from it."""
    workdir = tmp_path / "work"
    shutil.copytree(undisturbed, workdir, symlinks=True)
    folder = "results/models/tiny_llama"
    weights = workdir / folder / "model.safetensors"
    kept = weights.stat()
    flip_byte(weights, kept.st_size // 2)
    os.utime(weights, ns=(kept.st_atime_ns, kept.st_mtime_ns))  # its time kept
    for args in (["-n"], []):
        refused = snakemake(workdir, *run_targets(), *args)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        (line,) = [x for x in refused.stderr.splitlines() if x.startswith("inputspace")]
        assert line == (
            f"inputspace: {folder}/model.safetensors (changed): not what prepare_model wrote; "
            f"make it again with: snakemake --forcerun {folder} (and the run's --configfile)"
        )
    again = snakemake(workdir, *run_targets(), "--forcerun", folder)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in TABLES:
        assert (workdir / RUN / name).read_bytes() == (undisturbed / RUN / name).read_bytes(), name


# ------------------------------------------------------------------ two runs, one directory


def two_experiments() -> dict:
    config = fault_config()
    config["experiments"]["other_pairs"] = config["experiments"]["prompt_pairs"]
    return config


def other_targets() -> list[str]:
    return [name.replace("prompt_pairs", "other_pairs") for name in run_targets()]


def started(workdir: Path, targets: list[str], paused: Path) -> subprocess.Popen:
    """A run of `targets` in a session of its own whose optimize job pauses at step 5 until
    it is asked to stop (creating `paused` when it does)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "INPUTSPACE_FAULT": "pause:advance:5",
        "INPUTSPACE_FAULT_ONCE": str(paused),
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "tests/faulty"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    command = snakemake_command(
        workdir, *targets, "--cores", "1", "--configfile", str(workdir / "config.yaml")
    )
    run = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not paused.exists():
        assert run.poll() is None, run.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the optimize job did not reach its pause"
        time.sleep(0.2)
    return run


def locks(workdir: Path) -> dict[str, str]:
    folder = workdir / ".snakemake/locks"
    return {p.name: p.read_text() for p in folder.glob("*.lock")} if folder.is_dir() else {}


def descendants(pid: int) -> set[int]:
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True
    ).stdout.split()
    return {int(c) for c in children} | {d for c in children for d in descendants(int(c))}


def test_recovery_after_a_killed_run_leaves_a_live_run_alone(undisturbed, tmp_path):
    workdir = copy_without_run(undisturbed, tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(two_experiments()))
    live = started(workdir, run_targets(), tmp_path / "live paused")
    live_locks, live_jobs = locks(workdir), descendants(live.pid)
    killed = started(workdir, other_targets(), tmp_path / "killed paused")
    assert len(locks(workdir)) > len(live_locks) and live_jobs
    os.killpg(killed.pid, signal.SIGKILL)  # Snakemake and its job, as a lost session ends
    killed.communicate()
    held = locks(workdir)
    notes = workdir / ".snakemake/inputspace-runs"
    assert len(list(notes.glob("*.json"))) == 2

    def live_untouched(locks_kept=True):
        assert live.poll() is None and descendants(live.pid) == live_jobs
        assert locks(workdir) == held if locks_kept else locks(workdir).items() <= held.items()

    # a real run while the live run holds the lock folder leaves every lock, says why, and
    # is refused by Snakemake (the killed run's outputs are still locked)
    third = snakemake(workdir, *other_targets(), config=two_experiments())
    assert third.returncode != 0 and f"killed runs (pid {killed.pid} on " in third.stderr
    assert f"stay while pid {live.pid} on " in third.stderr
    live_untouched()
    # not real runs (a dry run, a summary, a run that does not lock) clear nothing of ours;
    # the one without locks makes the killed run's outputs (and, as Snakemake does at the
    # end of a run, may empty the shared lock folder)
    for args in (["-n"], ["--detailed-summary"], ["--nolock"]):
        result = snakemake(workdir, *other_targets(), *args, config=two_experiments())
        assert result.returncode == 0 and "removed the locks" not in result.stderr, result.stderr[
            -3000:
        ]
        live_untouched(locks_kept=False)
    assert len(list(notes.glob("*.json"))) == 2

    for job in live_jobs:
        os.kill(job, signal.SIGTERM)  # the live run's job stops: the run ends with an error
    live.communicate(timeout=300)
    assert live.returncode != 0 and locks(workdir) == {}  # Snakemake empties the lock folder
    assert len(list(notes.glob("*.json"))) == 1  # the killed run's, cleared by the next run

    # a run killed while no other runs: the next real run removes its locks, and runs
    alone = copy_without_run(undisturbed, tmp_path / "alone")
    (alone / "config.yaml").write_text(yaml.safe_dump(two_experiments()))
    again = started(alone, run_targets(), tmp_path / "alone paused")
    os.killpg(again.pid, signal.SIGKILL)
    again.communicate()
    assert locks(alone)
    last = snakemake(alone, *run_targets(), config=two_experiments())
    assert last.returncode == 0, last.stderr[-3000:]
    assert f"removed the locks of killed Snakemake runs (pid {again.pid} on " in last.stderr
    assert not list((alone / ".snakemake/inputspace-runs").glob("*.json"))
    assert locks(alone) == {}


def checkpoint_files(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "results/checkpoints").rglob("*") if p.is_file())


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(position)
        byte = stream.read(1)
        stream.seek(position)
        stream.write(bytes([byte[0] ^ 0xFF]))
