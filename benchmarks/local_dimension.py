"""What the exact Jacobian behind the zero-loss set's local dimension costs: one point of
the default config's landscape (SmolLM2, a random start of `--length` sampled tokens: n =
length x 576 coordinates), the Jacobian's d rows in batches of `--batch` backward passes,
its rounding measured on its first 64 rows in float64, and the head's metric; the seconds of
each run, the rank, the gap at the cutoff. The landscape takes one such Jacobian per
converged solution and one at a random start. Needs results/models/smollm2 and
results/smollm2/ellipse.safetensors (`.venv/bin/snakemake --cores all
results/smollm2/ellipse.safetensors`):

    PYTHONPATH=src .venv/bin/python benchmarks/local_dimension.py
"""

import argparse
from pathlib import Path

import torch
from timing import timed  # benchmarks/timing.py

from inputspace.analysis import geometry
from inputspace.model import models
from inputspace.optimisation.experiments import target_logprobs
from inputspace.studies import landscape

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "results/models/smollm2")
    parser.add_argument(
        "--ellipse", type=Path, default=REPO / "results/smollm2/ellipse.safetensors"
    )
    parser.add_argument("--target", default="The animal that says 'neigh' is a [MASK].")
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16, help="Jacobian rows per backward pass")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = models.load(args.model, "cpu", "eager")
    ellipse = geometry.load_ellipse(args.ellipse)
    starts = landscape.random_starts(lm, ellipse, {"pairs": 1, "length": args.length}, 0)
    targets = target_logprobs(lm, [args.target]).expand(len(starts), -1)
    point = landscape.points_of(starts, starts.embeddings, targets)[0]
    for number in range(args.rounds):
        found = []
        seconds = timed(
            lambda found=found: found.append(
                landscape.local_dimension_at(lm, point, args.batch, "bench")[0]
            )
        )
        d = found[0]
        print(
            f"round {number}: {seconds:.1f} s; n {d.dimensions}, rank {d.rank} (d = {d.hidden}),"
            f" cutoff {d.cutoff:.2g} of the largest, gap {d.gap:.4g}, set {d.set_dimension}"
        )


if __name__ == "__main__":
    main()
