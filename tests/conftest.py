"""Shared fixtures: tiny random-weight models of both architectures, prepared once per
session, and the finished workflow runs the workflow tests share (helpers are in helpers.py).

Later test files should reuse `tiny_folders` / `tiny_models` rather than preparing their own.
Tests must not mutate the models in `tiny_models`; load a fresh copy from
`tiny_folders[...]` with `inputspace.model.models.load` when a test needs to change one.
"""

import os
import subprocess
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from helpers import (  # noqa: E402
    KINDS,
    REPO,
    SMALL_CONFIG,
    SMALL_MODEL,
    checkout_files,
    make_problem,
    recorded,
    settings,
    small_model,
    snakemake_command,
)

from inputspace.model import models, sources  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole workflow on configs/tiny.yaml, run locally (every script in a process of
    its own, one torch thread each): the reference the SLURM run must equal byte for
    byte, where each job is a SLURM job that re-reads the workflow."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    command = snakemake_command(
        workdir,
        "--cores",
        "2",
        "--max-threads",
        "1",
        "--configfile",
        str(REPO / "configs/tiny.yaml"),
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A checkout of this repository (as a fresh clone has it) with a finished local run of
    tests/configs/small.yaml; read only: the audit's edits work on a copy, and the SLURM run
    of the same config must equal it."""
    checkout = tmp_path_factory.mktemp("small_run") / "checkout"
    checkout.mkdir()
    checkout_files(checkout)
    small_model(checkout / SMALL_MODEL)
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--max-threads", "1"]
    loaded = {"INPUTSPACE_LOADED_MODULES": str(checkout.parent / "loaded-modules")}
    result = subprocess.run(
        [*command, "--configfile", SMALL_CONFIG],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, **loaded},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return checkout


# Name in the fixtures' dicts -> tiny architecture.
TINY_ARCHITECTURES = {"modernbert": "modernbert", "llama": "llama"}


def tiny_source(architecture: str, seed: int = 0) -> dict:
    return {"kind": "random", "architecture": architecture, "seed": seed}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """{"modernbert": Path, "llama": Path}: prepared folders of seed-0 tiny models."""
    root = tmp_path_factory.mktemp("tiny_models")
    folders = {}
    for name, architecture in TINY_ARCHITECTURES.items():
        folders[name] = root / name
        sources.prepare(name, tiny_source(architecture), folders[name])
    return folders


@pytest.fixture(scope="session")
def tiny_models(tiny_folders) -> dict[str, models.LanguageModel]:
    """{"modernbert": LanguageModel, "llama": LanguageModel} from `tiny_folders` (read-only)."""
    return {name: models.load(folder) for name, folder in tiny_folders.items()}


@pytest.fixture(scope="session")
def finished(tiny_models, repo_root):
    """One run of the tiny pairs experiment per architecture, shared by read-only tests."""
    out = {}
    for name in KINDS:
        made = make_problem(tiny_models[name], repo_root)
        out[name] = (made[0], made[1], recorded(tiny_models[name], made, settings()))
    return out
