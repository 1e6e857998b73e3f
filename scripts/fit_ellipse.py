from inputspace import files
from inputspace.analysis import geometry
from inputspace.model import vocab
from inputspace.workflow import scripting


def main(snakemake):
    table = vocab.read_table(snakemake.input.table)
    matrix = vocab.read_matrix(snakemake.input.matrix)
    ellipse = geometry.fit_ellipse(matrix[vocab.regular_ids(table)])
    geometry.save_ellipse(ellipse, snakemake.output.ellipse)
    spectrum = geometry.spectrum_table(ellipse)
    files.write_parquet(spectrum, snakemake.output.spectrum)
    print(
        f"fitted {int(table.is_regular.sum())} tokens; top eigenvalue {spectrum.eigenvalue[0]:.4g}"
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
