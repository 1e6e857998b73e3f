import pandas as pd

from inputspace import files, scripting, sources, summary
from inputspace.summary import LandscapeTables, RunTables


def main(snakemake):
    experiments, models = snakemake.params.experiments, snakemake.params.models
    kinds = {
        m: sources.read_manifest(folder)["kind"]
        for m, folder in zip(models, snakemake.input.models)
    }
    pairs = {
        m: summary.median_pair_distance(files.read_parquet(p))
        for m, p in zip(models, snakemake.input.pairs)
    }
    landscapes = [tuple(pair) for pair in snakemake.params.landscapes]
    case_paths = dict(zip(map(tuple, snakemake.params.case_studies), snakemake.input.paths))
    sections = []
    for number, (name, spec) in enumerate(experiments.items()):
        tables = RunTables(
            convergence=pd.read_csv(snakemake.input.convergence[number]),
            curves=files.read_parquet(snakemake.input.curves[number]),
            displacement=pd.read_csv(snakemake.input.displacement[number]),
            counts=pd.read_csv(snakemake.input.counts[number]),
        )
        paths = {
            m: files.read_parquet(case_paths[(name, m)])
            for m in spec["models"]
            if (name, m) in case_paths
        }
        sections.append(summary.section(name, spec, kinds, tables, pairs, paths))
    inputs = snakemake.input
    for name, spec in experiments.items():
        found = {
            m: LandscapeTables(
                pd.read_csv(s), pd.read_csv(f), pd.read_csv(b), files.read_parquet(n)
            )
            for (e, m), s, f, b, n in zip(
                landscapes, inputs.solutions, inputs.flatness, inputs.barriers, inputs.nearness
            )
            if e == name
        }
        if found:
            sections.append(
                summary.landscape_section(name, found, pairs, spec["landscape"]["solve_below"])
            )
    header = (
        "Numbers measured by this workflow's run of the config below each heading; "
        "the study's numbers are quoted from the study this workflow rebuilds (see the README). "
        "Distances are Euclidean, in input-embedding space."
    )
    with files.atomic_output(snakemake.output.markdown) as partial:
        partial.write_text(summary.markdown(sections, header))
    with files.atomic_output(snakemake.output.html) as partial:
        partial.write_text(summary.as_html(sections, header))
    print(summary.markdown(sections, header))


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
