"""The script harness: logs, one-line errors, all-or-nothing outputs."""

import sys
import types

import pytest

from inputspace import scripting
from inputspace.errors import InputspaceError, ModelUnavailable

try:  # atomic_output moved from inputspace.scripting to inputspace.files
    from inputspace.files import atomic_output
except ImportError:
    atomic_output = scripting.atomic_output


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


def fake_snakemake(log):
    return types.SimpleNamespace(log=[str(log)], threads=1, rule="x")


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
    assert issubclass(ModelUnavailable, InputspaceError)
