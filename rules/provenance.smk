# Provenance of the figures: a page in the report, an audit against the disk, and the
# run as a crate to deposit.


rule provenance_report:
    """One page with every figure's provenance, for the report."""
    input:
        all_figures(),
    output:
        report("results/provenance.html", caption="../report/provenance.rst", category="Provenance"),
    log:
        "results/logs/provenance_report.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=350,
        runtime=5,
    script:
        "../scripts/provenance_report.py"


rule audit:
    """results/audit.tsv: would Snakemake make each figure of this config again, and why
    (its own plan, read with --detailed-summary), and is each file still the picture its
    record was made with? Figures a former config left on disk are listed as not made.
    Rebuilds nothing; runs whenever asked for, as a rule without outputs does."""
    log:
        "results/logs/audit.log",
    localrule: True
    conda:
        "../envs/audit.yaml"  # the jobs' libraries and Snakemake, whose plan it reads
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figures=lambda wildcards: sorted(figure_files()),  # as the rules that make them name them
        leftovers_under="results/figures",  # recorded figures this config no longer makes
        digests=str(DIGESTS.path),
        deployment=DEPLOYMENT,  # the plan's params are the run's: the same --sdm
        table="results/audit.tsv",
    script:
        "../scripts/audit.py"


rule crate:
    """results/crate/: the run as an RO-Crate following the Provenance Run Crate profile
    (the workflow, every job with its params, times, place and files with their sha256,
    the libraries, each figure with its caption and record, each model by its raw source),
    checked by roc-validator before it is kept; with crate_figures, a book's crate: only
    those figures, their tables and the chain behind them. Runs whenever asked for, as a
    rule without outputs does (so Snakemake puts no mark of its own in the folder a
    deposit takes)."""
    input:
        crate_targets,
    log:
        "results/logs/crate.log",
    localrule: True
    conda:
        "../envs/crate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        rules=lambda wildcards: rule_descriptions(),
        captions=lambda wildcards: figure_files(),
        configfiles=[str(path) for path in workflow.configfiles],
        engine=SNAKEMAKE_VERSION,
        book=bool(config["crate_figures"]),
        crate="results/crate",
    script:
        "../scripts/crate.py"
