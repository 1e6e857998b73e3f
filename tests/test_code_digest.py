"""A rule's code and libraries: its script, the package modules that compute its outputs
(by content, through dotted names, relative imports and subpackages), and the installed
versions of what they import."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from inputspace.provenance import code_digest


@pytest.fixture
def tree(tmp_path):
    package = tmp_path / "src/inputspace"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "used.py").write_text("from inputspace import deeper\n\nX = 1\n")
    (package / "deeper.py").write_text(
        "from . import leaf\nfrom .sub import inner\n\nY = leaf.f()\n"
    )
    (package / "leaf.py").write_text("def f():\n    return 1\n")
    (package / "sub/__init__.py").write_text('"""A subpackage."""\n')
    (package / "sub/inner.py").write_text("from .. import leaf\nimport inputspace.sub.far\n")
    (package / "sub/far.py").write_text("import yaml\n\nZ = 3\n")
    (package / "unused.py").write_text("Y = 2\n")
    (package / "workflow").mkdir()
    (package / "workflow/__init__.py").write_text("")
    (package / "workflow/scripting.py").write_text(
        "from inputspace import records\n"
    )  # the harness
    (package / "records.py").write_text("R = 1\n")
    (package / "errors.py").write_text("class E(Exception):\n    pass\n")
    script = tmp_path / "scripts/rule.py"
    script.parent.mkdir()
    script.write_text(
        "import json\nfrom inputspace import used\nfrom inputspace.workflow import scripting\n"
        "from inputspace.errors import E\n"
    )
    return script, package


def names(script, package):
    return [
        p.relative_to(package).as_posix() for p in code_digest.imported_modules(script, package)
    ]


def test_imports_are_followed_through_modules_subpackages_and_relative_imports(tree):
    script, package = tree
    assert names(script, package) == [
        "__init__.py",
        "deeper.py",
        "leaf.py",
        "sub/__init__.py",
        "sub/far.py",
        "sub/inner.py",
        "used.py",
        "workflow/__init__.py",
    ]  # not unused, nor the harness (scripting, errors) or what only it imports (records)


def test_an_import_of_no_module_of_the_package_fails_loudly(tree):
    script, package = tree
    (package / "leaf.py").write_text("from inputspace.gone import f\n")
    with pytest.raises(code_digest.UnresolvedImport, match="imports inputspace.gone, which is no"):
        code_digest.digest(script, package)


def test_a_name_a_module_defines_is_no_module_to_follow(tree):
    script, package = tree
    (package / "leaf.py").write_text("from inputspace.deeper import leaf as again\n")
    assert "deeper.py" in names(script, package)


def edited(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("name", "old", "new", "counts"),
    [
        ("leaf.py", "return 1", "return 2", True),  # imported through two modules
        ("sub/far.py", "Z = 3", "Z = 4", True),  # in a subpackage, by dotted name
        ("scripts/rule.py", "import json", "import os", True),
        ("unused.py", "Y = 2", "Y = 3", False),
        ("records.py", "R = 1", "R = 2", False),  # reached through the harness only
        ("workflow/scripting.py", "\n", "\nX = 1\n", False),  # the harness
        ("errors.py", "pass", "code = 2", False),  # error types and wording
        ("leaf.py", "def f():", "def f():  # a comment", False),
        ("leaf.py", "return 1", '"""A docstring."""\n    return 1', False),
        ("used.py", "X = 1", "X = (\n    1\n)", False),  # formatting
        ("leaf.py", "return 1", "raise ValueError(f'no {1}')", True),  # raising at all
    ],
)
def test_what_changes_the_digest(tree, name, old, new, counts):
    script, package = tree
    before = code_digest.digest(script, package)
    edited(script if name.startswith("scripts") else package / name, old, new)
    assert (code_digest.digest(script, package) != before) is counts
    code_digest._parsed.cache_clear()  # as the next Snakemake process would see it
    code_digest._digested.cache_clear()
    assert (code_digest.digest(script, package) != before) is counts


def with_harness_effects(package: Path) -> None:
    """The harness's thread limit and figure stamping, as modules of the fake package."""
    (package / "workflow/threads.py").write_text("def limit_threads(n):\n    return n\n")
    (package / "provenance").mkdir()
    (package / "provenance/__init__.py").write_text("")
    (package / "provenance/stamp.py").write_text("from inputspace import records\n\nS = 1\n")


@pytest.mark.parametrize(
    ("imports", "outputs", "edited_module", "reruns"),
    [
        ("import torch\n", ["results/t.parquet"], "workflow/threads.py", True),
        ("import pandas\n", ["results/t.parquet"], "workflow/threads.py", False),
        ("import pandas\n", ["results/f.PNG", "results/f.csv"], "provenance/stamp.py", True),
        ("import pandas\n", ["results/f.pdf"], "records.py", True),  # what stamping imports
        ("import torch\n", ["results/t.parquet"], "provenance/stamp.py", False),
    ],
)
def test_the_harness_counts_where_it_shapes_outputs(tree, imports, outputs, edited_module, reruns):
    """Torch's thread limit counts for a rule whose code imports torch, the stamping for a
    rule that makes figures; neither for the others."""
    script, package = tree
    with_harness_effects(package)
    script.write_text(imports + script.read_text())
    root = script.parents[1]
    before = code_digest.identity(script, package, root, outputs)
    path = package / edited_module
    path.write_text(path.read_text() + "\nCHANGED = True\n")
    assert (code_digest.identity(script, package, root, outputs) != before) is reruns


def test_the_wording_of_errors_and_warnings_is_not_code(tree):
    script, package = tree
    leaf = package / "leaf.py"
    leaf.write_text(
        "import warnings\n\ndef f():\n    warnings.warn('careful')\n    raise E('bad')\n"
    )
    before = code_digest.digest(script, package)
    leaf.write_text(
        "import warnings\n\ndef f():\n    warnings.warn(f'take care: {1}', UserWarning)\n"
        "    raise E('worse, fix x') from None\n"
    )
    assert code_digest.digest(script, package) == before
    leaf.write_text(
        "import warnings\n\ndef f():\n    warnings.warn('careful')\n    raise F('bad')\n"
    )
    assert code_digest.digest(script, package) != before  # another error type


def test_moving_a_module_into_a_subpackage_is_no_change(tree):
    script, package = tree
    before = code_digest.digest(script, package)
    (package / "moved").mkdir()
    (package / "moved/__init__.py").write_text('"""Where leaf lives now."""\n')
    shutil.move(package / "leaf.py", package / "moved/leaf.py")
    edited(package / "deeper.py", "from . import leaf", "from inputspace.moved import leaf")
    edited(package / "sub/inner.py", "from .. import leaf", "from ..moved import leaf")
    assert "moved/leaf.py" in names(script, package)
    assert code_digest.digest(script, package) == before


def test_the_digest_does_not_depend_on_where_the_checkout_is(tree, tmp_path):
    script, package = tree
    other = tmp_path / "moved"
    shutil.copytree(tmp_path / "src", other / "src")
    shutil.copytree(tmp_path / "scripts", other / "scripts")
    assert code_digest.digest(other / "scripts/rule.py", other / "src/inputspace") == (
        code_digest.digest(script, package)
    )


def test_a_rules_code_names_its_script_from_the_workflow_folder(tree):
    script, package = tree
    root = package.parents[1]
    code = code_digest.identity(script, package, root)
    assert code == {"script": "scripts/rule.py", "digest": code_digest.digest(script, package)}


# ------------------------------------------------------------------ libraries


def test_the_libraries_are_what_the_code_imports_and_what_those_require(tree, tmp_path):
    script, package = tree
    assert code_digest.third_party(script, package) == {"yaml"}  # json: the standard library
    edited(script, "import json", "import matplotlib.pyplot")
    found = code_digest.libraries(script, package, code_digest.Environment())
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert found["pyyaml"] and found["matplotlib"]
    assert {"pillow", "numpy", "cycler", "fonttools"} <= found.keys()  # matplotlib requires
    assert "torch" not in found and "setuptools" not in found and "pytest" not in found
    assert list(found)[1:] == sorted(list(found)[1:])


def test_the_installed_distributions_are_remembered_until_one_changes(tmp_path, monkeypatch):
    cache = tmp_path / "environment.json"
    first = code_digest.Environment(cache).versions(["yaml"])
    assert cache.is_file() and first == {
        "pyyaml": code_digest.installed_versions(["pyyaml"])["pyyaml"]
    }
    site = tmp_path / "site"
    (site / "fake-1.0.dist-info").mkdir(parents=True)
    (site / "fake-1.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n"
    )
    (site / "fake-1.0.dist-info/top_level.txt").write_text("fake\n")
    (site / "fake-1.0.dist-info/RECORD").write_text("fake/__init__.py,,\n")
    monkeypatch.syspath_prepend(str(site))
    assert code_digest.Environment(cache).versions(["fake"]) == {"fake": "1.0"}  # read again
    assert code_digest.installed_versions(["fake", "not-installed-here"]) == {
        "fake": "1.0",
        "not-installed-here": None,
    }


def test_a_module_run_as_python_m_is_a_library_of_the_code(tree):
    script, package = tree
    edited(package / "leaf.py", "return 1", 'return [sys.executable, "-m", "snakemake", "-n"]')
    assert "snakemake" in code_digest.third_party(script, package)


def test_a_module_renamed_and_imported_by_its_new_name_is_no_change(tree):
    script, package = tree
    before = code_digest.digest(script, package)
    shutil.move(package / "leaf.py", package / "sub/renamed_leaf.py")
    edited(package / "deeper.py", "from . import leaf", "from .sub import renamed_leaf")
    edited(package / "deeper.py", "Y = leaf.f()", "Y = renamed_leaf.f()")
    edited(package / "sub/inner.py", "from .. import leaf", "from . import renamed_leaf as leaf")
    assert "sub/renamed_leaf.py" in names(script, package)
    assert code_digest.digest(script, package) == before
    edited(package / "sub/renamed_leaf.py", "return 1", "return 3")  # its content still counts
    assert code_digest.digest(script, package) != before


def test_imports_regrouped_or_reordered_are_no_change(tree):
    script, package = tree
    before = code_digest.digest(script, package)
    edited(package / "deeper.py", "from . import leaf\nfrom .sub import inner\n", "")
    edited(
        package / "deeper.py",
        "Y = leaf.f()",
        "from .sub import inner\nfrom . import leaf\n\nY = leaf.f()",
    )
    assert code_digest.digest(script, package) == before


def test_a_name_imported_from_another_module_is_a_change(tree):
    script, package = tree
    (package / "other_leaf.py").write_text("def f():\n    return 2\n")
    before = code_digest.digest(script, package)
    edited(
        package / "deeper.py", "from . import leaf\n", "from . import leaf\nfrom .leaf import f\n"
    )
    with_leaf = code_digest.digest(script, package)
    edited(package / "deeper.py", "from .leaf import f\n", "from .other_leaf import f\n")
    assert len({before, with_leaf, code_digest.digest(script, package)}) == 3


# ------------------------------------------------------------------ between processes


def as_a_new_process(monkeypatch, memo_file: Path | None) -> code_digest.Memo:
    """What the next Snakemake start sees: no in-process caches, the memo file read anew."""
    code_digest._parsed.cache_clear()
    code_digest._digested.cache_clear()
    memo = code_digest.Memo(memo_file)
    monkeypatch.setattr(code_digest, "_memo", memo)
    return memo


def no_parsing(monkeypatch):
    def parse(*args, **kwargs):
        raise AssertionError("parsed although the memo holds this content")

    monkeypatch.setattr(code_digest.ast, "parse", parse)


def test_the_next_process_takes_the_digests_from_the_memo_without_parsing(
    tree, tmp_path, monkeypatch
):
    script, package = tree
    memo_file = tmp_path / "memo.json"
    fresh = as_a_new_process(monkeypatch, None)
    expected = code_digest.digest(script, package), code_digest.third_party(script, package)
    as_a_new_process(monkeypatch, memo_file)
    assert (code_digest.digest(script, package), code_digest.third_party(script, package)) == (
        expected
    )
    code_digest._memo.save()
    written = memo_file.stat().st_mtime_ns
    read = [script, *code_digest.imported_modules(script, package)]
    assert len(fresh.used["facts"]) == len({path.read_text() for path in read})  # by content
    again = as_a_new_process(monkeypatch, memo_file)
    no_parsing(monkeypatch)
    assert (code_digest.digest(script, package), code_digest.third_party(script, package)) == (
        expected
    )
    again.save()  # nothing new: not written again
    assert memo_file.stat().st_mtime_ns == written


def test_an_edit_is_seen_through_the_memo_even_with_size_and_times_kept(
    tree, tmp_path, monkeypatch
):
    script, package = tree
    memo_file = tmp_path / "memo.json"
    as_a_new_process(monkeypatch, memo_file)
    before = code_digest.digest(script, package)
    code_digest._memo.save()
    leaf = package / "leaf.py"
    times = leaf.stat()
    edited(leaf, "return 1", "return 7")  # same size
    os.utime(leaf, ns=(times.st_atime_ns, times.st_mtime_ns))
    as_a_new_process(monkeypatch, memo_file)
    assert code_digest.digest(script, package) != before
    code_digest._memo.save()
    stored = json.loads(memo_file.read_text())
    read = [script, *code_digest.imported_modules(script, package)]
    assert len(stored["facts"]) == len({path.read_text() for path in read})  # not the old leaf


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: text.replace('"key": "', '"key": "another digester '),
        lambda text: "[]",
    ],
)
def test_a_damaged_or_foreign_memo_is_not_read(tree, tmp_path, monkeypatch, damage):
    script, package = tree
    memo_file = tmp_path / "memo.json"
    as_a_new_process(monkeypatch, memo_file)
    expected = code_digest.digest(script, package)
    code_digest._memo.save()
    stored = json.loads(memo_file.read_text())
    for key in stored["digests"]:
        stored["digests"][key] = "0" * 64  # what a wrong entry would give
    memo_file.write_text(damage(json.dumps(stored)))
    assert as_a_new_process(monkeypatch, memo_file).stored == {"facts": {}, "digests": {}}
    assert code_digest.digest(script, package) == expected
