"""Adam steps per second of the engine against the study's two earlier loops.

    .venv/bin/python benchmarks/step_speed.py [--model-folder results/models/smollm2]
        [--threads 2] [--steps 3] [--engine-steps 20] [--batch 64] [--length 12] [--profile]

On the CPU in fp32, for a batch of `--batch` sequences of exactly `--length` tokens
(real text from prompts/pairs.tsv; the prediction site is the last position), times:

  (a) the study's first loop: weights not frozen (weight gradients computed), full
      logits at every position, a hand-rolled Adam on the embeddings;
  (b) the study's final loop: weights frozen, torch.optim.Adam, masked gradients, but
      still full logits at every position;
  (c) engine.optimise end to end, logging included, divided by the number of steps.

Then counts the matmul FLOPs of one engine step and compares the achieved FLOP/s with a
plain fp32 matmul of the model's own linear-layer shapes on this machine.
"""

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from inputspace import engine
from inputspace.engine import Problem, Settings, kl_divergence, log_schedule
from inputspace.models import LanguageModel, load
from inputspace.prompts import PLACEHOLDER, read_pairs
from inputspace.sequences import SequenceBatch, from_prompts

from timing import best_of, median_step  # benchmarks/timing.py

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
        " ".join(sources[(i - back) % count].split(PLACEHOLDER)[0].rstrip() + "." for back in (3, 2, 1))
        + " " + sources[i % count]
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
    attention_mask = torch.ones_like(ids)
    sites = lm.prediction_sites(ids, attention_mask)
    assert torch.all(sites == length - 1), sites
    special = torch.tensor(lm.special_ids, dtype=torch.long)
    with torch.no_grad():
        embeddings = lm.embed(ids).float().cpu()
    return SequenceBatch(
        ids=ids,
        attention_mask=attention_mask,
        embeddings=embeddings,
        trainable=~torch.isin(ids, special),
        sites=sites,
    )


def build_problem(lm: LanguageModel, batch: SequenceBatch) -> Problem:
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
    return Problem(
        batch=batch,
        target_logprobs=target,
        vocab=lm.vocab_embeddings(),
        candidates=ids[~torch.isin(ids, special)],
    )


# ---------------------------------------------------------------- the three loops


def full_site_logits(lm: LanguageModel, embeddings, attention_mask, sites):
    """The study's loops: logits at every position from the full model, then the site."""
    logits = lm.model(inputs_embeds=embeddings, attention_mask=attention_mask, use_cache=False).logits
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


def step_flops(config, n: int, length: int) -> dict[str, float]:
    """Matmul FLOPs of one engine step (forward + input-gradient backward, frozen weights).

    Forward: every linear of every layer over all n*length tokens; attention scores
    (Q K^T) and values (P V) over the full length x length square per head (the mask is
    applied, not skipped); the LM head only at the n prediction sites.
    Backward: a linear needs only dX = dY W (same size as its forward); each attention
    matmul needs two (dQ = dS K and dK = dS^T Q; dP = dO V^T and dV = P^T dO); the head,
    like a linear, one.
    """
    tokens = n * length
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    linear = sum(2 * tokens * i * o for i, o in linear_shapes(config).values()) * layers
    attention_one = 2 * n * heads * length * length * head_dim * layers  # scores or values
    head = 2 * n * config.hidden_size * config.vocab_size
    return {
        "forward linears": linear,
        "forward attention (scores + values)": 2 * attention_one,
        "forward LM head (sites only)": head,
        "backward linears (dX)": linear,
        "backward attention (2 per matmul)": 4 * attention_one,
        "backward LM head (dX)": head,
    }


def attainable_flops(config, tokens: int, repeats: int) -> float:
    """FLOP/s of plain fp32 matmuls of one decoder layer's linear shapes, one of each
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

    work()
    return flops / best_of(repeats, work)


# ---------------------------------------------------------------- main


@contextmanager
def timed_snapshots():
    """Wall times of the engine's logged-step snapshots (informative; empty if the
    engine's internals change)."""
    times: list[float] = []
    run_class = getattr(engine, "_Run", None)
    original = getattr(run_class, "snapshot", None)
    if original is None:
        yield times
        return

    def snapshot(self, probs):
        start = time.perf_counter()
        original(self, probs)
        times.append(time.perf_counter() - start)

    run_class.snapshot = snapshot
    try:
        yield times
    finally:
        run_class.snapshot = original


def profile_engine(lm: LanguageModel, problem: Problem, lr: float) -> None:
    """One engine step (2 forwards, 1 backward, 2 logged snapshots) under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.optimise(lm, problem, Settings(steps=1, lr=lr, log_points=1, checkpoint_every=10**9), progress=False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def default_density_log_points(steps: int) -> int:
    """The smallest log_points that logs at least as often per step as the default config
    (prompt_pairs and random_sentences: 150 steps, log_points 20)."""
    density = len(log_schedule(150, 20)) / 150
    points = 1
    while len(log_schedule(steps, points)) / steps < density:
        points += 1
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-folder", type=Path, default=ROOT / "results/models/smollm2")
    parser.add_argument("--pairs", type=Path, default=ROOT / "prompts/pairs.tsv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps of loops (a) and (b)")
    parser.add_argument("--engine-steps", type=int, default=20, help="steps of the engine run (c)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--log-points", type=int, default=None,
                        help="engine log_points; default: at least the logging density of the default "
                        "config (150 steps, log_points 20)")
    parser.add_argument("--repeats", type=int, default=3, help="best-of repeats of the reference matmul")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each variant keeps its best")
    parser.add_argument("--profile", action="store_true", help="also profile one engine step")
    args = parser.parse_args()

    if not (args.model_folder / "manifest.json").is_file():
        sys.exit(f"no prepared model at {args.model_folder}; run "
                 "`.venv/bin/snakemake --cores all results/models/smollm2` first")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lm = load(args.model_folder, device="cpu")
    config = lm.model.config
    betas = (0.9, 0.999)
    batch = build_batch(lm, args.pairs, args.batch, args.length)
    problem = build_problem(lm, batch)
    log_points = args.log_points or default_density_log_points(args.engine_steps)
    logged = log_schedule(args.engine_steps, log_points)
    print(f"{config.model_type}, threads {torch.get_num_threads()}, fp32 CPU, batch {args.batch} x "
          f"{args.length} tokens ({int(batch.trainable.sum())} optimised), {args.steps} timed steps after 1 warm-up")

    def run_engine(steps: int, points: int) -> None:
        settings = Settings(steps=steps, lr=args.lr, betas=betas, log_points=points, checkpoint_every=10**9)
        engine.optimise(lm, problem, settings, progress=False)

    def time_engine() -> tuple[float, list[float]]:
        with timed_snapshots() as snapshots:
            start = time.perf_counter()
            run_engine(args.engine_steps, log_points)
            return (time.perf_counter() - start) / args.engine_steps, list(snapshots)

    # The variants take turns, round after round, so this machine's drift in speed
    # falls on all of them alike; each keeps its best round.
    run_engine(1, 1)  # warm-up
    times: dict[str, list[float]] = {"a": [], "b": [], "c": [], "matmul": []}
    snapshots: list[float] = []
    for round_number in range(args.rounds):
        times["matmul"].append(attainable_flops(config, args.batch * args.length, args.repeats))
        lm.model.requires_grad_(True)
        times["a"].append(median_step(args.steps, first_loop(lm, problem, args.lr, betas)))
        lm.model.requires_grad_(False)
        lm.model.zero_grad(set_to_none=True)
        times["b"].append(median_step(args.steps, final_loop(lm, problem, args.lr, betas)))
        engine_time, engine_snapshots = time_engine()
        times["c"].append(engine_time)
        if engine_time == min(times["c"]):
            snapshots = engine_snapshots
        print(f"round {round_number + 1}: a {times['a'][-1]:.3f}  b {times['b'][-1]:.3f}  "
              f"c {times['c'][-1]:.3f} s/step")
    time_a, time_b, time_c = min(times["a"]), min(times["b"]), min(times["c"])
    attainable = max(times["matmul"])  # the best this machine showed in any round

    print(f"(a) study's first loop: {time_a:7.3f} s/step  {1 / time_a:6.3f} steps/s  (median, best round)")
    print(f"(b) study's final loop: {time_b:7.3f} s/step  {1 / time_b:6.3f} steps/s  (median, best round)")
    print(f"(c) engine.optimise:    {time_c:7.3f} s/step  {1 / time_c:6.3f} steps/s  (total / {args.engine_steps}: "
          f"{args.engine_steps + 1} forwards, {args.engine_steps} backwards, log_points {log_points} -> "
          f"{len(logged)} logged steps {logged})")
    if snapshots:
        print(f"    of which logging snapshots: {sum(snapshots):.3f} s in all ({len(snapshots)}, "
              f"{statistics.mean(snapshots):.3f} s each); without them {time_c - sum(snapshots) / args.engine_steps:.3f} s/step")
    for name, ratio in (("c/a", time_a / time_c), ("c/b", time_b / time_c)):
        print(f"speed {name}: {ratio:.2f}x  (target >= {TARGETS[name]}x)  {'ok' if ratio >= TARGETS[name] else 'BELOW'}")

    breakdown = step_flops(config, args.batch, args.length)
    total = sum(breakdown.values())
    print("matmul FLOPs of one engine step:")
    for name, flops in breakdown.items():
        print(f"  {name:38s} {flops / 1e9:8.2f} GFLOP")
    print(f"  {'total':38s} {total / 1e9:8.2f} GFLOP")
    achieved = total / time_c
    utilisation = achieved / attainable
    print(f"achieved:   {achieved / 1e9:.1f} GFLOP/s (engine step)")
    print(f"attainable: {attainable / 1e9:.1f} GFLOP/s (fp32 matmul, [{args.batch * args.length}, in] @ [in, out] "
          f"of q,k,v,o,gate,up,down)")
    print(f"utilisation: {utilisation:.0%}  (target >= {TARGETS['utilisation']:.0%})  "
          f"{'ok' if utilisation >= TARGETS['utilisation'] else 'BELOW'}")

    if args.profile:
        profile_engine(lm, problem, args.lr)


if __name__ == "__main__":
    main()
