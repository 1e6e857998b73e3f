"""The README's two commands on a finished checkout moved with `mv`, its .venv inside: the
environment names the old path, so setup.sh makes it again; then the workflow plans
nothing and the tests run."""

import hashlib
import shutil
import subprocess
import sys

import pytest
from helpers import SMALL_CONFIG

pytestmark = pytest.mark.slow  # makes an environment: minutes


def bash(command: str, cwd, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def an_environment_made_at(checkout) -> None:
    """What setup.sh leaves in `checkout`, as far as moving it matters: a virtual
    environment whose scripts name their interpreter by this path, and setup.sh's stamp
    saying it is up to date (the package installs it would hold are not needed to show
    that a moved one is found out)."""
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin/snakemake").write_text(f"#!{venv}/bin/python\nimport snakemake\n")
    (venv / "bin/snakemake").chmod(0o755)
    wanted = b"".join(
        (checkout / name).read_bytes() for name in ("requirements.lock", "pyproject.toml")
    )
    wanted += f"{checkout.resolve()}/.venv\n".encode()
    (venv / ".inputspace-setup").write_text(hashlib.sha256(wanted).hexdigest() + "\n")
    assert bash("./setup.sh", checkout).returncode == 0  # up to date where it was made


def test_the_readme_commands_work_after_the_checkout_is_moved(small_run, tmp_path):
    made = tmp_path / "made-here"
    shutil.copytree(small_run, made, symlinks=True)
    an_environment_made_at(made)
    moved = tmp_path / "moved-there"
    assert subprocess.run(["mv", str(made), str(moved)]).returncode == 0

    first = bash(
        f"./setup.sh && .venv/bin/snakemake --cores all --configfile {SMALL_CONFIG}", moved
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "was made for another path or no longer runs; making it again" in first.stderr
    assert "Nothing to be done" in first.stdout + first.stderr
    second = bash(
        "./setup.sh && .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_record.py",
        moved,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert "setup.sh" not in second.stderr  # already made: nothing to do
