"""Adam steps per second of the engine against the study's two earlier loops.

    .venv/bin/python benchmarks/step_speed.py [--model-folder results/models/smollm2]
        [--threads 2] [--steps 60] [--samples 20] [--batch 64] [--length 12] [--profile]

On the CPU in fp32, for a batch of `--batch` sequences of exactly `--length` tokens
(real text from prompts/pairs.tsv, after a BOS token; the prediction site is the last
position), times:

  (a) the study's first loop: weights not frozen (weight gradients computed), full
      logits at every position, a hand-rolled Adam on the embeddings;
  (b) the study's final loop: weights frozen, torch.optim.Adam, masked gradients, but
      still full logits at every position;
  (c) the engine: a run of `--steps` steps, logging included (at the default config's
      logging density), its set-up and final forward included, divided by the steps;
  and a plain fp32 matmul of the model's own linear-layer shapes.

This machine's speed drifts by +-20% from second to second, so the four share one
stretch of time: `--samples` times during the engine's run, between two of its steps,
one step of (a), one of (b) and one reference matmul run, in rotating order. Each is the
mean of its timings. Then counts the matmul FLOPs of the engine's run and compares the
achieved FLOP/s with the reference matmul's.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import timed  # benchmarks/timing.py

from inputspace.model.models import LanguageModel, load
from inputspace.model.prompts import PLACEHOLDER, read_pairs
from inputspace.optimisation import engine
from inputspace.optimisation.engine import Problem, Settings, kl_divergence
from inputspace.optimisation.recorder import Landmarks, Logging, Recorder, log_schedule
from inputspace.optimisation.sequences import SequenceBatch, from_prompts, of_ids

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"c/a": 1.8, "c/b": 1.15, "utilisation": 0.75}


# ---------------------------------------------------------------- the problem


def build_batch(lm: LanguageModel, pairs_file: Path, n: int, length: int) -> SequenceBatch:
    """`n` sequences of exactly `length` tokens: the BOS token (a special position the
    optimiser must not move), then the last tokens of source prompt i preceded by the
    text of the three prompts before it, rendered and tokenized by `from_prompts`; the
    last position is prompt i's prediction site."""
    sources = [pair.source for pair in read_pairs(pairs_file)]
    count = len(sources)
    # each prompt follows the text of the three before it, so even the shortest fills the length
    prompts = [
        " ".join(
            sources[(i - back) % count].split(PLACEHOLDER)[0].rstrip() + "." for back in (3, 2, 1)
        )
        + " "
        + sources[i % count]
        for i in range(n)
    ]
    tokenized = from_prompts(lm, prompts)
    bos = lm.manifest["special_token_ids"]["named"]["bos"]
    prefix = [bos] if bos is not None else []
    keep = length - len(prefix)
    rows = []
    for row, mask in zip(tokenized.ids, tokenized.attention_mask):
        tokens = row[mask.bool()].tolist()
        assert len(tokens) >= keep, tokens
        rows.append(prefix + tokens[-keep:])
    ids = torch.tensor(rows, dtype=torch.long)
    batch = of_ids(lm, ids, torch.ones_like(ids))
    assert torch.all(batch.sites == length - 1), batch.sites
    return batch


def build_problem(lm: LanguageModel, batch: SequenceBatch) -> tuple[Problem, Landmarks]:
    """Targets: the batch's own initial predictions, shifted along a fixed random cycle
    so that no sequence gets its own (the KL is non-zero everywhere)."""
    with torch.no_grad():
        logits = lm.logits_at(batch.embeddings, batch.attention_mask, batch.sites)
    initial = F.log_softmax(logits.float(), dim=-1)
    order = torch.randperm(len(batch), generator=torch.Generator().manual_seed(0))
    target = torch.empty_like(initial)
    target[order] = initial[order.roll(1)]
    special = torch.tensor(lm.special_ids, dtype=torch.long)
    ids = torch.arange(min(lm.vocab_size, len(lm.tokenizer)))
    return Problem(batch=batch, target_logprobs=target), Landmarks(
        vocab=lm.vocab_embeddings(), candidates=ids[~torch.isin(ids, special)]
    )


# ---------------------------------------------------------------- the three loops


def full_site_logits(lm: LanguageModel, embeddings, attention_mask, sites):
    """The study's loops: logits at every position from the full model, then the site."""
    logits = lm.model(
        inputs_embeds=embeddings, attention_mask=attention_mask, use_cache=False
    ).logits
    return logits[torch.arange(logits.shape[0]), sites]


def first_loop(lm: LanguageModel, problem: Problem, lr: float, betas: tuple[float, float]):
    """(a) Weights not frozen, full logits, hand-rolled Adam, special positions masked."""
    batch = problem.batch
    embeddings = batch.embeddings.clone().requires_grad_(True)
    keep = batch.trainable.unsqueeze(-1).float()
    m, v = torch.zeros_like(embeddings), torch.zeros_like(embeddings)
    beta1, beta2 = betas
    t = 0

    def step():
        nonlocal t
        logits = full_site_logits(lm, embeddings, batch.attention_mask, batch.sites)
        loss = kl_divergence(logits, problem.target_logprobs).sum()
        lm.model.zero_grad(set_to_none=True)
        embeddings.grad = None
        loss.backward()
        with torch.no_grad():
            t += 1
            grad = embeddings.grad * keep
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            m_hat = m / (1 - beta1**t)
            v_hat = v / (1 - beta2**t)
            embeddings.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8) * keep)

    return step


def final_loop(lm: LanguageModel, problem: Problem, lr: float, betas: tuple[float, float]):
    """(b) Weights frozen, torch.optim.Adam, masked gradients, full logits."""
    batch = problem.batch
    embeddings = batch.embeddings.clone().requires_grad_(True)
    frozen = ~batch.trainable.unsqueeze(-1)
    optimizer = torch.optim.Adam([embeddings], lr=lr, betas=betas)

    def step():
        logits = full_site_logits(lm, embeddings, batch.attention_mask, batch.sites)
        loss = kl_divergence(logits, problem.target_logprobs).sum()
        loss.backward()
        embeddings.grad.masked_fill_(frozen, 0.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


# ---------------------------------------------------------------- FLOPs


def linear_shapes(config) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer of one decoder layer."""
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q_out = config.num_attention_heads * head_dim
    kv_out = config.num_key_value_heads * head_dim
    return {
        "q": (hidden, q_out),
        "k": (hidden, kv_out),
        "v": (hidden, kv_out),
        "o": (q_out, hidden),
        "gate": (hidden, inter),
        "up": (hidden, inter),
        "down": (inter, hidden),
    }


def step_flops(config, n: int, length: int, prefix: int = 0) -> dict[str, float]:
    """Matmul FLOPs of one engine step (forward + input-gradient backward, frozen weights).

    The engine computes the first `prefix` positions (frozen, of a causal LM) once per
    run, so a step covers the other length - prefix positions of each sequence.
    Forward: every linear of every layer over those n*(length - prefix) tokens; attention
    scores (Q K^T) and values (P V) of their queries against all `length` keys per head
    (the mask is applied, not skipped); the LM head only at the n prediction sites.
    Backward: a linear needs only dX = dY W (same size as its forward); each attention
    matmul needs two (dQ = dS K and dK = dS^T Q; dP = dO V^T and dV = P^T dO); the head,
    like a linear, one.
    """
    queries = length - prefix
    tokens = n * queries
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    linear = sum(2 * tokens * i * o for i, o in linear_shapes(config).values()) * layers
    attention_one = 2 * n * heads * queries * length * head_dim * layers  # scores or values
    head = 2 * n * config.hidden_size * config.vocab_size
    return {
        "forward linears": linear,
        "forward attention (scores + values)": 2 * attention_one,
        "forward LM head (sites only)": head,
        "backward linears (dX)": linear,
        "backward attention (2 per matmul)": 4 * attention_one,
        "backward LM head (dX)": head,
    }


def reference_matmuls(config, tokens: int) -> tuple[float, Callable[[], None]]:
    """(FLOPs, work): plain fp32 matmuls of one decoder layer's linear shapes, one of each
    (the proportion in which they occur), repeated over the layers."""
    generator = torch.Generator().manual_seed(0)
    shapes = list(linear_shapes(config).values())
    inputs = {i: torch.randn(tokens, i, generator=generator) for i, _ in shapes}
    weights = [(inputs[i], torch.randn(i, o, generator=generator)) for i, o in shapes]
    flops = sum(2 * tokens * i * o for i, o in shapes) * config.num_hidden_layers

    def work():
        for _ in range(config.num_hidden_layers):
            for x, w in weights:
                torch.matmul(x, w)

    return flops, work


# ---------------------------------------------------------------- main


@contextmanager
def timed_snapshots():
    """Wall times of the engine's logged-step snapshots (informative)."""
    times: list[float] = []
    original = Recorder._snapshot

    def snapshot(self, step):
        start = time.perf_counter()
        original(self, step)
        times.append(time.perf_counter() - start)

    Recorder._snapshot = snapshot
    try:
        yield times
    finally:
        Recorder._snapshot = original


def recorder_for(
    lm: LanguageModel, problem: Problem, landmarks: Landmarks, steps: int, log_points: int
) -> Recorder:
    return Recorder(problem.batch, landmarks, Logging(log_points=log_points), steps, lm.device)


def profile_engine(lm: LanguageModel, problem: Problem, landmarks: Landmarks, lr: float) -> None:
    """One engine step (2 forwards, 1 backward, 2 logged snapshots) under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        watcher = recorder_for(lm, problem, landmarks, 1, 1)
        engine.optimise(
            lm, problem, Settings(steps=1, lr=lr, checkpoint_every=10**9), watcher, progress=False
        )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def default_density_log_points(steps: int) -> int:
    """The smallest log_points that logs at least as often per step as the default config
    (prompt_pairs and random_sentences: 150 steps, log_points 20)."""
    density = len(log_schedule(150, 20)) / 150
    points = 1
    while len(log_schedule(steps, points)) / steps < density:
        points += 1
    return points


def spread(times: list[float]) -> str:
    return f"min {min(times):.3f}  median {statistics.median(times):.3f}  max {max(times):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-folder", type=Path, default=ROOT / "results/models/smollm2")
    parser.add_argument("--pairs", type=Path, default=ROOT / "prompts/pairs.tsv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="steps of the engine's run")
    parser.add_argument(
        "--samples",
        type=int,
        default=20,
        help="timed steps of (a) and (b) and reference matmuls, spread through the run",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument(
        "--log-points",
        type=int,
        default=None,
        help="engine log_points; default: at least the logging density of the default "
        "config (150 steps, log_points 20)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile one engine step")
    args = parser.parse_args()

    if not (args.model_folder / "manifest.json").is_file():
        sys.exit(
            f"no prepared model at {args.model_folder}; run "
            "`.venv/bin/snakemake --cores all results/models/smollm2` first"
        )
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lm = load(args.model_folder, device="cpu")
    config = lm.model.config
    betas = (0.9, 0.999)
    batch = build_batch(lm, args.pairs, args.batch, args.length)
    problem, landmarks = build_problem(lm, batch)
    prefix = lm.frozen_prefix_length(batch.trainable, batch.attention_mask, batch.sites)
    log_points = args.log_points or default_density_log_points(args.steps)
    settings = Settings(steps=args.steps, lr=args.lr, betas=betas, checkpoint_every=10**9)
    print(
        f"{config.model_type}, threads {torch.get_num_threads()}, fp32 CPU, batch {args.batch} x "
        f"{args.length} tokens ({int(batch.trainable.sum())} optimised)"
    )
    print(
        f"the engine computes the first {prefix} position(s) of every sequence "
        "(frozen: BOS) once per run"
    )

    first, final = first_loop(lm, problem, args.lr, betas), final_loop(lm, problem, args.lr, betas)
    reference_flops, reference = reference_matmuls(config, args.batch * args.length)

    def step_a() -> None:
        lm.model.requires_grad_(True)
        first()
        lm.model.requires_grad_(False)
        lm.model.zero_grad(set_to_none=True)

    # Warm-ups; then the others take turns between the engine's steps (see the docstring).
    for work in (step_a, final, reference):
        work()
    engine.optimise(
        lm,
        problem,
        Settings(steps=1, lr=args.lr),
        recorder_for(lm, problem, landmarks, 1, 1),
        progress=False,
    )
    turns = {"a": step_a, "b": final, "reference": reference}
    times: dict[str, list[float]] = {"a": [], "b": [], "c": [], "reference": []}
    every = max(1, args.steps // args.samples)
    with timed_snapshots() as snapshots:
        start = time.perf_counter()
        run = engine.Descent(lm, problem, settings, "benchmark")
        watcher = recorder_for(lm, problem, landmarks, args.steps, log_points)
        setup = time.perf_counter() - start
        while not run.finished:
            times["c"].append(timed(lambda: run.advance(watcher)))
            sample = len(times["a"])
            if run.step % every == 0 and sample < args.samples:
                names = list(turns)[sample % 3 :] + list(turns)[: sample % 3]
                for name in names:
                    times[name].append(timed(turns[name]))
    time_a, time_b = statistics.mean(times["a"]), statistics.mean(times["b"])
    time_c = (setup + sum(times["c"])) / args.steps
    logged = log_schedule(args.steps, log_points)
    samples = len(times["a"])

    print(
        f"(a) study's first loop: {time_a:7.3f} s/step  {1 / time_a:6.3f} steps/s  "
        f"(mean of {samples}; {spread(times['a'])})"
    )
    print(
        f"(b) study's final loop: {time_b:7.3f} s/step  {1 / time_b:6.3f} steps/s  "
        f"(mean of {samples}; {spread(times['b'])})"
    )
    print(
        f"(c) engine:             {time_c:7.3f} s/step  {1 / time_c:6.3f} steps/s  "
        f"(set-up {setup:.3f} s, "
        f"{args.steps + 1} forwards, {args.steps} backwards, "
        f"{len(logged)} logged steps {logged}; total / {args.steps})"
    )
    print(
        f"    of which logging snapshots: {sum(snapshots):.3f} s in all ({len(snapshots)}, "
        f"{statistics.mean(snapshots):.3f} s each); "
        f"without them {time_c - sum(snapshots) / args.steps:.3f} s/step"
    )
    for name, ratio in (("c/a", time_a / time_c), ("c/b", time_b / time_c)):
        print(
            f"speed {name}: {ratio:.2f}x  (target >= {TARGETS[name]}x)  "
            f"{'ok' if ratio >= TARGETS[name] else 'BELOW'}"
        )

    breakdown = step_flops(config, args.batch, args.length, prefix)
    total = sum(breakdown.values())
    forward = sum(flops for name, flops in breakdown.items() if name.startswith("forward"))
    print("matmul FLOPs of one engine step:")
    for name, flops in breakdown.items():
        print(f"  {name:38s} {flops / 1e9:8.2f} GFLOP")
    print(
        f"  {'total':38s} {total / 1e9:8.2f} GFLOP  "
        f"(the run: {args.steps} steps and a final forward)"
    )
    achieved = (args.steps * total + forward) / (time_c * args.steps)
    attainable = reference_flops / statistics.mean(times["reference"])
    fastest = reference_flops / min(times["reference"])
    utilisation = achieved / attainable
    print(f"achieved:   {achieved / 1e9:.1f} GFLOP/s (engine step)")
    print(
        f"attainable: {attainable / 1e9:.1f} GFLOP/s (fp32 matmul, "
        f"[{args.batch * args.length}, in] @ [in, out] of "
        f"q,k,v,o,gate,up,down x {config.num_hidden_layers} layers; "
        f"mean of {samples} interleaved; the fastest "
        f"single one: {fastest / 1e9:.1f})"
    )
    print(
        f"utilisation: {utilisation:.0%}  (target >= {TARGETS['utilisation']:.0%})  "
        f"{'ok' if utilisation >= TARGETS['utilisation'] else 'BELOW'};  "
        "against the fastest single reference: "
        f"{achieved / fastest:.0%}"
    )

    if args.profile:
        profile_engine(lm, problem, landmarks, args.lr)


if __name__ == "__main__":
    main()
