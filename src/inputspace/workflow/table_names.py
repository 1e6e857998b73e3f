"""The names of files and inputs that rules, scripts and tests all use, written once
(imported while the workflow is parsed, so it imports nothing heavy)."""

# An optimisation run's files, in results/{model}/runs/{experiment}/, by input name.
RUN_FILES = {
    "steps": "steps.parquet",
    "tokens": "tokens.parquet",
    "topk": "topk.parquet",
    "embeddings": "embeddings.safetensors",
}

# The landscape study's tables, in results/figures/{experiment}/{model}_<file>, by output name.
LANDSCAPE_FILES = {
    "solutions": "solutions.csv",
    "dimensions": "local_dimension.csv",
    "singular_values": "singular_values.parquet",
    "spectra": "hessian_spectrum.parquet",
    "flatness": "flatness.csv",
    "paths": "paths.parquet",
    "barriers": "barriers.csv",
    "traces": "path_traces.parquet",
    "nearness": "nearness.parquet",
}
# Those the summary reads (inputspace.studies.summary.LandscapeTables holds them).
SUMMARY_LANDSCAPE_TABLES = ("solutions", "dimensions", "flatness", "barriers", "nearness")


def table_key(table: str, experiment: str | None = None, model: str | None = None) -> str:
    """An input's name: what the table is, and whose ("convergence/prompt_pairs",
    "flatness/random_sentences/smollm2", "model//smollm2" has no experiment)."""
    return "/".join((table, experiment or "", model or "")).rstrip("/")
