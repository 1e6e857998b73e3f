import numpy as np

from inputspace import files
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    table = files.read_parquet(snakemake.input.table)
    model, experiment = snakemake.wildcards.model, snakemake.wildcards.experiment
    figures.gradient_bars(
        table,
        list(np.flatnonzero(table.followed.to_numpy())),
        f"{model} / {experiment}: gradient of cross-entropy toward the target, per input embedding",
        snakemake.output.figure,
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
