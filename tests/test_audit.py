"""The audit agrees with Snakemake: after an edit, the figures `snakemake audit` calls
stale are exactly those `snakemake` makes again, and after that run every figure is
fresh. A matrix of edits (each key of an experiment block, each top-level key, a prompt
file, a package module, a script, a rule file, a model file) on a copy of a checkout with
a finished run of tests/configs/small.yaml; then that checkout moved and cloned
elsewhere, and copies of its figures in a manuscript folder.
"""

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SMALL_CONFIG, SMALL_MODEL, checkout_files, small_model

from inputspace.provenance import audit, code_digest, plan, record, stamp

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
    env: dict = field(default_factory=dict)  # more environment for every command

    def configfile(self, config: dict | None) -> Path:
        path = self.checkout / "edited.yaml"
        path.write_text(yaml.safe_dump(config or self.config, sort_keys=False))
        return path

    def snakemake(
        self, *args: str, config: dict | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "snakemake", *args]
        command += ["--configfile", str(self.configfile(config))]
        done = subprocess.run(
            command,
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=1200,
            env={**os.environ, **self.env},
        )
        assert done.returncode == 0 or not check, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def build(self, config: dict | None = None) -> None:
        self.snakemake("--cores", "2", "--max-threads", "1", config=config)

    def audit(self, config: dict | None = None) -> pd.DataFrame:
        """`snakemake audit` as the README has it."""
        self.snakemake("audit", config=config)
        return pd.read_csv(self.checkout / "results/audit.tsv", sep="\t").set_index("figure")

    def audit_here(self, config: dict | None = None) -> pd.DataFrame:
        """What the audit rule's script computes, without Snakemake around it (faster)."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env.items():
                patch.setenv(name, value)
            planned = plan.snakemake_plan(
                self.checkout, self.checkout / "Snakefile", self.configfile(config)
            )
            patch.chdir(self.checkout)
            figures = [path for path in planned.outputs if is_figure(path)]
            table = audit.audit_table(figures, planned, leftovers_under=Path("results/figures"))
            return table.set_index("figure")

    def dry_run(self, config: dict | None = None) -> "DryRun":
        """The jobs `snakemake -n` lists."""
        return DryRun(self.snakemake("-n", config=config).stdout.splitlines())

    def recorded_figures(self) -> dict[str, str]:
        """Figure -> its record."""
        figures = self.checkout / "results/figures"
        return {
            str(path.relative_to(self.checkout)).removesuffix(stamp.SIDECAR): path.read_text()
            for path in figures.rglob(f"*{stamp.SIDECAR}")
        }


@dataclass(frozen=True)
class DryRun:
    lines: list[str]

    def figures(self) -> set[str]:
        """The figures among the outputs of its jobs."""
        outputs = set()
        for line in self.lines:
            if line.startswith("    output: "):
                outputs.update(p.strip() for p in line.removeprefix("    output: ").split(","))
        return {p for p in outputs if is_figure(p)}

    def rules(self) -> set[str]:
        """The rules of its jobs."""
        return {
            line.split()[-1].rstrip(":")
            for line in self.lines
            if re.match(r"(local)?rule \w+:$", line)
        }


def is_figure(path: str) -> bool:
    return Path(path).suffix in record.FIGURE_SUFFIXES


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
    env: Callable[[Path], dict[str, str]] | None = None  # more environment
    spared_rules: tuple[str, ...] = ()  # rules none of whose jobs it reruns
    says: str = ""  # what the audit says of every figure it reaches


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


def same_size_weights_time_kept(checkout: Path) -> Callable[[], None]:
    """The local model's weights replaced by a model of the same architecture (the same
    size), its modification time put back as `cp -p` or `rsync -a` would."""
    weights = checkout / SMALL_MODEL / "model.safetensors"
    other = checkout.parent / "other_model"
    small_model(other, seed=1)
    before = weights.stat()
    assert (other / "model.safetensors").stat().st_size == before.st_size
    original = weights.read_bytes()
    shutil.copyfile(other / "model.safetensors", weights)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))

    def undo() -> None:
        weights.write_bytes(original)
        os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))

    return undo


def older_cycler(checkout: Path) -> dict[str, str]:
    """A real second version of a small library every figure job imports (matplotlib
    requires cycler), installed beside the environment and put first on the import path."""
    folder = checkout.parent / "older-cycler"
    if not (folder / "cycler-0.11.0.dist-info").is_dir():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        command = [*pip, "--no-deps", "--target", str(folder), "cycler==0.11.0"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"pip could not install cycler 0.11.0: {done.stderr[-2000:]}"
    assert code_digest.installed_versions(["cycler"])["cycler"] != "0.11.0"
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    }


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
    Edit("crate_figures", set_in("crate_figures", [BARK_KL]), spares=(BARK_KL, ELLIPSE)),
    # files
    Edit(
        "a comment in a package module",
        files=replace_in("src/inputspace/optimisation/engine.py", "\n\n", "\n\n# a comment\n"),
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
        files=replace_in("rules/analysis.smk", "mem_mb=530", "mem_mb=560"),
    ),
    Edit(
        "a rule file: a param",
        files=replace_in("rules/analysis.smk", "columns=5", "columns=4"),
        reaches=(TOPK,),
        spares=(PAIRS_KL,),
    ),
    Edit("a model file", files=new_weights, reaches=(ELLIPSE, BARK_KL, GRADIENTS)),
    Edit(
        "a package module",
        files=replace_in(
            "src/inputspace/studies/figures.py", '"grid.alpha": 0.3', '"grid.alpha": 0.25'
        ),
        reaches=(ELLIPSE, PAIRS_KL),
    ),
    Edit(
        "a prompt file",
        files=replace_in("prompts/pairs.tsv", "neigh", "moo"),
        reaches=(PAIRS_KL,),
        spares=(BARK_KL,),
    ),
]

# The rules whose jobs make no figure: they compute, and a job of its own draws from their
# tables.
WITHOUT_FIGURES = (
    "prepare_model",
    "extract_vocab",
    "vocab_distances",
    "fit_ellipse",
    "sample_sequences",
    "optimize",
    "gradient_case_study",
    "landscape",
    "token_tables",
)

# Made again for real, one after the other, each kept for the next (the others are undone
# after the dry run, which holds the audit against Snakemake's own plan).
REBUILT = [
    Edit(
        "a record-keeping module, rebuilt",
        files=replace_in(
            "src/inputspace/provenance/stamp.py",
            '"made_on": where_made(),',
            '"made_on": where_made(),\n        "edited": True,',
        ),
        # the stamping writes every figure's record: it counts for the rules that make
        # figures (inputspace.provenance.code_digest.STAMP), and for no other
        reaches=(ELLIPSE, BARK_KL, PAIRS_KL, TOPK),
        spared_rules=WITHOUT_FIGURES,
        says="its params changed: its code (scripts/",
    ),
    Edit(
        "the engine, rebuilt",
        files=replace_in(
            "src/inputspace/optimisation/engine.py", "\n\n\ndef ", "\n\n\nEDITED = 1\n\n\ndef "
        ),
        reaches=(BARK_KL, PAIRS_KL, SPECTRUM, GRADIENTS),
        spares=(ELLIPSE,),
        spared_rules=("prepare_model", "extract_vocab", "fit_ellipse", "vocab_distances"),
        says="its params changed: its code (scripts/",
    ),
    Edit(
        "a library version, rebuilt",
        env=older_cycler,
        reaches=(ELLIPSE, BARK_KL, PAIRS_KL, SPECTRUM, GRADIENTS, TOPK),
        spared_rules=WITHOUT_FIGURES,
        says="its params changed: its libraries: cycler 0.12.1 -> 0.11.0",
    ),
    Edit(
        "a same-size model file with its time kept, rebuilt",
        files=same_size_weights_time_kept,
        reaches=(ELLIPSE, BARK_KL, PAIRS_KL, SPECTRUM, GRADIENTS),
        says="results/models/tiny (prepare_model): its params changed: its model source's "
        "content: model.safetensors",
    ),
]


def applied(edit: Edit, state: Workflow) -> tuple[dict, Callable[[], None]]:
    config = copy.deepcopy(state.config)
    if edit.config:
        edit.config(config)
    undo_files = edit.files(state.checkout) if edit.files else (lambda: None)
    env = dict(state.env)
    if edit.env:
        state.env.update(edit.env(state.checkout))

    def undo() -> None:
        undo_files()
        state.env.clear()
        state.env.update(env)

    return config, undo


def check_stale_set(edit: Edit, state: Workflow, config: dict, table: pd.DataFrame) -> set[str]:
    called = stale(table)
    planned = state.dry_run(config)
    assert called == planned.figures(), edit.name
    assert not planned.rules() & set(edit.spared_rules), edit.name
    assert all(edit.says in why for why in table.why[list(called)]), (
        edit.says,
        table.why.to_dict(),
    )
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
    assert {figure for figure in after if after[figure] != before.get(figure)} == called
    assert (state.audit().status == "fresh").all()


def test_a_byte_changed_in_a_prepared_model_is_changed_and_no_run_uses_it(state):
    """The audit calls every figure of that model `changed`, naming the file and the
    command; the next run refuses them all; that command makes them all again."""
    folder = "results/models/tiny"
    weights = state.checkout / folder / "model.safetensors"
    kept = weights.stat()
    with open(weights, "r+b") as stream:
        stream.seek(kept.st_size // 2)
        byte = stream.read(1)
        stream.seek(kept.st_size // 2)
        stream.write(bytes([byte[0] ^ 1]))
    os.utime(weights, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    table = state.audit()
    changed = set(table.index[table.status == "changed"])
    assert changed == set(state.recorded_figures())  # every figure shows the tiny model
    command = f"snakemake --forcerun {folder}"
    assert all(f"{folder}/model.safetensors (changed)" in why for why in table.why), table.why
    assert all(command in why for why in table.why)
    refused = state.snakemake("--cores", "2", "--max-threads", "1", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"inputspace: {folder}/model.safetensors (changed)" in refused.stderr
    before = state.recorded_figures()
    state.snakemake("--cores", "2", "--max-threads", "1", "--forcerun", folder)
    after = state.recorded_figures()
    assert {figure for figure in before if after[figure] != before[figure]} == changed
    assert (state.audit().status == "fresh").all()


def test_a_moved_checkout_is_up_to_date(state, tmp_path):
    moved = tmp_path / "moved"
    shutil.move(state.checkout, moved)
    try:
        elsewhere = Workflow(moved, state.config, state.env)
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
    elsewhere = Workflow(clone, state.config, state.env)
    assert "Nothing to be done" in elsewhere.snakemake("-n").stdout
    assert (elsewhere.audit().status == "fresh").all()


# ------------------------------------------------------------------ copies of figures


def figure_check(state: Workflow, *figures: Path, config: dict | None = None):
    configfile = state.checkout / "checked.yaml"
    configfile.write_text(yaml.safe_dump(config or state.config, sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "inputspace.provenance.figure_check",
        *map(str, figures),
        "--checkout",
        str(state.checkout),
        "--configfile",
        str(configfile),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        env={**os.environ, **state.env},  # the environment the figures were made in
    )


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
    lines = done.stdout.splitlines()
    for line in lines[1:]:
        if line.startswith("  "):
            label, _, text = line.strip().partition(" ")
            assert label and text.strip() and "None" not in text, line
    made = record.read(state.checkout / "results/figures/pairs/kl.png")
    raw = made["models"]["tiny"]["origin"]["content_sha256"]
    assert f"  model     tiny: local folder {SMALL_MODEL}, content sha256 {raw}" in done.stdout
    prepared = made["models"]["tiny"]["files_sha256"]["model.safetensors"]
    assert re.fullmatch("[0-9a-f]{64}", raw) and f"model.safetensors {prepared}" in done.stdout


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


def test_a_figure_rebuilt_from_its_raw_model_is_identical(state, tmp_path):
    """--rebuild on one figure of each kind (PNG, PDF, SVG, GIF), copied elsewhere: made
    again in a scratch folder from the local model folder its record names."""
    folder = tmp_path / "book"
    folder.mkdir()
    copies = []
    for name in ("kl.png", "kl.pdf", "kl.svg", "topk.gif"):
        copies.append(shutil.copy(state.checkout / "results/figures/bark" / name, folder / name))
    command = [
        sys.executable,
        "-m",
        "inputspace.provenance.figure_check",
        "--rebuild",
        *map(str, copies),
    ]
    command += ["--checkout", str(state.checkout), "--scratch", str(tmp_path / "scratch")]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env={**os.environ, **state.env}
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for copy_path in copies:
        assert f"{copy_path}: rebuilt from the raw model in " in done.stdout
    assert done.stdout.count(": identical") == 4 and "differs" not in done.stdout
    assert "  same      picture (image digest)" in done.stdout
    assert "  same      results/tiny/runs/bark/steps.parquet" in done.stdout
    assert "  same      results/figures/bark/convergence.csv" in done.stdout  # drawn beside


def test_rebuilding_from_another_raw_model_is_refused(state, tmp_path):
    copy_path = shutil.copy(state.checkout / "results/figures/bark/kl.png", tmp_path / "kl.png")
    weights = state.checkout / SMALL_MODEL / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        command = [
            sys.executable,
            "-m",
            "inputspace.provenance.figure_check",
            "--rebuild",
            str(copy_path),
        ]
        command += ["--checkout", str(state.checkout), "--scratch", str(tmp_path / "scratch")]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env={**os.environ, **state.env}
        )
    finally:
        weights.write_bytes(original)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{copy_path}: cannot rebuild: model tiny: the raw model here is not")
    assert not (tmp_path / "scratch/0/results").exists()  # nothing was run


def test_every_library_a_job_loaded_is_one_its_rule_reruns_on(small_run):
    """What each job of the small run had imported when it ended (any module, lazily
    imported ones too) belongs to a distribution among its rule's `libraries` param (or
    to the harness, which computes no output, or to Snakemake): the static reading of its
    code misses none."""
    environment = code_digest.Environment()
    package = small_run / "src" / code_digest.PACKAGE
    # Snakemake's script preamble loads Snakemake in every job, to hand it its inputs
    engine = environment.closure(["snakemake"]).keys() | {code_digest.PACKAGE}
    files = sorted((small_run.parent / "loaded-modules").glob("*.txt"))
    assert len({f.stem.rsplit("-", 1)[0] for f in files}) >= 15  # every rule of the config
    for path in files:
        rule = path.stem.rsplit("-", 1)[0]
        script = small_run / "scripts" / f"{rule}.py"
        loaded = environment.providers(path.read_text().split()) - code_digest.TOOLING - engine
        planned = code_digest.libraries(script, package, environment).keys()
        harness = environment.versions(code_digest.third_party(script, package, harness=True))
        assert loaded <= planned | harness.keys(), (rule, sorted(loaded - planned))
