"""provenance.rebuild on its unhappy paths: a NaN is a value, and a rebuild is never
reported for a scratch folder it did not build in."""

import pandas as pd
import pytest

from inputspace.provenance import figure_check, rebuild


def tables(tmp_path, made, original):
    paths = tmp_path / "made.parquet", tmp_path / "original.parquet"
    for path, values in zip(paths, (made, original)):
        pd.DataFrame({"x": values, "label": ["a", "b"]}).to_parquet(path)
    return paths


def test_a_nan_against_a_number_is_a_difference(tmp_path):
    said = rebuild.compare_values(*tables(tmp_path, [float("nan"), 1.0], [0.5, 1.0]))
    assert "1 other values differ" in said


def test_nan_against_nan_is_no_difference(tmp_path):
    said = rebuild.compare_values(*tables(tmp_path, [float("nan"), 1.0], [float("nan"), 1.5]))
    assert said == "largest absolute difference 0.5, largest relative 0.333"


def test_a_scratch_folder_that_holds_an_earlier_rebuild_is_refused(tmp_path, capsys):
    scratch = tmp_path / "scratch"
    (scratch / "results/figures").mkdir(parents=True)
    (scratch / "results/figures/kl.png").write_bytes(b"made by an earlier rebuild")
    with pytest.raises(rebuild.CannotRebuild, match="is not empty"):
        rebuild.empty_scratch(scratch)
    record = {"figure": "results/figures/kl.png", "inputs": [], "outputs": []}
    figure = tmp_path / "kl.png"
    status = figure_check.rebuild_group([(figure, record)], {}, tmp_path, tmp_path, scratch, "1")
    (line,) = capsys.readouterr().out.splitlines()
    assert status == figure_check.Verdict.UNVERIFIABLE.exit_status
    assert line == (
        f"{figure}: cannot rebuild: the scratch folder {scratch} is not empty "
        "(an earlier rebuild's?); name a new or empty folder"
    )
    assert "identical" not in line


def test_a_new_or_empty_scratch_folder_is_accepted(tmp_path):
    rebuild.empty_scratch(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    rebuild.empty_scratch(tmp_path / "empty")
