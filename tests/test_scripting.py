"""The script harness: logs, one-line errors, all-or-nothing outputs."""

import os
import signal
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from inputspace.errors import ModelUnavailable
from inputspace.files import atomic_output
from inputspace.hashing import sha256_file
from inputspace.provenance import stamp
from inputspace.provenance.record import read
from inputspace.workflow import scripting


def test_atomic_output_success(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with atomic_output(final) as partial:
        assert partial == tmp_path / "sub" / "out.txt.partial"
        assert partial.parent.is_dir()
        partial.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done"
    assert not partial.exists()


def test_atomic_output_failure_leaves_nothing(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(final) as partial:
            partial.write_text("half")
            raise RuntimeError("boom")
    assert not final.exists()
    assert not partial.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_failure_keeps_the_previous_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(final) as partial:
            partial.write_text("new")
            raise RuntimeError("boom")
    assert final.read_text() == "old"
    assert not partial.exists()


def fake_snakemake(log, output=()):
    return types.SimpleNamespace(
        log=[str(log)],
        threads=1,
        rule="x",
        output=list(map(str, output)),
        input=[],
        params={"colour": "blue", "code": {"script": "scripts/x.py", "digest": "c0de"}},
        wildcards={"model": "m"},
        scriptdir=str(Path(log).parent / "scripts"),
        config={"models": {"m": {}}},
    )


def test_run_stamps_every_figure_a_job_writes_and_nothing_else(tmp_path):
    figure, table = tmp_path / "fig.png", tmp_path / "table.csv"

    def main(snakemake):
        Image.new("RGB", (8, 8)).save(figure)
        table.write_text("a\n1\n")

    scripting.run(main, fake_snakemake(tmp_path / "x.log", output=[figure, table]))
    record = stamp.embedded(figure)
    assert record["rule"] == "x" and record["config"] == {"colour": "blue"}
    assert record["code"] == {"script": "scripts/x.py", "digest": "c0de"}
    assert read(figure) == record and record["workflow_config"] == {"models": {"m": {}}}
    assert record["outputs"] == [{"path": str(table), "sha256": sha256_file(table)}]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fig.png",
        "fig.png.provenance.json",
        "table.csv",
        "x.log",
    ]


def test_run_sends_output_to_the_log(tmp_path, capsys):
    log = tmp_path / "logs" / "x.log"

    def main(snakemake):
        print("hello from main")
        print("to stderr", file=sys.stderr)

    scripting.run(main, fake_snakemake(log))
    text = log.read_text()
    assert "hello from main" in text
    assert "to stderr" in text
    captured = capsys.readouterr()
    assert "hello from main" not in captured.out


def test_the_log_ends_with_what_the_job_cost(tmp_path):
    import time

    from inputspace.workflow import job_cost

    log = tmp_path / "x.log"

    def main(snakemake):
        held = bytearray(64 * 1024 * 1024)  # 64 MiB, touched
        held[::4096] = b"x" * len(held[::4096])
        time.sleep(0.3)

    scripting.run(main, fake_snakemake(log))
    cost = job_cost.read_cost(log)
    assert log.read_text().splitlines()[-1].startswith(job_cost.PREFIX)
    assert 0.3 <= cost["work_s"] < 5 and cost["peak_rss_mb"] >= 64
    assert 0 < cost["start_up_s"] < 3600  # this test process's age
    assert job_cost.read_cost(tmp_path / "none.log") is None


def test_run_turns_inputspace_errors_into_exit_1(tmp_path):
    log = tmp_path / "x.log"

    def main(snakemake):
        print("started")
        raise ModelUnavailable("model 'm' is unavailable; fix it")

    with pytest.raises(SystemExit) as info:
        scripting.run(main, fake_snakemake(log))
    assert info.value.code == 1
    text = log.read_text()
    assert "started" in text
    assert "ERROR: model 'm' is unavailable; fix it" in text
    assert "Traceback" not in text


def test_run_lets_bugs_raise(tmp_path):
    def main(snakemake):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        scripting.run(main, fake_snakemake(tmp_path / "x.log"))


def test_sigterm_unwinds_the_job_leaves_no_partial_output_and_exits_143(tmp_path):
    """What SLURM's time limit or scancel sends first: the job stops at once, its
    `finally` blocks run (no half-written output), and the log says why."""
    log = tmp_path / "x.log"
    final = tmp_path / "out.txt"

    def main(snakemake):
        with atomic_output(final) as partial:
            partial.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            partial.write_text("never reached")

    with pytest.raises(SystemExit) as info:
        scripting.run(main, fake_snakemake(log))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # as it was before
    assert info.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == [log]
    assert "STOPPED: stopped by SIGTERM; no output written" in log.read_text()
