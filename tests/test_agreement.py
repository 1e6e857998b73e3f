"""Comparing two runs' summaries number by number, and their tables at full precision."""

import pandas as pd
import pytest

from inputspace.studies import agreement

SUMMARY = """# title

## random: the zero-loss set

| measured | tiny |
| --- | --- |
| (3) Hessian at solution 0 (KL 0.001, slq, float32) | numerical rank 12–40 against \
d = 64; flat 90.1–97.5% of 384 |
| (3) Hessian at prompt (KL 2.1, exact, float64) | numerical rank 63 against d = 64: \
eigenvalue_63 = 6.2e-05 above the cutoff 1.2e-12 |
| (3) verdict: connectivity | supported: largest barrier 0.42% of the start loss |
"""


def test_cells_are_keyed_by_section_row_and_column():
    found = agreement.cells(SUMMARY)
    assert len(found) == 3
    key = ("random: the zero-loss set", "(3) verdict: connectivity", 0)
    assert found[key] == "supported: largest barrier 0.42% of the start loss"


def test_printed_numbers_and_ranges_but_not_names():
    text = "rank 12–40 against d = 64, eigenvalue_63 = 6.2e-05, flat 90.1–97.5% of 18,432; 1e-2"
    assert agreement.PRINTED.findall(text) == [
        "12–40",
        "64",
        "6.2e-05",
        "90.1–97.5%",
        "18,432",
        "1e-2",
    ]
    assert agreement.interval("90.1–97.5%") == (90.1, 97.5)
    assert agreement.interval("18,432") == (18432.0, 18432.0)


def test_a_cell_holds_when_its_numbers_agree_or_its_ranges_overlap():
    where = ("s", "row", 0)
    same = agreement.compare_cells(where, "flat 90.1–97.5%", "flat 91.0–98.2%")
    assert same.holds and same.why == "ranges overlap"
    inside = agreement.compare_cells(where, "rank 40", "rank 35–44")  # a number in a range
    assert inside.holds
    apart = agreement.compare_cells(where, "flat 90.1–92.5%", "flat 93.0–98.2%")
    assert not apart.holds and apart.why.startswith("moved")
    moved = agreement.compare_cells(where, "barrier 2.39%", "barrier 2.36%")
    assert not moved.holds and moved.why == "moved: 2.39% / 2.36%"
    flipped = agreement.compare_cells(where, "supported: 3", "NOT supported: 3")
    assert not flipped.holds and flipped.why == "the words differ"
    renamed = agreement.compare_cells(where, "eigenvalue_63 = 1", "eigenvalue_62 = 1")
    assert not renamed.holds  # a rank in a name moved


def test_summaries_differ_only_where_a_cell_does():
    other = SUMMARY.replace("0.42%", "0.41%").replace("12–40", "20–44")
    found = agreement.compare_summaries(SUMMARY, other)
    assert [(d.where[1], d.holds) for d in found] == [
        ("(3) Hessian at solution 0 (KL 0.001, slq, float32)", True),
        ("(3) verdict: connectivity", False),
    ]
    assert agreement.compare_summaries(SUMMARY, SUMMARY) == []
    extra = SUMMARY + "| new row | 1 |\n"
    assert [d.why for d in agreement.compare_summaries(SUMMARY, extra)] == ["in one run only"]


def test_moved_numbers_names_the_columns_and_how_far(tmp_path):
    for name, value in (("a", 1.0), ("b", 1.001)):
        (tmp_path / name).mkdir()
        pd.DataFrame({"x": [1.0, value, float("nan")], "n": [1, 2, 3], "s": list("abc")}).to_csv(
            tmp_path / name / "t.csv", index=False
        )
    moved = agreement.moved_numbers(tmp_path / "a", tmp_path / "b")
    assert moved.to_dict("records") == [
        {
            "table": "t.csv",
            "column": "x",
            "differ": 1,
            "of": 3,
            "largest_relative": pytest.approx(0.001 / 1.001),
        }
    ]
