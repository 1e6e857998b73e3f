"""Prompts with a prediction site, and the prompt-pairs file.

A prompt marks its prediction site with [MASK]. A masked LM sees the model's own mask
token there; a causal LM sees the text before it (right-stripped) and predicts the
next token. So one prompt serves both kinds.
"""

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from inputspace.errors import PromptError

PLACEHOLDER = "[MASK]"
HEADER = ["source", "target"]


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    line: int


def check_prompt(prompt: str, where: str) -> None:
    """Raise PromptError unless `prompt` is non-empty with exactly one prediction site."""
    if not prompt.strip():
        raise PromptError(f"{where}: empty prompt; write a sentence with one {PLACEHOLDER}")
    count = prompt.count(PLACEHOLDER)
    if count != 1:
        raise PromptError(
            f"{where}: prompt {prompt!r} has {count} {PLACEHOLDER} placeholders; mark exactly "
            "one prediction site"
        )
    if not prompt.split(PLACEHOLDER)[0].strip():
        raise PromptError(
            f"{where}: prompt {prompt!r} has no text before {PLACEHOLDER}; a causal LM needs "
            "context to predict from"
        )


def as_list(prompt: str | list[str]) -> list[str]:
    """A config's prompt entry as a list: one prompt, or several wordings of it."""
    return [prompt] if isinstance(prompt, str) else list(prompt)


def prompt_pairs(experiment: dict) -> list[tuple[str, str]]:
    """(source, target) per sequence of a single-prompt experiment: its source prompt and
    each rewording of it, the target given once for all or once per wording."""
    sources = as_list(experiment["sequences"]["prompt"])
    targets = as_list(experiment["target"]["prompt"])
    if len(targets) == 1:
        targets = targets * len(sources)
    if len(targets) != len(sources):
        raise PromptError(
            f"{len(sources)} source prompts but {len(targets)} target prompts; "
            "give one target, or one per source prompt"
        )
    return list(zip(sources, targets))


def render(prompt: str, kind: str, mask_token: str | None) -> str:
    """The text a model of `kind` reads for `prompt`."""
    before, after = prompt.split(PLACEHOLDER)
    if kind == "causal":
        return before.rstrip()
    return f"{before}{mask_token}{after}"


def word_span(text: str, word: str) -> tuple[int, int]:
    """Character span of the first whole-word occurrence of `word` in `text`."""
    bare = word.strip()
    found = re.search(rf"(?<!\w){re.escape(bare)}(?!\w)", text) if bare else None
    if not found:
        raise PromptError(
            f"the word {bare!r} does not occur in {text!r}; fix case_study in the config"
        )
    return found.span()


def read_pairs(path: Path) -> list[Pair]:
    """Read and validate a tab-separated (source, target) file; '#' lines are comments."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"prompt-pairs file {str(path)!r} does not exist; fix sequences.file")
    pairs: list[Pair] = []
    header_seen = False
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            text = _decoded(raw, f"{path}:{number}").rstrip("\n").rstrip("\r")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            fields = next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE))
            where = f"{path}:{number}"
            if not header_seen:
                if fields != HEADER:
                    raise PromptError(
                        f"{where}: expected the header 'source<TAB>target', got {text!r}"
                    )
                header_seen = True
                continue
            if len(fields) != 2:
                raise PromptError(
                    f"{where}: expected 2 tab-separated prompts (source, target), got {len(fields)}"
                )
            for prompt in fields:
                check_prompt(prompt, where)
            pairs.append(Pair(source=fields[0], target=fields[1], line=number))
    if not pairs:
        raise PromptError(f"{path.name}: no prompt pairs; add lines 'source<TAB>target'")
    return pairs


def _decoded(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PromptError(
            f"{where}: byte {error.start + 1} of the line is not UTF-8 "
            f"({raw[error.start : error.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None
