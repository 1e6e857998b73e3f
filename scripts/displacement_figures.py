import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 (the package, however deployed)

import pandas as pd

from inputspace import analysis, figures, files, scripting


def main(snakemake):
    experiment, models = snakemake.wildcards.experiment, snakemake.params.models
    moves = {model: analysis.moves(path) for model, path in zip(models, snakemake.input.embeddings)}
    stats = pd.DataFrame([{"model": m, **analysis.displacement_stats(moves[m]).as_dict()} for m in models])
    files.write_csv(stats, snakemake.output.stats)
    profiles = pd.concat(
        [pd.DataFrame({"model": m, "dimension": range(move.delta.shape[1]),
                       "rms_displacement": analysis.dimension_rms(move.delta)}) for m, move in moves.items()]
    )
    files.write_parquet(profiles, snakemake.output.profiles)
    curves, travel = {}, {}
    for model, pairs, nearest in zip(models, snakemake.input.pairs, snakemake.input.nearest):
        travel[model] = moves[model].l2
        curves[model] = analysis.density_curves(
            {
                "travelled": travel[model],
                "random_pairs": pd.read_parquet(pairs).euclidean.to_numpy(),
                "nearest_neighbours": pd.read_parquet(nearest).euclidean.to_numpy(),
            }
        )
    files.write_parquet(pd.concat([c.assign(model=m) for m, c in curves.items()]), snakemake.output.densities)
    figures.displacement_distribution(moves, f"{experiment}: displacement of every optimised coordinate", snakemake.output.distribution)
    figures.favoured(moves, f"{experiment}: is any dimension or token favoured?", snakemake.output.favoured)
    figures.travel_against_vocabulary(curves, travel, f"{experiment}: travel against vocabulary distances", snakemake.output.density)
    print(stats.T)


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
