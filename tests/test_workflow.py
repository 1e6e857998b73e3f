"""The workflow through the snakemake command line, on tiny random models."""

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import snakemake_command

from inputspace.model import random_model
from inputspace.provenance import record, stamp
from inputspace.workflow.config import load_schema, validated

pytestmark = pytest.mark.slow  # runs Snakemake: minutes

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *args), capture_output=True, text=True, timeout=1200
    )


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # as written: key order is in params
    return path


def tiny_config() -> dict:
    return yaml.safe_load((REPO / "configs/tiny.yaml").read_text())


def tiny_models() -> dict[str, str]:
    """Model name -> kind (masked or causal) of every model of configs/tiny.yaml."""
    models = tiny_config()["models"]
    return {
        name: random_model.ARCHITECTURES[spec["source"]["architecture"]].kind
        for name, spec in models.items()
    }


def test_tiny_workflow_builds_every_target(tiny_run):
    results = tiny_run / "results"
    assert set(tiny_models().values()) == {"masked", "causal"}
    for model, kind in tiny_models().items():
        manifest = json.loads((results / "models" / model / "manifest.json").read_text())
        assert manifest["kind"] == kind
        vocab = pd.read_parquet(results / model / "vocab.parquet")
        assert len(vocab) == manifest["vocab_size"]
        assert (results / model / "ellipse.safetensors").is_file()
        assert (
            results / "figures/geometry" / f"{model}_ellipse_spectrum.png"
        ).stat().st_size > 10_000
        pairs = pd.read_parquet(results / model / "vocab_distances.parquet")
        assert len(pairs) == 200  # configs/tiny.yaml: geometry.distance_pairs
        samples = pd.read_parquet(results / model / "samples/random_sentences.parquet")
        assert len(samples) == 8 and samples.n_optimised.between(3, 8).all()
        norms = json.loads((results / model / "samples/random_sentences_norms.json").read_text())
        assert 0.0 <= norms["ks_statistic"] <= 1.0
    assert not list(results.rglob("*.partial"))


def test_tiny_workflow_optimises_every_experiment(tiny_run):
    config = tiny_config()
    for name, experiment in config["experiments"].items():
        steps = experiment["optimize"]["steps"]
        for model in experiment["models"]:
            run = tiny_run / "results" / model / "runs" / name
            table = pd.read_parquet(run / "steps.parquet")
            assert table.step.max() == steps
            assert len(table) == (steps + 1) * table.seq.nunique()
            assert (table.model == model).all() and (table.experiment == name).all()
            assert (run / "embeddings.safetensors").is_file()
            assert len(pd.read_parquet(run / "tokens.parquet")) > 0
    # prompt experiments converge on the tiny models (random sentences are harder)
    for model in ("tiny_modernbert", "tiny_llama"):
        final = pd.read_parquet(tiny_run / f"results/{model}/runs/prompt_pairs/steps.parquet")
        assert final[final.step == final.step.max()].kl.max() < 1e-2
    assert not list((tiny_run / "results").rglob("*.pt"))  # checkpoints go once runs finish


def test_tiny_workflow_builds_the_case_study(tiny_run):
    figures = tiny_run / "results/figures/bark_neigh"
    for model in tiny_models():
        gradients = pd.read_csv(figures / f"{model}_gradients.csv")
        assert gradients.grad_norm.gt(0).all() and gradients.descent_v.str.len().gt(0).all()
        path = pd.read_parquet(figures / f"{model}_path.parquet")
        assert path.step.max() == 60 and path.step.min() == 0
        assert (path[path.step == 0].l2_travelled == 0).all()
        assert (path.toward_heading_rank[path.step > 0] >= 1).all()
        assert sorted(path.seq.unique()) == [0, 1, 2]  # one path per wording (replicate)
        for figure in ("gradient_norms", "path"):
            assert (figures / f"{model}_{figure}.png").stat().st_size > 20_000


FIGURES = [
    "kl.png",
    "travel.png",
    "displacement.png",
    "favoured.png",
    "travel_density.png",
    "topk.png",
    "topk.gif",
]
TABLES = [
    "curves.parquet",
    "convergence.csv",
    "displacement.csv",
    "favoured.parquet",
    "travel_density.parquet",
    "backprojection.csv",
    "backprojection_counts.csv",
    "headings.csv",
    "topk.csv",
]


def test_tiny_workflow_builds_every_figure_and_its_table(tiny_run):
    for experiment in tiny_config()["experiments"]:
        folder = tiny_run / "results/figures" / experiment
        for name in FIGURES:
            assert (folder / name).stat().st_size > 10_000, name
        for name in TABLES:
            assert (folder / name).is_file(), name
        convergence = pd.read_csv(folder / "convergence.csv")
        assert set(convergence.model) == set(tiny_models())
        counts = pd.read_csv(folder / "backprojection_counts.csv")
        assert counts.fraction_changed.between(0, 1).all()
    summary = (tiny_run / "results/summary.md").read_text()
    for experiment in tiny_config()["experiments"]:
        assert f"## {experiment}" in summary
    assert (
        "| measured | " + " | ".join(tiny_config()["experiments"]["bark_neigh"]["models"]) + " |"
        in summary
    )
    assert "Experiment 5" in summary and "Experiment 4" in summary
    top = summary.split("## Terms")[0]
    assert "**In short:**" in top and "the loss converges" in top
    assert "## Checks of the code (these hold by construction and are no evidence)" in summary
    assert "dimension of the zero-loss set here, n - r" in summary  # the measured table
    assert "bound n - d" in summary and "## Appendix" in summary
    assert "../shared" not in summary


def test_tiny_workflow_measures_the_zero_loss_set(tiny_run):
    """Spectra only at converged solutions and the controls; the exact spectrum at the
    control prompt's own prediction (a real-token zero-loss point) has rank at most d."""
    folder = tiny_run / "results/figures/random_sentences"
    for model in tiny_models():
        solutions = pd.read_csv(folder / f"{model}_solutions.csv")
        flat = pd.read_csv(folder / f"{model}_flatness.csv")
        spectra = pd.read_parquet(folder / f"{model}_hessian_spectrum.parquet")
        probed = {int(point.split()[-1]) for point in flat.point[flat.kind == "solution"]}
        assert probed <= set(solutions.seq[solutions.converged])
        assert set(flat.kind) >= {"random start", "prompt", "zero-loss prompt"}
        zero = flat[flat.kind == "zero-loss prompt"].iloc[0]
        assert zero.kl == 0 and zero.method == "exact" and zero.numerical_rank <= zero.hidden
        for row in flat[flat.method == "exact"].itertuples():  # the whole spectrum of each
            assert (spectra.point == row.point).sum() == row.dimensions
        barriers = pd.read_csv(folder / f"{model}_barriers.csv")
        assert barriers.straight_barrier[~barriers.both_converged].isna().all()
        assert len(barriers) >= 2  # several pairs
        traces = pd.read_parquet(folder / f"{model}_path_traces.parquet")
        assert set(traces.pair) == set(barriers.pair[barriers.bent_barrier.notna()])


def test_tiny_workflow_measures_the_local_dimension_at_every_pair(tiny_run):
    """The exact Jacobian's rank at `jacobian_ends` converged ends of every pair (solutions
    2i and 2i+1 are pair i's) and at the random start, the set's dimension n - r and its
    bound n - d beside it, every singular value kept."""
    folder = tiny_run / "results/figures/random_sentences"
    schema = load_schema(REPO / "schemas/config.schema.yaml")
    study = validated(tiny_config(), schema)["experiments"]["random_sentences"]["landscape"]
    ends = study["jacobian_ends"]  # as the run reads it: the schema's default if unset
    for model in tiny_models():
        solutions = pd.read_csv(folder / f"{model}_solutions.csv")
        dims = pd.read_csv(folder / f"{model}_local_dimension.csv")
        singular = pd.read_parquet(folder / f"{model}_singular_values.parquet")
        measured = pd.Series(
            sorted(int(p.split()[-1]) for p in dims.point[dims.kind == "solution"])
        )
        converged = pd.Series(solutions.seq[solutions.converged])
        assert set(measured) <= set(converged)
        per_pair = measured.groupby(measured // 2).size()
        available = converged.groupby(converged // 2).size()
        assert per_pair.to_dict() == available.clip(upper=ends).to_dict()
        assert "random start" in set(dims.kind)
        assert (dims["rank"] <= dims.hidden).all()
        assert (dims.set_dimension == dims.dimensions - dims["rank"]).all()
        assert (dims.bound == dims.dimensions - dims.hidden).all()
        for row in dims.itertuples():
            assert (singular.point == row.point).sum() == row.hidden


def test_report_holds_every_figure(tiny_run):
    result = snakemake(
        tiny_run, "--report", "report.zip", "--configfile", str(REPO / "configs/tiny.yaml")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with zipfile.ZipFile(tiny_run / "report.zip") as archive:
        names = [Path(n).name for n in archive.namelist()]
        page = archive.read("report/report.html").decode()
    experiments = tiny_config()["experiments"]
    for name in FIGURES:  # the report stores files by content hash, so count them
        assert names.count(name) == len(experiments), name
    for name in (
        "summary.html",
        "provenance.html",
        "tiny_llama_hessian_spectrum.png",
        "tiny_llama_local_dimension.png",
        "tiny_modernbert_path.png",
    ):
        assert name in names
    for group in [*experiments, "Geometry", "Summary", "Provenance"]:
        assert group in page


def test_every_figure_carries_its_provenance(tiny_run):
    figures = figure_files(tiny_run)
    assert len(figures) >= 2 * (2 * 3 + 6 * 3) + 3  # PNG and PDF of each static figure, GIFs
    for figure in figures:
        record = json.loads(Path(f"{figure}.provenance.json").read_text())
        assert record == stamp.embedded(figure)
        assert record["git"]["commit"] and record["libraries"]["matplotlib"]
        assert record["code"]["script"] == f"scripts/{record['rule']}.py"
        for model in record["models"].values():  # a random model: its source is all
            assert model["files_sha256"]["model.safetensors"] and model["source"]["seed"] == 0
        assert all(len(i.get("sha256") or i.get("manifest_sha256")) == 64 for i in record["inputs"])
    kl = stamp.embedded(tiny_run / "results/figures/prompt_pairs/kl.png")
    assert kl["device"] == ["cpu"] and {run["seed"] for run in kl["runs"]} == {0}
    assert kl["config"]["models"] == tiny_config()["experiments"]["prompt_pairs"]["models"]
    assert kl["config"]["style"]["formats"] == ["png", "pdf"]  # the default formats
    assert stamp.embedded(tiny_run / "results/figures/prompt_pairs/kl.pdf")["rule"] == (
        "convergence_figures"
    )
    assert (
        "provenance of every figure" in (tiny_run / "results/provenance.html").read_text().lower()
    )


def audit(workdir: Path, config: dict) -> pd.DataFrame:
    """`snakemake audit` as the README writes it: no --cores, rerun on every call."""
    result = snakemake(workdir, "audit", "--configfile", str(write_config(workdir, config)))
    assert result.returncode == 0, result.stderr[-2000:]
    return pd.read_csv(workdir / "results/audit.tsv", sep="\t").set_index("figure")


def figure_files(workdir: Path) -> list[Path]:
    return sorted(
        path
        for path in (workdir / "results/figures").rglob("*")
        if path.suffix in record.FIGURE_SUFFIXES
    )


def test_audit_calls_every_figure_fresh(tiny_run):
    table = audit(tiny_run, tiny_config())
    assert sorted(table.index) == [str(p.relative_to(tiny_run)) for p in figure_files(tiny_run)]
    assert (table.status == "fresh").all(), table[table.status != "fresh"].why.to_dict()


def test_case_study_word_must_be_in_the_prompt(tmp_path):
    config = tiny_config()
    config["experiments"]["bark_neigh"]["case_study"]["toward"] = "moo"
    result = snakemake(tmp_path, "-n", "--configfile", str(write_config(tmp_path, config)))
    line = one_line_error(result)
    assert "experiments.bark_neigh.case_study.toward" in line and "'moo'" in line


def test_rerun_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "-n", "--configfile", str(REPO / "configs/tiny.yaml"))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_paper_config_dry_runs_offline(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs/paper.yaml"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prepare_model" in result.stdout


def test_slurm_profile_gives_model_rules_one_gpu_and_one_task(tmp_path):
    result = snakemake(
        tmp_path,
        "-n",
        "--profile",
        str(REPO / "profiles/slurm"),
        "--configfile",
        str(REPO / "configs/paper.yaml"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = result.stdout.split("rule ")[1:]
    gpu_rules = {"optimize", "gradient_case_study", "landscape"}
    seen = set()
    for job in jobs:
        name = job.split(":")[0].strip()
        resources = next(line for line in job.splitlines() if "resources:" in line)
        if name in gpu_rules:
            seen.add(name)
            assert "gpu=1" in resources and "tasks_per_gpu=0" in resources, resources
        assert " tasks=" not in resources and "slurm_partition=" in resources
    assert seen == gpu_rules


def test_the_profiles_optional_groups_bundle_each_models_preparation(tmp_path):
    profile = tmp_path / "profile"
    shutil.copytree(REPO / "profiles/slurm", profile)
    text = (profile / "config.yaml").read_text()
    commented = text[text.index("# groups:") :].split("\n\n")[0]
    uncommented = "\n".join(line[2:] for line in commented.splitlines())
    (profile / "config.yaml").write_text(text.replace(commented, uncommented))
    groups = yaml.safe_load(uncommented)["groups"]
    result = snakemake(
        tmp_path, "-n", "--profile", str(profile), "--configfile", str(REPO / "configs/paper.yaml")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    models = yaml.safe_load((REPO / "configs/paper.yaml").read_text())["models"]
    bundles = result.stdout.split("Group job prepare")[1:]
    assert len(bundles) == len(models)
    for bundle in bundles:
        inside = re.findall(r"^    rule (\w+):", bundle.split("\n\n\n")[0], re.MULTILINE)
        assert sorted(inside) == sorted(groups), inside


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("inputspace")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_config_error_is_one_line(tmp_path):
    config = tiny_config()
    config["experiments"]["random_sentences"]["sequences"]["count"] = -3
    result = snakemake(tmp_path, "-n", "--configfile", str(write_config(tmp_path, config)))
    line = one_line_error(result)
    assert "experiments.random_sentences.sequences.count" in line and "minimum of 1" in line


def test_bad_pairs_file_names_the_line(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "source\ttarget\nA dog is a [MASK].\tA cat is a [MASK].\nNo site.\tA cat is a [MASK].\n"
    )
    config = tiny_config()
    config["experiments"]["prompt_pairs"]["sequences"]["file"] = str(pairs)
    result = snakemake(tmp_path, "-n", "--configfile", str(write_config(tmp_path, config)))
    assert "pairs.tsv:3" in one_line_error(result)


def test_unavailable_hub_model_fails_cleanly(tmp_path):
    config = {
        "models": {
            "bert": {
                "source": {"kind": "hub", "id": "answerdotai/ModernBERT-large", "revision": "main"}
            }
        },
        "experiments": {},
    }
    result = snakemake(
        tmp_path,
        "results/models/bert",
        "--cores",
        "1",
        "--configfile",
        str(write_config(tmp_path, config)),
    )
    line = one_line_error(result)
    assert "answerdotai/ModernBERT-large" in line and "local" in line
    assert not (tmp_path / "results/models/bert").exists()
    assert not (tmp_path / "results/models/bert.partial").exists()
