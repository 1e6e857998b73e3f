"""Each piece of Snakemake that inputspace uses beyond its public interface
(inputspace.provenance.snakemake_internals), exercised against the installed Snakemake on a
two-rule workflow: these fail on the release that changes one, naming which."""

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from inputspace.provenance import snakemake_internals

SNAKEFILE = """
import sys
sys.path.insert(0, {src!r})
from inputspace.provenance import snakemake_internals

rule made:
    output: "out/" + "deep-folder/" * 20 + "made.txt"
    shell: "echo {{params.given}} > {{output}}"

rule slow:
    output: "out/slow.txt"
    shell: "sleep 60; touch {{output}}"

snakemake_internals.set_params(workflow.get_rule("made"), given="set after parsing")
"""


def snakemake(workdir: Path, *args: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
    return subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


@pytest.fixture
def workdir(tmp_path):
    src = str(Path(snakemake_internals.__file__).parents[2])
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(src=src))
    return tmp_path


def test_the_tested_release_is_the_installed_one():
    assert version("snakemake") == snakemake_internals.TESTED, (
        "Snakemake is not the release inputspace.provenance.snakemake_internals was tested "
        "with: run this file's tests, then set TESTED"
    )


def test_records_are_where_metadata_path_says_and_set_params_reach_them(workdir):
    output = "out/" + "deep-folder/" * 20 + "made.txt"
    done = snakemake(workdir, output)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err[-2000:]
    assert (workdir / output).read_text() == "set after parsing\n"
    record = snakemake_internals.metadata_path(workdir, output)
    assert record.is_file() and len(record.relative_to(workdir).parts) > 3  # split name
    assert snakemake_internals.metadata_files(workdir) == {output: record}
    assert json.loads(record.read_text())["params"] == ["'set after parsing'"]


def test_locks_are_where_lock_files_looks_and_unlock_frees_them(workdir):
    slow = snakemake(workdir, "out/slow.txt", start_new_session=True)
    deadline = time.monotonic() + 60
    while not snakemake_internals.lock_files(workdir):
        assert slow.poll() is None and time.monotonic() < deadline, slow.communicate()[1]
        time.sleep(0.2)
    held = "".join(path.read_text() for path in snakemake_internals.lock_files(workdir))
    assert "out/slow.txt" in held
    os.killpg(slow.pid, signal.SIGKILL)  # killed outright: the locks stay
    slow.communicate()
    refused = snakemake(workdir, "out/slow.txt", "--touch")  # --touch locks, as a run does
    assert refused.wait(60) != 0 and "cannot be locked" in refused.communicate()[1]
    snakemake_internals.unlock(workdir)
    assert snakemake_internals.lock_files(workdir) == []
    # a run unlocks while it builds its jobs, after Snakemake made the folder it locks in
    assert (workdir / snakemake_internals.LOCKS).is_dir()
    real = snakemake(workdir, "out/slow.txt", "--touch")
    assert real.wait(60) == 0, real.communicate()[1][-2000:]


def test_the_slurm_executor_names_its_run_and_the_scheduler_keeps_its_executor():
    from snakemake.scheduling.job_scheduler import JobScheduler
    from snakemake_executor_plugin_slurm import Executor

    assert "self._executor" in inspect.getsource(JobScheduler.__init__)
    assert "self.run_uuid" in inspect.getsource(Executor)
    assert "run_uuid" in inspect.getsource(Executor.run_job)  # each job's name
