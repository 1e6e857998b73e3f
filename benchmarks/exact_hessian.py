"""What the float64 exact Hessian costs against float32: batches of Hessian-vector
products at the default config's control point (SmolLM2, "A dog says [MASK]." toward
its own prediction, 3 x 576 = 1,728 coordinates), float32 and float64 in turns so both
see the same load; seconds per batch, their ratio, the projected time of one whole
Hessian, and the one-off cost of the float64 copy of the model. Needs
results/models/smollm2 (`.venv/bin/snakemake --cores all results/models/smollm2`):

    PYTHONPATH=src .venv/bin/python benchmarks/exact_hessian.py
"""

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
from timing import timed  # benchmarks/timing.py

from inputspace.analysis import spectrum
from inputspace.model import models
from inputspace.studies import landscape

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "results/models/smollm2")
    parser.add_argument("--prompt", default="A dog says [MASK].")
    parser.add_argument("--batch", type=int, default=64, help="products per double backward")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = models.load(args.model, "cpu", "eager")
    probe = landscape.prompt_controls(lm, args.prompt, args.prompt)[1]
    copied = {}
    copy_seconds = timed(lambda: copied.update(lm64=lm.in_float64()))
    lm64 = copied["lm64"]
    point64 = landscape.point_in_float64(lm64, probe)
    surfaces = {
        "float32": (landscape.surface(lm, probe.point), probe.point.flat()),
        "float64": (landscape.surface(lm64, point64), point64.flat()),
    }
    n = probe.point.size
    seconds = {name: [] for name in surfaces}
    for round_ in range(args.rounds + 1):  # the first round warms up, not counted
        for name, (around, flat) in surfaces.items():
            probes = torch.eye(n, dtype=flat.dtype)[: args.batch]
            took = timed(
                lambda a=around, f=flat, p=probes: spectrum.hessian_vector_products(a, f, p)
            )
            if round_:
                seconds[name].append(took)
    batches = math.ceil(n / args.batch)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    print(f"{n} coordinates, {batches} batches of {args.batch}, {args.threads} threads")
    for name, value in median.items():
        spread = f"{min(seconds[name]):.2f}-{max(seconds[name]):.2f}"
        print(
            f"{name}: {value:.2f} s per batch (min-max {spread}); "
            f"one whole Hessian about {value * batches:.0f} s"
        )
    print(f"float64 / float32: {median['float64'] / median['float32']:.2f}")
    print(f"float64 copy of the model: {copy_seconds:.1f} s once per landscape job")
    print(f"measured at {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
