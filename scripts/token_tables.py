import pandas as pd

from inputspace import files
from inputspace.analysis import run_measures
from inputspace.optimisation import trajectory
from inputspace.workflow import scripting


def main(snakemake):
    models = snakemake.params.models
    strings = {
        m: files.read_parquet(path).token.to_numpy()
        for m, path in zip(models, snakemake.input.vocab)
    }
    tokens = pd.concat(
        [trajectory.read(path, trajectory.TOKENS) for path in snakemake.input.tokens]
    )
    changes = pd.concat(
        [
            run_measures.backprojection_changes(tokens, measure)
            for measure in ("euclidean", "cosine")
        ]
    )
    counts = run_measures.backprojection_counts(tokens, changes, snakemake.params.replicates)
    files.write_csv(_named(changes, strings), snakemake.output.changes)
    files.write_csv(counts, snakemake.output.counts)
    files.write_csv(_named(run_measures.headings(tokens), strings), snakemake.output.headings)
    print(counts.to_string(index=False))


def _named(table: pd.DataFrame, strings: dict) -> pd.DataFrame:
    """Token strings beside the ids, each from its own model's vocabulary."""
    if table.empty:
        return table
    return pd.concat(
        [
            run_measures.name_tokens(rows, strings[model])
            for model, rows in table.groupby("model", sort=False)
        ]
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
