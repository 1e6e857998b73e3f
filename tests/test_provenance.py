import hashlib
import json
import re

import matplotlib
import numpy as np
import pytest
from PIL import Image

from inputspace import figures, provenance

matplotlib.use("Agg")

MANIFEST = {
    "source": {"kind": "random", "architecture": "llama", "seed": 0},
    "kind": "causal",
    "files_sha256": {"model.safetensors": "ab" * 32},
    "vocab_size": 512,
}
CODE = {"script": "scripts/fig.py", "digest": "c0de"}
PARAMS = {"experiment": {"seed": 3, "optimize": {"lr": 0.01}}, "device": "auto", "code": CODE}


def job(inputs, rule="fig", wildcards=None):
    return provenance.Job(rule, wildcards or {"model": "a"}, PARAMS, inputs)


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
    made = drawn(tmp_path / "fig.png")
    provenance.stamp_figures(job([data_file, model]), made, tmp_path)
    return made, data_file


def test_the_record_holds_the_jobs_params_code_and_inputs(stamped):
    made, data_file = stamped
    record = provenance.read(made[0])
    assert record["config"] == {"experiment": PARAMS["experiment"], "device": "auto"}
    assert record["code"] == CODE
    assert record["rule"] == "fig" and record["wildcards"] == {"model": "a"}
    assert record["models"] == {"a": {k: MANIFEST.get(k) for k in provenance.MODEL_KEYS}}
    assert record["inputs"][0] == {
        "path": str(data_file),
        "kind": "file",
        "sha256": hashlib.sha256(b"numbers").hexdigest(),
    }
    folder = record["inputs"][1]
    assert folder["kind"] == "folder" and len(folder["manifest_sha256"]) == 64
    assert record["versions"]["torch"] and len(record["inputs"][0]["sha256"]) == 64


@pytest.mark.parametrize("index", [0, 1, 2], ids=["png", "pdf", "svg"])
def test_each_format_carries_the_record_beside_and_inside(stamped, index):
    figure = stamped[0][index]
    record = provenance.read(figure)
    assert provenance.embedded(figure) == record and record["figure"] == str(figure)
    assert record["image_sha256"] == provenance.image_sha256(figure)


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
    recorded = provenance.read(figure)["image_sha256"]
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
    assert provenance.image_sha256(figure) != recorded


def test_the_same_figure_gives_the_same_print_bytes(tmp_path):
    first, second = drawn(tmp_path / "a.png"), drawn(tmp_path / "b.png")
    for one, other in zip(first[1:], second[1:]):
        assert one.read_bytes() == other.read_bytes()


def test_gif_keeps_its_frames_its_digest_and_carries_the_record(tmp_path):
    figure = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((10, 10, 3), v, dtype=np.uint8)) for v in (0, 120, 250)]
    frames[0].save(figure, save_all=True, append_images=frames[1:], duration=200, loop=0)
    before = provenance.image_sha256(figure)
    provenance.stamp(figure, {"figure": str(figure), "note": "hello"})
    with Image.open(figure) as image:
        assert image.n_frames == 3
    assert provenance.embedded(figure)["note"] == "hello"
    assert provenance.image_sha256(figure) == before == provenance.embedded(figure)["image_sha256"]


def test_the_report_page_shows_each_record(stamped):
    made, _ = stamped
    page = provenance.as_html([provenance.read(figure) for figure in made])
    assert page.count("<h2 id=") == 3 and "scripts/fig.py" in page
    assert "&quot;lr&quot;: 0.01" in page
    assert "&quot;device&quot;: &quot;auto&quot;" in page
