"""Where a job ran, and what a scheduler's refusal or kill means: on Snakemake's own log
text, without a scheduler."""

import socket

from inputspace.provenance import place
from inputspace.workflow import diagnoses

RESOURCES = (
    "tmpdir=<TBD>, mem_mb=3000, mem=3 GB, slurm_partition=gpu, runtime=1, cpus_per_task=1, "
    "gpu=1, tasks_per_gpu=0"
)
REFUSAL = (
    "sbatch: error: Memory specification can not be satisfied\n"
    "sbatch: error: Batch job submission failed: Requested node configuration is not available"
)
ANNOUNCED = f"""\
[Thu Dec  3 06:56:34 2026]
rule optimize:
    input: results/models/tiny_llama, results/tiny_llama/vocab.parquet
    output: results/tiny_llama/runs/prompt_pairs/steps.parquet
    log: results/logs/optimize/tiny_llama_prompt_pairs.log
    jobid: 7
    wildcards: model=tiny_llama, experiment=prompt_pairs
    resources: {RESOURCES}
Shell command: None
Job 7 has been submitted with SLURM jobid 52 (log: /w/.snakemake/slurm_logs/rule_optimize/52.log).
"""
TIMEOUT = """\
Error in rule optimize:
    message: SLURM-job '52' failed, SLURM status is: 'TIMEOUT'. Reason: Step 0:
        TIMEOUT.
    jobid: 7
    input: results/models/tiny_llama
    log: results/logs/optimize/tiny_llama_prompt_pairs.log (check log file(s) for error details)
    external_jobid: 52

"""
REFUSED = f"""\
Error in rule optimize:
    message: SLURM sbatch failed. The error message was '{REFUSAL}'.
    sbatch call:
        sbatch --parsable --job-name x --mem 10000000 -p gpu
    jobid: 7
    log: results/logs/optimize/tiny_llama_prompt_pairs.log (check log file(s) for error details)

"""


def test_where_made_names_the_slurm_job_only_inside_one():
    inside = {
        "SLURM_JOB_ID": "52",
        "SLURMD_NODENAME": "node7",
        "SLURM_JOB_PARTITION": "gpu",
        "SLURM_CLUSTER_NAME": "hpc",
    }
    made = place.where_made(inside)
    assert made["host"] == socket.gethostname()
    assert made["slurm"] == {"job_id": "52", "node": "node7", "partition": "gpu", "cluster": "hpc"}
    assert place.where_made({"SLURMD_NODENAME": "node7"})["slurm"] is None


def test_announced_jobs_reads_rule_and_resources():
    rule, resources = diagnoses.announced_jobs(ANNOUNCED)["7"]
    assert rule == "optimize"
    assert resources["mem_mb"] == "3000" and resources["runtime"] == "1"
    assert resources["slurm_partition"] == "gpu" and resources["gpu"] == "1"


def test_a_timeout_is_one_line_with_the_limit_and_the_key_to_raise():
    second_attempt = TIMEOUT.replace("'52'", "'53'")
    (line,) = diagnoses.diagnoses(
        ANNOUNCED + TIMEOUT + second_attempt, frozenset({"optimize"}), "P"
    )
    assert line == (
        "inputspace [optimize]: SLURM stopped its SLURM job at its time limit (runtime=1 min); "
        "raise `set-resources: optimize: runtime` (minutes) in P and run the same command "
        "again (it resumes from its checkpoint)"
    )


def test_a_refused_submission_names_the_partition_and_the_resource():
    (line,) = diagnoses.diagnoses(ANNOUNCED + REFUSED, frozenset(), "P")
    assert line.startswith("inputspace [optimize]: SLURM refused the job: no node of partition")
    assert "'gpu'" in line and "memory" in line and "(mem_mb=3000)" in line
    assert "`set-resources: optimize: mem_mb` in P" in line and "checkpoint" not in line


def test_a_cancelled_job_and_other_errors():
    cancelled = TIMEOUT.replace("TIMEOUT", "CANCELLED")
    (line,) = diagnoses.diagnoses(ANNOUNCED + cancelled, frozenset(), "P")
    assert "ended as CANCELLED" in line and "run the same command again" in line
    plain = "Error in rule optimize:\n    message: something else\n    jobid: 7\n"
    assert diagnoses.diagnoses(ANNOUNCED + plain) == []
    assert diagnoses.diagnoses("no errors at all\n") == []


# Snakemake 9.27's log of a group job SLURM refused (profiles/slurm's preparation group on
# the test node with vocab_distances asking for 10 TB): no reason anywhere
GROUP_REFUSED = """\
[Sat Dec  5 00:24:32 2026]
    message: Error in group prepare
    jobs:
        rule fit_ellipse:
            jobid: 4
            output: results/tiny/ellipse.safetensors, results/tiny/ellipse_spectrum.parquet
            log: results/logs/fit_ellipse/tiny.log (check log file(s) for error details)
        rule vocab_distances:
            jobid: 0
            output: results/tiny/vocab_distances.parquet
            log: results/logs/vocab_distances/tiny.log (check log file(s) for error details)
        rule prepare_model:
            jobid: 2
            output: results/models/tiny
            log: results/logs/prepare_model/tiny.log (check log file(s) for error details)
    [Sat Dec  5 00:24:32 2026]
    Error in rule fit_ellipse:
        message: None
        jobid: 4
        input: results/tiny/vocab.parquet, results/tiny/vocab.safetensors
        log: results/logs/fit_ellipse/tiny.log (check log file(s) for error details)
    [Sat Dec  5 00:24:32 2026]
    Error in rule vocab_distances:
        message: None
        jobid: 0
        log: results/logs/vocab_distances/tiny.log (check log file(s) for error details)
"""


def test_a_failed_group_job_is_one_line_naming_its_rules_and_how_to_see_why():
    killed = GROUP_REFUSED.replace(
        "    jobs:\n", "    log: /w/.snakemake/slurm_logs/group_prepare/61.log\n    jobs:\n", 1
    )
    for log in (GROUP_REFUSED + GROUP_REFUSED, killed):  # a retried refusal; a killed job
        (line,) = diagnoses.diagnoses(ANNOUNCED + log, frozenset(), "P")
        assert line.startswith(
            "inputspace [group prepare: fit_ellipse, prepare_model, vocab_distances]: "
        )
        assert "take `groups:` out of P and run the same command again" in line
    assert diagnoses.failed_jobs(GROUP_REFUSED) == []  # its rules' blocks say nothing


def test_describe_place_names_the_slurm_job_when_there_was_one():
    slurm = {"job_id": "52", "node": "n7", "partition": "gpu", "cluster": "hpc"}
    assert place.describe_place({"host": "n7", "slurm": slurm}) == (
        "n7 (SLURM job 52 on node n7, partition gpu, cluster hpc)"
    )
    assert place.describe_place({"host": "laptop", "slurm": None}) == "laptop"
