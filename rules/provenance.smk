# Provenance of the figures: a page in the report, and an audit against the disk.


def all_figures():
    """Every figure the config's rule all builds (each carries its provenance)."""
    return [
        *expand("results/figures/geometry/{model}_ellipse_spectrum.png", model=MODELS),
        *[
            f"results/figures/geometry/{model}_{experiment}_sample_norms.png"
            for experiment, model in experiment_models("random")
        ],
        *[
            f"results/figures/{experiment}/{model}_{figure}.png"
            for experiment, model in case_studies()
            for figure in ("gradient_norms", "path")
        ],
        *[
            f"results/figures/{experiment}/{name}"
            for experiment in EXPERIMENTS
            for name in EXPERIMENT_FIGURES
        ],
        *[
            f"results/figures/{experiment}/{model}_{figure}.png"
            for experiment, model in landscapes()
            for figure in ("hessian_spectrum", "barriers", "nearness")
        ],
    ]


EXPERIMENT_FIGURES = [
    "kl.png", "travel.png", "displacement.png", "favoured.png", "travel_density.png", "topk.png", "topk.gif",
]


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
