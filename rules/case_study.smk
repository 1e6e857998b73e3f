rule gradient_case_study:
    """Experiment 1: the input-space gradient of the source prompt toward the target."""
    input:
        model=model_folder,
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
    output:
        table="results/figures/{experiment}/{model}_gradients.parquet",
        csv="results/figures/{experiment}/{model}_gradients.csv",
    log:
        "results/logs/gradient_case_study/{model}_{experiment}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=2400,
        runtime=20,
    params:
        experiment=experiment_keys("sequences", "target", "case_study"),
        device=config["device"],
        attention=config["attention"],
    script:
        "../scripts/gradient_case_study.py"


rule gradient_figure:
    """Experiment 1's figure, drawn from gradient_case_study's table."""
    input:
        model=model_folder,  # whose record the figure carries
        table="results/figures/{experiment}/{model}_gradients.parquet",
    output:
        **printed(
            "figure",
            report(
                "results/figures/{experiment}/{model}_gradient_norms.png",
                caption="../report/gradient_norms.rst",
                category="{experiment}",
                subcategory="{model}",
            ),
        ),
    log:
        "results/logs/gradient_figure/{model}_{experiment}.log",
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
        "../scripts/gradient_figure.py"


rule case_study_path:
    """Experiment 2: where the followed word travels under Adam, against its target word."""
    input:
        model=model_folder,
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
        steps=run_files()["steps"],
        embeddings=run_files()["embeddings"],
    output:
        **printed(
            "figure",
            report(
                "results/figures/{experiment}/{model}_path.png",
                caption="../report/case_path.rst",
                category="{experiment}",
                subcategory="{model}",
            ),
        ),
        table="results/figures/{experiment}/{model}_path.parquet",
        csv="results/figures/{experiment}/{model}_path.csv",
    log:
        "results/logs/case_study_path/{model}_{experiment}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1800,
        runtime=20,
    params:
        style=config["figures"],
        experiment=experiment_keys("sequences", "target", "case_study"),
    script:
        "../scripts/case_study_path.py"
