import pandas as pd

from inputspace import files
from inputspace.analysis import geometry
from inputspace.model import models, vocab
from inputspace.optimisation import samples
from inputspace.workflow import scripting


def main(snakemake):
    lm = models.load(snakemake.input.model)
    ellipse = geometry.load_ellipse(snakemake.input.ellipse)
    params = snakemake.params
    batch = samples.sample_sentences(lm, ellipse, params.spec, params.seed, params.replicates)
    batch.save(snakemake.output.batch)
    files.write_parquet(batch.describe(), snakemake.output.table)

    table = vocab.read_table(snakemake.input.table)
    vocab_norms = table.norm[table.is_regular].to_numpy()
    drawn = samples.sampled_norms(batch)
    comparison = samples.compare_norms(drawn, vocab_norms)
    files.write_json(comparison.as_dict(), snakemake.output.norms)
    files.write_parquet(pd.DataFrame({"norm": drawn}), snakemake.output.drawn)
    print(f"{len(batch)} sequences, {drawn.size} sampled points; KS {comparison.ks_statistic:.3f}")


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
