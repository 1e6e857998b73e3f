"""Does every number the summary prints hold on another machine? Runs a config twice from
scratch, in two checkouts: as this machine runs it, and as another machine would (other
thread count, other vector kernels in torch and MKL, so other summation orders), then
compares them:

- every table under results/ (CSV, Parquet), column by column: which numbers moved at
  all, and how far (relative);
- results/summary.md, cell by cell: each printed number must read the same, or (where
  it is printed as a range) the two ranges must overlap.

Prints both and exits 1 if a printed number moved. At a tiny model's shapes the thread
count alone moves no bit on this project's machines; the kernels do (docs/science.md).
About 5 minutes on tests/configs/small.yaml on an idle 2-core machine:

    PYTHONPATH=src .venv/bin/python benchmarks/kernel_check.py
    PYTHONPATH=src .venv/bin/python benchmarks/kernel_check.py --kernels default  # scalar
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from inputspace.studies.agreement import compare_summaries, moved_numbers

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers import SMALL_CONFIG, SMALL_MODEL, checkout_files, small_model  # noqa: E402


def run(checkout: Path, config: str, threads: int, kernels: str | None) -> float:
    """The whole workflow in `checkout`, jobs on up to `threads` threads, with `kernels`
    (an ATEN_CPU_CAPABILITY, and the matching MKL instructions) if given; its wall time."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if kernels:
        env["ATEN_CPU_CAPABILITY"] = kernels
        env["MKL_ENABLE_INSTRUCTIONS"] = {"default": "SSE4_2"}.get(kernels, kernels.upper())
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--max-threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--configfile", config],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"kernel_check: the run in {checkout} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def checkout(folder: Path, config: str) -> Path:
    folder.mkdir(parents=True)
    checkout_files(folder)
    if config == SMALL_CONFIG:
        small_model(folder / SMALL_MODEL)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=SMALL_CONFIG, help="relative to the repository")
    parser.add_argument("--kernels", default="avx2", help="the other run's ATEN_CPU_CAPABILITY")
    parser.add_argument("--threads", type=int, default=2, help="the other run's thread count")
    parser.add_argument("--work", type=Path, help="where the two checkouts go (kept)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kernel_check-"))
    here, there = checkout(work / "here", args.config), checkout(work / "there", args.config)
    took = run(here, args.config, 1, None), run(there, args.config, args.threads, args.kernels)
    print(
        f"{args.config}: this machine's kernels on 1 thread ({took[0]:.0f} s) against "
        f"{args.kernels} kernels on {args.threads} threads ({took[1]:.0f} s), in {work}\n"
    )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        moved = moved_numbers(here / "results", there / "results")
        print("Numbers that moved in the tables (of all values in the column):")
        print(moved.to_string(index=False) if len(moved) else "none", "\n")
    summaries = [(folder / "results/summary.md").read_text() for folder in (here, there)]
    differences = compare_summaries(*summaries)
    print(f"Summary cells that differ: {len(differences)}")
    for difference in differences:
        section, label, column = difference.where
        print(f"\n[{'holds' if difference.holds else 'FAILS'}: {difference.why}]")
        print(f"  {section} / {label} (column {column})")
        print(f"  here:  {difference.first}\n  there: {difference.second}")
    failed = [d for d in differences if not d.holds]
    print(f"\n{len(failed)} printed number(s) moved" if failed else "\nevery printed number holds")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
