rule extract_vocab:
    """Every token's input embedding (as the model consumes it) and a table describing it."""
    input:
        model_folder,
    output:
        table="results/{model}/vocab.parquet",
        matrix="results/{model}/vocab.safetensors",
    log:
        "results/logs/extract_vocab/{model}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=1700,
        runtime=20,
    params:
        chunk_size=config["vocab"]["chunk_size"],
    script:
        "../scripts/extract_vocab.py"
