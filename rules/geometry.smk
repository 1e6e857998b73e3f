rule fit_ellipse:
    """Mean and covariance (as principal axes) of the regular vocabulary embeddings."""
    input:
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
    output:
        ellipse="results/{model}/ellipse.safetensors",
        spectrum="results/{model}/ellipse_spectrum.parquet",
    log:
        "results/logs/fit_ellipse/{model}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=2400,
        runtime=10,
    script:
        "../scripts/fit_ellipse.py"


rule ellipse_figure:
    """The vocabulary covariance spectrum, drawn from fit_ellipse's table (a figure's style
    or library never reruns the fit, nor what is sampled from it)."""
    input:
        model=model_folder,  # whose record the figure carries
        spectrum="results/{model}/ellipse_spectrum.parquet",
    output:
        **printed(
            "figure",
            report(
                "results/figures/geometry/{model}_ellipse_spectrum.png",
                caption="../report/ellipse_spectrum.rst",
                category="Geometry",
                subcategory="{model}",
            ),
        ),
    log:
        "results/logs/ellipse_figure/{model}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=400,
        runtime=10,
    params:
        style=config["figures"],
    script:
        "../scripts/ellipse_figure.py"


rule sample_sequences:
    """Random sentences whose tokens are drawn from the vocabulary's hyper-ellipse."""
    input:
        model=model_folder,
        ellipse="results/{model}/ellipse.safetensors",
        table="results/{model}/vocab.parquet",
    output:
        batch="results/{model}/samples/{experiment}.safetensors",
        table="results/{model}/samples/{experiment}.parquet",
        norms="results/{model}/samples/{experiment}_norms.json",
        drawn="results/{model}/samples/{experiment}_norms.parquet",
    log:
        "results/logs/sample_sequences/{model}_{experiment}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1200,
        runtime=10,
    params:
        spec=lambda wildcards: EXPERIMENTS[wildcards.experiment]["sequences"],
        seed=lambda wildcards: EXPERIMENTS[wildcards.experiment]["seed"],
        replicates=replicates_of,
    script:
        "../scripts/sample_sequences.py"


rule sample_norms_figure:
    """The norms of the sampled points against the vocabulary's, from sample_sequences's
    tables."""
    input:
        model=model_folder,  # whose record the figure carries
        drawn="results/{model}/samples/{experiment}_norms.parquet",
        norms="results/{model}/samples/{experiment}_norms.json",
        table="results/{model}/vocab.parquet",
    output:
        **printed(
            "figure",
            report(
                "results/figures/geometry/{model}_{experiment}_sample_norms.png",
                caption="../report/sample_norms.rst",
                category="Geometry",
                subcategory="{model}",
            ),
        ),
    log:
        "results/logs/sample_norms_figure/{model}_{experiment}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=420,
        runtime=10,
    params:
        style=config["figures"],
    script:
        "../scripts/sample_norms_figure.py"


rule vocab_distances:
    """The yardstick: distances between random vocabulary pairs and to nearest neighbours."""
    input:
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
    output:
        pairs="results/{model}/vocab_distances.parquet",
        nearest="results/{model}/nearest_neighbours.parquet",
    log:
        "results/logs/vocab_distances/{model}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=1700,
        runtime=60,
    params:
        pairs=config["geometry"]["distance_pairs"],
        neighbours=config["geometry"]["neighbour_sample"],
        seed=config["geometry"]["seed"],
    script:
        "../scripts/vocab_distances.py"
