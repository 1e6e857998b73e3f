import pandas as pd

from inputspace import files
from inputspace.analysis import run_measures
from inputspace.optimisation import trajectory
from inputspace.studies import figures
from inputspace.workflow import scripting


def main(snakemake):
    figures.use(snakemake.params.style)
    experiment, models = snakemake.wildcards.experiment, snakemake.params.models
    steps = pd.concat([trajectory.read(path, trajectory.STEPS) for path in snakemake.input.steps])
    curves = steps[["model", "seq", "step", "active", "kl", "l2_total"]]
    files.write_parquet(curves, snakemake.output.curves)
    summary = run_measures.with_replicates(
        run_measures.convergence(steps), snakemake.params.replicates
    )
    files.write_csv(summary, snakemake.output.convergence)
    figures.kl_curves(
        curves, models, f"{experiment}: KL per sequence and mean", snakemake.output.kl
    )
    figures.travel_curves(
        curves, models, f"{experiment}: total L2 travelled per sequence", snakemake.output.travel
    )
    columns = [
        "steps_to_threshold",
        "steps_optimised",
        "final_kl",
        "l2_growth_last_tenth",
        "l2_growth_past_threshold",
    ]
    print(summary.groupby("model")[columns].describe().T)


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
