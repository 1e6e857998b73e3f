"""What the tests share beyond fixtures: a checkout of this repository as a clone has it,
the tiny local model of tests/configs/small.yaml, a Hugging Face cache laid out by hand,
the fault-injection runs' config and targets, and engine runs on tiny models."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from inputspace.hashing import sha256_file
from inputspace.model import models, sources
from inputspace.optimisation import engine, experiments, recorder
from inputspace.workflow.table_names import RUN_FILES

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = "tests/configs/small.yaml"
SMALL_MODEL = "tiny_model"  # the folder small.yaml's one model is read from


def rule_blocks() -> dict[str, str]:
    """Every rule of rules/*.smk: name -> its text, as the rule file states it."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.MULTILINE)[1:]:
            blocks[re.match(r"rule (\w+):", block)[1]] = block
    return blocks


# The rules whose jobs go to SLURM (each reads a model or its vocabulary matrix; every
# one runs for tests/configs/small.yaml), and those that run on the submitting machine
# (`localrule: True`: they read tables and draw in seconds, without torch).
SLURM_RULES = {
    "prepare_model",
    "extract_vocab",
    "fit_ellipse",
    "vocab_distances",
    "sample_sequences",
    "optimize",
    "gradient_case_study",
    "case_study_path",
    "landscape",
}
LOCAL_RULES = {
    "ellipse_figure",
    "sample_norms_figure",
    "gradient_figure",
    "landscape_figures",
    "convergence_figures",
    "displacement_figures",
    "travel_density",
    "token_tables",
    "topk_figures",
    "summary",
    "provenance_report",
    "audit",
    "crate",
}


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
            shutil.copy(source / name, destination / name)  # its mode, as git keeps it


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


# ------------------------------------------------------------------ fault-injection runs

RUN = "results/tiny_llama/runs/prompt_pairs"
TABLES = tuple(RUN_FILES.values())
SPLIT_WORD = " xylophone"  # more than one token of the tiny tokenizer


def fault_config(lr: float = 0.01) -> dict:
    return {
        "allow_downloads": False,
        "models": {
            "tiny_llama": {"source": {"kind": "random", "architecture": "llama", "seed": 0}}
        },
        "experiments": {
            "prompt_pairs": {
                "models": ["tiny_llama"],
                "sequences": {"kind": "pairs", "file": "prompts/pairs.tsv", "count": 4},
                "watch": [" neigh", SPLIT_WORD],
                "optimize": {"steps": 60, "lr": lr, "log_points": 6, "checkpoint_every": 20},
            }
        },
    }


def run_targets() -> list[str]:
    return [f"{RUN}/{name}" for name in TABLES]


def copy_without_run(undisturbed: Path, tmp_path: Path) -> Path:
    """The undisturbed workdir with its models and vocabulary but no run."""
    workdir = tmp_path / "work"
    shutil.copytree(undisturbed, workdir, symlinks=True)
    shutil.rmtree(workdir / RUN)
    return workdir


# ------------------------------------------------------------------ engine runs on tiny models


def loss_gradient(lm: models.LanguageModel, point, flat: torch.Tensor) -> torch.Tensor:
    """The gradient of the landscape's loss at `flat`: the first-order reference the
    Hessian-vector products are checked against."""
    from inputspace.studies import landscape

    x = flat.detach().to(lm.device).requires_grad_(True)
    (grad,) = torch.autograd.grad(landscape.loss(lm, point, x), x)
    return grad


KINDS = ["modernbert", "llama"]
PAIRS = {
    "sequences": {"kind": "pairs", "file": "prompts/pairs.tsv", "count": 4},
    "watch": [" neigh"],
}


def make_problem(lm, repo_root, experiment=PAIRS):
    """(problem, landmarks) of the tiny pairs experiment."""
    prompts = repo_root / experiment["sequences"]["file"]
    return experiments.build_problem_from_model(lm, experiment, prompts)


def settings(**overrides):
    values = dict(steps=40, lr=0.01, checkpoint_every=10)
    return engine.Settings(**{**values, **overrides})


LOGGING = recorder.Logging(log_points=4)


def recorded(lm, made, run_settings, logging=LOGGING, **options):
    """Run the engine with a recorder; the recorder's result."""
    problem, landmarks = made
    watcher = recorder.Recorder(problem.batch, landmarks, logging, run_settings.steps, lm.device)
    run = engine.optimise(lm, problem, run_settings, watcher, progress=False, **options)
    return watcher.result(run.end)
