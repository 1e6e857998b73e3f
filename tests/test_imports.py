"""Jobs import what they use. A figure, table or summary job (the rules that run on the
submitting machine) imports neither torch nor transformers; a job that runs a model
imports torch in its script's process, and the Snakemake around every job, which reads
the workflow, imports neither (so a SLURM job loads them once, not in each of its three
Python processes)."""

import ast
import json
import re
import subprocess
import sys

import pytest
from helpers import LOCAL_RULES, REPO, SLURM_RULES, rule_blocks, snakemake_command

HEAVY = ("torch", "transformers")


def rule_scripts() -> dict[str, tuple[str, bool]]:
    """Every rule with a script: rule -> (script path, whether it is a local rule)."""
    found = {}
    for name, block in rule_blocks().items():
        script = re.search(r'^    script:\n\s+"\.\./(scripts/\w+\.py)"', block, re.MULTILINE)
        local = re.search(r"^    localrule: True$", block, re.MULTILINE) is not None
        if script:
            found[name] = (script[1], local)
    return found


def heavy_imports(*scripts: str) -> list[str]:
    """Which of HEAVY a fresh Python holds after running the imports of `scripts`."""
    imports = [
        node
        for script in scripts
        for node in ast.parse((REPO / script).read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    probe = ast.unparse(ast.Module(imports, type_ignores=[])) + (
        f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_the_local_rules_are_exactly_the_light_ones():
    scripts = rule_scripts()
    assert {rule for rule, (_, local) in scripts.items() if local} == LOCAL_RULES
    assert {rule for rule, (_, local) in scripts.items() if not local} == SLURM_RULES


def test_figure_table_and_summary_jobs_import_neither_torch_nor_transformers():
    """All their scripts' imports in one process: none of them loads either."""
    scripts = rule_scripts()
    assert heavy_imports(*(scripts[rule][0] for rule in sorted(LOCAL_RULES))) == []


@pytest.mark.slow  # a fresh torch and transformers each: seconds
@pytest.mark.parametrize("rule", sorted(SLURM_RULES))
def test_a_job_that_needs_a_model_imports_torch_in_its_script(rule):
    assert "torch" in heavy_imports(rule_scripts()[rule][0])


def test_the_snakemake_around_each_job_imports_neither(tmp_path):
    """Snakemake reading the workflow (as it does in every job, twice in a SLURM job)."""
    command = snakemake_command(tmp_path, "-n", "--configfile", str(REPO / "configs/tiny.yaml"))
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "snakemake.workflow" in imported and "inputspace.workflow.config" in imported
    assert not {module for module in imported if module.split(".")[0] in HEAVY}
