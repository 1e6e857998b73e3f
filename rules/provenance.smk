# Provenance of the figures: a page in the report, and an audit against the disk.


rule provenance_report:
    """One page with every figure's provenance, for the report."""
    input:
        all_figures(),
    output:
        report("results/provenance.html", caption="../report/provenance.rst", category="Provenance"),
    log:
        "results/logs/provenance_report.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    script:
        "../scripts/provenance_report.py"


rule audit:
    """results/audit.tsv: is each figure on disk still what its inputs, config and code
    would make? Reads the records only (rebuilds nothing); runs whenever asked for."""
    localrule: True
    log:
        "results/logs/audit.log",
    params:
        figures="results/figures",
        table="results/audit.tsv",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/audit.py"
