import pandas as pd

from inputspace import files
from inputspace.analysis import run_measures
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    experiment, models = snakemake.wildcards.experiment, snakemake.params.models
    moves = {
        model: run_measures.run_moves(path)
        for model, path in zip(models, snakemake.input.embeddings)
    }
    stats = pd.DataFrame(  # per replicate: its sequences' tokens only
        [
            {"model": m, "replicate": replicate, **run_measures.displacement_stats(own).as_dict()}
            for m in models
            for replicate, own in run_measures.split_moves(
                moves[m], snakemake.params.replicates
            ).items()
        ]
    )
    files.write_csv(stats, snakemake.output.stats)
    profiles = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": m,
                    "dimension": range(move.delta.shape[1]),
                    "rms_displacement": run_measures.dimension_rms(move.delta),
                }
            )
            for m, move in moves.items()
        ]
    )
    files.write_parquet(profiles, snakemake.output.profiles)
    figures.displacement_distribution(
        moves,
        f"{experiment}: displacement of every optimised coordinate",
        snakemake.output.distribution,
    )
    figures.favoured(
        moves, f"{experiment}: is any dimension or token favoured?", snakemake.output.favoured
    )
    print(stats.T)


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
