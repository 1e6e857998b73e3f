"""A run published as a Provenance Run Crate (snakemake crate): its jobs read back from
Snakemake's records; the crate read back with rocrate, every figure in it with its digest
and its chain of actions back to the raw model; roc-validator's verdict, offline; a
changed byte or a changed file found; a book's crate holding only its figures.

The fast tests build crates of a small made-up run (Snakemake's records written by hand,
as Snakemake 9.27 writes them); the slow ones publish the finished run of
tests/configs/small.yaml (the `small_run` fixture) with `snakemake crate`.
"""

import json
import os
import shutil
import subprocess
import sys
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest
from helpers import SMALL_CONFIG, SMALL_MODEL
from rocrate.rocrate import ROCrate

from inputspace.hashing import sha256_file
from inputspace.model import source_content
from inputspace.provenance import crate, crate_check, history, record, snakemake_internals

# ------------------------------------------------------------------ a made-up run


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def recorded(workdir: Path, output: str, **job) -> None:
    """Snakemake's record of one output, where Snakemake keeps it."""
    (workdir / snakemake_internals.METADATA).mkdir(parents=True, exist_ok=True)
    path = snakemake_internals.metadata_path(workdir, output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"incomplete": False, "record_format_version": 6, **job}))


SLURM = {"job_id": "52", "node": "n7", "partition": "gpu", "cluster": "c1"}


def noted(workdir: Path, log: str, rule: str, slurm=None, **wildcards) -> None:
    note = {
        "rule": rule,
        "wildcards": wildcards,
        "threads": 1,
        "made_on": {"host": "n7" if slurm else "node7", "slurm": slurm},
        "user": "ada",
        "params": {"colour": "blue", "code": {"script": f"scripts/{rule}.py", "digest": "c0de"}},
        "libraries": {"python": "3.11.7", "pandas": "3.1.1"},
    }
    write(workdir / log, history.note_line(note) + "\nlater lines\n")


def job(rule, inputs, logs, start, end, checksums=None, job_hash=1):
    return {
        "rule": rule,
        "input": inputs,
        "log": logs,
        "params": ["'blue'", "{'script': 'x', 'digest': 'c0de'}"],
        "starttime": start,
        "endtime": end,
        "job_hash": job_hash,
        "input_checksums": {p: f"sha256:{d}" for p, d in (checksums or {}).items()},
    }


@pytest.fixture
def made_up(tmp_path) -> tuple[Path, crate.Workflow]:
    """raw.txt (no job made it) -> make_table -> results/table.csv -> draw ->
    results/fig.png, results/other.png (with their records) and results/fig.csv."""
    work, root = tmp_path / "work", tmp_path / "workflow"
    write(work / "raw.txt", "raw\n")
    table = write(work / "results/table.csv", "a\n1\n")
    noted(work, "results/logs/make_table.log", "make_table", name="a")
    recorded(
        work,
        "results/table.csv",
        **job("make_table", ["raw.txt"], ["results/logs/make_table.log"], 100.0, 110.0),
    )
    drawn = {}
    for name in ("fig.png", "other.png"):
        figure = write(work / "results" / name, f"picture {name}")
        record_of = {"figure": f"results/{name}", "rule": "draw"}
        record_of["inputs"] = [{"path": "results/table.csv", "sha256": sha256_file(table)}]
        write(Path(str(figure) + record.SIDECAR), json.dumps(record_of))
        drawn[f"results/{name}"] = figure
    write(work / "results/fig.csv", "x\n2\n")
    noted(work, "results/logs/draw.log", "draw", slurm=SLURM)
    for output, end in (("results/fig.png", 120.5), ("results/other.png", 121.0)):
        recorded(
            work,
            output,
            **job("draw", ["results/table.csv"], ["results/logs/draw.log"], 120.0, end, job_hash=2),
        )
    recorded(
        work,
        "results/fig.csv",
        **job("draw", ["results/table.csv"], ["results/logs/draw.log"], 120.0, 120.2, job_hash=2),
    )
    write(root / "Snakefile", "rule draw:\n    script: 'scripts/draw.py'\n")
    write(root / "scripts/draw.py", "print('draw')\n")
    write(root / "scripts/make_table.py", "print('table')\n")
    write(root / "report/fig.rst", "The figure. It shows a table.\n")
    workflow = crate.Workflow(
        root=root,
        rules={
            "draw": {"doc": "Draws the table.", "file": "Snakefile", "script": "scripts/draw.py"},
            "make_table": {"doc": None, "file": "Snakefile", "script": "scripts/make_table.py"},
        },
        captions={"results/fig.png": "report/fig.rst", "results/other.png": "report/fig.rst"},
        configfiles=(),
        config={"models": {}},
        engine="9.27.1",
    )
    return work, workflow


def actions_by_result(published: ROCrate) -> dict[str, object]:
    """Each data entity -> the job's action that made it (a ControlAction's object)."""
    found = {}
    for control in published.get_by_type("ControlAction"):
        action = control["object"]
        for entity in _listed(action.get("result")):
            found[entity.id] = action
    return found


def _listed(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def upstream(published: ROCrate, start: str) -> list:
    """The actions behind a data entity, following each action's objects to the action
    that made them, nearest first."""
    made_by = actions_by_result(published)
    found, pending = [], [start]
    while pending:
        action = made_by.get(pending.pop(0))
        if action is None or action in found:
            continue
        found.append(action)
        pending += [entity.id for entity in _listed(action.get("object"))]
    return found


# ------------------------------------------------------------------ history


def test_a_runs_jobs_are_read_back_from_snakemakes_records_and_their_notes(made_up):
    work, _ = made_up
    jobs = history.jobs_by_output(work)
    draw = jobs["results/fig.png"]
    assert jobs["results/other.png"] is draw and jobs["results/fig.csv"] is draw
    assert draw.outputs == ("results/fig.csv", "results/fig.png", "results/other.png")
    assert (draw.start, draw.end) == (120.0, 121.0)
    assert draw.params == ("blue", {"script": "x", "digest": "c0de"})
    assert draw.note["made_on"]["slurm"]["job_id"] == "52" and draw.name == "draw"
    table = jobs["results/table.csv"]
    assert table.name == "make_table (name=a)" and table.inputs == ("raw.txt",)
    assert history.chain(["results/fig.png"], jobs) == [table, draw]  # makers first


def test_an_output_with_a_long_path_is_found_in_its_split_record(tmp_path):
    long = "results/" + "/".join(["a_rather_long_folder_name"] * 12) + "/table.csv"
    assert len(urlsafe_b64encode(long.encode())) > 255  # Snakemake splits its file name
    recorded(tmp_path, long, **job("r", [], [], 1.0, 2.0))
    assert list(history.jobs_by_output(tmp_path)) == [long]


def test_a_target_without_a_record_is_named_with_the_command_that_makes_it_again(made_up):
    work, _ = made_up
    with pytest.raises(history.HistoryError) as error:
        history.chain(["results/unknown.csv"], history.jobs_by_output(work))
    assert "results/unknown.csv" in str(error.value) and "--forcerun" in str(error.value)
    assert "\n" not in str(error.value)


def test_crate_figures_name_files_or_patterns_and_an_entry_naming_none_is_one_line():
    figures = ["results/figures/a/kl.png", "results/figures/a/kl.pdf", "results/figures/b/kl.png"]
    assert crate.chosen(["results/figures/*/kl.png"], figures) == [figures[0], figures[2]]
    assert crate.chosen(["results/figures/a/kl.pdf", "results/figures/a/*"], figures) == [
        figures[1],
        figures[0],
    ]
    with pytest.raises(crate.CrateError, match="'results/figures/c/kl.png' names no figure"):
        crate.chosen(["results/figures/c/kl.png"], figures)


# ------------------------------------------------------------------ a made-up run's crate


def test_a_crate_reads_back_with_every_file_digest_caption_record_and_action(made_up, tmp_path):
    work, workflow = made_up
    targets = ["results/fig.png", "results/other.png"]
    packed = crate.build(work, workflow, targets, tmp_path / "crate")
    published = ROCrate(tmp_path / "crate")
    figure = published.get("results/fig.png")
    assert figure["sha256"] == sha256_file(work / "results/fig.png")
    assert figure["caption"] == "The figure. It shows a table."
    assert figure["subjectOf"].id == "results/fig.png" + record.SIDECAR
    draw = published.get("#job/draw/results%2Ffig.csv")  # no wildcards: named by an output
    assert draw["instrument"].id == "#rule/draw" and draw["agent"]["name"] == "ada"
    assert (draw["startTime"], draw["endTime"]) == (
        "1970-01-01T00:02:00+00:00",
        "1970-01-01T00:02:01+00:00",
    )
    assert {e.id for e in draw["result"]} >= {"results/fig.png", "results/fig.csv"}
    assert draw["location"]["name"] == "node n7 of SLURM cluster c1 (partition gpu)"
    assert "SLURM job 52 on node n7" in draw["description"]
    made = published.get("#job/make_table/name=a")
    assert made["location"]["name"] == "host node7" and "ran on node7;" in made["description"]
    step = published.get("#step/draw")
    assert step["workExample"].id == "#rule/draw" and int(step["position"]) == 1
    assert int(published.get("#step/make_table")["position"]) == 0
    chain = upstream(published, "results/fig.png")
    assert [a["instrument"].id for a in chain] == ["#rule/draw", "#rule/make_table"]
    assert "raw.txt" in {e.id for e in _listed(chain[-1]["object"])}
    assert published.get("raw.txt")["sha256"] == sha256_file(work / "raw.txt")
    assert packed.figures == targets and crate_check.file_problems(tmp_path / "crate") == []


def test_a_changed_byte_or_digest_in_a_crate_fails_the_file_check(made_up, tmp_path):
    work, workflow = made_up
    folder = tmp_path / "crate"
    crate.build(work, workflow, ["results/fig.png"], folder)
    (folder / "results/fig.png").unlink()  # a hard link to the run's file: replace it
    write(folder / "results/fig.png", "picture fig.pnG")
    assert crate_check.file_problems(folder) == [
        "results/fig.png: its sha256 is not the one the crate records"
    ]
    metadata = folder / crate_check.METADATA
    metadata.write_text(metadata.read_text().replace(sha256_file(work / "raw.txt"), "0" * 64))
    assert len(crate_check.file_problems(folder)) == 2


def test_a_file_changed_after_a_job_read_it_is_refused_and_nothing_is_written(made_up, tmp_path):
    work, workflow = made_up
    write(work / "results/table.csv", "a\n3\n")  # the figures' records read "a\n1\n"
    with pytest.raises(crate.CrateError) as error:
        crate.build(work, workflow, ["results/fig.png"], tmp_path / "crate")
    assert str(error.value).startswith("results/table.csv: not the file draw recorded")
    assert not (tmp_path / "crate").exists() and not (tmp_path / "crate.partial").exists()


def test_a_book_crate_holds_its_figures_their_tables_and_the_chain_only(made_up, tmp_path):
    work, workflow = made_up
    crate.build(work, workflow, ["results/fig.png"], tmp_path / "book", book=True)
    published = ROCrate(tmp_path / "book")
    held = {e.id for e in published.data_entities}
    assert {"results/fig.png", "results/fig.csv", "results/table.csv", "raw.txt"} <= held
    assert "results/other.png" not in held and not (tmp_path / "book/results/other.png").exists()


# ------------------------------------------------------------------ the small run's crate


def snakemake(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", *args, "--configfile", SMALL_CONFIG]
    return subprocess.run(command, cwd=checkout, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def published(small_run, tmp_path_factory) -> Path:
    """A copy of the finished small run, published with `snakemake crate`."""
    checkout = tmp_path_factory.mktemp("crate") / "checkout"
    shutil.copytree(small_run, checkout, symlinks=True)
    done = snakemake(checkout, "crate", "--cores", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    return checkout


@pytest.mark.slow
def test_the_crate_of_a_run_is_a_valid_provenance_run_crate(published):
    validation = crate_check.validate(published / "results/crate")
    assert validation.passed and validation.failed == 0 and validation.checks >= 80
    log = (published / "results/logs/crate.log").read_text()
    assert f"roc-validator: {validation.checks} of {validation.checks} checks passed" in log


@pytest.mark.slow
def test_every_figure_is_in_the_crate_and_its_actions_lead_to_the_raw_model(published):
    published_crate = ROCrate(published / "results/crate")
    figures = sorted((published / "results/figures").rglob(f"*{record.SIDECAR}"))
    assert len(figures) >= 50
    raw = source_content.local_files(published / SMALL_MODEL)
    raw_digest = source_content.content_digest({name: sha256_file(p) for name, p in raw.items()})
    for sidecar in figures:
        figure = str(sidecar.relative_to(published)).removesuffix(record.SIDECAR)
        entity = published_crate.get(figure)
        assert entity is not None, f"{figure} is not in the crate"
        assert entity["sha256"] == sha256_file(published / figure)
        assert entity["subjectOf"].id == figure + record.SIDECAR
        prepared = preparing(upstream(published_crate, figure))
        assert prepared is not None, f"no chain of actions from {figure} to its model"
        sources = [e for e in _listed(prepared["object"]) if e.id.startswith("#model-source/")]
        assert [s["identifier"] for s in sources] == [f"sha256:{raw_digest}"], figure


def preparing(actions: list):
    return next((a for a in actions if a["instrument"].id == "#rule/prepare_model"), None)


@pytest.mark.slow
def test_a_broken_digest_in_the_crate_fails_the_check(published, tmp_path):
    copy = tmp_path / "crate"
    shutil.copytree(published / "results/crate", copy)  # copies, not the run's files
    figure = copy / "results/figures/bark/kl.pdf"
    data = bytearray(figure.read_bytes())
    data[len(data) // 2] ^= 1
    figure.write_bytes(bytes(data))
    command = [sys.executable, "-m", "inputspace.provenance.crate_check", str(copy)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{copy}: results/figures/bark/kl.pdf: its sha256 is not the one" in done.stdout
    assert f"{copy}: valid {crate_check.PROFILE}" in done.stdout  # the profile itself holds


@pytest.mark.slow
def test_a_book_crate_holds_only_its_figures_and_a_wrong_entry_is_one_line(small_run, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(small_run, checkout, symlinks=True)
    wrong = snakemake(checkout, "crate", "-n", "--config", "crate_figures=[results/kl.pdf]")
    assert wrong.returncode == 1
    lines = [line for line in wrong.stderr.splitlines() if line.startswith("inputspace")]
    assert (
        lines == [line for line in wrong.stderr.splitlines() if "crate_figures" in line]
        and "'results/kl.pdf' names no figure" in lines[0]
    )
    done = snakemake(
        checkout, "crate", "--cores", "1", "--config", "crate_figures=[results/figures/bark/kl.pdf]"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    book = ROCrate(checkout / "results/crate")
    held = {e.id for e in book.data_entities}
    figures = {i for i in held if i.startswith("results/figures/") and i.endswith(crate.FIGURES)}
    assert figures == {"results/figures/bark/kl.pdf"}
    assert {"results/figures/bark/convergence.csv", "results/figures/bark/curves.parquet"} <= held
    assert "results/figures/bark/travel.pdf" not in held
    assert preparing(upstream(book, "results/figures/bark/kl.pdf")) is not None
    listed = {e.id for e in book.data_entities if "File" in _listed(e.type)}
    on_disk = {
        p.relative_to(checkout / "results/crate").as_posix()
        for p in (checkout / "results/crate").rglob("*")
        if p.is_file()
    }
    assert on_disk == listed | {crate_check.METADATA}  # nothing unlisted, nothing missing
    assert os.path.samefile(
        checkout / "results/crate/results/figures/bark/kl.pdf",
        checkout / "results/figures/bark/kl.pdf",
    )  # the payload is linked, not copied
