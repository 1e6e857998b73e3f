# Provenance of the figures: a page in the report, and an audit against the disk.
import time


rule provenance_report:
    """One page with every figure's provenance, for the report."""
    input:
        all_figures(),
    output:
        report("results/provenance.html", caption="../report/provenance.rst", category="Provenance"),
    log:
        "results/logs/provenance_report.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/provenance_report.py"


rule audit:
    """results/audit.tsv: would Snakemake make each figure on disk again, and why (its
    own plan, read with --detailed-summary), and is each file still the picture its record
    was made with? Rebuilds nothing; runs whenever asked for: its `asked` param is new at
    every invocation, and a changed param reruns a rule."""
    output:
        table="results/audit.tsv",
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
        figures="results/figures",
        digests=str(DIGESTS.path),
        deployment=DEPLOYMENT,  # the plan's params are the run's: the same --sdm
        asked=time.time_ns(),
    script:
        "../scripts/audit.py"
