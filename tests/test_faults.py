"""Bad inputs and faults below the workflow: each named in one line, none leaving a
partial output, none running code from a file a user can swap."""

import errno
import os
import pickle
import shutil
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from helpers import make_problem, recorded, settings

from inputspace import files, tensors
from inputspace.errors import (
    ConfigError,
    DamagedFile,
    InputspaceError,
    InputspaceWarning,
    ModelUnavailable,
    PromptError,
    WriteFailed,
)
from inputspace.model import models, prompts, sources
from inputspace.optimisation import engine, experiments
from inputspace.workflow import config


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ damaged files


def flip_byte(path, position: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(position)
        byte = stream.read(1)
        stream.seek(position)
        stream.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("read", [tensors.read_tensors, files.read_arrays], ids=["torch", "numpy"])
def test_damaged_tensors_are_named_not_read(tmp_path, read):
    path = tmp_path / "x.safetensors"
    tensors.write_tensors({"a": torch.arange(100.0), "mask": torch.ones(4, dtype=torch.bool)}, path)
    assert np.array_equal(np.asarray(read(path)["a"]), np.arange(100.0, dtype=np.float32))
    size = path.stat().st_size
    flip_byte(path, size - 50)  # inside the tensor data: still parses, wrong numbers
    with pytest.raises(DamagedFile) as error:
        read(path)
    assert str(path) in one_line(error) and "delete it" in str(error.value)
    tensors.write_tensors({"a": torch.arange(100.0)}, path)
    os.truncate(path, size // 2)
    with pytest.raises(DamagedFile, match="delete it"):
        read(path)


def test_numpy_and_torch_readers_agree_on_every_dtype_and_checksum(tmp_path):
    path = tmp_path / "x.safetensors"
    written = {
        "f32": torch.randn(3, 4),
        "f64": torch.randn(2, dtype=torch.float64),
        "f16": torch.randn(5, dtype=torch.float16),
        "i64": torch.arange(6).reshape(2, 3),
        "i32": torch.arange(4, dtype=torch.int32),
        "u8": torch.arange(3, dtype=torch.uint8),
        "mask": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 7),
    }
    tensors.write_tensors(written, path)
    arrays = files.read_arrays(path)  # its checksum checked against the torch-written one
    assert sorted(arrays) == sorted(written)
    for name, tensor in written.items():
        assert arrays[name].dtype == tensor.numpy().dtype, name
        assert np.array_equal(arrays[name], tensor.numpy()), name
    assert files.array_digest(arrays) == tensors.tensor_digest(written)


def test_damaged_parquet_is_named_not_read(tmp_path):
    path = tmp_path / "x.parquet"
    table = pd.DataFrame({"kl": np.linspace(0, 1, 500), "seq": np.arange(500)})
    files.write_parquet(table, path)
    pd.testing.assert_frame_equal(files.read_parquet(path), table)
    flip_byte(path, 200)  # inside the first data page: caught by its checksum
    with pytest.raises(DamagedFile) as error:
        files.read_parquet(path)
    assert str(path) in one_line(error)
    files.write_parquet(table, path)
    os.truncate(path, path.stat().st_size - 100)
    with pytest.raises(DamagedFile, match="delete it"):
        files.read_parquet(path)


def test_a_failed_write_names_the_path_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk, simulated: the write puts half its bytes down, then fails."""

    def half_then_full(table, where, **options):
        with open(where, "wb") as stream:
            stream.write(b"PAR1 half a table")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", half_then_full)
    target = tmp_path / "out" / "steps.parquet"
    with pytest.raises(WriteFailed) as error:
        files.write_parquet(pd.DataFrame({"a": [1]}), target)
    assert str(target) in one_line(error) and "No space left on device" in str(error.value)
    assert list(target.parent.iterdir()) == []  # neither the output nor its partial


def test_a_failed_prepare_names_the_model_and_leaves_nothing(tmp_path, monkeypatch):
    def full(self, folder, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.nn.Module, "save_pretrained", full, raising=False)
    from transformers import PreTrainedModel

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full)
    dest = tmp_path / "models" / "tiny"
    with pytest.raises(WriteFailed) as error:
        sources.prepare("tiny", {"kind": "random", "architecture": "llama"}, dest)
    assert "'tiny'" in one_line(error) and "No space left" in str(error.value)
    assert not dest.exists() and not dest.with_name("tiny.partial").exists()


# ------------------------------------------------------------------ model folders


def test_local_weights_that_do_not_load_are_named(tiny_folders, tmp_path):
    """A pickled .bin that is not a checkpoint: one line naming the model, the file and
    the fix, not PyTorch's explanation; and the pickle's code never runs."""
    folder = tmp_path / "mine"
    shutil.copytree(tiny_folders["llama"], folder)
    (folder / "model.safetensors").unlink()
    ran = tmp_path / "ran"
    with open(folder / "pytorch_model.bin", "wb") as stream:
        pickle.dump(Planted(str(ran)), stream)
    with pytest.raises(ModelUnavailable) as error:
        sources.prepare("mine", {"kind": "local", "path": str(folder)}, tmp_path / "dest")
    message = one_line(error)
    assert "'mine'" in message and "pytorch_model.bin" in message and "valid checkpoint" in message
    assert not ran.exists()


class Planted:
    """A pickle that, if unpickled, creates the file at `path`."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_local_safetensors_cut_short_is_named(tiny_folders, tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(tiny_folders["llama"], folder)
    os.truncate(folder / "model.safetensors", 1000)
    with pytest.raises(ModelUnavailable) as error:
        sources.prepare("mine", {"kind": "local", "path": str(folder)}, tmp_path / "dest")
    assert "model.safetensors" in one_line(error)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_a_changed_prepared_model_is_refused(tiny_folders, tmp_path, name):
    folder = tmp_path / "llama"
    shutil.copytree(tiny_folders["llama"], folder)
    flip_byte(folder / name, (folder / name).stat().st_size // 2)
    with pytest.raises(DamagedFile) as error:
        models.load(folder)
    message = one_line(error)
    assert f"{folder / name} (changed)" in message and f"snakemake --forcerun {folder}" in message


# ------------------------------------------------------------------ prompts and config


def test_pairs_file_with_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(
        b"source\ttarget\nA dog is a [MASK].\tA cat is a [MASK].\n"
        b"A caf\xe9 is a [MASK].\tA [MASK].\n"
    )
    with pytest.raises(PromptError) as error:
        prompts.read_pairs(path)
    message = one_line(error)
    assert f"{path}:3" in message and "UTF-8" in message and "\\xe9" in message


BARK = {
    "models": ["m"],
    "sequences": {"kind": "prompt", "prompt": "The animal that says 'bark' is a [MASK]."},
    "target": {"prompt": "   "},
    "case_study": {"word": "bark", "toward": "neigh"},
    "optimize": {"save_logged_embeddings": True},
}


def test_blank_target_prompt_is_blamed_not_the_case_study(repo_root):
    with pytest.raises(PromptError) as error:
        config.check_experiment("bark_neigh", BARK, repo_root)
    message = one_line(error)
    assert "experiments.bark_neigh.target.prompt" in message and "empty prompt" in message
    assert "case_study" not in message


def test_case_study_word_missing_from_the_target_is_named(repo_root):
    experiment = {**BARK, "target": {"prompt": "The animal that says 'moo' is a [MASK]."}}
    with pytest.raises(InputspaceError, match=r"case_study\.toward: 'neigh' is not a whole word"):
        config.check_experiment("bark_neigh", experiment, repo_root)


REWORDED = {
    **BARK,
    "sequences": {
        "kind": "prompt",
        "prompt": ["The animal that says bark is a [MASK].", "It goes bark, so it is a [MASK]."],
    },
    "target": {
        "prompt": ["The animal that says neigh is a [MASK].", "It goes neigh, so it is a [MASK]."]
    },
}


def test_rewordings_with_one_target_each_pass(repo_root):
    config.check_experiment("bark_neigh", REWORDED, repo_root)
    assert prompts.prompt_pairs(REWORDED)[1] == (
        "It goes bark, so it is a [MASK].",
        "It goes neigh, so it is a [MASK].",
    )
    one_target = {**REWORDED, "target": {"prompt": "The animal that says neigh is a [MASK]."}}
    assert [t for _, t in prompts.prompt_pairs(one_target)] == [
        "The animal that says neigh is a [MASK]."
    ] * 2


def test_rewordings_and_targets_of_different_counts_are_one_line(repo_root):
    experiment = {**REWORDED, "target": {"prompt": REWORDED["target"]["prompt"] * 2}}
    with pytest.raises(ConfigError) as error:
        config.check_experiment("bark_neigh", experiment, repo_root)
    message = one_line(error)
    assert "experiments.bark_neigh.target.prompt" in message
    assert "2 source prompts but 4 target prompts" in message


def test_a_list_of_targets_needs_single_prompt_sequences(repo_root):
    experiment = {
        "models": ["m"],
        "sequences": {"kind": "random", "count": 3, "min_length": 4, "max_length": 6},
        "target": {"prompt": ["A dog is a [MASK].", "A cat is a [MASK]."]},
    }
    with pytest.raises(ConfigError, match="a list of targets needs sequences of kind prompt"):
        config.check_experiment("random", experiment, repo_root)


def test_a_rewording_without_the_followed_word_is_named(repo_root):
    sources = [*REWORDED["sequences"]["prompt"][:1], "It goes woof, so it is a [MASK]."]
    experiment = {**REWORDED, "sequences": {"kind": "prompt", "prompt": sources}}
    with pytest.raises(ConfigError) as error:
        config.check_experiment("bark_neigh", experiment, repo_root)
    assert "case_study.word: 'bark' is not a whole word" in one_line(error)
    assert "It goes woof" in one_line(error)


# ------------------------------------------------------------------ watch words


def tokenizes(lm, word: str) -> list[int]:
    return lm.tokenizer(word, add_special_tokens=False).input_ids


@pytest.fixture(scope="module")
def split_word(tiny_models) -> str:
    """A word the tiny tokenizer splits into several pieces."""
    word = " xylophone"
    assert len(tokenizes(tiny_models["llama"], word)) > 1
    return word


def test_a_split_watch_word_warns_naming_its_pieces(tiny_models, split_word):
    lm = tiny_models["llama"]
    pieces = tokenizes(lm, split_word)
    with pytest.warns(InputspaceWarning) as caught:
        first = experiments.watch_token_ids(lm, [" neigh", split_word], "first")
    message = str(caught[0].message)
    assert repr(split_word) in message and repr(lm.tokenizer.decode([pieces[1]])) in message
    texts = [lm.tokenizer.decode([piece]) for piece in pieces]
    assert texts[0] == " "  # the tiny tokenizer splits off the space: not worth tracking
    assert f"tracking only its first piece {texts[1]!r}" in message
    assert first.tolist() == tokenizes(lm, " neigh")[:1] + pieces[1:2]
    with pytest.warns(InputspaceWarning):
        every = experiments.watch_token_ids(lm, [split_word], "all")
    assert every.tolist() == pieces
    with pytest.raises(InputspaceError) as error:
        experiments.watch_token_ids(lm, [split_word], "refuse")
    assert "watch_pieces" in one_line(error)


def test_a_single_token_watch_word_is_silent(tiny_models):
    lm = tiny_models["llama"]
    word = lm.tokenizer.decode(tokenizes(lm, " the")[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(experiments.watch_token_ids(lm, [word], "refuse")) == 1


@pytest.mark.parametrize("word", ["\u2603", "\U0001f40e"])
def test_a_watch_word_made_of_byte_fragments_is_an_error(tiny_models, word):
    lm = tiny_models["llama"]
    with pytest.raises(InputspaceError) as error:
        experiments.watch_token_ids(lm, [word])
    assert repr(word) in one_line(error) and "cannot be represented" in str(error.value)


# ------------------------------------------------------------------ checkpoints


def test_a_checkpoint_with_code_in_it_is_set_aside_unrun(
    tiny_models, repo_root, tmp_path, finished
):
    lm = tiny_models["llama"]
    checkpoint = tmp_path / "run.pt"
    ran = tmp_path / "ran"
    torch.save({"fingerprint": "fp", "run": Planted(str(ran))}, checkpoint)
    result = recorded(
        lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
    )
    assert not ran.exists()
    assert (tmp_path / "run.pt.unreadable").is_file() and not checkpoint.exists()
    assert torch.equal(result.end, finished["llama"][2].end)  # started over


def test_a_truncated_checkpoint_is_set_aside_and_the_run_starts_over(
    tiny_models, repo_root, tmp_path, finished
):
    lm = tiny_models["llama"]
    checkpoint = tmp_path / "run.pt"
    run = engine.Descent(lm, make_problem(lm, repo_root)[0], settings())
    engine._save_checkpoint(checkpoint, "fp", {"run": run.state(), "observer": None})
    os.truncate(checkpoint, checkpoint.stat().st_size // 2)
    (tmp_path / "run.pt.unreadable").write_text("an earlier one")
    result = recorded(
        lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
    )
    assert (tmp_path / "run.pt.unreadable-2").stat().st_size > 0
    assert torch.equal(result.end, finished["llama"][2].end)


def test_checkpoints_load_as_data_only(tiny_models, repo_root, tmp_path, monkeypatch):
    """What the engine saves loads with weights_only=True: resuming never unpickles code."""
    lm = tiny_models["llama"]
    real, kept = engine._save_checkpoint, tmp_path / "kept.pt"

    def save_and_keep(path, fingerprint, state):
        real(path, fingerprint, state)
        shutil.copy(path, kept)

    monkeypatch.setattr(engine, "_save_checkpoint", save_and_keep)
    recorded(
        lm,
        make_problem(lm, repo_root),
        settings(),
        checkpoint=tmp_path / "run.pt",
        fingerprint="fp",
    )
    loaded = torch.load(kept, weights_only=True)
    assert (
        loaded["fingerprint"] == "fp"
        and loaded["run"]["step"] == 40
        and loaded["observer"]["token_rows"]
    )


# ------------------------------------------------------------------ non-finite runs


def test_nan_in_the_loss_at_a_step_stops_the_run_and_leaves_no_checkpoint(
    tiny_models, repo_root, tmp_path, monkeypatch, finished
):
    """A NaN forced into sequence 2's loss at step 23 (after checkpoints at 10 and 20):
    the run stops naming both, its checkpoint is gone, and the run after the fix starts
    afresh and equals an undisturbed run."""
    lm = tiny_models["llama"]
    real = engine.kl_from_logprobs
    calls = {"n": 0}

    def poisoned(logprobs, target):
        kl = real(logprobs, target)
        calls["n"] += 1
        if calls["n"] == 24:  # the 24th forward is step 23 (one forward per step, no chunks)
            kl = kl.clone()
            kl[2] = float("nan")
        return kl

    monkeypatch.setattr(engine, "kl_from_logprobs", poisoned)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(InputspaceError) as error:
        recorded(
            lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
        )
    assert "non-finite loss at step 23 in sequence 2" in one_line(error)
    assert not checkpoint.exists() and not files.partial_of(checkpoint).exists()
    monkeypatch.setattr(engine, "kl_from_logprobs", real)
    result = recorded(
        lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
    )
    assert torch.equal(result.end, finished["llama"][2].end)


def test_an_lr_whose_adam_step_overflows_is_named(tiny_models, repo_root):
    lm = tiny_models["llama"]
    with pytest.raises(InputspaceError) as error:
        engine.optimise(lm, make_problem(lm, repo_root)[0], settings(lr=1e38), progress=False)
    assert "overflows at step 0" in one_line(error) and "lr" in str(error.value)
