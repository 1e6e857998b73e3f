# inputspace: gradient descent in the input-embedding space of language models.
# `snakemake --cores all` rebuilds everything for the config (config.yaml by default).

from snakemake.utils import min_version

# The version the workflow is tested with (requirements.txt); it reads Snakemake's
# --detailed-summary and sets rule params after the rules are parsed.
min_version("9.27")

# A --configfile replaces the default instead of being merged into it, so a config
# names exactly the models and experiments it runs.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/vocab.smk"
include: "rules/geometry.smk"
include: "rules/optimize.smk"
include: "rules/case_study.smk"
include: "rules/analysis.smk"
include: "rules/landscape.smk"
include: "rules/provenance.smk"


# Every rule reruns when the code it runs changes, and only then: its script and the
# package modules that script imports, by content (see inputspace.codebase). The same
# digest is in each figure's record. The workflow profile leaves out Snakemake's own
# `code` trigger, which compares the script's modification time with the outputs', so
# that a fresh clone with the results copied in is as up to date as the original.
for scripted in workflow.rules:
    if scripted.script:
        source = scripted.basedir.join(scripted.script).get_path_or_uri(secret_free=True)
        scripted.set_params(code=codebase.identity(Path(source), PACKAGE, workflow.basedir))


onstart:
    cluster.record_owner(STATE)
    orphans = cluster.queued_jobs(Path.cwd()) if KILLED_RUN else []
    for job in orphans:
        print(f"inputspace: cancelled SLURM job {job}, left by {KILLED_RUN}", file=sys.stderr)
    if not cluster.cancel(orphans):
        print(
            f"inputspace: SLURM jobs {orphans} are still queued; scancel them", file=sys.stderr
        )


onerror:
    # A job the scheduler refused or killed: one line naming the rule and what to change.
    for line in cluster.diagnoses(
        "".join(Path(path).read_text() for path in log),
        resumable={"optimize"},
        profile="the profile's config.yaml",
    ):
        print(line, file=sys.stderr)


rule all:
    default_target: True
    input:
        expand(MODEL_FOLDER, model=MODELS),
        expand("results/{model}/vocab.parquet", model=MODELS),
        expand("results/{model}/vocab_distances.parquet", model=MODELS),
        [run_files(experiment, model)["steps"] for experiment, model in experiment_models()],
        [f"results/figures/{experiment}/backprojection.csv" for experiment in EXPERIMENTS],
        all_figures(),
        "results/summary.md",
        "results/provenance.html",
