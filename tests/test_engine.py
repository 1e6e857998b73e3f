import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from inputspace import engine, experiments, runs, trajectory
from inputspace import vocab as vocab_module
from inputspace.errors import InputspaceError

KINDS = ["modernbert", "llama"]
PAIRS = {"sequences": {"kind": "pairs", "file": "prompts/pairs.tsv", "count": 4}, "watch": [" neigh"]}


def make_problem(lm, repo_root, experiment=PAIRS):
    matrix = lm.vocab_embeddings()
    table = vocab_module.vocabulary_table(lm, matrix)
    return experiments.build_problem(lm, experiment, matrix, vocab_module.regular_ids(table), base=repo_root)


def settings(**overrides):
    values = dict(steps=40, lr=0.01, log_points=4, checkpoint_every=10)
    return engine.Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def finished(tiny_models, repo_root):
    """One run per architecture, shared by the read-only tests below."""
    out = {}
    for name in KINDS:
        problem = make_problem(tiny_models[name], repo_root)
        out[name] = (problem, engine.optimise(tiny_models[name], problem, settings(), progress=False))
    return out


def test_log_schedule_by_hand():
    assert engine.log_schedule(100, 3) == [0, 1, 10, 100]
    assert engine.log_schedule(5, 20) == [0, 1, 2, 3, 4, 5]


def test_kl_divergence_by_hand():
    target = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    expected = [0.0, 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)]
    np.testing.assert_allclose(engine.kl_divergence(logits, target).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_kl_falls_below_threshold(finished, name):
    _, result = finished[name]
    kl = result.steps["kl"].reshape(41, -1)
    assert kl[0].mean() > 0.1  # there was something to learn
    assert kl[-1].max() < 1e-2


@pytest.mark.parametrize("name", KINDS)
def test_special_and_padding_embeddings_are_bit_identical(finished, name):
    problem, result = finished[name]
    frozen = ~problem.batch.trainable
    assert frozen.any() and (~problem.batch.attention_mask.bool()).any()  # padding exists
    assert torch.equal(result.end[frozen], result.start[frozen])
    assert not torch.equal(result.end[problem.batch.trainable], result.start[problem.batch.trainable])


def test_model_weights_get_no_gradients(tiny_models, finished):
    for lm in tiny_models.values():
        assert all(not p.requires_grad and p.grad is None for p in lm.model.parameters())


@pytest.mark.parametrize("name", KINDS)
def test_token_table_equals_slow_reference(finished, name):
    """L2, back-projection and headings at the last step, against plain loops."""
    problem, result = finished[name]
    tokens = pd.DataFrame(result.tokens)
    last = tokens[tokens.step == 40]
    vocab, candidates = problem.vocab, problem.candidates.tolist()
    watch = problem.watch_ids.tolist()
    for row in last.head(6).itertuples():
        e, e0 = result.end[row.seq, row.pos], result.start[row.seq, row.pos]
        d = e - e0
        assert row.l2 == pytest.approx(torch.norm(d).item(), rel=1e-5)
        dists = {j: torch.norm(e - vocab[j]).item() for j in candidates}
        coss = {j: (e @ vocab[j] / (e.norm() * vocab[j].norm())).item() for j in candidates}
        heads = {
            j: (d @ (vocab[j] - e0) / (d.norm() * (vocab[j] - e0).norm())).item()
            for j in candidates
            if j != row.token_id
        }
        assert row.nearest_euclidean_id == min(dists, key=dists.get)
        assert row.nearest_euclidean == pytest.approx(min(dists.values()), rel=1e-4)
        assert row.nearest_cosine_id == max(coss, key=coss.get)
        assert row.heading_id == max(heads, key=heads.get)
        assert row.heading_cosine == pytest.approx(max(heads.values()), abs=1e-4)
        for w, cos, rank in zip(watch, row.watch_cosines, row.watch_ranks):
            exact = (d @ (vocab[w] - e0) / (d.norm() * (vocab[w] - e0).norm())).item()
            assert cos == pytest.approx(exact, abs=1e-4)
            assert abs(rank - (1 + sum(c > exact for c in heads.values()))) <= 1  # float ties


def test_top_k_table(finished):
    _, result = finished["llama"]
    topk = pd.DataFrame(result.topk)
    assert sorted(topk.step.unique()) == engine.log_schedule(40, 4)
    first = topk[(topk.step == 40) & (topk.seq == 0)]
    assert list(first["rank"]) == list(range(1, 11))
    assert first.prob.is_monotonic_decreasing
    steps = pd.DataFrame(result.steps)
    top1 = steps[(steps.step == 40) & (steps.seq == 0)].iloc[0]
    assert first.token_id.iloc[0] == top1.top1_id
    assert first.prob.iloc[0] == pytest.approx(top1.top1_prob, rel=1e-5)


def test_chunked_batch_matches_whole_batch(tiny_models, repo_root, finished):
    lm = tiny_models["llama"]
    chunked = engine.optimise(lm, make_problem(lm, repo_root), settings(chunk_size=3), progress=False)
    whole = finished["llama"][1]
    torch.testing.assert_close(chunked.end, whole.end, atol=1e-5, rtol=1e-4)


def test_frozen_prefix_changes_no_result(tiny_models, repo_root, finished, monkeypatch):
    """The llama runs reuse the BOS position's keys and values; recomputing them at every
    step gives the same trajectory."""
    lm = tiny_models["llama"]
    problem, cached = finished["llama"]
    batch = problem.batch
    assert lm.frozen_prefix_length(batch.trainable, batch.attention_mask, batch.sites) == 1
    monkeypatch.setattr(type(lm), "frozen_prefix_length", lambda *args: 0)
    recomputed = engine.optimise(lm, make_problem(lm, repo_root), settings(), progress=False)
    torch.testing.assert_close(cached.end, recomputed.end, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(cached.steps["kl"], recomputed.steps["kl"], rtol=1e-4, atol=1e-6)


def written(result, problem, folder):
    outputs = type("Out", (), {k: str(folder / f"{k}.parquet") for k in ("steps", "tokens", "topk")})()
    outputs.embeddings = str(folder / "embeddings.safetensors")
    folder.mkdir(parents=True, exist_ok=True)
    runs.write(result, problem, "tiny", "pairs", outputs)
    return {k: trajectory.read(getattr(outputs, k), getattr(trajectory, k.upper())) for k in ("steps", "tokens", "topk")}


def test_two_runs_write_identical_parquet(tiny_models, repo_root, tmp_path):
    lm = tiny_models["modernbert"]
    tables = []
    for attempt in ("a", "b"):
        problem = make_problem(lm, repo_root)
        result = engine.optimise(lm, problem, settings(steps=15), progress=False)
        tables.append(written(result, problem, tmp_path / attempt))
    for name in ("steps", "tokens", "topk"):
        pd.testing.assert_frame_equal(tables[0][name], tables[1][name])
    assert (tmp_path / "a/steps.parquet").read_bytes() == (tmp_path / "b/steps.parquet").read_bytes()


def test_tables_follow_the_schemas(finished, tmp_path):
    problem, result = finished["modernbert"]
    tables = written(result, problem, tmp_path)
    assert list(tables["steps"].columns) == trajectory.STEPS.names
    assert len(tables["steps"]) == 41 * 4
    assert list(tables["tokens"].columns) == trajectory.TOKENS.names
    assert (tables["tokens"].token_id >= 0).all()  # prompts: every optimised position is a token


KILL_AT_CHECKPOINT = textwrap.dedent(
    """
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from pathlib import Path
    from inputspace import engine, models
    sys.path.insert(0, {tests!r})
    from test_engine import make_problem, settings

    real_save = engine._save_checkpoint
    def save_then_die(path, fingerprint, state):
        real_save(path, fingerprint, state)
        if state["step"] == 20:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like a killed job
    engine._save_checkpoint = save_then_die
    lm = models.load({folder!r})
    engine.optimise(lm, make_problem(lm, Path({repo!r})), settings(), Path({checkpoint!r}), "fp", progress=False)
    """
)


def test_killed_run_resumes_to_the_same_result(tiny_folders, tiny_models, repo_root, tmp_path, finished):
    checkpoint = tmp_path / "run.pt"
    script = KILL_AT_CHECKPOINT.format(
        tests=str(repo_root / "tests"), folder=str(tiny_folders["llama"]), repo=str(repo_root),
        checkpoint=str(checkpoint),
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoint.is_file()
    assert torch.load(checkpoint, weights_only=False)["step"] == 20

    lm = tiny_models["llama"]
    resumed = engine.optimise(lm, make_problem(lm, repo_root), settings(), checkpoint, "fp", progress=False)
    whole = finished["llama"][1]
    assert torch.equal(resumed.end, whole.end)
    for name in whole.steps:
        np.testing.assert_array_equal(resumed.steps[name], whole.steps[name])
    for name in whole.tokens:
        np.testing.assert_array_equal(np.array(resumed.tokens[name]), np.array(whole.tokens[name]))
    assert not checkpoint.exists()  # removed once the run completed


def test_checkpoint_of_other_settings_is_ignored(tiny_models, repo_root, tmp_path, finished):
    lm = tiny_models["llama"]
    checkpoint = tmp_path / "run.pt"
    engine._save_checkpoint(checkpoint, "other", {"step": 39})
    result = engine.optimise(lm, make_problem(lm, repo_root), settings(), checkpoint, "fp", progress=False)
    assert torch.equal(result.end, finished["llama"][1].end)


def test_non_finite_loss_names_step_and_sequence(tiny_models, repo_root, tmp_path):
    lm = tiny_models["llama"]
    problem = make_problem(lm, repo_root)
    problem.target_logprobs[2, 5] = float("nan")
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(InputspaceError) as error:
        engine.optimise(lm, problem, settings(steps=30), checkpoint, "fp", label="tiny/pairs", progress=False)
    message = str(error.value)
    assert "non-finite loss at step 0 in sequence 2" in message and "tiny/pairs" in message
    assert "\n" not in message
    assert not checkpoint.exists()


def test_non_finite_input_names_its_sequence(tiny_models, repo_root):
    lm = tiny_models["modernbert"]
    problem = make_problem(lm, repo_root)
    problem.batch.embeddings[1, 3] = float("inf")
    with pytest.raises(InputspaceError, match="non-finite loss at step 0 in sequence 1"):
        engine.optimise(lm, problem, settings(steps=5), progress=False)


def test_unknown_precision_is_refused(tiny_models, repo_root):
    lm = tiny_models["llama"]
    with pytest.raises(InputspaceError, match="precision"):
        engine.optimise(lm, make_problem(lm, repo_root), settings(precision="fp8"), progress=False)
