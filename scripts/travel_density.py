import pandas as pd

from inputspace import files
from inputspace.analysis import run_measures
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    experiment, models = snakemake.wildcards.experiment, snakemake.params.models
    curves, travel = {}, {}
    for model, embeddings, pairs, nearest in zip(
        models, snakemake.input.embeddings, snakemake.input.pairs, snakemake.input.nearest
    ):
        travel[model] = run_measures.run_moves(embeddings).l2
        curves[model] = run_measures.density_curves(
            {
                "travelled": travel[model],
                "random_pairs": files.read_parquet(pairs).euclidean.to_numpy(),
                "nearest_neighbours": files.read_parquet(nearest).euclidean.to_numpy(),
            }
        )
    files.write_parquet(
        pd.concat([c.assign(model=m) for m, c in curves.items()]), snakemake.output.densities
    )
    title = f"{experiment}: travel against vocabulary distances"
    figures.travel_against_vocabulary(curves, travel, title, snakemake.output.figure)


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
