"""What a model source holds, by content, without loading it."""

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
