"""The exact Hessian in float64: at a zero-loss point its rank is at most d, with a gap of
many orders of magnitude at the rounding cutoff, and the same on any arithmetic; the
float32 rank at the same point is a count inside a continuum, set by rounding."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from inputspace.analysis import spectrum
from inputspace.model import models, sources
from inputspace.studies import landscape
from inputspace.studies.claims import RANK_GAP

TARGET = "The animal that says 'neigh' is a [MASK]."
# Sentences of the tiny tokenizer's corpus: 4 to 7 optimised tokens, 256 to 448 coordinates
PROMPTS = [
    "The animal that says bark is a [MASK].",
    "The capital of France is [MASK].",
    "A person who bakes bread is a [MASK].",
    "One plus one is [MASK].",
    "The colour of grass is [MASK].",
]
STUDY = {
    "exact_up_to": 4096,
    "hessian_batch": 64,
    "flat_threshold": 1e-3,
    "rank_tolerance": 1e-14,
    "slq_probes": 2,
    "slq_steps": 10,
}


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    """A tiny Llama whose predictions are peaked like a trained model's (larger weights):
    probabilities over many orders of magnitude, so the Hessian's d curved directions
    span them too, down past float32's rounding."""
    folder = tmp_path_factory.mktemp("peaked") / "llama"
    source = {"kind": "random", "architecture": "llama", "seed": 0, "init_std": 0.5}
    sources.prepare("peaked", source, folder)
    return folder


def zero_loss_ranks(folder, prompts=PROMPTS) -> dict[str, dict[str, list]]:
    """Per prompt, at its own prediction (a zero-loss point): rank and gap of the exact
    spectrum in float32 (the run's model) and in float64 (`landscape.spectra`'s path)."""
    lm = models.load(folder, attention="eager")
    hidden = lm.model.config.hidden_size
    found = {}
    for prompt in prompts:
        control = landscape.prompt_controls(lm, prompt, TARGET)[1]
        _, float64 = landscape.spectra(lm, [control], STUDY)
        around = landscape.surface(lm, control.point)
        exact32 = spectrum.exact_spectrum(around, control.point.flat())
        float32 = spectrum.flatness(exact32, control.point.size, hidden, 1e-3, 1e-14)
        found[prompt] = {
            "float32": [float32.numerical_rank, float32.rank_gap],
            "float64": [int(float64.numerical_rank[0]), float(float64.rank_gap[0])],
            "precision": str(float64.precision[0]),
            "hidden": hidden,
        }
    return found


def test_the_float64_rank_at_a_zero_loss_point_is_at_most_d_with_a_gap(peaked):
    found = zero_loss_ranks(peaked, PROMPTS[:2])
    for ranks in found.values():
        rank64, gap64 = ranks["float64"]
        rank32, gap32 = ranks["float32"]
        assert ranks["precision"] == "float64"
        assert rank64 <= ranks["hidden"] and gap64 >= max(RANK_GAP, 1e3)
        # float32 rounding (about 1e-7 of the largest) hides the smallest curved directions:
        # its count stops inside the continuum, with no gap
        assert rank32 < rank64 and gap32 < 10


RANKS_IN_A_PROCESS = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_float64 import zero_loss_ranks
torch.set_num_threads({threads})
print(json.dumps({{"capability": torch.backends.cpu.get_cpu_capability(),
                  "ranks": zero_loss_ranks({folder!r})}}))
"""


def ranks_with_kernels(folder, capability: str | None, threads: int) -> dict:
    """`zero_loss_ranks` in a process on `threads` threads whose torch kernels are those of
    `capability` (ATEN_CPU_CAPABILITY: another machine's vector width, so another
    summation order)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    code = RANKS_IN_A_PROCESS.format(
        tests=os.path.dirname(__file__), folder=str(folder), threads=threads
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_float32_rank_moves_with_the_kernels_and_the_float64_rank_does_not(peaked):
    """The same points with this CPU's widest kernels on one thread, AVX2's on two and
    scalar ones on one (at these tiny shapes the thread count alone moves no bit; the
    kernels do, as another CPU's would): every float64 rank is the same; some float32
    rank is not."""
    runs = [
        ranks_with_kernels(peaked, capability, threads)
        for capability, threads in ((None, 1), ("avx2", 2), ("default", 1))
    ]
    if len({run["capability"] for run in runs}) < 2:
        pytest.skip("this CPU has a single kernel path: nothing to compare")
    for prompt in PROMPTS:
        assert len({run["ranks"][prompt]["float64"][0] for run in runs}) == 1
    moved = [p for p in PROMPTS if len({run["ranks"][p]["float32"][0] for run in runs}) > 1]
    assert moved, {p: [run["ranks"][p]["float32"] for run in runs] for p in PROMPTS}


def test_the_float64_path_leaves_the_runs_model_as_it_was(peaked):
    lm = models.load(peaked, attention="eager")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    control = landscape.prompt_controls(lm, PROMPTS[3], TARGET)[1]
    landscape.spectra(lm, [control], STUDY)
    after = lm.model.state_dict()
    assert all(v.dtype == torch.float32 and torch.equal(v, after[k]) for k, v in before.items())
    assert not lm.float64 and np.isfinite(float(control.point.target_logprobs.sum()))


@pytest.mark.parametrize("architecture", ["modernbert", "bert", "gpt2"])
def test_the_float64_path_runs_on_models_with_layer_norms(architecture, tmp_path):
    """LayerNorm wants its input in its parameters' dtype: prompts are embedded in float32,
    so the float64 copy takes them wide (the paper config's ModernBERT failed here)."""
    torch.set_num_threads(1)
    sources.prepare("m", {"kind": "random", "architecture": architecture, "seed": 0}, tmp_path)
    lm = models.load(tmp_path, attention="eager")
    control = landscape.prompt_controls(lm, "One plus one is [MASK].", TARGET)[1]
    _, flat = landscape.spectra(lm, [control], STUDY)
    assert str(flat.precision[0]) == "float64" and flat.numerical_rank[0] >= 1
