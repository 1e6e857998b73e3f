"""A copy of a figure, anywhere, answers for itself: its record, fresh or stale against
Snakemake's plan for the checkout, and whether its picture was changed after it was made.
(tests/test_audit.py runs the command on copies of a real run's PNG, PDF and SVG.)"""

import shutil

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from test_stamp import stamped  # noqa: F401 (a fixture)

from inputspace.provenance import figure_check, plan, record, stamp
from inputspace.provenance.audit import Verdict


def plan_of(figure, pending=False, status="ok"):
    row = plan.Output(str(figure), "fig", status, pending, ())
    return plan.Plan({str(figure): row}, figure.parent, figure.parent)


def copied(figure, tmp_path):
    manuscript = tmp_path / "manuscript"
    manuscript.mkdir(exist_ok=True)
    return shutil.copy(figure, manuscript / f"figure-3{figure.suffix}")


def test_a_copy_is_fresh_and_unchanged_and_says_what_made_it(stamped, tmp_path):  # noqa: F811
    (png, pdf, _), _ = stamped
    for made in (png, pdf):
        data = record.read(made)
        answer = figure_check.check(copied(made, tmp_path), plan_of(made), tmp_path)
        assert answer.verdict == Verdict.FRESH, answer.lines
        assert "fresh (Snakemake would not make it again); image unchanged" in answer.lines[0]
        text = "\n".join(answer.lines)
        assert "by rule fig" in text and '"lr": 0.01' in text and "sha256 c0de" in text
        assert f"numpy {data['libraries']['numpy']}" in text


def test_stale_when_snakemake_would_make_it_again_or_has_made_another(stamped, tmp_path):  # noqa: F811
    (png, _, svg), _ = stamped
    copy = copied(png, tmp_path)
    answer = figure_check.check(copy, plan_of(png, True, "params changed"), tmp_path)
    assert answer.verdict == Verdict.STALE
    assert "its params changed" in answer.lines[0]
    nothing = plan.Plan({}, tmp_path, tmp_path)
    assert figure_check.check(copy, nothing, tmp_path).verdict == Verdict.STALE  # not made

    svg_copy = copied(svg, tmp_path)
    svg.write_text(svg.read_text().replace("#1f77b4", "#000000"))  # the workflow made it again
    answer = figure_check.check(svg_copy, plan_of(svg), tmp_path)
    assert answer.verdict == Verdict.STALE and "now shows another picture" in answer.lines[0]


def test_a_copy_whose_pixels_were_edited_says_so(stamped, tmp_path):  # noqa: F811
    (png, _, _), _ = stamped
    figure = copied(png, tmp_path)
    with Image.open(figure) as image:
        text = image.info[stamp.KEY]
        pixels = np.array(image)
    pixels[2, 2] = 200  # an editor that keeps the metadata
    info = PngInfo()
    info.add_text(stamp.KEY, text)
    Image.fromarray(pixels).save(figure, pnginfo=info)
    answer = figure_check.check(figure, plan_of(png), tmp_path)
    assert answer.verdict == Verdict.STALE
    assert "changed after it was made" in answer.lines[0]


def test_no_record_or_a_damaged_one_is_one_line(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(plain)
    damaged = tmp_path / "damaged.png"
    info = PngInfo()
    info.add_text(stamp.KEY, '{"figure": "cut sh')
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(damaged, pnginfo=info)
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(b'%PDF-1.4\n1 0 obj\n<< /inputspace:provenance ({"figure": ')
    for figure, says in (
        (plain, "carries no provenance record"),
        (damaged, "is damaged"),
        (cut, "is damaged"),
    ):
        answer = figure_check.check(figure, plan.Plan({}, tmp_path, tmp_path), tmp_path)
        assert answer.verdict == Verdict.UNVERIFIABLE and len(answer.lines) == 1
        assert says in answer.lines[0]


def test_a_missing_file_or_checkout_is_unverifiable(tmp_path, capsys):
    missing = str(tmp_path / "missing.png")
    elsewhere = str(tmp_path / "gone")
    assert figure_check.main([missing, "--checkout", elsewhere]) == 2
    assert "is no inputspace checkout" in capsys.readouterr().out
    (tmp_path / "Snakefile").write_text("this is not a workflow\n")
    assert figure_check.main([missing, "--checkout", str(tmp_path)]) == 2
    assert "Snakemake could not plan the workflow" in capsys.readouterr().out
