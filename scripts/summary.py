import pandas as pd

from inputspace import files
from inputspace.model.manifest import read_manifest
from inputspace.optimisation import trajectory
from inputspace.optimisation.step_size import StepSize
from inputspace.studies import summary
from inputspace.studies.claims import STUDY_MODELS, RunTables, Scale
from inputspace.studies.summary import LandscapeTables
from inputspace.workflow import scripting
from inputspace.workflow.table_names import table_key


def main(snakemake):
    experiments, models, found = (
        snakemake.params.experiments,
        snakemake.params.models,
        snakemake.input,
    )
    manifests = {m: read_manifest(found[table_key("model", model=m)]) for m in models}
    kinds = {m: manifest["kind"] for m, manifest in manifests.items()}
    scales = model_scales(found, manifests)
    pairs = {m: scale.median_pair for m, scale in scales.items()}
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
        sections.append(summary.section(name, spec, kinds, tables, scales, paths, steps))
    for name, spec in experiments.items():
        landscapes = {
            m: landscape_tables(found, name, m)
            for m in spec["models"]
            if table_key("solutions", name, m) in found.keys()
        }
        if landscapes:
            solve_below = spec["landscape"]["solve_below"]
            sections.append(summary.landscape_section(name, landscapes, pairs, solve_below))
    note = (
        "Every number on this page was measured by this run of the config named in each "
        "section; the study's numbers are quoted from its own account (docs/study.md). "
        "Distances are in the model's input-embedding space, and are given as shares of the "
        "distance between two random vocabulary words wherever a raw distance would say little."
    )
    blocks = summary.page(sections, models, note)
    with files.atomic_output(snakemake.output.markdown) as partial:
        partial.write_text(summary.markdown(blocks))
    with files.atomic_output(snakemake.output.html) as partial:
        partial.write_text(summary.as_html(blocks))
    print(summary.markdown(blocks))


def model_scales(found, manifests: dict[str, dict]) -> dict[str, Scale]:
    """Each model's yardsticks, and the coordinate spread of the study's model of its kind
    where this run has that model too (so that the study's absolute thresholds carry over)."""
    own = {}
    for m, manifest in manifests.items():
        vocab = files.read_parquet(found[table_key("vocab", model=m)])
        pairs = files.read_parquet(found[table_key("pairs", model=m)])
        hidden = int(manifest["embedding_dim"])
        own[m] = Scale(
            median_pair=summary.median_pair_distance(pairs),
            coordinate_spread=summary.coordinate_spread(vocab, hidden),
            hidden=hidden,
            source=manifest["source"].get("id", manifest["source"]["kind"]),
        )
    by_source = {scale.source: scale.coordinate_spread for scale in own.values()}
    return {
        m: Scale(
            **{**vars(scale), "study_spread": by_source.get(STUDY_MODELS[manifests[m]["kind"]])}
        )
        for m, scale in own.items()
    }


def landscape_tables(found, experiment: str, model: str) -> LandscapeTables:
    return LandscapeTables.read(lambda table: found[table_key(table, experiment, model)])


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
