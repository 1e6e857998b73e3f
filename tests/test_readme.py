"""Every command the README and docs/ show (the lines of their ```bash blocks) is either
run here, as written, in a fresh copy of the checkout, or named in LONG with the test
that runs it (or what it needs that no test machine has)."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, checkout_files

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

CLUSTER_EFFICIENCY = (
    ".venv/bin/python -c \"import pandas as pd, sys; t = pd.read_csv(sys.argv[1]); t['rule'] = "
    "t.RuleName.str.extract(r'rule_(.+?)(?:_wildcards_|$)')[0]; print(t.groupby('rule')"
    "[['Elapsed_sec', 'MaxRSS_MB', 'RequestedMem_MB', 'Memory Usage (%)', 'NCPUS', "
    "'CPU Efficiency (%)']].max())\" efficiency_report_<run id>.csv"
)
# Commands too long (or needing what a test machine lacks) to run here as written.
LONG = {
    "./setup.sh && .venv/bin/snakemake --cores all": "the default run (26 min); "
    "tests/test_workflow.py runs every rule on tiny models",
    "./setup.sh && .venv/bin/python -m pytest": ".ci/run runs exactly this",
    ".venv/bin/snakemake --cores all --configfile configs/tiny.yaml": "tests/test_workflow.py",
    ".venv/bin/snakemake --profile profiles/slurm --configfile configs/paper.yaml": "needs "
    "the hub models and a cluster; tests/test_slurm.py runs the profile on a one-node "
    "cluster and tests/test_hub.py the paper config through a hand-made hub cache",
    ".venv/bin/snakemake audit": "needs a finished run; tests/test_audit.py",
    ".venv/bin/python -m inputspace.provenance.figure_check ~/book/fig2.pdf "
    "--checkout ~/inputspace": (
        "needs a copied figure; tests/test_audit.py (copies of a PNG, a PDF and an SVG)"
    ),
    ".venv/bin/python -m inputspace.provenance.figure_check --rebuild ~/book/fig2.pdf --checkout "
    "~/inputspace": "tests/test_audit.py::test_a_figure_rebuilt_from_its_raw_model_is_identical",
    '.venv/bin/python -m pytest -m "not slow"': "this very suite",
    "hf download answerdotai/ModernBERT-large": "needs the hub",
    "hf download meta-llama/Llama-3.2-1B": "needs the hub and the model's licence",
    "HF_HOME=/shared/huggingface .venv/bin/snakemake --cores all --configfile "
    "configs/paper.yaml": "needs the hub models; tests/test_hub.py",
    ".venv/bin/snakemake crate": "needs a finished run; tests/test_crate.py",
    ".venv/bin/snakemake crate --config 'crate_figures=[results/figures/bark_neigh/kl.pdf,"
    "results/figures/random_sentences/*.pdf]'": "needs a finished run; tests/test_crate.py "
    "(a book's crate)",
    ".venv/bin/python -m inputspace.provenance.crate_check results/crate": "tests/test_crate.py",
    ".venv/bin/snakemake crate --config 'crate_figures=[results/figures/bark_neigh/kl.pdf]'": (
        "needs a finished run; tests/test_crate.py (a book's crate)"
    ),
    "cp -a results results.before": "needs a finished default run (docs/science.md)",
    ".venv/bin/snakemake --cores all --forcerun landscape results/summary.md": "the default "
    "run's landscape again (about 11 min); tests/test_workflow.py runs the landscape",
    CLUSTER_EFFICIENCY: "needs a SLURM run's efficiency report; tests/test_slurm.py reads one",
}


def commands(page: Path) -> list[str]:
    """The commands of a page's ```bash blocks: one per line (a trailing backslash joins
    the next), without comments."""
    found = []
    for block in re.findall(r"^```bash\n(.*?)^```", page.read_text(), flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append(re.sub(r"\s+", " ", command))
    return found


SHOWN = {command: page.name for page in PAGES for command in commands(page)}
CHEAP = sorted(set(SHOWN) - set(LONG))


def test_every_long_command_is_still_shown():
    assert set(LONG) <= set(SHOWN), set(LONG) - set(SHOWN)


def test_the_readme_shows_the_two_commands_first():
    assert commands(REPO / "README.md")[:2] == [
        "./setup.sh && .venv/bin/snakemake --cores all",
        "./setup.sh && .venv/bin/python -m pytest",
    ]


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) < 250


@pytest.fixture(scope="module")
def copy_of_checkout(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme") / "checkout"
    checkout_files(folder)
    (folder / ".venv").symlink_to(REPO / ".venv")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("command", CHEAP)
def test_a_cheap_command_runs_as_written(command, copy_of_checkout):
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=copy_of_checkout,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, (SHOWN[command], done.stdout[-2000:], done.stderr[-2000:])
