"""The hub path, end to end and offline: configs/paper.yaml as it ships, its two models
tiny random ones laid out in a Hugging Face cache under the paper's own ids, and only the
step and sequence counts lowered (a second --configfile, merged over the first)."""

import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import LOCAL_RULES, REPO, SLURM_RULES, hub_snapshot, snakemake_command

from inputspace.model import random_model
from inputspace.model.manifest import read_manifest

pytestmark = pytest.mark.slow

PAPER = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
ARCHITECTURES = {"modernbert_large": "modernbert", "llama_1b": "llama"}  # tiny stand-ins
COMMIT, NEW_COMMIT = "1" * 40, "2" * 40
RULES = (
    "prepare_model extract_vocab vocab_distances fit_ellipse sample_sequences optimize "
    "gradient_case_study case_study_path convergence_figures displacement_figures "
    "travel_density token_tables topk_figures landscape summary provenance_report "
    "ellipse_figure sample_norms_figure gradient_figure landscape_figures"
).split()
FIGURE_OF_DATA = {
    "ellipse_figure": "fit_ellipse",
    "sample_norms_figure": "sample_sequences",
    "gradient_figure": "gradient_case_study",
    "landscape_figures": "landscape",
}
ANALYSIS_RULES = (
    "convergence_figures displacement_figures travel_density token_tables topk_figures".split()
)
SMALLER = {  # the counts only: every other value is the paper's
    "experiments": {
        "bark_neigh": {"optimize": {"steps": 12, "log_points": 4}},
        "bark_neigh_long": {"optimize": {"steps": 12, "log_points": 4, "checkpoint_every": 6}},
        "prompt_pairs": {"sequences": {"count": 3}, "optimize": {"steps": 12}},
        "random_sentences": {
            "sequences": {"count": 3},
            "optimize": {"steps": 12},
            "landscape": {"pairs": 1, "solve_steps": 100, "hessian_sequences": 1, "bend_steps": 4},
        },
    }
}


def model_folder(tmp: Path, name: str) -> Path:
    """A tiny model of the paper model's family, saved as a hub repository holds one."""
    folder = tmp / f"saved_{name}"
    model, tokenizer = random_model.build(random_model.TinySpec(ARCHITECTURES[name]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """$HF_HOME with both paper models cached at COMMIT."""
    root = tmp_path_factory.mktemp("cache")
    home = root / "hf_home"
    for name, model in PAPER["models"].items():
        folder = model_folder(root, name)
        hub_snapshot(home / "hub", model["source"]["id"], folder, COMMIT)
    return home


@pytest.fixture(scope="module")
def hub(tmp_path_factory, cache):
    """A finished run of the paper config from the cache, with lowered counts."""
    home, workdir = cache, tmp_path_factory.mktemp("hub")
    (workdir / "smaller.yaml").write_text(yaml.safe_dump(SMALLER))
    done = paper(workdir, home, "--cores", "2", "--max-threads", "1")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, home, done.stdout + done.stderr


def paper(workdir: Path, home: Path, *args: str, extra: str | None = "smaller.yaml"):
    environ = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    environ.pop("HF_HUB_CACHE", None)
    configs = ["--configfile", str(REPO / "configs/paper.yaml")]
    configs += [str(workdir / extra)] if extra else []
    command = snakemake_command(workdir, *args, *configs)
    return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=1800)


def test_every_rule_runs_on_the_paper_config_from_the_cache(hub):
    workdir, _, log = hub
    started = (line for line in log.splitlines() if line.startswith(("rule ", "localrule ")))
    rules = {line.split()[-1].rstrip(":") for line in started}
    every = set(RULES)
    assert every <= rules, every - rules
    summary = (workdir / "results/summary.md").read_text()
    assert all(f"## {name}" in summary for name in PAPER["experiments"])


def test_the_manifest_records_the_snapshots_commit(hub):
    workdir, _, _ = hub
    for name, model in PAPER["models"].items():
        manifest = read_manifest(workdir / "results/models" / name)
        assert manifest["source"] == model["source"]
        assert manifest["origin"]["resolved_commit"] == COMMIT


def planned_outputs(dry_run: str, rule: str) -> list[str]:
    """The outputs of the jobs of `rule` that `snakemake -n` lists."""
    found, current = [], None
    for line in dry_run.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = line.split()[-1].rstrip(":")
        elif current == rule and line.startswith("    output: "):
            found.append(line.removeprefix("    output: ").strip())
    return found


def test_through_slurm_the_paper_config_submits_only_the_jobs_that_need_a_model(cache, tmp_path):
    """The README's command, planned (`-n`, which does not say which jobs are local: the
    rules' own `localrule` flags do, tests/test_imports.py)."""
    done = paper(tmp_path, cache, "-n", "--profile", str(REPO / "profiles/slurm"), extra=None)
    assert done.returncode == 0, done.stderr[-3000:]
    planned = Counter(
        line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.startswith("rule ")
    )
    submitted = {rule: n for rule, n in planned.items() if rule not in LOCAL_RULES | {"all"}}
    assert set(submitted) == SLURM_RULES  # the paper config plans every rule
    experiments = PAPER["experiments"].values()
    models = {model for experiment in experiments for model in experiment["models"]}
    assert submitted["optimize"] == sum(len(e["models"]) for e in experiments) == 6
    assert submitted["prepare_model"] == len(models) and sum(submitted.values()) == 24
    local = {rule: n for rule, n in planned.items() if rule in LOCAL_RULES | {"all"}}
    assert sum(local.values()) + sum(submitted.values()) == sum(planned.values())
    for figures, data in FIGURE_OF_DATA.items():  # one figure job per data job
        assert local[figures] == submitted[data], (figures, data)
    for rule in ANALYSIS_RULES:  # one per experiment, its models side by side
        assert local[rule] == len(experiments), rule
    assert local["summary"] == local["provenance_report"] == local["all"] == 1
    assert set(local) == LOCAL_RULES - {"audit", "crate"} | {"all"}  # those two on request


def test_a_new_snapshot_behind_main_is_a_changed_model(hub, tmp_path):
    workdir, home, _ = hub
    ref = home / "hub/models--meta-llama--Llama-3.2-1B/refs/main"
    folder = model_folder(tmp_path, "llama_1b")
    hub_snapshot(home / "hub", "meta-llama/Llama-3.2-1B", folder, NEW_COMMIT)
    try:
        done = paper(workdir, home, "-n")
        assert done.returncode == 0, done.stderr[-3000:]
        assert planned_outputs(done.stdout, "prepare_model") == ["results/models/llama_1b"]
    finally:
        ref.write_text(COMMIT)
    assert "Nothing to be done" in paper(workdir, home, "-n").stdout


def test_a_revision_the_cache_lacks_fails_with_one_line(hub, tmp_path):
    workdir, home, _ = hub
    missing = {"models": {"llama_1b": {"source": {"revision": "v9"}}}}
    (workdir / "missing.yaml").write_text(yaml.safe_dump({**SMALLER, **missing}))
    done = paper(workdir, home, "results/models/llama_1b", "--cores", "1", extra="missing.yaml")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("inputspace [")]
    assert len(lines) == 1 and "meta-llama/Llama-3.2-1B@v9" in lines[0], done.stderr[-3000:]
    assert "hf download meta-llama/Llama-3.2-1B --revision v9" in lines[0]
    assert not (workdir / "results/models/llama_1b.partial").exists()
