"""The workflow on a real SLURM scheduler: profiles/slurm as it ships, fitted to one small
node by command-line overrides only (tests/cluster/one-node-slurm.sh brings such a cluster up;
.ci/run does, and sets INPUTSPACE_REQUIRE_SLURM=1 so that these tests cannot be skipped).

The jobs that need a model must be SLURM jobs with the partition, GPU, memory, time and
CPUs that the profile gives their rule, and the figure and table jobs must run on the
submitting machine; the tables must equal a local run's; the plugin's efficiency report
must be written; and the scheduler's faults (scancel, a request no node satisfies, a
time limit, a killed Snakemake) must end as the README promises.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import (
    LOCAL_RULES,
    RUN,
    SLURM_RULES,
    SMALL_CONFIG,
    SMALL_MODEL,
    TABLES,
    copy_without_run,
    fault_config,
    run_targets,
    snakemake_command,
)

from inputspace.provenance import stamp
from inputspace.workflow import diagnoses

REPO = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
NODE_MEM_MB = 3000  # what each job may ask for on the test node (4 jobs side by side)
NODE_CPUS = 1
CHECKPOINT = "results/checkpoints/tiny_llama/prompt_pairs.pt"
OPTIMIZE_LOG = "results/logs/optimize/tiny_llama_prompt_pairs.log"

pytestmark = pytest.mark.slow


def slurm_answers() -> str | None:
    """None when sbatch, sinfo and sacct answer; else why not."""
    for command in (["sbatch", "--version"], ["sinfo", "-h"], ["sacct", "-n", "-X", "-S", "now"]):
        if not shutil.which(command[0]):
            return f"no {command[0]} on PATH"
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return f"{command[0]} did not answer in 30 s"
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session", autouse=True)
def slurm():
    why = slurm_answers()
    if why and os.environ.get("INPUTSPACE_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM is required here (INPUTSPACE_REQUIRE_SLURM=1) but {why}")
    if why:
        pytest.skip(
            f"no SLURM cluster answers ({why}); tests/cluster/one-node-slurm.sh up brings one"
        )


def fitted(value, key):
    """A profile value fitted to the small test node (only sizes change)."""
    limit = {"mem_mb": NODE_MEM_MB, "cpus_per_task": NODE_CPUS}.get(key)
    return min(value, limit) if limit else value


def node_overrides(**rule_changes: dict) -> list[str]:
    """Command-line overrides fitting profiles/slurm to one small node. Snakemake replaces
    the profile's whole `set-resources` with a command-line one, so every entry is given
    again, as the profile has it, with only memory and CPUs lowered (plus `rule_changes`)."""
    defaults = [f"{k}={fitted(v, k)!r}" for k, v in PROFILE["default-resources"].items()]
    per_rule = {rule: dict(values) for rule, values in PROFILE["set-resources"].items()}
    for rule, changes in rule_changes.items():
        per_rule.setdefault(rule, {}).update(changes)
    resources = [
        f"{rule}:{k}={v!r}" if k in rule_changes.get(rule, {}) else f"{rule}:{k}={fitted(v, k)!r}"
        for rule, values in per_rule.items()
        for k, v in values.items()
    ]
    return [
        "--default-resources",
        *defaults,
        "--set-resources",
        *resources,
        "--max-threads",  # torch threads: one per job
        "1",
        "--jobs",  # two per core (the test cluster's partitions let jobs share cores)
        "4",
        # sacct polling: the plugin first checks after 40 s, then 10 s later each time
        # (tiny jobs take 10-20 s); after 6 s, then 16 s later, a finished job waits less
        "--slurm-init-seconds-before-status-checks",
        "6",
    ]


def slurm_command(workdir: Path, config: Path, *args: str, **rule_changes) -> list[str]:
    return snakemake_command(
        workdir,
        "--profile",
        str(REPO / "profiles/slurm"),
        *node_overrides(**rule_changes),
        *args,
        "--configfile",  # takes every word after it
        str(config),
    )


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def env(fault: str | None = None, once: Path | None = None) -> dict[str, str]:
    values = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if fault:
        values["INPUTSPACE_FAULT"] = fault
        values["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "tests/faulty"), values.get("PYTHONPATH", "")]
        )
    if once:
        values["INPUTSPACE_FAULT_ONCE"] = str(once)
    return values


def run(command: list[str], environ: dict[str, str] | None = None, timeout: int = 1500):
    return subprocess.run(
        command, capture_output=True, text=True, env=environ or env(), timeout=timeout
    )


def submitted(log: str) -> dict[str, tuple[str, dict[str, str]]]:
    """SLURM job id -> (rule, resources Snakemake asked for), from Snakemake's output."""
    jobs = diagnoses.announced_jobs(log)
    found = {}
    for line in log.splitlines():
        if "has been submitted with SLURM jobid" in line:
            words = line.split()
            found[words[words.index("jobid") + 1]] = jobs[words[1]]
    return found


def accounting(job_ids) -> dict[str, dict[str, str]]:
    """sacct's record of each job (allocation lines only)."""
    fields = ["JobID", "State", "Partition", "ReqMem", "Timelimit", "ReqCPUS", "ReqTRES"]
    done = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = (dict(zip(fields, line.split("|"))) for line in done.stdout.splitlines())
    return {row["JobID"]: row for row in rows}


def profile_value(rule: str, key: str):
    return PROFILE["set-resources"].get(rule, {}).get(key, PROFILE["default-resources"].get(key))


# ------------------------------------------------------------------ the tiny config on SLURM


def run_id(log: str) -> str:
    """The id the plugin gives every SLURM job of one Snakemake run (their job name)."""
    (found,) = re.findall(r"SLURM run ID: (\S+)", log)
    return found


def rules_in_accounting(log: str) -> dict[str, str]:
    """sacct's jobs of the run that wrote `log`: SLURM job id -> rule (the plugin puts
    `rule_<name>_wildcards_...` in each job's comment)."""
    done = subprocess.run(
        ["sacct", "-X", "-P", "-n", f"--name={run_id(log)}", "-o", "JobID,Comment"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = (line.split("|", 1) for line in done.stdout.splitlines())
    return {job: comment.removeprefix("rule_").split("_wildcards_")[0] for job, comment in rows}


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, small_run):
    """tests/configs/small.yaml through SLURM, in a working directory of its own, with
    the plugin's efficiency report."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    shutil.copytree(small_run / SMALL_MODEL, workdir / SMALL_MODEL)
    started = time.monotonic()
    result = run(slurm_command(workdir, small_run / SMALL_CONFIG, "--slurm-efficiency-report"))
    seconds = time.monotonic() - started
    (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"{SMALL_CONFIG} through SLURM: {seconds:.0f} s")
    return workdir, result.stdout + result.stderr


def test_only_the_jobs_that_need_a_model_reach_slurm(slurm_run):
    _, log = slurm_run
    in_accounting = rules_in_accounting(log)
    assert set(in_accounting.values()) == SLURM_RULES
    assert set(in_accounting) == set(submitted(log))
    ran_here = {rule for rule, _ in diagnoses.announced_jobs(log).values()} - SLURM_RULES
    assert ran_here == LOCAL_RULES - {"audit", "crate"} | {"all"}  # these two run on request
    for rule in ran_here:
        assert f"localrule {rule}:" in log, rule


def test_every_slurm_job_is_sized_as_the_profile_says(slurm_run):
    _, log = slurm_run
    jobs = submitted(log)
    finished = log.count("Finished jobid")
    local = log.count("localrule ")
    assert len(jobs) == finished - local > 10, (len(jobs), finished, local)
    records = accounting(jobs)
    rules = set()
    for job_id, (rule, asked) in jobs.items():
        row = records[job_id]
        rules.add(rule)
        assert row["State"] == "COMPLETED", (rule, row)
        assert row["Partition"] == profile_value(rule, "slurm_partition"), (rule, row)
        assert ("gres/gpu=1" in row["ReqTRES"]) == bool(profile_value(rule, "gpu")), (rule, row)
        assert row["ReqMem"] == f"{asked['mem_mb']}M", (rule, row, asked)
        assert int(row["ReqCPUS"]) == int(asked["cpus_per_task"]), (rule, row, asked)
        hours, minutes, _ = (int(part) for part in row["Timelimit"].split("-")[-1].split(":"))
        days = int(row["Timelimit"].split("-")[0]) if "-" in row["Timelimit"] else 0
        assert (days * 24 + hours) * 60 + minutes == int(asked["runtime"]), (rule, row, asked)
    assert {"optimize", "gradient_case_study", "landscape", "prepare_model"} <= rules
    experiments = yaml.safe_load((REPO / SMALL_CONFIG).read_text())["experiments"]
    assert sum(1 for rule, _ in jobs.values() if rule == "optimize") == len(experiments)


def test_the_efficiency_report_has_every_slurm_job_against_its_request(slurm_run):
    workdir, log = slurm_run
    report = workdir / f"efficiency_report_{run_id(log)}.csv"
    assert f"saved to {report}" in log
    rows = pd.read_csv(report).to_dict("records")
    by_job = {str(row["JobID"]).split(".")[0]: row for row in rows}
    jobs = submitted(log)
    assert set(by_job) == set(jobs) and len(rows) == len(jobs)  # each job's one step
    for job_id, (rule, asked) in jobs.items():
        row = by_job[job_id]
        assert row["RuleName"].removeprefix("rule_").split("_wildcards_")[0] == rule
        assert row["RequestedMem_MB"] == int(asked["mem_mb"]), (rule, row)
        # SLURM samples memory every JobAcctGatherFrequency (10 s here): a job that ends
        # between samples reports 0
        assert 0 <= row["MaxRSS_MB"] < row["RequestedMem_MB"], (rule, row)
        assert row["Memory Usage (%)"] == pytest.approx(
            100 * row["MaxRSS_MB"] / row["RequestedMem_MB"], abs=0.01
        )
        assert 0 <= row["CPU Efficiency (%)"], (rule, row)
    assert any(row["MaxRSS_MB"] > 0 for row in rows)  # the report does measure memory


def test_slurm_tables_equal_a_local_run(slurm_run, small_run):
    workdir, _ = slurm_run
    compared = 0
    for local in sorted((small_run / "results").rglob("*")):
        if local.suffix in (".parquet", ".safetensors") and "models" not in local.parts:
            there = workdir / local.relative_to(small_run)
            assert there.read_bytes() == local.read_bytes(), local.relative_to(small_run)
            compared += 1
    assert compared > 30


def test_audit_calls_every_slurm_figure_fresh_and_names_its_job(slurm_run):
    workdir, log = slurm_run
    result = run(snakemake_command(workdir, "audit", "--configfile", str(REPO / SMALL_CONFIG)))
    assert result.returncode == 0, result.stderr[-2000:]
    table = (workdir / "results/audit.tsv").read_text().splitlines()
    assert len(table) > 30 and all("\tfresh\t" in row for row in table[1:]), table[:5]
    jobs = submitted(log)
    rules = set()
    for sidecar in (workdir / "results/figures").rglob(f"*{stamp.SIDECAR}"):
        record = yaml.safe_load(sidecar.read_text())
        made, rule = record["made_on"], record["rule"]
        rules.add(rule)
        if rule in LOCAL_RULES:  # drawn by the submitting Snakemake, outside SLURM
            assert made["slurm"] is None, sidecar
            continue
        assert made["slurm"]["job_id"] in jobs and made["slurm"]["node"], sidecar
        assert jobs[made["slurm"]["job_id"]][0] == rule
        assert made["slurm"]["partition"] == profile_value(rule, "slurm_partition")
    assert rules & LOCAL_RULES and rules - LOCAL_RULES


# ------------------------------------------------------------------ faults on the scheduler


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A local run of the fault config (model, vocabulary, the optimize run): the
    undisturbed reference, and with its run removed, where each fault starts."""
    workdir = tmp_path_factory.mktemp("prepared")
    config = write_config(workdir, fault_config())
    command = snakemake_command(
        workdir, *run_targets(), "--cores", "1", "--configfile", str(config)
    )
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def slurm_on(workdir: Path, *args: str, **rule_changes) -> list[str]:
    return slurm_command(workdir, workdir / "config.yaml", *run_targets(), *args, **rule_changes)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear in {seconds} s"
        time.sleep(0.5)


def queued_jobs(workdir: Path) -> list[str]:
    """This user's SLURM jobs that Snakemake's SLURM executor submitted from `workdir`
    (its jobs carry a `rule_...` comment and the workflow's working directory)."""
    listed = subprocess.run(
        ["squeue", "-h", "--me", "-o", "%i|%k|%Z"], capture_output=True, text=True, timeout=60
    )
    rows = (line.split("|", 2) for line in listed.stdout.splitlines() if line.count("|") >= 2)
    here = os.path.realpath(workdir)
    return [
        i
        for i, comment, folder in rows
        if comment.startswith("rule_") and os.path.realpath(folder) == here
    ]


def optimize_job(workdir: Path) -> str:
    (job,) = queued_jobs(workdir)
    return job


def assert_run_equals(workdir: Path, reference: Path) -> None:
    for name in TABLES:
        assert (workdir / RUN / name).read_bytes() == (reference / RUN / name).read_bytes(), name
    assert not (workdir / "results/checkpoints").exists() or not list(
        (workdir / "results/checkpoints").rglob("*.pt*")
    )


def one_line(result: subprocess.CompletedProcess, rule: str) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("inputspace [")]
    assert len(lines) == 1, result.stderr[-4000:]
    assert lines[0].startswith(f"inputspace [{rule}]:") and "Traceback" not in result.stderr
    return lines[0]


def test_a_cancelled_optimize_job_is_retried_from_its_checkpoint(prepared, tmp_path):
    workdir = copy_without_run(prepared, tmp_path)
    paused = tmp_path / "paused"  # the job is at step 30, its step-20 checkpoint written
    process = subprocess.Popen(
        slurm_on(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env("pause:advance:30", once=paused),
    )
    wait_for(paused, process)
    assert (workdir / CHECKPOINT).is_file()
    job = optimize_job(workdir)
    subprocess.run(["scancel", job], check=True)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert accounting([job])[job]["State"].startswith("CANCELLED")
    log = (workdir / OPTIMIZE_LOG).read_text()
    # SIGTERM let the paused step finish and saved step 31: nothing done was lost
    assert f"resumed from {CHECKPOINT} at step 31" in log, log[-2000:]
    assert_run_equals(workdir, prepared)


def test_a_request_no_node_can_satisfy_stops_at_once_with_one_line(prepared, tmp_path):
    workdir = copy_without_run(prepared, tmp_path)
    started = time.monotonic()
    result = run(slurm_on(workdir, optimize={"mem_mb": 10_000_000}), timeout=300)
    line = one_line(result, "optimize")
    assert "mem_mb=10000000" in line and "`set-resources: optimize: mem_mb`" in line, line
    assert "'gpu'" in line
    assert time.monotonic() - started < 120
    assert not queued_jobs(workdir)  # nothing left pending forever


def test_a_job_at_its_time_limit_stops_with_one_line_and_keeps_its_checkpoint(prepared, tmp_path):
    workdir = copy_without_run(prepared, tmp_path)
    # --retries 0: each attempt costs SLURM's shortest limit, a minute, and more until the
    # kill is seen; the retry after a kill is the cancelled job's test above
    command = slurm_on(workdir, "--retries", "0", optimize={"runtime": 1})
    result = run(command, env("pause:advance:30"), timeout=900)
    line = one_line(result, "optimize")
    assert "time limit" in line and "runtime=1 min" in line, line
    assert "`set-resources: optimize: runtime`" in line and "resumes from its checkpoint" in line
    assert (workdir / CHECKPOINT).is_file()  # kept for the rerun
    assert not (workdir / RUN).exists() or not list((workdir / RUN).iterdir())
    assert not list((workdir / "results").rglob("*.partial"))


def test_a_killed_snakemake_loses_nothing_its_checkpoints_kept(prepared, tmp_path):
    workdir = copy_without_run(prepared, tmp_path)
    paused = tmp_path / "paused"
    command = slurm_on(workdir)
    first = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env("pause:advance:30", once=paused),
    )
    wait_for(paused, first)
    orphan = optimize_job(workdir)
    first.send_signal(signal.SIGKILL)  # no clean-up at all: locks and a running job stay
    first.communicate()
    again = run(command, env("pause:advance:30", once=paused), timeout=900)  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"cancelled SLURM jobs {orphan}, left by pid {first.pid}" in again.stderr, again.stderr[
        -3000:
    ]
    assert accounting([orphan])[orphan]["State"].startswith("CANCELLED")
    log = (workdir / OPTIMIZE_LOG).read_text()
    assert f"resumed from {CHECKPOINT} at step 31" in log, log[-2000:]
    assert_run_equals(workdir, prepared)
