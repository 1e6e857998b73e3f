# Figures and tables over the finished runs of one experiment, its models side by side.
# Each reads tables and draws in seconds, without torch: on a cluster they run on the
# submitting machine (localrule), where a SLURM job would wait in the queue for longer
# than it runs (docs/cluster.md).


rule convergence_figures:
    """KL and total L2 travelled over the steps, per sequence."""
    input:
        steps=per_model(run_files()["steps"]),
        models=per_model(MODEL_FOLDER),  # whose records the figures carry
    output:
        **printed("kl", figure_of("kl.png", "kl")),
        **printed("travel", figure_of("travel.png", "travel")),
        curves="results/figures/{experiment}/curves.parquet",
        convergence="results/figures/{experiment}/convergence.csv",
    log:
        "results/logs/convergence_figures/{experiment}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=450,
        runtime=10,
    params:
        style=config["figures"],
        models=experiment_models_of,
        replicates=replicates_of,
    script:
        "../scripts/convergence_figures.py"


rule displacement_figures:
    """Per-dimension displacement, and whether any dimension or token is favoured."""
    input:
        embeddings=per_model(run_files()["embeddings"]),
        models=per_model(MODEL_FOLDER),  # whose records the figures carry
    output:
        **printed("distribution", figure_of("displacement.png", "displacement")),
        **printed("favoured", figure_of("favoured.png", "favoured")),
        stats="results/figures/{experiment}/displacement.csv",
        profiles="results/figures/{experiment}/favoured.parquet",
    log:
        "results/logs/displacement_figures/{experiment}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=450,
        runtime=10,
    params:
        style=config["figures"],
        models=experiment_models_of,
        replicates=replicates_of,
    script:
        "../scripts/displacement_figures.py"


rule travel_density:
    """Travel per token against the vocabulary's random-pair and nearest-neighbour distances."""
    input:
        embeddings=per_model(run_files()["embeddings"]),
        models=per_model(MODEL_FOLDER),  # whose records the figures carry
        pairs=per_model("results/{model}/vocab_distances.parquet"),
        nearest=per_model("results/{model}/nearest_neighbours.parquet"),
    output:
        **printed("figure", figure_of("travel_density.png", "travel_density")),
        densities="results/figures/{experiment}/travel_density.parquet",
    log:
        "results/logs/travel_density/{experiment}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=530,
        runtime=10,
    params:
        style=config["figures"],
        models=experiment_models_of,
    script:
        "../scripts/travel_density.py"


rule token_tables:
    """Back-projection changes and headings of every optimised token."""
    input:
        tokens=per_model(run_files()["tokens"]),
        vocab=per_model("results/{model}/vocab.parquet"),
    output:
        changes=report(
            "results/figures/{experiment}/backprojection.csv",
            caption="../report/backprojection.rst",
            category="{experiment}",
            subcategory="tables",
        ),
        counts="results/figures/{experiment}/backprojection_counts.csv",
        headings=report(
            "results/figures/{experiment}/headings.csv",
            caption="../report/headings.rst",
            category="{experiment}",
            subcategory="tables",
        ),
    log:
        "results/logs/token_tables/{experiment}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=350,
        runtime=10,
    params:
        models=experiment_models_of,
        replicates=replicates_of,
    script:
        "../scripts/token_tables.py"


rule topk_figures:
    """The top-k predictions over the steps: an animation and small multiples."""
    input:
        topk=per_model(run_files()["topk"]),
        models=per_model(MODEL_FOLDER),  # whose records the figures carry
        vocab=per_model("results/{model}/vocab.parquet"),
    output:
        **printed("frames", figure_of("topk.png", "topk")),
        animation=figure_of("topk.gif", "topk_animation"),
        table="results/figures/{experiment}/topk.csv",
    log:
        "results/logs/topk_figures/{experiment}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=480,
        runtime=10,
    params:
        style=config["figures"],
        models=experiment_models_of,
        columns=5,
    script:
        "../scripts/topk_figures.py"


rule summary:
    """The study's claims next to this run's numbers, per experiment and model."""
    input:
        unpack(summary_inputs),
    output:
        markdown="results/summary.md",
        html=report("results/summary.html", caption="../report/summary.rst", category="Summary"),
    log:
        "results/logs/summary.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=350,
        runtime=5,
    params:
        experiments={name: without_notes(spec) for name, spec in EXPERIMENTS.items()},
        models=MODELS,
    script:
        "../scripts/summary.py"
