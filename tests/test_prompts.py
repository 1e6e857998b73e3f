import pytest

from inputspace.errors import PromptError
from inputspace.model.prompts import check_prompt, read_pairs, render


def test_repository_pairs_file(repo_root):
    pairs = read_pairs(repo_root / "prompts/pairs.tsv")
    assert len(pairs) == 64
    assert pairs[0].source == "The animal that says 'bark' is a [MASK]."
    assert pairs[0].target == "The animal that says 'neigh' is a [MASK]."
    assert len({(p.source, p.target) for p in pairs}) == 64


def write(tmp_path, body):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\nsource\ttarget\n" + body)
    return path


@pytest.mark.parametrize(
    "body, line, words",
    [
        (
            "A dog is a [MASK].\tA cat is a [MASK].\nNo site here.\tA cat is a [MASK].\n",
            4,
            "0 [MASK]",
        ),
        ("A dog is a [MASK].\t\n", 3, "empty prompt"),
        ("A [MASK] is a [MASK].\tA cat is a [MASK].\n", 3, "2 [MASK]"),
        ("A dog is a [MASK].\tA cat is a [MASK].\textra\n", 3, "got 3"),
        ("[MASK] is red.\tA cat is a [MASK].\n", 3, "no text before"),
    ],
)
def test_bad_lines_are_named(tmp_path, body, line, words):
    with pytest.raises(PromptError) as error:
        read_pairs(write(tmp_path, body))
    message = str(error.value)
    assert f"pairs.tsv:{line}" in message and words in message and "\n" not in message


def test_missing_header_and_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("A dog is a [MASK].\tA cat is a [MASK].\n")
    with pytest.raises(PromptError, match="header"):
        read_pairs(path)
    with pytest.raises(PromptError, match="does not exist"):
        read_pairs(tmp_path / "missing.tsv")


def test_render_for_each_kind():
    prompt = "The animal that says 'neigh' is a [MASK]."
    assert render(prompt, "causal", None) == "The animal that says 'neigh' is a"
    assert render(prompt, "masked", "<mask>") == "The animal that says 'neigh' is a <mask>."
    check_prompt(prompt, "here")
