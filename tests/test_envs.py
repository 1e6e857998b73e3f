"""The jobs' conda env (envs/inputspace.yaml) and the tools' (envs/development.yaml)
together pin exactly requirements.txt."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$")


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"not an exact pin: {line!r}"
        name = re.sub(r"[-_.]+", "-", match[1]).lower()
        assert name not in found, f"{name} pinned twice"
        found[name] = match[2]
    return found


def conda_pins(name: str) -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / name).read_text())
    pip_lists = [
        dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep
    ]
    assert len(pip_lists) == 1
    return pins(pip_lists[0])


TOOLS = ("snakemake", "snakemake-executor-plugin-", "pytest", "ruff", "snakefmt", "black")


def test_the_two_conda_envs_together_pin_requirements_txt_exactly():
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    runtime, development = conda_pins("inputspace.yaml"), conda_pins("development.yaml")
    assert requirements, "requirements.txt pins nothing"
    assert not runtime.keys() & development.keys()
    assert {**runtime, **development} == requirements


def test_the_jobs_env_holds_no_workflow_or_development_tool():
    runtime = conda_pins("inputspace.yaml")
    assert not [name for name in runtime if name.startswith(TOOLS)]
    assert {"torch", "transformers", "pandas", "matplotlib"} <= runtime.keys()
