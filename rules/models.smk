rule prepare_model:
    """Materialise a configured model source as a safetensors HF folder with a manifest."""
    input:
        after_killed_runs,
    output:
        directory(MODEL_FOLDER),
    log:
        "results/logs/prepare_model/{model}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3300,
        runtime=30,
    params:
        source=lambda wildcards: config["models"][wildcards.model]["source"],
        # what the source holds now (file digests, the cached hub commit): new weights
        # behind the same config rerun it
        source_content=lambda wildcards: source_content.identity(
            config["models"][wildcards.model]["source"], DIGESTS, config["allow_downloads"]
        ),
        allow_downloads=config["allow_downloads"],
    script:
        "../scripts/prepare_model.py"
