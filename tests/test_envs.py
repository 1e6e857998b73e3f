"""requirements.txt and envs/inputspace.yaml pin the same versions."""

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


def test_requirements_and_conda_env_pin_the_same_versions():
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs/inputspace.yaml").read_text())
    pip_lists = [
        dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep
    ]
    assert len(pip_lists) == 1
    conda = pins(pip_lists[0])
    assert requirements, "requirements.txt pins nothing"
    assert conda == requirements


def test_scripts_and_rules_import_the_package_without_path_hacks():
    """Jobs import inputspace from PYTHONPATH, set once by the workflow (rules/common.smk)."""
    for path in [
        *(REPO / "scripts").glob("*.py"),
        *(REPO / "rules").glob("*.smk"),
        REPO / "Snakefile",
    ]:
        assert "sys.path.insert" not in path.read_text(), path
