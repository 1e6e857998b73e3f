"""The default run's budget, measured: run the workflow from a clean results folder and
print its wall time, its peak memory (the whole run's, sampled, and each job's), and each
job's start-up against its work (from the cost line the harness writes at the end of every
job's log, inputspace.workflow.job_cost).

    .venv/bin/python benchmarks/default_run.py [--workdir DIR] [--configfile F] [--json OUT]

The work folder (a new temporary one by default) must be empty or absent: the run starts
from nothing, models included. Take it on an idle machine; the header says the commit,
the machine and its load before the run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inputspace.provenance import history  # noqa: E402
from inputspace.workflow import job_cost  # noqa: E402


def tree_rss_mb(root: int) -> float:
    """The resident memory of a process and all its descendants, now."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields[21])
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_workflow(workdir: Path, configfile: Path | None) -> tuple[float, float, int]:
    """(wall seconds, peak MB of the whole process tree, exit status)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["-d", str(workdir), "--cores", "all"]
    if configfile:
        command += ["--configfile", str(configfile)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = open(workdir / "benchmark-snakemake.log", "w")
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = process.wait()
    wall = time.monotonic() - started
    sampler.join()
    return wall, peak[0], status


def job_rows(workdir: Path) -> list[dict]:
    rows = []
    for log in sorted((workdir / "results/logs").rglob("*.log")):
        cost = job_cost.read_cost(log)
        note = history.read_note(workdir, [str(log.relative_to(workdir))]) or {}
        if cost:
            wildcards = ",".join(f"{v}" for v in (note.get("wildcards") or {}).values())
            rows.append({"rule": note.get("rule", log.parent.name), "wildcards": wildcards, **cost})
    return sorted(rows, key=lambda row: -(row["start_up_s"] + row["work_s"]))


def header() -> dict:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "commit": commit,
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}",
        "load_before": os.getloadavg()[0],
    }


def table(rows: list[dict]) -> str:
    lines = ["| job | start-up s | work s | peak RSS MB |", "| --- | ---: | ---: | ---: |"]
    for row in rows:
        name = f"{row['rule']} ({row['wildcards']})" if row["wildcards"] else row["rule"]
        lines.append(
            f"| {name} | {row['start_up_s']:.1f} | {row['work_s']:.1f} | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--configfile", type=Path)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="inputspace-default-run-"))
    if workdir.exists() and any(workdir.iterdir()):
        sys.exit(f"default_run: {workdir} is not empty; give a new or empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    about = header()
    wall, peak, status = run_workflow(workdir, args.configfile)
    rows = job_rows(workdir)
    print(f"commit {about['commit']} on {about['machine']}; load before {about['load_before']:.2f}")
    print(
        f"wall {wall / 60:.1f} min, peak RSS of the whole run {peak / 1024:.2f} GB, exit {status}"
    )
    busiest = max(rows, key=lambda row: row["peak_rss_mb"], default=None)
    if busiest:
        print(f"largest job: {busiest['rule']} {busiest['peak_rss_mb']:.0f} MB")
    total_start = sum(row["start_up_s"] for row in rows)
    total_work = sum(row["work_s"] for row in rows)
    print(f"{len(rows)} jobs: start-up {total_start:.0f} s, work {total_work:.0f} s in all")
    print(table(rows))
    if args.json:
        measured = {**about, "wall_s": wall, "peak_rss_mb": peak, "status": status, "jobs": rows}
        args.json.write_text(json.dumps(measured, indent=1))
    sys.exit(status)


if __name__ == "__main__":
    main()
