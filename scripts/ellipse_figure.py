from inputspace import files
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    spectrum = files.read_parquet(snakemake.input.spectrum)
    figures.ellipse_spectrum(spectrum, snakemake.wildcards.model, snakemake.output.figure)


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
