from inputspace import files
from inputspace.analysis import geometry
from inputspace.model import models, vocab
from inputspace.optimisation import engine, experiments
from inputspace.studies import landscape
from inputspace.workflow import scripting


def main(snakemake):
    model, experiment = snakemake.wildcards.model, snakemake.wildcards.experiment
    spec = snakemake.params.experiment
    study = spec["landscape"]
    # eager attention: the Hessian-vector products need second derivatives
    lm = models.load(snakemake.input.model, engine.pick_device(snakemake.params.device), "eager")
    table = vocab.read_table(snakemake.input.table)
    matrix, candidates = vocab.read_matrix(snakemake.input.matrix), vocab.regular_ids(table)
    ellipse = geometry.load_ellipse(snakemake.input.ellipse)
    starts = landscape.random_starts(lm, ellipse, study, spec["seed"])
    solver = landscape.solver_settings(
        study, spec["optimize"], snakemake.params.precision, experiments.median_token_norm(table)
    )
    print(f"{model}/{experiment}: solver {solver}")
    found = landscape.run_study(
        lm,
        starts,
        spec["target"]["prompt"],
        (matrix, candidates),
        study,
        solver,
        f"{model}/{experiment}",
    )
    out = snakemake.output
    for name, table in vars(found).items():
        path = out[name]
        (files.write_csv if path.endswith(".csv") else files.write_parquet)(table, path)
    print(found.dimensions.to_string(index=False))
    print(found.flatness.to_string(index=False))
    print(found.barriers.to_string(index=False))
    print(found.nearness.drop(columns=["seq", "pos"]).median().to_string())


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
