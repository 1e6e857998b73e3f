import hashlib
import html
import json
import platform
import re

import matplotlib
import numpy
import numpy as np
import pytest
from PIL import Image

from inputspace.provenance import record, stamp
from inputspace.studies import figures

matplotlib.use("Agg")

WEIGHTS = b"weights"
MANIFEST = {
    "source": {"kind": "random", "architecture": "llama", "seed": 0},
    "kind": "causal",
    "files_sha256": {"model.safetensors": hashlib.sha256(WEIGHTS).hexdigest()},
    "vocab_size": 512,
}
CODE = {"script": "scripts/fig.py", "digest": "c0de"}
LIBRARIES = {"python": "3.0.0", "numpy": "0.1"}  # as Snakemake's process planned them
PARAMS = {
    "experiment": {"seed": 3, "optimize": {"lr": 0.01}},
    "device": "auto",
    "code": CODE,
    "libraries": LIBRARIES,
}


def drawn(path):
    """A figure with text, saved by the house style (PNG plus the print copies asked for)."""
    figures.use({"one_column": 3.5, "two_column": 7.0, "formats": ["png", "pdf", "svg"]})
    try:
        with figures.figure(path, size=figures.one_column(2.0)) as (fig, ax):
            ax.plot([0, 1], [1, 0])
            ax.set_title("tokens (moved) \\ kept")
    finally:
        figures.use({"one_column": 3.5, "two_column": 7.0, "formats": ["png"]})
    return [path, path.with_suffix(".pdf"), path.with_suffix(".svg")]


@pytest.fixture
def stamped(tmp_path):
    data_file = tmp_path / "input.parquet.txt"
    data_file.write_text("numbers")
    model = tmp_path / "models/a"  # a prepared model folder among the inputs
    model.mkdir(parents=True)
    (model / "manifest.json").write_text(json.dumps(MANIFEST))
    (model / "model.safetensors").write_bytes(WEIGHTS)
    made = drawn(tmp_path / "fig.png")
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    made_by = stamp.Job(
        "fig", {"model": "a"}, PARAMS, [data_file, model], [table], {"models": {"a": {}}}
    )
    stamp.stamp_figures(made_by, made, tmp_path)
    return made, data_file


def test_the_record_holds_the_jobs_params_code_and_inputs(stamped):
    made, data_file = stamped
    data = record.read(made[0])
    assert data["config"] == {"experiment": PARAMS["experiment"], "device": "auto"}
    assert data["code"] == CODE
    assert data["rule"] == "fig" and data["wildcards"] == {"model": "a"}
    folder = str(made[0].parent / "models/a")
    assert data["models"] == {
        "a": {"folder": folder, **{k: MANIFEST.get(k) for k in stamp.MODEL_KEYS}}
    }
    # the versions installed where the job ran, of the libraries Snakemake planned with
    assert data["libraries"] == {"python": platform.python_version(), "numpy": numpy.__version__}
    assert data["libraries_planned"] == LIBRARIES
    assert data["environment_lock"] is None  # this workflow folder has no lock file
    assert data["outputs"] == [
        {
            "path": str(made[0].parent / "table.csv"),
            "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(),
        }
    ]
    assert data["workflow_config"] == {"models": {"a": {}}}
    assert data["inputs"][0] == {
        "path": str(data_file),
        "kind": "file",
        "sha256": hashlib.sha256(b"numbers").hexdigest(),
    }
    listed = data["inputs"][1]
    assert listed["kind"] == "folder" and len(listed["manifest_sha256"]) == 64


def test_the_record_names_the_lock_the_environment_came_from(tmp_path):
    (tmp_path / "requirements.lock").write_text("numpy==2.4.6 --hash=sha256:00\n")
    made_by = stamp.Job("fig", {}, {}, [])
    held = stamp.record(made_by, tmp_path)["environment_lock"]
    digest = hashlib.sha256(b"numpy==2.4.6 --hash=sha256:00\n").hexdigest()
    assert held == {"path": "requirements.lock", "sha256": digest}
    (tmp_path / "requirements.lock").write_text("numpy==2.4.7 --hash=sha256:00\n")
    assert stamp.record(made_by, tmp_path)["environment_lock"]["sha256"] != digest


@pytest.mark.parametrize("index", [0, 1, 2], ids=["png", "pdf", "svg"])
def test_each_format_carries_the_record_beside_and_inside(stamped, index):
    figure = stamped[0][index]
    data = record.read(figure)
    assert stamp.embedded(figure) == data and data["figure"] == str(figure)
    assert data["image_sha256"] == stamp.image_sha256(figure)


def test_the_pdf_record_is_an_incremental_update_and_its_fonts_are_truetype(stamped):
    pdf = stamped[0][1].read_bytes()
    assert b"/FontFile2" in pdf and b"/Subtype /Type3" not in pdf
    last = list(re.finditer(rb"trailer\s*<<(.*?)>>\s*startxref\s*(\d+)", pdf, re.S))[-1]
    info = int(re.search(rb"/Info (\d+) 0 R", last[1])[1])
    assert b"/Prev " in last[1]
    assert pdf[int(last[2]) :].startswith(b"xref")  # the new cross-reference section
    entry = re.search(rb"xref\n%d 1\n(\d{10})" % info, pdf[int(last[2]) :])
    assert pdf[int(entry[1]) :].startswith(b"%d 0 obj" % info)
    assert b"/Creator (Matplotlib" in pdf[int(entry[1]) :]  # the old info entries kept


def test_the_svg_record_is_in_its_metadata(stamped):
    text = stamped[0][2].read_text()
    assert re.search(r"<metadata>\s*<inputspace:provenance xmlns:inputspace=", text)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["png", "pdf", "svg"])
def test_an_edit_of_the_picture_changes_its_digest(stamped, tmp_path, index):
    figure = stamped[0][index]
    recorded = record.read(figure)["image_sha256"]
    if figure.suffix == ".png":
        with Image.open(figure) as image:
            pixels = np.array(image)
        pixels[3, 4] = 0
        Image.fromarray(pixels).save(figure)
    elif figure.suffix == ".pdf":
        data = bytearray(figure.read_bytes())
        data[data.index(b"/MediaBox") + 12] ^= 1  # the page's size
        figure.write_bytes(bytes(data))
    else:
        text = figure.read_text()
        figure.write_text(text.replace("#1f77b4", "#1f77b5", 1))  # the line's colour
    assert stamp.image_sha256(figure) != recorded


def test_the_same_figure_gives_the_same_print_bytes(tmp_path):
    first, second = drawn(tmp_path / "a.png"), drawn(tmp_path / "b.png")
    for one, other in zip(first[1:], second[1:]):
        assert one.read_bytes() == other.read_bytes()


def test_gif_keeps_its_frames_its_digest_and_carries_the_record(tmp_path):
    figure = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((10, 10, 3), v, dtype=np.uint8)) for v in (0, 120, 250)]
    frames[0].save(figure, save_all=True, append_images=frames[1:], duration=200, loop=0)
    before = stamp.image_sha256(figure)
    stamp.stamp(figure, {"figure": str(figure), "note": "hello"})
    with Image.open(figure) as image:
        assert image.n_frames == 3
    assert stamp.embedded(figure)["note"] == "hello"
    assert stamp.image_sha256(figure) == before == stamp.embedded(figure)["image_sha256"]


def test_the_report_page_shows_each_record(stamped):
    made, _ = stamped
    page = record.as_html([record.read(figure) for figure in made])
    assert page.count("<h2 id=") == 3 and "scripts/fig.py" in page
    assert "&quot;lr&quot;: 0.01" in page
    assert "&quot;device&quot;: &quot;auto&quot;" in page
    for line in record.describe(record.read(made[0])):  # the lines figure_check prints
        assert html.escape(line) in page
