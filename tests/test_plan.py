"""Reading Snakemake's detailed summary: which outputs it would make again, and why."""

from inputspace import audit, plan

SUMMARY = "\n".join(
    [
        "Building DAG of jobs...",
        plan.HEADER,
        "results/models/m\tThu\tprepare_model\t-\t-\t-\tok\tno update",
        "results/m/runs/e/steps.parquet\tThu\toptimize\t-\tresults/models/m\t-\tparams changed\t"
        "update pending",
        "results/m/runs/e/topk.parquet\tThu\toptimize\t-\tresults/models/m\t-\tparams changed\t"
        "update pending",
        "results/figures/e/kl.png\tThu\tconvergence_figures\t-\t"
        "results/m/runs/e/steps.parquet,results/m/runs/e/topk.parquet\t-\tok\tupdate pending",
        "results/figures/geometry/m.png\tThu\tfit_ellipse\t-\tresults/models/m\t-\tok\tno update",
        "results/figures/e/new.png\t-\tconvergence_figures\t-\t-\t-\tmissing\tupdate pending",
    ]
)


def test_the_summary_is_read_row_by_row():
    planned = plan.parse_summary(SUMMARY)
    assert len(planned) == 6
    kl = planned["results/figures/e/kl.png"]
    assert kl.rule == "convergence_figures" and kl.pending and kl.status == "ok"
    assert kl.inputs == ("results/m/runs/e/steps.parquet", "results/m/runs/e/topk.parquet")
    assert not planned["results/models/m"].pending


def test_the_causes_are_upstream_and_named_once_per_job():
    planned = plan.parse_summary(SUMMARY)
    assert plan.causes("results/figures/e/kl.png", planned) == [
        "results/m/runs/e/steps.parquet (optimize): " + plan.OWN_CAUSES["params changed"]
    ]
    assert plan.causes("results/figures/e/new.png", planned) == [
        "results/figures/e/new.png (convergence_figures): missing"
    ]


def test_verdicts():
    planned = plan.parse_summary(SUMMARY)
    assert audit.plan_verdict("results/figures/geometry/m.png", planned)[0] == audit.FRESH
    state, why = audit.plan_verdict("results/figures/e/kl.png", planned)
    assert state == audit.STALE and "(optimize): its params changed" in why
    assert audit.plan_verdict("results/figures/gone.png", planned)[0] == audit.NOT_MADE
