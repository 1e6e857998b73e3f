"""A rule's code digest: its script and the package modules it imports, by content."""

import shutil
from pathlib import Path

import pytest

from inputspace import codebase


@pytest.fixture
def tree(tmp_path):
    package = tmp_path / "src/inputspace"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "used.py").write_text("from inputspace import deeper\n\nX = 1\n")
    (package / "deeper.py").write_text("from . import leaf\n")
    (package / "leaf.py").write_text("def f():\n    return 1\n")
    (package / "unused.py").write_text("Y = 2\n")
    script = tmp_path / "scripts/rule.py"
    script.parent.mkdir()
    script.write_text("import json\nfrom inputspace import used\nfrom inputspace.errors import E\n")
    return script, package


def test_imports_are_followed_through_modules(tree):
    script, package = tree
    found = [path.name for path in codebase.imported_modules(script, package)]
    assert found == ["__init__.py", "deeper.py", "leaf.py", "used.py"]  # not unused, errors


def edited(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


@pytest.mark.parametrize(
    ("name", "old", "new", "counts"),
    [
        ("leaf.py", "return 1", "return 2", True),  # imported through two modules
        ("scripts/rule.py", "import json", "import os", True),
        ("unused.py", "Y = 2", "Y = 3", False),
        ("leaf.py", "def f():", "def f():  # a comment", False),
        ("leaf.py", "return 1", '"""A docstring."""\n    return 1', False),
        ("used.py", "X = 1", "X = (\n    1\n)", False),  # formatting
    ],
)
def test_what_changes_the_digest(tree, name, old, new, counts):
    script, package = tree
    before = codebase.digest(script, package)
    edited(script if name.startswith("scripts") else package / name, old, new)
    assert (codebase.digest(script, package) != before) is counts


def test_the_digest_does_not_depend_on_where_the_checkout_is(tree, tmp_path):
    script, package = tree
    other = tmp_path / "moved"
    shutil.copytree(tmp_path / "src", other / "src")
    shutil.copytree(tmp_path / "scripts", other / "scripts")
    assert codebase.digest(other / "scripts/rule.py", other / "src/inputspace") == (
        codebase.digest(script, package)
    )


def test_a_rules_code_names_its_script_from_the_workflow_folder(tree):
    script, package = tree
    root = package.parents[1]
    code = codebase.identity(script, package, root)
    assert code == {"script": "scripts/rule.py", "digest": codebase.digest(script, package)}
