import json
from pathlib import Path

from inputspace import files
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    drawn = files.read_parquet(snakemake.input.drawn).norm.to_numpy()
    table = files.read_parquet(snakemake.input.table)
    comparison = json.loads(Path(snakemake.input.norms).read_text())
    title = (
        f"{snakemake.wildcards.model} / {snakemake.wildcards.experiment}"
        "\nsampled vs vocabulary norms"
    )
    figures.norm_comparison(
        drawn,
        table.norm[table.is_regular].to_numpy(),
        comparison["ks_statistic"],
        title,
        snakemake.output.figure,
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
