"""What configs/paper.yaml costs, measured at the paper models' real sizes.

    .venv/bin/python benchmarks/paper_cost.py [--steps 2] [--device cpu|cuda]
        [--precision fp32 bf16 fp16] [--models modernbert_large llama_1b]

Random-weight models with the exact shapes of ModernBERT-large and Llama-3.2-1B
(benchmarks/paper_models.yaml: their published configuration values, built with
transformers' own config classes; nothing is downloaded, and the cost of a step does not
depend on the weights' values). For each experiment of configs/paper.yaml that uses a
model, the engine runs `--steps` Adam steps (set-up, logging at every step and the final
forward included) on a batch of the experiment's shape. For the random-sentence
experiment's landscape it times a step of the solver, one batch of Hessian-vector
products as stochastic Lanczos quadrature takes it and one as the exact spectrum takes
it, and a step of the path bending. Each model runs in a process of its own, whose peak
memory is reported.

Prints seconds per step and the projected time of each experiment's `optimize` job (its
steps times the measured step: an upper bound, since the stopping rule may end it
sooner) and of its `landscape` job, next to the SLURM profile's runtime and mem_mb for
the rule; and the time of an exact Hessian spectrum of one 6-token solution.
"""

import argparse
import dataclasses
import json
import math
import resource
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from timing import timed  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]
PAPER_MODELS = yaml.safe_load((Path(__file__).with_name("paper_models.yaml")).read_text())
PROFILE = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
PROMPT_TOKENS = 10  # "The animal that says bark is a [MASK]." in either tokenizer, specials aside
PAIR_TOKENS = 11  # the pairs file's source prompts, on average
BEND_PROBES = 3  # landscape.bend's default: points sampled on each half of a bent path


def paper_config() -> dict:
    """configs/paper.yaml with the schema's defaults filled in."""
    from inputspace.workflow.config import checked, load_schema

    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    return checked(paper, load_schema(ROOT / "schemas/config.schema.yaml"), ROOT)


def build(name: str, device: str):
    """A LanguageModel with random weights of the paper model's exact shape."""
    import transformers

    from inputspace.model.models import LanguageModel

    spec = PAPER_MODELS[name]
    config = getattr(transformers, spec["config"])(**spec["values"], attn_implementation="eager")
    with torch.device("meta"):
        model = getattr(transformers, spec["model"])(config)
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
    model.requires_grad_(False).eval()
    kind = "masked" if "Masked" in spec["model"] else "causal"
    named = {
        role: spec["special"].get(role) for role in ("bos", "eos", "pad", "cls", "sep", "mask")
    }
    manifest = {
        "name": name,
        "kind": kind,
        "special_token_ids": {"named": named, "all": sorted(set(spec["special"].values()))},
    }
    return LanguageModel(model=model, tokenizer=None, manifest=manifest)


def batch_of(lm, rows: int, tokens: int):
    """`rows` sequences of `tokens` ordinary tokens with the model's special tokens
    around them (a masked LM's mask token last among them, as the prediction site)."""
    from inputspace.optimisation.sequences import of_ids

    named = lm.manifest["special_token_ids"]["named"]
    body = torch.randint(1000, 30000, (rows, tokens), generator=torch.Generator().manual_seed(0))
    if lm.kind == "masked":
        ends = [torch.full((rows, 1), named[role]) for role in ("cls", "mask", "sep")]
        ids = torch.cat([ends[0], body, *ends[1:]], 1)
    else:
        ids = torch.cat([torch.full((rows, 1), named["bos"]), body], 1)
    return of_ids(lm, ids, torch.ones_like(ids))


def targets_for(lm, batch) -> torch.Tensor:
    """Each row's target: another row's prediction (a reachable distribution)."""
    with torch.no_grad():
        logits = lm.logits_at(
            batch.embeddings.to(lm.device),
            batch.attention_mask.to(lm.device),
            batch.sites.to(lm.device),
        )
    return torch.log_softmax(logits.float(), -1).roll(1, 0).cpu()


def seconds_per_step(lm, batch, steps: int, precision: str, vocab) -> float:
    """Engine seconds per Adam step: set-up, logging at every step and final forward in."""
    from inputspace.optimisation import engine, recorder

    problem = engine.Problem(batch=batch, target_logprobs=targets_for(lm, batch))
    landmarks = recorder.Landmarks(vocab=vocab, candidates=torch.arange(vocab.shape[0]))
    settings = engine.Settings(steps=steps, lr=0.003, precision=precision)
    watcher = recorder.Recorder(
        batch, landmarks, recorder.Logging(log_points=steps), steps, lm.device
    )
    seconds = timed(lambda: engine.optimise(lm, problem, settings, watcher, progress=False))
    return seconds / steps


def landscape_timings(lm, study: dict, steps: int, precision: str, vocab) -> dict:
    """Seconds per solver step, per batch of Hessian-vector products (SLQ's and the exact
    spectrum's) at one solution-sized point, and per step of path bending."""
    from inputspace.analysis import spectrum
    from inputspace.studies import landscape

    starts = batch_of(lm, 2 * study["pairs"], study["length"])
    one = batch_of(lm, 1, study["length"])
    point = landscape.points_of(one, one.embeddings, targets_for(lm, one))[0]
    flat = point.flat()

    def products(count: int) -> float:
        probes = torch.randn(count, flat.numel())
        around = landscape.surface(lm, point)
        spectrum.hessian_vector_products(around, flat, probes)  # warm-up
        return timed(lambda: spectrum.hessian_vector_products(around, flat, probes))

    other = flat + 0.1 * torch.randn_like(flat)
    bend_steps = max(steps, 1)
    search = dataclasses.replace(
        landscape.PathSearch.of(study), steps=bend_steps, patience=bend_steps + 1, goal=0.0
    )
    bending = timed(lambda: landscape.string_path(lm, point, flat, other, search))
    return {
        "solve": seconds_per_step(lm, starts, steps, precision, vocab),
        "hvp_slq": products(study["slq_probes"]),
        "hvp_exact": products(study["hessian_batch"]),
        "bend": bending / bend_steps,
        "coordinates": flat.numel(),
    }


def vocabulary_rules(name: str) -> dict:
    """Seconds and peak memory of fit_ellipse and vocab_distances, which read only the
    vocabulary's embedding matrix (here a random one of the model's shape)."""
    import pandas as pd

    from inputspace.analysis import geometry

    values, special = PAPER_MODELS[name]["values"], set(PAPER_MODELS[name]["special"].values())
    generator = torch.Generator().manual_seed(0)
    matrix = 0.02 * torch.randn(values["vocab_size"], values["hidden_size"], generator=generator)
    table = pd.DataFrame({"token_id": range(values["vocab_size"])})
    table["token"] = table.token_id.astype(str)
    table["is_regular"] = ~table.token_id.isin(special)
    regular = torch.tensor(table.token_id[table.is_regular].to_numpy())
    config = paper_config()["geometry"]
    return {
        "fit_ellipse": timed(lambda: geometry.fit_ellipse(matrix[regular])),
        "vocab_distances": timed(
            lambda: (
                geometry.random_pair_table(matrix, table, config["distance_pairs"], generator),
                geometry.nearest_neighbour_table(
                    matrix, table, config["neighbour_sample"], generator
                ),
            )
        ),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def saved_and_loaded(lm, device: str) -> dict:
    """Seconds to save the model as prepare_model does, and to load it as each job does."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        saving = timed(lambda: lm.model.save_pretrained(folder))
        loading = timed(
            lambda: type(lm.model).from_pretrained(folder, dtype=torch.float32).to(device)
        )
    return {"prepare_model": saving, "load": loading}


def measure(name: str, steps: int, device: str, precision: str) -> dict:
    """Every timing the projections need for one model (run in a process of its own)."""
    torch.manual_seed(0)
    paper = paper_config()
    built = []
    timings: dict = {"build_seconds": timed(lambda: built.append(build(name, device)))}
    lm = built[0]
    timings.update(saved_and_loaded(lm, device))
    vocab: list[torch.Tensor] = []
    timings["extract_vocab"] = timed(lambda: vocab.append(lm.vocab_embeddings()))
    vocab = vocab[0]
    for experiment, rows, tokens in shapes(paper, name):
        timings[experiment] = seconds_per_step(
            lm, batch_of(lm, rows, tokens), steps, precision, vocab
        )
        print(
            f"  {name} {experiment} [{rows} x {tokens}]: {timings[experiment]:.2f} s/step",
            file=sys.stderr,
        )
    studied = paper["experiments"]["random_sentences"]
    if name in studied["models"]:
        timings["landscape"] = landscape_timings(lm, studied["landscape"], steps, precision, vocab)
        print(f"  {name} landscape: {timings['landscape']}", file=sys.stderr)
    timings["peak_rss_mb"] = peak_rss_mb()
    if device == "cuda":
        timings["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return timings


def shapes(paper: dict, name: str) -> list[tuple[str, int, int]]:
    """(experiment, sequences, ordinary tokens) of each paper experiment on `name`."""
    from inputspace.model.prompts import read_pairs

    found = []
    for experiment, spec in paper["experiments"].items():
        if name not in spec["models"]:
            continue
        sequences = spec["sequences"]
        if sequences["kind"] == "prompt":
            found.append((experiment, 1, PROMPT_TOKENS))
        elif sequences["kind"] == "pairs":
            pairs = read_pairs(ROOT / sequences["file"])
            found.append((experiment, sequences.get("count") or len(pairs), PAIR_TOKENS))
        else:
            middle = (sequences["min_length"] + sequences["max_length"]) // 2
            found.append((experiment, sequences["count"], middle))
    return found


def landscape_seconds(study: dict, measured: dict) -> float:
    """The landscape job: the solve, the spectra at the solutions, a random start and the
    two prompt controls, and bending every pair's path (the most it does)."""
    points = study["hessian_sequences"] + 3
    if measured["coordinates"] <= study["exact_up_to"]:
        spectrum = exact_spectrum_seconds(study, measured)
    else:
        spectrum = study["slq_steps"] * measured["hvp_slq"]
    return (
        study["solve_steps"] * measured["solve"]
        + points * spectrum
        + study["pairs"] * study["bend_steps"] * measured["bend"]
    )


def exact_spectrum_seconds(study: dict, measured: dict) -> float:
    """The whole Hessian of one solution-sized point, `hessian_batch` columns at a time."""
    return math.ceil(measured["coordinates"] / study["hessian_batch"]) * measured["hvp_exact"]


def projections(name: str, timings: dict, vocabulary: dict, device: str) -> list[dict]:
    """Projected time and peak memory of each paper job that runs this model: the
    preparation, vocabulary and sampling rules, the gradient case study, each
    experiment's optimize job and the landscape (the jobs that load the model with their
    load; their memory is the model process's peak, over all its measurements)."""
    paper = paper_config()
    load = timings["load"]
    rows = [
        row(name, "", "prepare_model", timings["prepare_model"], timings, device),
        row(name, "", "extract_vocab", load + timings["extract_vocab"], timings, device),
        row(name, "", "sample_sequences", load, timings, device),
        row(name, "", "fit_ellipse", vocabulary["fit_ellipse"], vocabulary, device),
        row(name, "", "vocab_distances", vocabulary["vocab_distances"], vocabulary, device),
    ]
    if name in paper["experiments"]["bark_neigh"]["models"]:  # a forward and backward
        seconds = load + timings["bark_neigh"]
        rows.append(row(name, "bark_neigh", "gradient_case_study", seconds, timings, device))
    for experiment, _, _ in shapes(paper, name):
        seconds = load + paper["experiments"][experiment]["optimize"]["steps"] * timings[experiment]
        rows.append(row(name, experiment, "optimize", seconds, timings, device))
    if "landscape" in timings:
        study = paper["experiments"]["random_sentences"]["landscape"]
        seconds = load + landscape_seconds(study, timings["landscape"])
        rows.append(row(name, "random_sentences", "landscape", seconds, timings, device))
    return rows


def row(name: str, experiment: str, rule: str, seconds: float, timings: dict, device: str) -> dict:
    limits = {**PROFILE["default-resources"], **PROFILE["set-resources"].get(rule, {})}
    return {
        "model": name,
        "experiment": experiment,
        "rule": rule,
        "projected_h": seconds / 3600,
        "profile_runtime_h": limits["runtime"] / 60,
        "peak_mb": timings["peak_rss_mb"],
        "profile_mem_mb": limits["mem_mb"],
        # a CPU time is an upper bound of a GPU rule's, not its measure
        "bound_only": device == "cpu" and bool(limits.get("gpu")),
    }


def describe(projected: dict) -> str:
    hours, allowed = projected["projected_h"], projected["profile_runtime_h"]
    if hours <= allowed:
        time_verdict = "fits" + (" even on the CPU" if projected["bound_only"] else "")
    elif projected["bound_only"]:
        time_verdict = "over on the CPU; the profile runs it on a GPU"
    else:
        time_verdict = "OVER"
    memory_verdict = "fits" if projected["peak_mb"] <= projected["profile_mem_mb"] else "OVER"
    return (
        f"{projected['model']:17s} {projected['rule']:15s} {projected['experiment']:17s} "
        f"{_duration(hours):>8s} (profile {_duration(allowed)}: {time_verdict}), "
        f"peak {projected['peak_mb'] / 1024:.1f} GB "
        f"(profile {projected['profile_mem_mb'] / 1000:.0f} GB: {memory_verdict})"
    )


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.1f} min"


def run_child(name: str, part: str, args: argparse.Namespace, precision: str) -> dict | None:
    """One part ("model" or "vocabulary") measured in a process of its own, so that its
    peak memory is that part's alone."""
    command = [sys.executable, __file__, "--child", part, "--models", name]
    command += ["--steps", str(args.steps), "--device", args.device, "--precision", precision]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    print(done.stderr.rstrip(), file=sys.stderr)
    if done.returncode != 0:
        print(f"{name} ({part}): failed ({done.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--models", nargs="+", default=list(PAPER_MODELS))
    parser.add_argument("--child", choices=["model", "vocabulary"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "model":
        print(json.dumps(measure(args.models[0], args.steps, args.device, args.precision[0])))
        return
    if args.child == "vocabulary":
        print(json.dumps(vocabulary_rules(args.models[0])))
        return
    study = paper_config()["experiments"]["random_sentences"]["landscape"]
    for precision in args.precision:
        print(f"# {args.device}, {precision}, {args.steps} steps per measurement")
        for name in args.models:
            timings = run_child(name, "model", args, precision)
            vocabulary = run_child(name, "vocabulary", args, precision)
            if timings is None or vocabulary is None:
                continue
            print(f"{name}: built in {timings['build_seconds']:.0f} s; rule, experiment, time:")
            for projected in projections(name, timings, vocabulary, args.device):
                print(describe(projected))
            if "landscape" in timings:
                measured = timings["landscape"]
                print(
                    f"{name}: exact Hessian spectrum of one {study['length']}-token solution "
                    f"({measured['coordinates']} coordinates): "
                    f"{exact_spectrum_seconds(study, measured) / 60:.1f} min"
                )


if __name__ == "__main__":
    main()
