rule landscape:
    """Local dimension, connectivity and nearness of the zero-loss set around solutions."""
    input:
        model=model_folder,
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
        ellipse="results/{model}/ellipse.safetensors",
    output:
        **landscape_tables(),
    log:
        "results/logs/landscape/{model}_{experiment}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=5000,
        runtime=120,
    params:
        experiment=experiment_keys("landscape", "optimize", "seed", "target"),
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/landscape.py"


rule landscape_figures:
    """The landscape's figures, drawn from its tables (a figure's style or library never
    reruns the landscape itself)."""
    input:
        **landscape_tables(
            "dimensions",
            "singular_values",
            "spectra",
            "flatness",
            "paths",
            "barriers",
            "traces",
            "nearness",
        ),
        model=model_folder,  # whose record the figures carry
    output:
        **printed("dimension_figure", landscape_figure("local_dimension.png", "local_dimension")),
        **printed("spectrum_figure", landscape_figure("hessian_spectrum.png", "hessian_spectrum")),
        **printed("barrier_figure", landscape_figure("barriers.png", "barriers")),
        **printed("nearness_figure", landscape_figure("nearness.png", "nearness")),
    log:
        "results/logs/landscape_figures/{model}_{experiment}.log",
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
        "../scripts/landscape_figures.py"
