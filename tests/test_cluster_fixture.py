"""The one-node SLURM fixture (tests/cluster/one-node-slurm.sh) cannot harm the machine it
runs on: it refuses a /etc/slurm it did not write, keeps what it replaces, and stops only
the daemons it started. Run under ONE_NODE_SLURM_ROOT (a stand-in for /) with stand-in
processes: no SLURM, munge or MariaDB is needed, and nothing outside tmp_path is touched.
"""

import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests/cluster/one-node-slurm.sh"
FLAG = "--replace-foreign-config"
SITE_CONFIG = "ClusterName=site\nSlurmctldHost=head01\n"

pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="the fixture is a bash script")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A stand-in for /, with a stand-in `slurmd -C` on PATH (the node's hardware)."""
    (tmp_path / "root").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slurmd = bin_dir / "slurmd"
    slurmd.write_text(
        "#!/bin/sh\necho 'NodeName=stand-in CPUs=2 Boards=1 SocketsPerBoard=1 "
        "CoresPerSocket=2 ThreadsPerCore=1 RealMemory=4000'\n"
    )
    slurmd.chmod(0o755)
    return tmp_path / "root"


def fixture(root: Path, *args: str) -> subprocess.CompletedProcess:
    path = f"{root.parent / 'bin'}{os.pathsep}{os.environ['PATH']}"
    environ = {**os.environ, "ONE_NODE_SLURM_ROOT": str(root), "PATH": path}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ, timeout=60
    )


def state(root: Path) -> Path:
    return root / "var/lib/inputspace-slurm"


def site_etc(root: Path) -> Path:
    """A /etc/slurm holding a real site's config (and a plug-in config beside it)."""
    etc = root / "etc/slurm"
    (etc / "plugstack.conf.d").mkdir(parents=True)
    (etc / "slurm.conf").write_text(SITE_CONFIG)
    (etc / "plugstack.conf.d/site.conf").write_text("optional /site/spank.so\n")
    return etc


@pytest.mark.parametrize("action", ["up", "configure"])
def test_it_refuses_a_config_it_did_not_write_and_changes_nothing(root, action):
    etc = site_etc(root)
    done = fixture(root, action)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{action} {FLAG}" in lines[0] and str(etc / "slurm.conf") in lines[0], lines[0]
    assert (etc / "slurm.conf").read_text() == SITE_CONFIG
    assert sorted(p.name for p in etc.rglob("*")) == ["plugstack.conf.d", "site.conf", "slurm.conf"]
    assert not state(root).exists()  # no backup, no password, nothing started


def test_with_the_flag_it_keeps_what_it_replaces_then_claims_only_its_own_files(root):
    etc = site_etc(root)
    done = fixture(root, "configure", FLAG)
    assert done.returncode == 0, done.stderr
    (backup,) = (state(root) / "backup").iterdir()
    assert (backup / "slurm.conf").read_text() == SITE_CONFIG
    assert (backup / "plugstack.conf.d/site.conf").is_file()
    assert not (etc / "plugstack.conf.d/site.conf").exists()  # the site's plug-ins are out
    assert "ClusterName=inputspace" in (etc / "slurm.conf").read_text()

    again = fixture(root, "configure")  # its own files now: no flag needed, no new backup
    assert again.returncode == 0, again.stderr
    assert len(list((state(root) / "backup").iterdir())) == 1

    with open(etc / "slurm.conf", "a") as edited:  # someone edits it: no longer its own
        edited.write("MaxJobCount=5\n")
    refused = fixture(root, "configure")
    assert refused.returncode != 0 and FLAG in refused.stderr
    assert (etc / "slurm.conf").read_text().endswith("MaxJobCount=5\n")


def test_the_database_password_is_made_at_first_start_readable_by_root_only(root, tmp_path):
    assert fixture(root, "configure").returncode == 0
    password_file = state(root) / "db-password"
    password = password_file.read_text()
    assert len(password) >= 24 and password.isalnum()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    dbd = root / "etc/slurm/slurmdbd.conf"
    assert f"StoragePass={password}\n" in dbd.read_text()
    assert stat.S_IMODE(dbd.stat().st_mode) == 0o600
    assert fixture(root, "configure").returncode == 0
    assert password_file.read_text() == password  # kept, not made again

    other = tmp_path / "other_root"
    other.mkdir()
    assert fixture(other, "configure").returncode == 0
    assert (state(other) / "db-password").read_text() != password  # generated, not shipped
    assert password not in SCRIPT.read_text()


# ------------------------------------------------------------------ down


def stand_in(folder: Path, name: str) -> subprocess.Popen:
    """A process whose name (/proc/PID/comm) is `name`: a copy of sleep, reaped as soon
    as it ends (a zombie would still answer `kill -0`)."""
    binary = folder / name
    if not binary.exists():
        shutil.copy(shutil.which("sleep"), binary)
    process = subprocess.Popen([str(binary), "300"])
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def pid_file(path: Path, process: subprocess.Popen) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{process.pid}\n")


def running(process: subprocess.Popen) -> bool:
    return Path(f"/proc/{process.pid}").exists()


def ends(process: subprocess.Popen, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while running(process) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not running(process)


@pytest.fixture
def stand_ins(tmp_path):
    folder = tmp_path / "stand_ins"
    folder.mkdir()
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        started.append(stand_in(folder, name))
        return started[-1]

    yield start
    for process in started:
        if running(process):
            process.kill()


def test_down_stops_its_own_daemons_and_leaves_every_other_running(root, stand_ins):
    run = root / "run"
    ours = {
        "slurmctld": run / "inputspace-slurm/slurmctld.pid",
        "munged": run / "inputspace-slurm/munge/munged.pid",
        "mariadbd": run / "inputspace-slurm/mysqld/mariadbd.pid",
    }
    theirs = {  # the system's own daemons, at the pid files their packages use
        "munged": run / "munge/munged.pid",
        "mariadbd": run / "mysqld/mysqld.pid",
        "slurmd": run / "slurmd.pid",
    }
    mine = {name: stand_ins(name) for name in ours}
    system = {name: stand_ins(name) for name in theirs}
    for name, path in ours.items():
        pid_file(path, mine[name])
    for name, path in theirs.items():
        pid_file(path, system[name])
    reused = stand_ins("sleep")  # its slurmd is gone and another program got the pid
    pid_file(run / "inputspace-slurm/slurmd.pid", reused)

    done = fixture(root, "down")
    assert done.returncode == 0, done.stderr
    assert all(ends(process) for process in mine.values())
    assert all(running(process) for process in system.values()), theirs
    assert running(reused)

    status = fixture(root, "status")
    assert "slurmctld: stopped" in status.stdout and "munged: stopped" in status.stdout
