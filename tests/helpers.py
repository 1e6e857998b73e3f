"""Helpers the workflow tests share: a checkout of this repository as a clone has it, and
the tiny local model of tests/configs/small.yaml."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from inputspace import sources
from inputspace.hashing import sha256_file

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


def hub_snapshot(cache: Path, repo_id: str, folder: Path, commit: str) -> Path:
    """`folder`'s files as huggingface_hub lays out a download of `repo_id` at `commit` in
    the cache `cache` ($HF_HOME/hub): content-named blobs, a snapshot of relative links
    to them, and refs/main naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = repo / "blobs" / sha256_file(file)
        if not blob.exists():
            shutil.copyfile(file, blob)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
