rule optimize:
    """Adam on the input embeddings of an experiment's sequences, toward its targets."""
    input:
        model=model_folder,
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
        samples=samples_input,
        prompts=prompt_inputs,
    output:
        **run_files(),
    log:
        "results/logs/optimize/{model}_{experiment}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3600,
        runtime=120,
    params:
        experiment=lambda wildcards: optimisation_spec(wildcards.experiment),
        device=config["device"],
        precision=config["precision"],
        attention=config["attention"],
        # Outside the outputs, so that it survives a killed job and the rerun resumes.
        checkpoint="results/checkpoints/{model}/{experiment}.pt",
    script:
        "../scripts/optimize.py"
