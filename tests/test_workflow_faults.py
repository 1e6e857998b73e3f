"""Faults through the snakemake command line, on one tiny model: killed jobs, damaged
inputs, a full disk, a diverging run, changed weights. What the README promises: the
README's command after any of them gives exactly the outputs of an undisturbed run,
and every failure is one line naming the file, step or model, with no output left."""

import os
import shutil
import subprocess
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
    line = one_line(snakemake(workdir, ELLIPSE_FIGURE))  # newer input: fit_ellipse reruns
    assert "results/tiny_llama/vocab.safetensors is damaged or incomplete" in line
    assert not (workdir / ELLIPSE_FIGURE).exists()


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


def test_a_changed_weight_byte_stops_the_job_that_loads_the_model(undisturbed, tmp_path):
    """A prepared model is an output: Snakemake does not watch the files inside it (nor
    does the audit, which asks Snakemake), so every job that loads it checks them first."""
    workdir = tmp_path / "work"
    shutil.copytree(undisturbed, workdir, symlinks=True)
    weights = workdir / "results/models/tiny_llama/model.safetensors"
    flip_byte(weights, weights.stat().st_size // 2)
    line = one_line(snakemake(workdir, *run_targets(), "--forcerun", "optimize"))
    assert "results/models/tiny_llama/model.safetensors (changed)" in line and "delete" in line


def checkpoint_files(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "results/checkpoints").rglob("*") if p.is_file())


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(position)
        byte = stream.read(1)
        stream.seek(position)
        stream.write(bytes([byte[0] ^ 0xFF]))
