import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 (the package, however deployed)

import numpy as np
import torch

from inputspace import engine, experiments, figures, files, geometry, landscape, models, scripting
from inputspace import sequences, vocab
from inputspace.engine import Problem


def main(snakemake):
    model, experiment = snakemake.wildcards.model, snakemake.wildcards.experiment
    spec = snakemake.params.experiment
    study, optimize = spec["landscape"], spec["optimize"]
    # eager attention: the Hessian-vector products need second derivatives
    lm = models.load(snakemake.input.model, engine.pick_device(snakemake.params.device), "eager")
    table = vocab.read_table(snakemake.input.table)
    matrix, candidates = vocab.read_matrix(snakemake.input.matrix), vocab.regular_ids(table)
    generator = torch.Generator().manual_seed(spec["seed"] + 1)  # other starts than the experiment's
    starts = sequences.sample_random(
        lm, geometry.load_ellipse(snakemake.input.ellipse), [study["length"]] * (2 * study["pairs"]), generator
    )
    targets = experiments.target_logprobs(lm, [spec["target"]["prompt"]]).expand(len(starts), -1).contiguous()
    settings = engine.Settings(
        steps=optimize["steps"], lr=optimize["lr"], betas=tuple(optimize["betas"]), log_points=1, top_k=1,
        checkpoint_every=optimize["steps"], precision=snakemake.params.precision,
    )
    solved = engine.optimise(lm, Problem(starts, targets, matrix, candidates), settings, label=f"{model}/{experiment} solutions")
    final_kl = np.asarray(solved.steps["kl"]).reshape(-1, len(starts))[-1]
    print(f"{len(starts)} starts of {study['length']} tokens solved: final KL {final_kl.round(5).tolist()}")
    solutions = landscape.sequences_of(starts, solved.end, targets)
    spectra, flatness = landscape.spectra(lm, solutions[: study["hessian_sequences"]], study["eigenvalues"], study["flat_threshold"])
    flatness["final_kl"] = final_kl[: len(flatness)]
    paths, barriers = landscape.connectivity(
        lm, solutions, study["line_points"], study["bend_above"], study["bend_steps"], study["bend_lr"]
    )
    nearness = landscape.nearness(starts, solved.end, matrix, candidates)
    out = snakemake.output
    files.write_parquet(spectra, out.spectra)
    files.write_csv(flatness, out.flatness)
    files.write_parquet(paths, out.paths)
    files.write_csv(barriers, out.barriers)
    files.write_parquet(nearness, out.nearness)
    title = f"{model} / {experiment}"
    figures.hessian_spectrum(spectra, flatness, study["flat_threshold"], f"{title}: Hessian at the solutions found", out.spectrum_figure)
    figures.barrier_paths(paths, barriers, f"{title}: loss between two solutions of one target", out.barrier_figure)
    figures.nearness(nearness, f"{title}: how near is a solution?", out.nearness_figure)
    print(flatness.to_string(index=False))
    print(barriers.to_string(index=False))
    print(nearness.drop(columns=["seq", "pos"]).median().to_string())


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
