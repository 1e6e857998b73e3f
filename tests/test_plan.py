"""Reading Snakemake's detailed summary: which outputs it would make again, and why; and
failing loudly on what it cannot read. The canary plans a real two-rule workflow with
Snakemake itself, through every status it produces."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inputspace.provenance import audit, plan
from inputspace.provenance.record import SIDECAR

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


@pytest.fixture
def planned(tmp_path):
    return plan.Plan(plan.parse_summary(SUMMARY), tmp_path, tmp_path)


def test_the_summary_is_read_row_by_row(planned):
    assert len(planned.outputs) == 6
    kl = planned.get("results/figures/e/kl.png")
    assert kl.rule == "convergence_figures" and kl.pending and kl.status == "ok"
    assert kl.inputs == ("results/m/runs/e/steps.parquet", "results/m/runs/e/topk.parquet")
    assert not planned.get("results/models/m").pending


def test_the_causes_are_upstream_and_named_once_per_job(planned):
    assert plan.causes("results/figures/e/kl.png", planned) == [
        "results/m/runs/e/steps.parquet (optimize): " + plan.OWN_CAUSES["params changed"]
    ]
    assert plan.causes("results/figures/e/new.png", planned) == [
        "results/figures/e/new.png (convergence_figures): missing"
    ]


def test_verdicts(planned):
    assert audit.plan_verdict("results/figures/geometry/m.png", planned)[0] == audit.Verdict.FRESH
    state, why = audit.plan_verdict("results/figures/e/kl.png", planned)
    assert state == audit.Verdict.STALE and "(optimize): its params changed" in why
    assert audit.plan_verdict("results/figures/gone.png", planned)[0] == audit.Verdict.NOT_MADE


def test_the_audit_lists_the_figures_the_rules_make_and_the_leftovers(planned, monkeypatch):
    """A figure not made yet is stale, one without a record cannot be checked, a recorded
    figure this config does not make is listed as not made."""
    monkeypatch.chdir(planned.workdir)
    record = {"created": "2026-12-04T10:00:00", "git": {"commit": "abc"}}
    for figure in ("results/figures/geometry/m.png", "results/figures/old/gone.png"):
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        Path(figure + SIDECAR).write_text(json.dumps(record))
    Path("results/figures/e").mkdir()
    Path("results/figures/e/kl.png").write_bytes(b"no record beside it")
    made = [
        "results/figures/geometry/m.png",
        "results/figures/e/new.png",
        "results/figures/e/kl.png",
    ]
    table = audit.audit_table(made, planned, leftovers_under=Path("results/figures"))
    status = dict(zip(table.figure, table.status, strict=True))
    assert status == {
        "results/figures/e/kl.png": audit.Verdict.STALE,  # Snakemake would make it again
        "results/figures/e/new.png": audit.Verdict.STALE,
        "results/figures/geometry/m.png": audit.Verdict.FRESH,
        "results/figures/old/gone.png": audit.Verdict.NOT_MADE,
    }
    assert list(table.figure[:3]) == sorted(made)  # the rules' figures first, then leftovers
    assert "missing" in table.set_index("figure").why["results/figures/e/new.png"]
    assert table.set_index("figure").made["results/figures/geometry/m.png"] == record["created"]


def test_a_figure_snakemake_would_not_remake_without_a_record_is_unverifiable(planned, monkeypatch):
    monkeypatch.chdir(planned.workdir)
    figure = "results/figures/geometry/m.png"
    Path(figure).parent.mkdir(parents=True)
    Path(figure).write_bytes(b"a picture")
    (row,) = audit.audit_table([figure], planned).itertuples()
    assert row.status == audit.Verdict.UNVERIFIABLE and SIDECAR in row.why


@pytest.mark.parametrize(
    ("written", "damage"),
    [
        (b'{"created": "2026-12-04', "not JSON"),
        (b"\xff\xfe not text", "not JSON"),
        (b"[1, 2]", "not a record but a JSON list"),
        (b'{"git": "abc", "created": "x"}', "a field of the wrong kind"),
    ],
)
def test_a_damaged_record_is_one_row_and_the_rest_is_audited(planned, monkeypatch, written, damage):
    monkeypatch.chdir(planned.workdir)
    good, bad = "results/figures/geometry/m.png", "results/figures/geometry/other.png"
    Path(good).parent.mkdir(parents=True)
    Path(good + SIDECAR).write_text(json.dumps({"created": "t", "git": {"commit": "abc"}}))
    Path(bad + SIDECAR).write_bytes(written)
    table = audit.audit_table([good], planned, leftovers_under=Path("results/figures"))
    rows = table.set_index("figure")
    assert rows.status[good] == audit.Verdict.FRESH and rows.git_commit[good] == "abc"
    assert rows.status[bad] == audit.Verdict.UNVERIFIABLE
    assert rows.why[bad].startswith(f"its record other.png{SIDECAR} is damaged ({damage}")
    assert "\n" not in rows.why[bad]


@pytest.mark.parametrize(
    "row",
    [
        "results/x.png\tThu\tfig\t-\t-\t-\tok",  # a field short
        "results/x.png\tThu\tfig\t-\t-\t-\tsomething new\tno update",  # an unknown status
        "results/x.png\tThu\tfig\t-\t-\t-\tok\tmaybe later",  # an unknown plan
    ],
)
def test_a_row_it_cannot_read_is_an_error_not_a_guess(row):
    with pytest.raises(plan.PlanError, match="not one this version of inputspace reads"):
        plan.parse_summary(f"{plan.HEADER}\n{row}\n")


def test_a_plan_that_does_not_finish_is_one_error(monkeypatch, tmp_path):
    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], plan.TIMEOUT_S)

    monkeypatch.setattr(plan.subprocess, "run", hangs)
    with pytest.raises(plan.PlanError, match="did not finish planning"):
        plan.snakemake_plan(tmp_path, tmp_path / "Snakefile")


def test_what_changed_is_named_from_the_params_the_job_noted_by_name(tmp_path):
    root = tmp_path / "checkout"
    (root / "src/inputspace").mkdir(parents=True)
    (root / "src/inputspace/__init__.py").write_text("")
    (root / "scripts").mkdir()
    script = root / "scripts/fig.py"
    script.write_text("import yaml\n")
    (root / "src/inputspace/provenance").mkdir()
    (root / "src/inputspace/provenance/__init__.py").write_text("")
    (root / "src/inputspace/provenance/stamp.py").write_text("S = 1\n")
    from inputspace.provenance import code_digest, history, snakemake_internals

    code = code_digest.identity(script, root / "src/inputspace", root)
    now = code_digest.libraries(script, root / "src/inputspace", code_digest.Environment())

    def ran_with(**params):
        """A job that made results/fig.csv, its log's note and Snakemake's record."""
        log = tmp_path / "results/logs/fig.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(history.note_line({"rule": "fig", "params": params}) + "\n")
        record = snakemake_internals.metadata_path(tmp_path, "results/fig.csv")
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"log": ["results/logs/fig.log"], "params": ["'unnamed'"]}))
        return plan.recorded_params(tmp_path, "results/fig.csv")

    recorded = ran_with(code=code, libraries={**now, "pyyaml": "5.0", "gone": "1.0"}, alpha=1)
    assert plan.params_changes(recorded, root, tmp_path) == [
        f"its libraries: -gone 1.0, pyyaml 5.0 -> {now['pyyaml']}"
    ]
    script.write_text("import yaml\nX = 1\n")
    assert plan.params_changes(recorded, root, tmp_path)[1].startswith("its code (scripts/fig.py")
    script.write_text("import yaml\n")
    recorded = ran_with(code=code, libraries=now, alpha=1, beta=[2])
    assert plan.params_changes(recorded, root, tmp_path) == [
        "one of its params alpha, beta (the config it reads)"
    ]
    recorded = ran_with(code=code, libraries=now, outputs_are_figures=True)
    figure = plan.params_changes(recorded, root, tmp_path, ["results/fig.png"])
    assert figure[0].startswith("its code")  # the stamping counts for a figure's job
    assert plan.recorded_params(tmp_path, "results/never-made.png") is None


# ------------------------------------------------------------------ the canary


CANARY = """
rule all:
    input: "b.txt", "c.txt"

rule a:
    input: "in.txt"
    output: temp("a.txt")
    shell: "cat {input} > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    params: word=config.get("word", "one")
    shell: "cat {input} > {output}; echo {params.word} >> {output}"

rule c:
    input: "in.txt"
    output: "c.txt"
    shell: "cat {input} > {output}"
"""


@pytest.mark.slow
def test_snakemake_itself_plans_every_status_this_module_reads(tmp_path):
    """Fails when a Snakemake release renames a status or changes the summary's layout."""
    (tmp_path / "Snakefile").write_text(CANARY)
    (tmp_path / "in.txt").write_text("input\n")
    (tmp_path / "other.txt").write_text("made before the run\n")

    def statuses(*config):
        configfile = tmp_path / "config.json"
        configfile.write_text(json.dumps(dict(config)))
        planned = plan.snakemake_plan(tmp_path, tmp_path / "Snakefile", configfile)
        return {path: (o.status, o.pending) for path, o in planned.outputs.items()}

    def run(*args):
        command = [sys.executable, "-m", "snakemake", "-s", str(tmp_path / "Snakefile")]
        command += ["-d", str(tmp_path), "--cores", "1"]
        done = subprocess.run([*command, *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]

    assert statuses() == {
        "a.txt": ("removed temp file", True),  # a temp output not there is never "missing"
        "b.txt": ("missing", True),
        "c.txt": ("missing", True),
    }
    run()
    assert statuses() == {
        "a.txt": ("removed temp file", False),
        "b.txt": ("ok", False),
        "c.txt": ("ok", False),
    }
    assert statuses(("word", "two"))["b.txt"] == ("params changed", True)
    (tmp_path / "in.txt").write_text("another input\n")
    assert statuses()["c.txt"] == ("updated input files", True)
    run()
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(CANARY.replace('cat {input} > {output}"\n', 'cp {input} {output}"\n'))
    assert statuses()["c.txt"] == ("rule implementation changed", True)
    snakefile.write_text(
        CANARY.replace(
            'input: "in.txt"\n    output: "c.txt"',
            'input: "in.txt", "other.txt"\n    output: "c.txt"',
        )
    )
    assert statuses()["c.txt"] == ("set of input files changed", True)
