import torch

from inputspace import (
    engine,
    experiments,
    figures,
    files,
    geometry,
    landscape,
    models,
    scripting,
    sequences,
    vocab,
)


def main(snakemake):
    figures.use(snakemake.params.style)
    model, experiment = snakemake.wildcards.model, snakemake.wildcards.experiment
    spec = snakemake.params.experiment
    study = spec["landscape"]
    # eager attention: the Hessian-vector products need second derivatives
    lm = models.load(snakemake.input.model, engine.pick_device(snakemake.params.device), "eager")
    table = vocab.read_table(snakemake.input.table)
    matrix, candidates = vocab.read_matrix(snakemake.input.matrix), vocab.regular_ids(table)
    # other starts than the experiment's
    generator = torch.Generator().manual_seed(spec["seed"] + 1)
    ellipse = geometry.load_ellipse(snakemake.input.ellipse)
    starts = sequences.sample_random(
        lm, ellipse, [study["length"]] * (2 * study["pairs"]), generator
    )
    target_prompt = spec["target"]["prompt"]
    targets = experiments.target_logprobs(lm, [target_prompt]).expand(len(starts), -1).contiguous()
    label = f"{model}/{experiment}"

    solved = landscape.solve(
        lm,
        starts,
        targets,
        landscape.solver_settings(study, spec["optimize"], snakemake.params.precision),
        label,
    )
    print(solved.describe(study["solve_below"]))
    solutions = landscape.points_of(starts, solved.end, targets)
    start_points = landscape.points_of(starts, starts.embeddings, targets)
    probed = [
        (f"solution {i}", "solution", solutions[i], float(solved.final_kl[i]))
        for i in solved.converged_indices()[: study["hessian_sequences"]]
    ]
    probed.append(("random start 0", "random start", start_points[0], float(solved.start_kl[0])))
    probed += landscape.prompt_controls(lm, study["control_prompt"], target_prompt)
    spectra, flatness = landscape.spectra(lm, probed, study)
    paths, barriers = landscape.connectivity(
        lm,
        solutions,
        solved.converged.tolist(),
        solved.start_kl.tolist(),
        study["line_points"],
        study["bend_above"],
        study["bend_steps"],
        study["bend_lr"],
        study["bend_midpoints"],
    )
    nearness = landscape.nearness(starts, solved.end, matrix, candidates, solved.converged.tolist())
    out = snakemake.output
    files.write_csv(solved.table(), out.solutions)
    files.write_parquet(spectra, out.spectra)
    files.write_csv(flatness, out.flatness)
    files.write_parquet(paths, out.paths)
    files.write_csv(barriers, out.barriers)
    files.write_parquet(nearness, out.nearness)
    title = f"{model} / {experiment}"
    figures.hessian_spectrum(
        spectra,
        flatness,
        f"{title}: Hessian of the loss at solutions and controls",
        out.spectrum_figure,
    )
    figures.barrier_paths(
        paths, barriers, f"{title}: loss between two solutions of one target", out.barrier_figure
    )
    figures.nearness(nearness, f"{title}: how near is a solution?", out.nearness_figure)
    print(flatness.to_string(index=False))
    print(barriers.to_string(index=False))
    print(nearness.drop(columns=["seq", "pos"]).median().to_string())


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
