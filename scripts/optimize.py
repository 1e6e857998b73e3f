from pathlib import Path

from inputspace.model import models, vocab
from inputspace.optimisation import engine, experiments, recorder, runs
from inputspace.optimisation.step_size import StepSize
from inputspace.workflow import scripting


def main(snakemake):
    model, experiment = snakemake.wildcards.model, snakemake.wildcards.experiment
    spec = snakemake.params.experiment
    device = engine.pick_device(snakemake.params.device)
    lm = models.load(snakemake.input.model, device, snakemake.params.attention)
    table = vocab.read_table(snakemake.input.table)
    matrix = vocab.read_matrix(snakemake.input.matrix)
    samples = Path(snakemake.input.samples) if snakemake.input.samples else None
    prompts = Path(snakemake.input.prompts) if snakemake.input.prompts else None
    problem, landmarks = experiments.build_problem(
        lm, spec, matrix, vocab.regular_ids(table), samples, prompts
    )
    token_norm = experiments.median_token_norm(table)
    step = StepSize.of(spec["optimize"], token_norm)
    settings, logging = experiments.optimisation_settings(
        spec["optimize"], snakemake.params.precision, token_norm
    )
    print(
        f"{model}/{experiment}: {len(problem.batch)} sequences, "
        f"{int(problem.batch.trainable.sum())} optimised tokens, lr {step.describe()}, "
        f"{settings} on {lm.device}"
    )
    fingerprint = runs.fingerprint(lm.manifest, spec, settings, logging, samples)
    watcher = recorder.Recorder(problem.batch, landmarks, logging, settings.steps, lm.device)
    run = engine.optimise(
        lm,
        problem,
        settings,
        watcher,
        Path(snakemake.params.checkpoint),
        fingerprint,
        f"{model}/{experiment}",
    )
    result = watcher.result(run.end)
    run_info = {
        "device": str(lm.device),
        "precision": settings.precision,
        "seed": spec["seed"],
        "threads": snakemake.threads,
        "attention": lm.model.config._attn_implementation,
        "fingerprint": fingerprint,
        **step.record(),
    }
    out = snakemake.output
    paths = runs.RunPaths(out.steps, out.tokens, out.topk, out.embeddings)
    runs.write_run(result, problem.batch, model, experiment, paths, run_info)
    print(runs.describe(result))


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
