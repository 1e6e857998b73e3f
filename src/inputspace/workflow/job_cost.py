"""What a job cost, as its harness writes it on the last line of the rule's log: the
seconds from the process's start to the job's own work (Python, Snakemake's script
preamble, the imports), the seconds of that work, and the process's peak memory.
benchmarks/default_run.py reads these lines from every log of a run."""

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

PREFIX = "inputspace job cost: "


def process_age_s() -> float:
    """Seconds since this process started (by the kernel's clock, not Python's); 0 where
    /proc does not tell."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK"))


def peak_rss_mb() -> float:
    """The peak resident memory of this process and of the largest child it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # KiB on Linux


def cost_line(start_up_s: float, work_s: float) -> str:
    cost = {"start_up_s": round(start_up_s, 2), "work_s": round(work_s, 2)}
    return PREFIX + json.dumps({**cost, "peak_rss_mb": round(peak_rss_mb(), 1)})


def read_cost(log: Path) -> dict[str, Any] | None:
    """The cost line of a job's log, if it has one."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(PREFIX):
            return json.loads(line.removeprefix(PREFIX))
    return None
