"""Model sources -> prepared folders with a manifest; failures that say what to do."""

import hashlib
import json

import pytest
import torch

from inputspace.errors import InputspaceError, ModelUnavailable
from inputspace.hashing import sha256_file
from inputspace.model import models, source_content, sources
from inputspace.model.manifest import read_manifest

ARCHS = ["modernbert", "llama"]
EXPECTED = {
    "modernbert": {"kind": "masked", "architecture": "ModernBertForMaskedLM"},
    "llama": {"kind": "causal", "architecture": "LlamaForCausalLM"},
}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_partial_left(dest) -> bool:
    return not dest.with_name(dest.name + ".partial").exists()


@pytest.mark.parametrize("name", ARCHS)
def test_manifest_describes_the_prepared_model(name, tiny_folders, tiny_models):
    folder = tiny_folders[name]
    manifest = json.loads((folder / "manifest.json").read_text())
    lm = tiny_models[name]
    embedding = lm.model.get_input_embeddings().weight
    assert manifest == lm.manifest
    assert manifest["name"] == name
    assert manifest["source"] == {"kind": "random", "architecture": name, "seed": 0}
    assert manifest["kind"] == EXPECTED[name]["kind"]
    assert manifest["architecture"] == EXPECTED[name]["architecture"]
    assert manifest["vocab_size"] == embedding.shape[0] == len(lm.tokenizer)
    assert manifest["embedding_dim"] == embedding.shape[1] == 64
    assert manifest["files_sha256"]["model.safetensors"] == sha256(folder / "model.safetensors")
    assert no_partial_left(folder)


def test_manifest_special_ids_of_tiny_modernbert(tiny_models):
    lm = tiny_models["modernbert"]
    special = lm.manifest["special_token_ids"]
    named = special["named"]
    assert (
        named["mask"] == lm.tokenizer.mask_token_id == lm.tokenizer.convert_tokens_to_ids("[MASK]")
    )
    for role in ("mask", "cls", "sep", "pad", "unk"):
        assert named[role] == getattr(lm.tokenizer, f"{role}_token_id")
        assert named[role] in special["all"]
    assert named["bos"] is None and named["eos"] is None
    assert special["all"] == sorted(lm.tokenizer.all_special_ids) == [0, 1, 2, 3, 4]


def test_manifest_special_ids_of_tiny_llama(tiny_models):
    lm = tiny_models["llama"]
    special = lm.manifest["special_token_ids"]
    assert special["named"]["bos"] == lm.tokenizer.bos_token_id
    assert special["named"]["eos"] == lm.tokenizer.eos_token_id
    assert special["named"]["mask"] is None
    assert special["all"] == [0, 1]


@pytest.mark.parametrize("name", ARCHS)
def test_random_source_is_seeded(name, tiny_folders, tmp_path):
    again = sources.prepare(
        name, {"kind": "random", "architecture": name, "seed": 0}, tmp_path / "a"
    )
    first = json.loads((tiny_folders[name] / "manifest.json").read_text())
    assert again["files_sha256"] == first["files_sha256"]
    other = sources.prepare(
        name, {"kind": "random", "architecture": name, "seed": 1}, tmp_path / "b"
    )
    assert other["files_sha256"] != first["files_sha256"]
    assert other["vocab_size"] == first["vocab_size"]  # same tokenizer, different weights


@torch.no_grad()
@pytest.mark.parametrize("name", ARCHS)
def test_local_source_round_trips(name, tiny_folders, tiny_models, tmp_path):
    dest = tmp_path / "copy"
    manifest = sources.prepare("copy", {"kind": "local", "path": str(tiny_folders[name])}, dest)
    assert manifest["kind"] == EXPECTED[name]["kind"]
    raw = {
        name: sha256_file(path)
        for name, path in source_content.local_files(tiny_folders[name]).items()
    }
    assert manifest["origin"] == {
        "content_sha256": source_content.content_digest(raw),
        "files_sha256": raw,
    }
    original, copy = tiny_models[name], models.load(dest)
    assert copy.manifest["special_token_ids"] == original.manifest["special_token_ids"]
    text = (
        "The capital of France is [MASK]." if name == "modernbert" else "The capital of France is"
    )
    ids = original.tokenizer(text, return_tensors="pt")["input_ids"]
    assert copy.tokenizer(text, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    mask = torch.ones_like(ids)
    sites = original.prediction_sites(ids, mask)
    expected = original.logits_at(original.embed(ids), mask, sites)
    torch.testing.assert_close(
        copy.logits_at(copy.embed(ids), mask, sites), expected, atol=0, rtol=0
    )


def test_local_source_at_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    dest = tmp_path / "dest"
    with pytest.raises(ModelUnavailable) as info:
        sources.prepare("mine", {"kind": "local", "path": str(empty)}, dest)
    message = str(info.value)
    assert "\n" not in message
    assert "'mine'" in message
    assert str(empty) in message
    assert not dest.exists() and no_partial_left(dest)


def test_local_source_with_broken_files(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable) as info:
        sources.prepare("mine", {"kind": "local", "path": str(broken)}, tmp_path / "dest")
    assert "\n" not in str(info.value)
    assert "'mine'" in str(info.value)


def test_uncached_hub_model_is_unavailable(tmp_path):
    dest = tmp_path / "modernbert_large"
    source = {"kind": "hub", "id": "answerdotai/ModernBERT-large", "revision": "main"}
    with pytest.raises(ModelUnavailable) as info:
        sources.prepare("modernbert_large", source, dest, allow_downloads=False)
    message = str(info.value)
    assert "\n" not in message
    assert "answerdotai/ModernBERT-large" in message
    assert "not in the local Hugging Face cache" in message
    assert "'local' source" in message
    assert not dest.exists()
    assert no_partial_left(dest)
    assert list(tmp_path.iterdir()) == []


def test_failed_prepare_keeps_an_existing_destination(tiny_folders, tmp_path):
    dest = tmp_path / "model"
    sources.prepare("model", {"kind": "local", "path": str(tiny_folders["llama"])}, dest)
    before = sorted(p.name for p in dest.iterdir())
    with pytest.raises(ModelUnavailable):
        sources.prepare("model", {"kind": "local", "path": str(tmp_path / "missing")}, dest)
    assert sorted(p.name for p in dest.iterdir()) == before
    assert no_partial_left(dest)


def test_prepare_replaces_an_existing_destination(tmp_path):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    sources.prepare("model", {"kind": "random", "architecture": "llama", "seed": 0}, dest)
    assert not (dest / "stale.txt").exists()
    assert (dest / "manifest.json").is_file()


def test_package_gguf_from_a_missing_package(tmp_path):
    source = {"kind": "package_gguf", "package": "no_such_package_xyz", "file": "model.gguf"}
    with pytest.raises(ModelUnavailable) as info:
        sources.prepare("gguf_model", source, tmp_path / "dest")
    message = str(info.value)
    assert "\n" not in message
    assert "'gguf_model'" in message and "'no_such_package_xyz'" in message
    assert "not installed" in message


def test_package_gguf_from_a_missing_dotted_package(tmp_path):
    source = {"kind": "package_gguf", "package": "no_such_package_xyz.models", "file": "m.gguf"}
    with pytest.raises(ModelUnavailable):
        sources.prepare("gguf_model", source, tmp_path / "dest")


def test_unknown_source_kind(tmp_path):
    with pytest.raises(InputspaceError) as info:
        sources.prepare("odd", {"kind": "ftp"}, tmp_path / "dest")
    message = str(info.value)
    assert "\n" not in message
    assert "'ftp'" in message and "'odd'" in message
    for kind in sources.SOURCE_KINDS:
        assert kind in message
    assert not (tmp_path / "dest").exists()


def test_read_manifest_of_an_unprepared_folder(tmp_path):
    with pytest.raises(InputspaceError, match="no manifest.json"):
        read_manifest(tmp_path)
