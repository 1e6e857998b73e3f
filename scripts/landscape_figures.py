import pandas as pd

from inputspace import files
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    inputs, out = snakemake.input, snakemake.output
    title = f"{snakemake.wildcards.model} / {snakemake.wildcards.experiment}"
    figures.local_dimension(
        files.read_parquet(inputs.singular_values),
        pd.read_csv(inputs.dimensions),
        f"{title}: how many directions the prediction sees",
        out.dimension_figure,
    )
    flatness = pd.read_csv(inputs.flatness)
    figures.hessian_spectrum(
        files.read_parquet(inputs.spectra),
        flatness,
        f"{title}: Hessian of the loss at solutions and controls",
        out.spectrum_figure,
    )
    figures.barrier_paths(
        files.read_parquet(inputs.paths),
        pd.read_csv(inputs.barriers),
        files.read_parquet(inputs.traces),
        f"{title}: loss between two solutions of one target",
        out.barrier_figure,
    )
    figures.nearness(
        files.read_parquet(inputs.nearness),
        f"{title}: how near is a solution?",
        out.nearness_figure,
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
