"""A copy of a figure, anywhere, answers for itself: its record, fresh or stale against
the checkout, and whether its picture was changed after it was made."""

import copy
import shutil

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from test_provenance import CONFIG, stamped  # noqa: F401 (a fixture)

from inputspace import figure_check, provenance


def copied(stamped, tmp_path):  # noqa: F811
    _, figure, _, _ = stamped
    manuscript = tmp_path / "manuscript"
    manuscript.mkdir()
    return shutil.copy(figure, manuscript / "figure-3.png")


def test_a_copy_is_fresh_and_unchanged_and_says_what_made_it(stamped, tmp_path):  # noqa: F811
    root, _, _, record = stamped
    verdict = figure_check.check(copied(stamped, tmp_path), root, CONFIG)
    assert verdict.status == figure_check.FRESH
    assert "fresh (inputs, config and code match); image unchanged" in verdict.lines[0]
    text = "\n".join(verdict.lines)
    assert "by rule fig" in text and '"kind": "random"' in text
    assert record["git"]["commit"] is None or record["git"]["commit"] in text
    assert f"torch {record['versions']['torch']}" in text


def test_an_edit_that_reaches_it_makes_it_stale_with_the_reason(stamped, tmp_path):  # noqa: F811
    root, *_ = stamped
    edited = copy.deepcopy(CONFIG)
    edited["experiments"]["e"]["optimize"]["lr"] = 0.5
    verdict = figure_check.check(copied(stamped, tmp_path), root, edited)
    assert verdict.status == figure_check.STALE
    assert "stale (config changed: experiments)" in verdict.lines[0]


def test_a_copy_whose_pixels_were_edited_says_so(stamped, tmp_path):  # noqa: F811
    root, *_ = stamped
    figure = copied(stamped, tmp_path)
    with Image.open(figure) as image:
        text = image.info[provenance.PNG_KEY]
        pixels = np.array(image)
    pixels[2, 2] = 200  # an editor that keeps the metadata
    info = PngInfo()
    info.add_text(provenance.PNG_KEY, text)
    Image.fromarray(pixels).save(figure, pnginfo=info)
    verdict = figure_check.check(figure, root, CONFIG)
    assert verdict.status == figure_check.STALE
    assert "changed after it was made" in verdict.lines[0]


def test_no_record_or_a_damaged_one_is_one_line(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(plain)
    damaged = tmp_path / "damaged.png"
    info = PngInfo()
    info.add_text(provenance.PNG_KEY, '{"figure": "cut sh')
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(damaged, pnginfo=info)
    for figure, says in ((plain, "carries no provenance record"), (damaged, "is damaged")):
        verdict = figure_check.check(figure, tmp_path, CONFIG)
        assert verdict.status == figure_check.UNVERIFIABLE and len(verdict.lines) == 1
        assert says in verdict.lines[0]


def test_a_missing_file_or_checkout_is_unverifiable(tmp_path, capsys):
    (tmp_path / "Snakefile").write_text("")
    missing = str(tmp_path / "missing.png")
    assert figure_check.main([missing, "--checkout", str(tmp_path)]) == figure_check.UNVERIFIABLE
    assert "missing.png: no such file" in capsys.readouterr().out
    elsewhere = str(tmp_path / "gone")
    assert figure_check.main([missing, "--checkout", elsewhere]) == figure_check.UNVERIFIABLE
    assert "is no inputspace checkout" in capsys.readouterr().out
