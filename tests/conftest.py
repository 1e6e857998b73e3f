"""Shared fixtures: tiny random-weight models of both architectures, prepared once per session.

Later test files should reuse `tiny_folders` / `tiny_models` rather than preparing their own.
Tests must not mutate the models in `tiny_models`; load a fresh copy from
`tiny_folders[...]` with `inputspace.models.load` when a test needs to change one.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from inputspace import models, sources  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Name in the fixtures' dicts -> tiny architecture.
TINY_ARCHITECTURES = {"modernbert": "modernbert", "llama": "llama"}


def tiny_source(architecture: str, seed: int = 0) -> dict:
    return {"kind": "random", "architecture": architecture, "seed": seed}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """{"modernbert": Path, "llama": Path}: prepared folders of seed-0 tiny models."""
    root = tmp_path_factory.mktemp("tiny_models")
    folders = {}
    for name, architecture in TINY_ARCHITECTURES.items():
        folders[name] = root / name
        sources.prepare(name, tiny_source(architecture), folders[name])
    return folders


@pytest.fixture(scope="session")
def tiny_models(tiny_folders) -> dict[str, models.LanguageModel]:
    """{"modernbert": LanguageModel, "llama": LanguageModel} loaded from `tiny_folders` (read-only)."""
    return {name: models.load(folder) for name, folder in tiny_folders.items()}
