"""Helpers the workflow tests share: a checkout of this repository as a clone has it, and
the tiny local model of tests/configs/small.yaml."""

import shutil
import subprocess
import sys
from pathlib import Path

from inputspace import sources

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = "tests/configs/small.yaml"
SMALL_MODEL = "tiny_model"  # the folder small.yaml's one model is read from


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """This workflow's snakemake, run in `workdir` with `args`."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        *args,
    ]


def checkout_files(destination: Path, source: Path = REPO) -> None:
    """This repository's files (tracked and new, not the ignored ones), as `source` (a
    copy of it) holds them, written as a fresh clone writes them: every file new."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (source / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, destination / name)


def small_model(folder: Path, seed: int = 0) -> None:
    """The tiny Llama that tests/configs/small.yaml reads, with the weights of `seed`."""
    source = {"kind": "random", "architecture": "llama", "seed": seed}
    sources.prepare("tiny", source, folder)
