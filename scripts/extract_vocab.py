from inputspace.model import models, vocab
from inputspace.workflow import scripting


def main(snakemake):
    lm = models.load(snakemake.input[0])
    matrix = lm.vocab_embeddings(chunk_size=snakemake.params.chunk_size)
    table = vocab.vocabulary_table(lm, matrix)
    vocab.write_vocabulary(table, matrix, snakemake.output.table, snakemake.output.matrix)
    print(f"{len(table)} tokens, {int(table.is_special.sum())} special, dim {matrix.shape[1]}")


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
