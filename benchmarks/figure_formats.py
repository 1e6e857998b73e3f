"""What each print format costs: the same house-style figure saved as PNG only, then with
its PDF and SVG copies, and what stamping each file with its record adds.

    .venv/bin/python benchmarks/figure_formats.py [--models 2] [--sequences 64] [--steps 500]

The figure is the KL curves of `--sequences` sequences over `--steps` logged steps per
model (the paper config's experiment-3 shape by default), drawn by `figures.kl_curves`.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from timing import best_of  # benchmarks/timing.py

from inputspace.provenance import stamp
from inputspace.studies import figures

FORMATS = (("png",), ("png", "pdf"), ("png", "pdf", "svg"))


def steps_table(models: int, sequences: int, steps: int) -> pd.DataFrame:
    generator = np.random.default_rng(0)
    rows = [
        {
            "model": f"model_{m}",
            "seq": s,
            "step": t,
            "kl": float(np.exp(-t / 100) + e),
            "active": True,
        }
        for m in range(models)
        for s in range(sequences)
        for t, e in zip(range(steps), generator.uniform(0, 0.01, steps))
    ]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    table = steps_table(args.models, args.sequences, args.steps)
    names = list(table.model.unique())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kl.png"
        for formats in FORMATS:
            figures.use({"one_column": 3.5, "two_column": 7.0, "formats": list(formats)})
            drawn = best_of(3, lambda: figures.kl_curves(table, names, "KL", path))
            made = [path, *figures.print_copies(path)]
            record = {"figure": str(path), "note": "x" * 4000}  # about a real record's size
            stamped = best_of(3, lambda made=made, record=record: stamp_all(made, record))
            sizes = ", ".join(f"{f.suffix[1:]} {f.stat().st_size / 1e3:.0f} kB" for f in made)
            name = "+".join(formats)
            print(f"{name:12s} draw and save {drawn:5.2f} s, stamp {stamped:5.2f} s ({sizes})")


def stamp_all(made: list[Path], record: dict) -> None:
    for figure in made:
        stamp.stamp(figure, record)


if __name__ == "__main__":
    main()
