import pandas as pd

from inputspace import files
from inputspace.optimisation import trajectory
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    experiment, models = snakemake.wildcards.experiment, snakemake.params.models
    strings = {
        m: files.read_parquet(path).token.to_numpy()
        for m, path in zip(models, snakemake.input.vocab)
    }
    topk = pd.concat([trajectory.read(path, trajectory.TOPK) for path in snakemake.input.topk])
    first = topk[topk.seq == 0]
    files.write_csv(
        first.assign(token=[strings[m][i] for m, i in zip(first.model, first.token_id)]),
        snakemake.output.table,
    )
    title = f"{experiment}: top-{first['rank'].max()} predictions of sequence 0"
    figures.topk_small_multiples(
        first, strings, snakemake.params.columns, title, snakemake.output.frames
    )
    figures.topk_animation(first, strings, title, snakemake.output.animation)


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
