"""What the CPU tests cannot check: the package on a CUDA device, for every tiny
architecture of the matrix (tests/test_architectures.py). Per architecture, with the
model's default attention on the GPU:

- the site logits equal the model's own forward from input_ids (fp32);
- 20 engine steps lower the KL in fp32, bf16 autocast and fp16 with a gradient scaler,
  and keep every frozen position bit-identical;
- an lr of 1e20 stops the run at step 1, naming the embeddings.

Prints one line per architecture and exits 1 if any check fails. Run it where CUDA is:

    PYTHONPATH=src python benchmarks/gpu_check.py
"""

import sys
import tempfile
import traceback
from pathlib import Path

import torch

from inputspace.errors import InputspaceError
from inputspace.model import models, random_model, sources
from inputspace.optimisation import engine, experiments
from inputspace.optimisation.sequences import from_prompts

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "The animal that says bark is a [MASK].",
    "One plus one is [MASK].",
    "The capital of Italy is [MASK].",
]
PAIRS = {"sequences": {"kind": "pairs", "file": "prompts/pairs.tsv", "count": 3}}
PROMPTS = REPO / PAIRS["sequences"]["file"]


def prepared(name: str, root: Path) -> Path:
    model, tokenizer = random_model.build(
        random_model.TinySpec(architecture=name, hidden_size=32, intermediate_size=64)
    )
    saved, folder = root / "saved" / name, root / "prepared" / name
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    sources.prepare(name, {"kind": "local", "path": str(saved)}, folder)
    return folder


def site_logits_error(lm: models.LanguageModel) -> float:
    batch = from_prompts(lm, PROMPTS)
    device = lm.device
    with torch.no_grad():
        ours = lm.logits_at(
            batch.embeddings.to(device), batch.attention_mask.to(device), batch.sites.to(device)
        )
        worst = 0.0
        for row in range(len(batch)):
            length = int(batch.attention_mask[row].sum())
            alone = lm.model(input_ids=batch.ids[row : row + 1, :length].to(device)).logits[
                0, batch.sites[row]
            ]
            worst = max(worst, float((ours[row] - alone).abs().max()))
    return worst


def engine_checks(lm: models.LanguageModel) -> dict[str, str]:
    found = {}
    for precision in ("fp32", "bf16", "fp16"):
        problem, _ = experiments.build_problem_from_model(lm, PAIRS, PROMPTS)
        settings = engine.Settings(steps=20, lr=0.01, precision=precision)
        start = engine.Descent(lm, problem, settings)
        start.advance()
        before = float(start.kl.sum())
        run = engine.optimise(lm, problem, settings, progress=False)
        frozen = ~problem.batch.trainable
        kept = torch.equal(run.end.cpu()[frozen], problem.batch.embeddings[frozen])
        ratio = float(run.kl.sum()) / before
        found[precision] = f"KL x{ratio:.2f}{'' if kept else ' FROZEN MOVED'}"
        if not (ratio < 0.9 and kept):
            raise AssertionError(f"{precision}: {found[precision]}")
    problem, _ = experiments.build_problem_from_model(lm, PAIRS, PROMPTS)
    try:
        engine.optimise(lm, problem, engine.Settings(steps=5, lr=1e20), progress=False)
        raise AssertionError("an lr of 1e20 was not stopped")
    except InputspaceError as error:
        if "non-finite embeddings at step 1" not in str(error):
            raise AssertionError(f"diverging run: {error}") from None
    found["lr 1e20"] = "stopped at step 1"
    return found


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in sorted(random_model.ARCHITECTURES):
            try:
                lm = models.load(prepared(name, Path(scratch)), device)
                error = site_logits_error(lm)
                if error > 1e-4:
                    raise AssertionError(f"site logits differ from the model's by {error:.2g}")
                checks = engine_checks(lm)
                attention = lm.model.config._attn_implementation
                print(
                    f"ok   {name:<11} {attention:<6} logits max |diff| {error:.1e}; "
                    + "; ".join(f"{k}: {v}" for k, v in checks.items())
                )
            except Exception as problem:  # report every architecture, then fail
                failed.append(name)
                print(f"FAIL {name:<11} {problem}")
                traceback.print_exc()
    print(
        f"{len(random_model.ARCHITECTURES) - len(failed)} / "
        f"{len(random_model.ARCHITECTURES)} architectures pass"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
