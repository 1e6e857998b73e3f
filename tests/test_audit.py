"""The audit agrees with Snakemake: after an edit, the figures `snakemake audit` calls
stale are exactly those `snakemake` makes again, and after that run every figure is
fresh. A matrix of edits (each key of an experiment block, each top-level key, a prompt
file, a package module, a script, a rule file, a model file) on a copy of a checkout with
a finished run of tests/configs/small.yaml; then that checkout moved and cloned
elsewhere, and copies of its figures in a manuscript folder.
"""

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SMALL_CONFIG, SMALL_MODEL, checkout_files, small_model

from inputspace import audit, plan, provenance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(small_run, tmp_path_factory):
    """A copy of the finished checkout (times kept), and the config its run used."""
    checkout = tmp_path_factory.mktemp("audit") / "checkout"
    shutil.copytree(small_run, checkout, symlinks=True)
    return Workflow(checkout, yaml.safe_load((checkout / SMALL_CONFIG).read_text()))


@dataclass
class Workflow:
    checkout: Path
    config: dict

    def configfile(self, config: dict | None) -> Path:
        path = self.checkout / "edited.yaml"
        path.write_text(yaml.safe_dump(config or self.config, sort_keys=False))
        return path

    def snakemake(self, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "snakemake", *args]
        command += ["--configfile", str(self.configfile(config))]
        done = subprocess.run(
            command, cwd=self.checkout, capture_output=True, text=True, timeout=1200
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def build(self, config: dict | None = None) -> None:
        self.snakemake("--cores", "2", "--max-threads", "1", config=config)

    def audit(self, config: dict | None = None) -> pd.DataFrame:
        """`snakemake audit` as the README has it."""
        self.snakemake("audit", config=config)
        return pd.read_csv(self.checkout / "results/audit.tsv", sep="\t").set_index("figure")

    def audit_here(self, config: dict | None = None) -> pd.DataFrame:
        """What the audit rule's script computes, without Snakemake around it (faster)."""
        planned = plan.snakemake_plan(
            self.checkout, self.checkout / "Snakefile", self.configfile(config)
        )
        figures = self.checkout / "results/figures"
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(self.checkout)
            return audit.audit_table(figures.relative_to(self.checkout), planned).set_index(
                "figure"
            )

    def planned_figures(self, config: dict | None = None) -> set[str]:
        """Recorded figures among the outputs of the jobs `snakemake -n` lists."""
        done = self.snakemake("-n", config=config)
        outputs = set()
        for line in done.stdout.splitlines():
            if line.startswith("    output: "):
                outputs.update(p.strip() for p in line.removeprefix("    output: ").split(","))
        return {p for p in outputs if p in self.recorded_figures()}

    def recorded_figures(self) -> dict[str, str]:
        """Figure -> its record."""
        figures = self.checkout / "results/figures"
        return {
            str(path.relative_to(self.checkout)).removesuffix(provenance.SIDECAR): path.read_text()
            for path in figures.rglob(f"*{provenance.SIDECAR}")
        }


def stale(table: pd.DataFrame) -> set[str]:
    return set(table.index[table.status == "stale"])


# ------------------------------------------------------------------ the edits


@dataclass(frozen=True)
class Edit:
    """An edit of the config (`config`) or of a file of the checkout (`files`: a function
    of the checkout that returns the function that undoes it)."""

    name: str
    config: Callable[[dict], None] | None = None
    files: Callable[[Path], Callable[[], None]] | None = None
    reaches: tuple[str, ...] = ()  # some figures it must make stale
    spares: tuple[str, ...] = ()  # some it must not


def set_in(*path_and_value):
    *path, value = path_and_value

    def edit(config: dict) -> None:
        block = config
        for key in path[:-1]:
            block = block.setdefault(key, {})
        block[path[-1]] = value

    return edit


def replace_in(name: str, old: str, new: str):
    def edit(checkout: Path) -> Callable[[], None]:
        path = checkout / name
        original = path.read_text()
        assert old in original, f"{old!r} not in {name}"
        path.write_text(original.replace(old, new, 1))
        return lambda: path.write_text(original)

    return edit


def new_weights(checkout: Path) -> Callable[[], None]:
    folder = checkout / SMALL_MODEL
    saved = folder.with_name("saved_model")
    shutil.copytree(folder, saved)
    small_model(folder, seed=1)

    def undo() -> None:
        shutil.rmtree(folder)
        saved.rename(folder)

    return undo


GRADIENTS = "results/figures/bark/tiny_gradient_norms.png"
BARK_KL = "results/figures/bark/kl.png"
PAIRS_KL = "results/figures/pairs/kl.png"
ELLIPSE = "results/figures/geometry/tiny_ellipse_spectrum.png"
SPECTRUM = "results/figures/random/tiny_hessian_spectrum.png"
TOPK = "results/figures/pairs/topk.png"
NOTHING = ()

EDITS = [
    # each key of an experiment block
    Edit("experiment description", set_in("experiments", "bark", "description", "a note")),
    Edit(
        "experiment models",
        lambda c: (
            c["models"].update(other={"source": {"kind": "random", "architecture": "gpt2"}}),
            c["experiments"]["pairs"]["models"].append("other"),
        ),
        reaches=(PAIRS_KL,),
        spares=(BARK_KL,),
    ),
    Edit(
        "experiment sequences",
        set_in(
            "experiments", "bark", "sequences", "prompt", "A thing that says 'bark' is a [MASK]."
        ),
        reaches=(BARK_KL, GRADIENTS),
        spares=(PAIRS_KL,),
    ),
    Edit(
        "experiment target",
        set_in("experiments", "random", "target", "prompt", "A thing says [MASK]."),
        reaches=(SPECTRUM,),
        spares=(BARK_KL,),
    ),
    Edit("experiment seed", set_in("experiments", "random", "seed", 5), reaches=(SPECTRUM,)),
    Edit("experiment watch", set_in("experiments", "bark", "watch", [" dog"]), reaches=(BARK_KL,)),
    Edit(
        "experiment watch_pieces",
        set_in("experiments", "bark", "watch_pieces", "all"),
        reaches=(BARK_KL,),
        spares=(GRADIENTS,),
    ),
    Edit(
        "experiment optimize",
        set_in("experiments", "bark", "optimize", "lr", 0.02),
        reaches=(BARK_KL,),
        spares=(GRADIENTS, PAIRS_KL),
    ),
    Edit(
        "experiment landscape",
        set_in("experiments", "random", "landscape", "slq_steps", 12),
        reaches=(SPECTRUM,),
        spares=("results/figures/random/kl.png",),
    ),
    Edit(
        "experiment case_study",
        set_in("experiments", "bark", "case_study", {"word": "animal", "toward": "animal"}),
        reaches=(GRADIENTS,),
        spares=(BARK_KL,),
    ),
    # each top-level key
    Edit("allow_downloads", set_in("allow_downloads", True), reaches=(ELLIPSE, BARK_KL)),
    Edit("models", set_in("models", "tiny", "description", "a note"), spares=(ELLIPSE,)),
    Edit("device", set_in("device", "cpu"), reaches=(BARK_KL, GRADIENTS), spares=(ELLIPSE,)),
    Edit("precision", set_in("precision", "bf16"), reaches=(BARK_KL,), spares=(GRADIENTS,)),
    Edit("attention", set_in("attention", "eager"), reaches=(BARK_KL,), spares=(ELLIPSE,)),
    Edit("vocab", set_in("vocab", "chunk_size", 7), reaches=(ELLIPSE, BARK_KL)),
    Edit(
        "geometry",
        set_in("geometry", "distance_pairs", 50),
        reaches=("results/figures/bark/travel_density.png",),
        spares=(BARK_KL, ELLIPSE),
    ),
    Edit("figures", set_in("figures", "one_column", 3.3), reaches=(ELLIPSE, BARK_KL)),
    # files
    Edit(
        "a comment in a package module",
        files=replace_in("src/inputspace/engine.py", "\n\n", "\n\n# a comment\n"),
    ),
    Edit(
        "a script",
        files=replace_in(
            "scripts/topk_figures.py",
            "def main(snakemake):\n",
            "def main(snakemake):\n    print()\n",
        ),
        reaches=(TOPK,),
        spares=(PAIRS_KL,),
    ),
    Edit(
        "a rule file: resources",
        files=replace_in("rules/analysis.smk", "mem_mb=2000", "mem_mb=2100"),
    ),
    Edit(
        "a rule file: a param",
        files=replace_in("rules/analysis.smk", "columns=5", "columns=4"),
        reaches=(TOPK,),
        spares=(PAIRS_KL,),
    ),
    Edit("a model file", files=new_weights, reaches=(ELLIPSE, BARK_KL, GRADIENTS)),
]

# Made again for real, one after the other (the others are undone after the dry run).
REBUILT = [
    Edit(
        "experiment optimize, rebuilt",
        set_in("experiments", "bark", "optimize", "lr", 0.03),
        reaches=(BARK_KL,),
        spares=(GRADIENTS, PAIRS_KL),
    ),
    Edit(
        "a prompt file, rebuilt",
        files=replace_in("prompts/pairs.tsv", "neigh", "moo"),
        reaches=(PAIRS_KL,),
        spares=(BARK_KL,),
    ),
    Edit(
        "a package module, rebuilt",
        files=replace_in("src/inputspace/figures.py", '"grid.alpha": 0.3', '"grid.alpha": 0.25'),
        reaches=(ELLIPSE, PAIRS_KL),
    ),
]


def applied(edit: Edit, state: Workflow) -> tuple[dict, Callable[[], None]]:
    config = copy.deepcopy(state.config)
    if edit.config:
        edit.config(config)
    undo = edit.files(state.checkout) if edit.files else (lambda: None)
    return config, undo


def check_stale_set(edit: Edit, state: Workflow, config: dict, table: pd.DataFrame) -> set[str]:
    called = stale(table)
    assert called == state.planned_figures(config), edit.name
    assert set(edit.reaches) <= called, (edit.name, table.why.to_dict())
    assert not called & set(edit.spares), (edit.name, called & set(edit.spares))
    if not edit.reaches:
        assert called == set(), edit.name
    return called


@pytest.mark.parametrize("edit", EDITS, ids=lambda edit: edit.name)
def test_the_audit_calls_stale_what_snakemake_would_make_again(state, edit):
    config, undo = applied(edit, state)
    try:
        check_stale_set(edit, state, config, state.audit_here(config))
    finally:
        undo()


@pytest.mark.parametrize("edit", REBUILT, ids=lambda edit: edit.name)
def test_after_an_edit_snakemake_makes_again_what_the_audit_called_stale(state, edit):
    config, _ = applied(edit, state)  # kept: the next edit starts from here
    called = check_stale_set(edit, state, config, state.audit(config))
    before = state.recorded_figures()
    state.build(config)
    state.config = config
    after = state.recorded_figures()
    assert {figure for figure in before if after[figure] != before[figure]} == called
    assert (state.audit().status == "fresh").all()


def test_a_moved_checkout_is_up_to_date(state, tmp_path):
    moved = tmp_path / "moved"
    shutil.move(state.checkout, moved)
    try:
        elsewhere = Workflow(moved, state.config)
        assert "Nothing to be done" in elsewhere.snakemake("-n").stdout
        assert (elsewhere.audit().status == "fresh").all()
    finally:
        shutil.move(moved, state.checkout)


def test_a_clone_with_the_results_copied_in_is_up_to_date(state, tmp_path):
    """A fresh clone (every file new) with results/ and .snakemake/ copied as they were."""
    clone = tmp_path / "clone"
    clone.mkdir()
    checkout_files(clone, state.checkout)
    for kept in ("results", ".snakemake", SMALL_MODEL):
        shutil.copytree(state.checkout / kept, clone / kept, symlinks=True)
    elsewhere = Workflow(clone, state.config)
    assert "Nothing to be done" in elsewhere.snakemake("-n").stdout
    assert (elsewhere.audit().status == "fresh").all()


# ------------------------------------------------------------------ copies of figures


def figure_check(state: Workflow, *figures: Path, config: dict | None = None):
    configfile = state.checkout / "checked.yaml"
    configfile.write_text(yaml.safe_dump(config or state.config, sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "inputspace.figure_check",
        *map(str, figures),
        "--checkout",
        str(state.checkout),
        "--configfile",
        str(configfile),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd="/")


@pytest.fixture
def manuscript(state, tmp_path):
    """Copies of a PNG, a PDF and an SVG in a folder outside the checkout."""
    folder = tmp_path / "manuscript"
    folder.mkdir()
    names = {
        "fig1.png": "results/figures/pairs/kl.png",
        "fig2.pdf": "results/figures/bark/kl.pdf",
        "fig3.svg": "results/figures/geometry/tiny_ellipse_spectrum.svg",
    }
    for copy_name, made in names.items():
        shutil.copy(state.checkout / made, folder / copy_name)
    return {name: folder / name for name in names}


def test_copies_of_a_png_a_pdf_and_an_svg_are_fresh(state, manuscript):
    done = figure_check(state, *manuscript.values())
    assert done.returncode == 0, done.stdout + done.stderr
    for copy_path in manuscript.values():
        assert f"{copy_path}: fresh (Snakemake would not make it again); image unchanged" in (
            done.stdout
        )
    assert "by rule convergence_figures" in done.stdout and "model     tiny:" in done.stdout


def test_an_edit_that_reaches_one_copy_makes_only_it_stale(state, manuscript):
    config = copy.deepcopy(state.config)
    config["experiments"]["bark"]["optimize"]["lr"] = 0.05
    done = figure_check(state, *manuscript.values(), config=config)
    assert done.returncode == 1
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines() if not line[0].isspace()}
    assert "stale (Snakemake would make it again: " in lines[str(manuscript["fig2.pdf"])]
    assert "(optimize): its params changed" in lines[str(manuscript["fig2.pdf"])]
    assert ": fresh (" in lines[str(manuscript["fig1.png"])]
    assert ": fresh (" in lines[str(manuscript["fig3.svg"])]


def test_an_edited_copy_says_it_was_changed_after_it_was_made(state, manuscript):
    svg = manuscript["fig3.svg"]
    svg.write_text(svg.read_text().replace("#ffffff", "#fffffe", 1))
    pdf = manuscript["fig2.pdf"]
    data = bytearray(pdf.read_bytes())
    data[data.index(b"/MediaBox") + 12] ^= 1  # the page's size, in the unstamped part
    pdf.write_bytes(bytes(data))
    done = figure_check(state, svg, pdf)
    assert done.returncode == 1
    assert done.stdout.count("changed after it was made") == 2, done.stdout
