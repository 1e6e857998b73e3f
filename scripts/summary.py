import pandas as pd

from inputspace import files
from inputspace.model.manifest import read_manifest
from inputspace.optimisation import trajectory
from inputspace.optimisation.step_size import StepSize
from inputspace.studies import summary
from inputspace.studies.claims import RunTables
from inputspace.studies.summary import LandscapeTables
from inputspace.workflow import scripting
from inputspace.workflow.table_names import table_key


def main(snakemake):
    experiments, models, found = (
        snakemake.params.experiments,
        snakemake.params.models,
        snakemake.input,
    )
    kinds = {m: read_manifest(found[table_key("model", model=m)])["kind"] for m in models}
    pairs = {
        m: summary.median_pair_distance(files.read_parquet(found[table_key("pairs", model=m)]))
        for m in models
    }
    sections = []
    for name, spec in experiments.items():
        tables = RunTables(
            convergence=pd.read_csv(found[table_key("convergence", name)]),
            curves=files.read_parquet(found[table_key("curves", name)]),
            displacement=pd.read_csv(found[table_key("displacement", name)]),
            counts=pd.read_csv(found[table_key("counts", name)]),
        )
        paths = {
            m: files.read_parquet(found[table_key("path", name, m)])
            for m in spec["models"]
            if table_key("path", name, m) in found.keys()
        }
        steps = {
            m: StepSize.recorded(
                spec["optimize"], trajectory.read_run_info(found[table_key("run", name, m)])
            ).describe()
            for m in spec["models"]
        }
        sections.append(summary.section(name, spec, kinds, tables, pairs, paths, steps))
    for name, spec in experiments.items():
        landscapes = {
            m: landscape_tables(found, name, m)
            for m in spec["models"]
            if table_key("solutions", name, m) in found.keys()
        }
        if landscapes:
            solve_below = spec["landscape"]["solve_below"]
            sections.append(summary.landscape_section(name, landscapes, pairs, solve_below))
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


def landscape_tables(found, experiment: str, model: str) -> LandscapeTables:
    return LandscapeTables.read(lambda table: found[table_key(table, experiment, model)])


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
