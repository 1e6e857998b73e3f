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


# Every rule reruns when what it runs changes, and only then: its script and the package
# modules that compute its outputs, by content, and the versions of the libraries they
# import (see inputspace.provenance.code_digest); with --sdm conda, a job's libraries are its conda env,
# whose content reruns it (the software-env trigger). Both params are in each figure's
# record. The workflow profile leaves out Snakemake's own `code` trigger, which compares
# the script's modification time with the outputs', so that a fresh clone with the
# results copied in is as up to date as the original.
try:
    for scripted in workflow.rules:
        if scripted.script:
            source = Path(scripted.basedir.join(scripted.script).get_path_or_uri(secret_free=True))
            in_conda = JOBS_IN_CONDA and scripted.conda_env
            snakemake_internals.set_params(
                scripted,
                code=code_digest.identity(
                    source, PACKAGE, workflow.basedir, [str(out) for out in scripted.output]
                ),
                libraries=(
                    {"conda env": str(scripted.conda_env)}
                    if in_conda
                    else code_digest.libraries(source, PACKAGE, ENVIRONMENT)
                ),
            )
    CODE_MEMO.save()
except InputspaceError as error:
    sys.exit(f"inputspace: {error}")


onstart:
    # The run's note names its SLURM jobs, so that if it is killed outright the next run
    # can cancel them (inputspace.workflow.recovery).
    if THIS_RUN:
        THIS_RUN[0] = recovery.started(
            STATE, THIS_RUN[0], snakemake_internals.slurm_run_id(workflow)
        )


onerror:
    # A job the scheduler refused or killed: one line naming the rule and what to change.
    for line in diagnoses.diagnoses(
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


CRATE_TARGETS = crate_selection(rules.all.input)
