"""Each rule asks for the memory its jobs use: `resources: mem_mb` at least 1.5 and at
most 3 times the largest peak RSS its jobs reached in the measured default run
(benchmarks/default_run.json, written by benchmarks/default_run.py), so that neither a
local run under a memory limit nor a cluster job is killed, and none holds a node's
memory it does not use."""

import json
import re

import pytest
from helpers import REPO, rule_blocks

MEASURED = REPO / "benchmarks/default_run.json"
MEM_MB = re.compile(r"^\s+mem_mb=(\d+),", re.MULTILINE)


def requested_mem_mb() -> dict[str, int]:
    """Each rule's mem_mb as its rule file states it."""
    found = {name: MEM_MB.search(block) for name, block in rule_blocks().items()}
    return {name: int(mem[1]) for name, mem in found.items() if mem}


def measured_peaks() -> dict[str, float]:
    peaks: dict[str, float] = {}
    for job in json.loads(MEASURED.read_text())["jobs"]:
        peaks[job["rule"]] = max(peaks.get(job["rule"], 0.0), job["peak_rss_mb"])
    return peaks


def test_the_rule_files_are_read():
    requests = requested_mem_mb()
    assert {"optimize", "landscape", "prepare_model", "summary"} <= set(requests)


def test_every_measured_rule_states_its_memory():
    assert set(measured_peaks()) <= set(requested_mem_mb())


@pytest.mark.parametrize("rule", sorted(measured_peaks()))
def test_a_rule_asks_for_1_5_to_3_times_its_measured_peak(rule):
    peak, asked = measured_peaks()[rule], requested_mem_mb()[rule]
    assert 1.5 * peak <= asked <= 3 * peak, (
        f"{rule}: mem_mb {asked} against a measured peak of {peak:.0f} MB; "
        f"ask for {1.5 * peak:.0f}-{3 * peak:.0f}"
    )
