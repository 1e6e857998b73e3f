# inputspace: gradient descent in the input-embedding space of language models.
# `snakemake --cores all` rebuilds everything for the config (config.yaml by default).

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


rule all:
    default_target: True
    input:
        expand("results/models/{model}", model=MODELS),
        expand("results/{model}/vocab.parquet", model=MODELS),
        expand("results/figures/geometry/{model}_ellipse_spectrum.png", model=MODELS),
        expand("results/{model}/vocab_distances.parquet", model=MODELS),
        [
            f"results/{model}/samples/{experiment}.safetensors"
            for experiment, model in experiment_models("random")
        ],
        [run_files(experiment, model)["steps"] for experiment, model in experiment_models()],
        [
            f"results/figures/{experiment}/{model}_{figure}.png"
            for experiment, model in case_studies()
            for figure in ("gradient_norms", "path")
        ],
        [
            f"results/figures/{experiment}/{name}"
            for experiment in EXPERIMENTS
            for name in ("kl.png", "displacement.png", "backprojection.csv", "topk.gif")
        ],
        "results/summary.md",
