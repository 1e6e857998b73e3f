import copy
import json

import numpy as np
import pytest
from PIL import Image

from inputspace import provenance
from inputspace.provenance import Scope

CONFIG = {
    "device": "auto",
    "precision": "fp32",
    "geometry": {"distance_pairs": 1000, "seed": 0},
    "models": {
        "a": {"source": {"kind": "random", "architecture": "llama"}},
        "b": {"source": {"kind": "local", "path": "x"}},
    },
    "experiments": {
        "e": {"models": ["a"], "seed": 3, "optimize": {"lr": 0.01}},
        "f": {"models": ["b"], "seed": 1},
    },
}
SCOPE = Scope(models=("a",), experiment="e", keys=("device", "precision"))


def fake_root(tmp_path):
    root = tmp_path / "repo"
    (root / "src/inputspace").mkdir(parents=True)
    (root / "src/inputspace/mod.py").write_text("x = 1\n")
    (root / "rules").mkdir()
    (root / "rules/a.smk").write_text("rule a:\n")
    (root / "Snakefile").write_text("include: 'rules/a.smk'\n")
    (root / "scripts").mkdir()
    (root / "scripts/fig.py").write_text("print(1)\n")
    return root


def test_config_slice_holds_only_what_reaches_the_figure():
    sliced = provenance.config_slice(CONFIG, SCOPE)
    assert sliced == {
        "device": "auto",
        "precision": "fp32",
        "models": {"a": CONFIG["models"]["a"]},
        "experiments": {"e": CONFIG["experiments"]["e"]},
    }


@pytest.fixture
def stamped(tmp_path):
    root = fake_root(tmp_path)
    data_file = tmp_path / "input.parquet.txt"
    data_file.write_text("numbers")
    figure = tmp_path / "fig.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(figure)
    record = provenance.record(
        figure, "fig", [data_file], SCOPE, CONFIG, root, "scripts/fig.py", tmp_path / "results"
    )
    provenance.stamp(figure, record)
    return root, figure, data_file, record


def test_record_is_beside_and_inside_the_png(stamped):
    _, figure, data_file, record = stamped
    assert provenance.read(figure) == record
    assert provenance.embedded(figure) == json.loads(json.dumps(record))
    assert record["seed"] == {"experiment": 3}
    assert (
        record["inputs"][0]["path"] == str(data_file) and len(record["inputs"][0]["sha256"]) == 64
    )
    assert record["versions"]["torch"] and record["code"]["script_sha256"]
    with Image.open(figure) as image:
        assert image.size == (30, 20)


def test_gif_keeps_its_frames_and_carries_the_record(tmp_path):
    figure = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((10, 10, 3), v, dtype=np.uint8)) for v in (0, 120, 250)]
    frames[0].save(figure, save_all=True, append_images=frames[1:], duration=200, loop=0)
    provenance.stamp(figure, {"figure": str(figure), "note": "hello"})
    with Image.open(figure) as image:
        assert image.n_frames == 3
    assert provenance.embedded(figure)["note"] == "hello"


def test_audit_fresh_then_stale_for_each_reason(stamped):
    root, figure, data_file, record = stamped
    assert provenance.audit(record, CONFIG, root) == ("fresh", "inputs, config and code match")

    unrelated = copy.deepcopy(CONFIG)
    unrelated["experiments"]["f"]["seed"] = 9
    unrelated["geometry"]["seed"] = 5
    assert provenance.audit(record, unrelated, root)[0] == "fresh"

    reaching = copy.deepcopy(CONFIG)
    reaching["experiments"]["e"]["optimize"]["lr"] = 0.5
    assert provenance.audit(record, reaching, root) == ("stale", "config changed: experiments")

    data_file.write_text("other numbers")
    status, why = provenance.audit(record, CONFIG, root)
    assert status == "stale" and f"input changed: {data_file}" in why

    (root / "src/inputspace/mod.py").write_text("x = 2\n")
    (root / "scripts/fig.py").write_text("print(2)\n")
    assert (
        "code changed: package; code changed: script" in provenance.audit(record, CONFIG, root)[1]
    )


def test_audit_table_finds_every_sidecar(stamped, tmp_path):
    root, figure, _, _ = stamped
    table = provenance.audit_table(tmp_path, CONFIG, root)
    assert list(table.figure) == [str(figure)] and list(table.status) == ["fresh"]


def test_the_image_digest_survives_the_embedding_and_sees_a_changed_pixel(stamped, tmp_path):
    _, figure, _, record = stamped
    assert provenance.embedded(figure)["image_sha256"] == provenance.image_sha256(figure)
    with Image.open(figure) as image:
        pixels = np.array(image)
    pixels[3, 4] = 255
    Image.fromarray(pixels).save(tmp_path / "edited.png")
    assert provenance.image_sha256(tmp_path / "edited.png") != record["image_sha256"]


def test_a_gif_keeps_its_image_digest_through_the_stamp(tmp_path):
    figure = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((10, 10, 3), v, dtype=np.uint8)) for v in (0, 120, 250)]
    frames[0].save(figure, save_all=True, append_images=frames[1:], duration=200, loop=0)
    before = provenance.image_sha256(figure)
    provenance.stamp(figure, {"figure": str(figure), "image_sha256": before})
    assert provenance.image_sha256(figure) == before == provenance.embedded(figure)["image_sha256"]
