"""Peak memory and time of 64 rows of the landscape's exact Jacobian at one random start of
32 tokens of SmolLM2 (n = 18,432), in the run's float32 or in the float64 model that
measures its rounding, at a given number of rows per backward pass; one process per case
(peak RSS is per process). Needs results/models/smollm2 and results/smollm2/ellipse.safetensors.

    for case in "f32 64" "f32 16" "f64 64" "f64 8"; do
        .venv/bin/python benchmarks/jacobian_memory.py $case; done
"""

import dataclasses
import resource
import sys
import time
from pathlib import Path

import torch

from inputspace.analysis import geometry
from inputspace.analysis.local_dimension import jacobian
from inputspace.model import models
from inputspace.optimisation.experiments import target_logprobs
from inputspace.studies import landscape

which, batch = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
lm = models.load(Path("results/models/smollm2"), "cpu", "eager")
lm64 = lm.in_float64() if which == "f64" else None
ellipse = geometry.load_ellipse(Path("results/smollm2/ellipse.safetensors"))
starts = landscape.random_starts(lm, ellipse, {"pairs": 1, "length": 32}, 0)
targets = target_logprobs(lm, ["The animal that says 'neigh' is a [MASK]."]).expand(len(starts), -1)
point = landscape.points_of(starts, starts.embeddings, targets)[0]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.time()
if which == "f64":
    wide = dataclasses.replace(point, embeddings=point.embeddings.double())
    flat = point.flat().double()
    rows = jacobian(lambda f: landscape.states(lm64, wide, f), flat, range(64), batch)
else:
    flat = point.flat()
    rows = jacobian(lambda f: landscape.states(lm, point, f), flat, range(64), batch)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
seconds = time.time() - t
print(f"{which}, {batch} rows a pass: before {base:.0f} MB, peak {peak:.0f} MB, {seconds:.1f} s")
