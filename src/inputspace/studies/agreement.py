"""Do two runs' summaries say the same? Every number a summary prints, cell by cell: the
same text, or (where one side prints a range) ranges that overlap; and the tables behind
them, number by number, at full precision (which moved, and how far).

For the check that reruns a config as another machine would (benchmarks/kernel_check.py).
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from inputspace.files import read_parquet

_NUMBER = r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?"
# a number not inside a word or a name (lambda_575 is a name); a range is two joined by "–"
PRINTED = re.compile(rf"(?<![\w.]){_NUMBER}(?:%?–{_NUMBER})?%?(?![\w])")


def cells(markdown: str) -> dict[tuple[str, str, int], str]:
    """(section, row label, column) -> the cell's text, for every table of a summary."""
    found, section = {}, ""
    for line in markdown.splitlines():
        if line.startswith(("## ", "### ")):
            section = line.lstrip("#").strip()
        elif line.startswith("| ") and not line.startswith("| measured") and "---" not in line:
            label, *values = [part.strip() for part in line.strip().strip("|").split(" | ")]
            for column, value in enumerate(values):
                found[(section, label, column)] = value
    return found


def interval(printed: str) -> tuple[float, float]:
    """A printed number or range as (low, high)."""
    ends = [float(part.rstrip("%").replace(",", "")) for part in printed.split("–")]
    return ends[0], ends[-1]


def words(text: str) -> str:
    """The cell with its numbers taken out: what must read the same in both runs."""
    return PRINTED.sub("#", text)


@dataclass(frozen=True)
class Difference:
    where: tuple[str, str, int]
    first: str
    second: str
    holds: bool  # every number agrees, or its ranges overlap
    why: str


def compare_cells(where: tuple[str, str, int], first: str, second: str) -> Difference:
    if words(first) != words(second):
        return Difference(where, first, second, False, "the words differ")
    moved = []
    for a, b in zip(PRINTED.findall(first), PRINTED.findall(second)):
        if a == b:
            continue
        (a_low, a_high), (b_low, b_high) = interval(a), interval(b)
        ranged = "–" in a or "–" in b
        if not (ranged and a_low <= b_high and b_low <= a_high):
            moved.append(f"{a} / {b}")
    if moved:
        return Difference(where, first, second, False, "moved: " + "; ".join(moved))
    return Difference(where, first, second, True, "ranges overlap")


def compare_summaries(first: str, second: str) -> list[Difference]:
    """Every cell whose text differs between two summaries, judged; a row in one only is a
    difference too."""
    a, b = cells(first), cells(second)
    found = []
    for where in sorted(set(a) | set(b)):
        if a.get(where) == b.get(where):
            continue
        if where not in a or where not in b:
            found.append(
                Difference(where, a.get(where, ""), b.get(where, ""), False, "in one run only")
            )
        else:
            found.append(compare_cells(where, a[where], b[where]))
    return found


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else read_parquet(path)


def moved_numbers(first: Path, second: Path) -> pd.DataFrame:
    """Per table under two results folders (CSV and Parquet) and numeric column: how many
    values differ at all and the largest relative difference; one row per column that
    moved."""
    rows = []
    for path in sorted(first.rglob("*")):
        if (
            path.suffix not in (".csv", ".parquet")
            or not (second / path.relative_to(first)).exists()
        ):
            continue
        a, b = read_table(path), read_table(second / path.relative_to(first))
        if a.shape != b.shape:
            rows.append({"table": str(path.relative_to(first)), "column": "(shape)", "differ": -1})
            continue
        for column in a.select_dtypes("number").columns:
            x, y = a[column].to_numpy(np.float64), b[column].to_numpy(np.float64)
            differ = ~((x == y) | (np.isnan(x) & np.isnan(y)))
            if differ.any():
                scale = np.maximum(np.abs(x[differ]), np.abs(y[differ]))
                rows.append(
                    {
                        "table": str(path.relative_to(first)),
                        "column": column,
                        "differ": int(differ.sum()),
                        "of": len(x),
                        "largest_relative": float(np.max(np.abs(x - y)[differ] / scale)),
                    }
                )
    return pd.DataFrame(rows, columns=["table", "column", "differ", "of", "largest_relative"])
