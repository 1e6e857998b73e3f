import torch

from inputspace import files
from inputspace.analysis import geometry
from inputspace.model import vocab
from inputspace.workflow import scripting


def main(snakemake):
    table = vocab.read_table(snakemake.input.table)
    matrix = vocab.read_matrix(snakemake.input.matrix)
    generator = torch.Generator().manual_seed(snakemake.params.seed)
    pairs = geometry.random_pair_table(matrix, table, snakemake.params.pairs, generator)
    files.write_parquet(pairs, snakemake.output.pairs)
    nearest = geometry.nearest_neighbour_table(
        matrix, table, snakemake.params.neighbours, generator
    )
    files.write_parquet(nearest, snakemake.output.nearest)
    print(
        f"median random-pair distance {pairs.euclidean.median():.4g}, "
        "median nearest-neighbour distance "
        f"{nearest.euclidean.median():.4g} (of {len(nearest):,} sampled tokens among "
        f"{int(table.is_regular.sum()):,} regular ones; "
        f"{int(table.is_special.sum()):,} special tokens excluded)"
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
