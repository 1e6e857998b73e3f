import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import KINDS, make_problem, recorded, settings

from inputspace.errors import InputspaceError
from inputspace.optimisation import engine, recorder, runs, termination, trajectory


def test_log_schedule_by_hand():
    assert recorder.log_schedule(100, 3) == [0, 1, 10, 100]
    assert recorder.log_schedule(5, 20) == [0, 1, 2, 3, 4, 5]


def test_kl_divergence_by_hand():
    target = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    expected = [0.0, 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)]
    np.testing.assert_allclose(engine.kl_divergence(logits, target).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_kl_falls_below_threshold(finished, name):
    _, _, result = finished[name]
    kl = result.steps["kl"].reshape(41, -1)
    assert kl[0].mean() > 0.1  # there was something to learn
    assert kl[-1].max() < 1e-2


@pytest.mark.parametrize("name", KINDS)
def test_special_and_padding_embeddings_are_bit_identical(finished, name):
    problem, _, result = finished[name]
    frozen = ~problem.batch.trainable
    assert frozen.any() and (~problem.batch.attention_mask.bool()).any()  # padding exists
    assert torch.equal(result.end[frozen], result.start[frozen])
    assert not torch.equal(
        result.end[problem.batch.trainable], result.start[problem.batch.trainable]
    )


def test_model_weights_get_no_gradients(tiny_models, finished):
    for lm in tiny_models.values():
        assert all(not p.requires_grad and p.grad is None for p in lm.model.parameters())


@pytest.mark.parametrize("name", KINDS)
def test_token_table_equals_slow_reference(finished, name):
    """L2, back-projection and headings at the last step, against plain loops."""
    _, landmarks, result = finished[name]
    tokens = pd.DataFrame(result.tokens)
    last = tokens[tokens.step == 40]
    vocab, candidates = landmarks.vocab, landmarks.candidates.tolist()
    watch = landmarks.watch_ids.tolist()
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
    _, _, result = finished["llama"]
    topk = pd.DataFrame(result.topk)
    assert sorted(topk.step.unique()) == recorder.log_schedule(40, 4)
    first = topk[(topk.step == 40) & (topk.seq == 0)]
    assert list(first["rank"]) == list(range(1, 11))
    assert first.prob.is_monotonic_decreasing
    steps = pd.DataFrame(result.steps)
    top1 = steps[(steps.step == 40) & (steps.seq == 0)].iloc[0]
    assert first.token_id.iloc[0] == top1.top1_id
    assert first.prob.iloc[0] == pytest.approx(top1.top1_prob, rel=1e-5)


def test_chunked_batch_matches_whole_batch(tiny_models, repo_root, finished):
    lm = tiny_models["llama"]
    chunked = recorded(lm, make_problem(lm, repo_root), settings(chunk_size=3))
    whole = finished["llama"][2]
    torch.testing.assert_close(chunked.end, whole.end, atol=1e-5, rtol=1e-4)


def test_frozen_prefix_changes_no_result(tiny_models, repo_root, finished, monkeypatch):
    """The llama runs reuse the BOS position's keys and values; recomputing them at every
    step gives the same trajectory."""
    lm = tiny_models["llama"]
    problem, _, cached = finished["llama"]
    batch = problem.batch
    assert lm.frozen_prefix_length(batch.trainable, batch.attention_mask, batch.sites) == 1
    monkeypatch.setattr(type(lm), "frozen_prefix_length", lambda *args: 0)
    recomputed = recorded(lm, make_problem(lm, repo_root), settings())
    torch.testing.assert_close(cached.end, recomputed.end, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(cached.steps["kl"], recomputed.steps["kl"], rtol=1e-4, atol=1e-6)


def written(result, problem, folder):
    tables = {k: folder / f"{k}.parquet" for k in ("steps", "tokens", "topk")}
    outputs = runs.RunPaths(**tables, embeddings=folder / "embeddings.safetensors")
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_run(result, problem.batch, "tiny", "pairs", outputs)
    return {
        k: trajectory.read(getattr(outputs, k), getattr(trajectory, k.upper()))
        for k in ("steps", "tokens", "topk")
    }


def test_two_runs_write_identical_parquet(tiny_models, repo_root, tmp_path):
    lm = tiny_models["modernbert"]
    tables = []
    for attempt in ("a", "b"):
        made = make_problem(lm, repo_root)
        result = recorded(lm, made, settings(steps=15))
        tables.append(written(result, made[0], tmp_path / attempt))
    for name in ("steps", "tokens", "topk"):
        pd.testing.assert_frame_equal(tables[0][name], tables[1][name])
    assert (tmp_path / "a/steps.parquet").read_bytes() == (
        tmp_path / "b/steps.parquet"
    ).read_bytes()


def test_tables_follow_the_schemas(finished, tmp_path):
    problem, _, result = finished["modernbert"]
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
    from inputspace.optimisation import engine
    from inputspace.model import models
    sys.path.insert(0, {tests!r})
    from helpers import make_problem, recorded, settings

    real_save = engine._save_checkpoint
    def save_then_die(path, fingerprint, state):
        real_save(path, fingerprint, state)
        if state["run"]["step"] == 20:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like a killed job
    engine._save_checkpoint = save_then_die
    lm = models.load({folder!r})
    made = make_problem(lm, Path({repo!r}))
    recorded(lm, made, settings(), checkpoint=Path({checkpoint!r}), fingerprint="fp")
    """
)


def test_killed_run_resumes_to_the_same_result(
    tiny_folders, tiny_models, repo_root, tmp_path, finished
):
    checkpoint = tmp_path / "run.pt"
    script = KILL_AT_CHECKPOINT.format(
        tests=str(repo_root / "tests"),
        folder=str(tiny_folders["llama"]),
        repo=str(repo_root),
        checkpoint=str(checkpoint),
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoint.is_file()
    assert torch.load(checkpoint, weights_only=False)["run"]["step"] == 20

    assert_resumes_to_the_whole_run(tiny_models["llama"], repo_root, checkpoint, finished)


def assert_resumes_to_the_whole_run(lm, repo_root, checkpoint, finished):
    """The run resumed from `checkpoint` ends exactly as the undisturbed one did."""
    resumed = recorded(
        lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
    )
    whole = finished["llama"][2]
    assert torch.equal(resumed.end, whole.end)
    for name in whole.steps:
        np.testing.assert_array_equal(resumed.steps[name], whole.steps[name])
    for name in whole.tokens:
        np.testing.assert_array_equal(np.array(resumed.tokens[name]), np.array(whole.tokens[name]))
    assert not checkpoint.exists()  # removed once the run completed


def test_checkpoint_of_other_settings_is_ignored(tiny_models, repo_root, tmp_path, finished):
    lm = tiny_models["llama"]
    checkpoint = tmp_path / "run.pt"
    engine._save_checkpoint(checkpoint, "other", {"run": {"step": 39}})
    result = recorded(
        lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
    )
    assert torch.equal(result.end, finished["llama"][2].end)


def test_non_finite_loss_names_step_and_sequence(tiny_models, repo_root, tmp_path):
    lm = tiny_models["llama"]
    problem, _ = make_problem(lm, repo_root)
    problem.target_logprobs[2, 5] = float("nan")
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(InputspaceError) as error:
        engine.optimise(
            lm,
            problem,
            settings(steps=30),
            None,
            checkpoint,
            "fp",
            label="tiny/pairs",
            progress=False,
        )
    message = str(error.value)
    assert "non-finite loss at step 0 in sequence 2" in message and "tiny/pairs" in message
    assert "\n" not in message
    assert not checkpoint.exists()


def test_non_finite_input_names_its_sequence(tiny_models, repo_root):
    lm = tiny_models["modernbert"]
    problem, _ = make_problem(lm, repo_root)
    problem.batch.embeddings[1, 3] = float("inf")
    with pytest.raises(InputspaceError, match="non-finite loss at step 0 in sequence 1"):
        engine.optimise(lm, problem, settings(steps=5), progress=False)


def test_unknown_precision_is_refused(tiny_models, repo_root):
    lm = tiny_models["llama"]
    with pytest.raises(InputspaceError, match="precision"):
        engine.optimise(
            lm, make_problem(lm, repo_root)[0], settings(precision="fp8"), progress=False
        )


class EveryStep:
    """An observer that keeps each step's point and KL (for the stopping-rule tests)."""

    def __init__(self):
        self.points, self.kl, self.active = [], [], []

    def observe(self, step):
        self.points.append(step.embeddings.clone())
        self.kl.append(step.kl.clone())
        self.active.append(step.active.clone())

    def state(self):
        return {}

    def restore(self, state):
        pass


STOP_BELOW = 0.006  # two of the four tiny llama pairs get there well before step 40


@pytest.fixture(scope="module")
def stopped_and_not(tiny_models, repo_root):
    """The tiny llama pairs run with and without a stopping rule that takes some
    sequences out of the batch well before the end."""
    lm = tiny_models["llama"]
    problem, _ = make_problem(lm, repo_root)
    runs_by_rule = {}
    for name, rule in (("all", None), ("stop", engine.StopRule(below=STOP_BELOW, patience=2))):
        watcher = EveryStep()
        run = engine.optimise(lm, problem, settings(stop=rule), watcher, progress=False)
        runs_by_rule[name] = (run, watcher)
    return runs_by_rule


def test_stopping_rule_freezes_converged_sequences(stopped_and_not):
    run, watcher = stopped_and_not["stop"]
    kl = torch.stack(watcher.kl)
    active = torch.stack(watcher.active)
    left = torch.nonzero(~active[-1]).squeeze(1).tolist()
    assert 0 < len(left) < kl.shape[1]  # some left, some stayed
    for seq in left:
        stop = int(torch.nonzero(~active[:, seq])[0])  # it left after this step's forward
        below = (kl[: stop + 1, seq] < STOP_BELOW).tolist()
        assert below[-2:] == [True, True]  # two consecutive steps below the level...
        assert not any(a and b for a, b in zip(below[:-2], below[1:-1]))  # ...for the first time
        # bit-identical from the step it stopped at to the end
        for later in watcher.points[stop:]:
            assert torch.equal(later[seq], watcher.points[stop][seq])
        assert torch.equal(run.end[seq], watcher.points[stop][seq])
        assert torch.all(kl[stop:, seq] == kl[stop, seq])


def test_stopping_rule_leaves_the_others_unchanged(stopped_and_not):
    run_all, every_all = stopped_and_not["all"]
    run_stop, every_stop = stopped_and_not["stop"]
    stayed = torch.nonzero(every_stop.active[-1]).squeeze(1)
    assert len(stayed) > 0
    torch.testing.assert_close(run_stop.end[stayed], run_all.end[stayed], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        torch.stack(every_stop.kl)[:, stayed],
        torch.stack(every_all.kl)[:, stayed],
        rtol=1e-4,
        atol=1e-6,
    )
    # and every sequence followed the same path up to where it stopped
    for seq in range(run_all.end.shape[0]):
        stop = (
            int(torch.nonzero(~torch.stack(every_stop.active)[:, seq])[0])
            if not every_stop.active[-1][seq]
            else 40
        )
        torch.testing.assert_close(
            every_stop.points[stop][seq], every_all.points[stop][seq], rtol=1e-5, atol=1e-6
        )


def test_run_ends_when_every_sequence_has_stopped(tiny_models, repo_root):
    """Rows after the early end hold every sequence's last values, marked inactive."""
    lm = tiny_models["llama"]
    result = recorded(
        lm, make_problem(lm, repo_root), settings(stop=engine.StopRule(below=10.0, patience=2))
    )
    steps = pd.DataFrame(result.steps)
    assert len(steps) == 41 * 4
    assert steps[steps.step <= 1].active.all() and not steps[steps.step >= 2].active.any()
    held = steps[steps.step >= 1].groupby("seq")
    assert (held.kl.nunique() == 1).all() and (held.l2_total.nunique() == 1).all()
    tokens = pd.DataFrame(result.tokens)
    assert tokens.step.max() == 1  # the last snapshot is where the run ended
    assert not torch.equal(result.end, result.start)


def test_sigterm_saves_the_step_it_reached_and_the_rerun_ends_the_same(
    tiny_models, repo_root, tmp_path, finished, monkeypatch
):
    """A scheduler's SIGTERM mid-step: the step finishes, its state is saved (not just
    the last periodic checkpoint), and the resumed run equals an undisturbed one."""
    lm = tiny_models["llama"]
    checkpoint = tmp_path / "run.pt"
    advance = engine.Descent.advance

    def advance_and_signal(self, observer=None):
        if self.step == 13:  # between the checkpoints of steps 10 and 20
            os.kill(os.getpid(), signal.SIGTERM)
        return advance(self, observer)

    with monkeypatch.context() as patch, termination.handled():
        patch.setattr(engine.Descent, "advance", advance_and_signal)
        with pytest.raises(termination.Terminated, match="at step 14 .checkpoint saved"):
            recorded(
                lm, make_problem(lm, repo_root), settings(), checkpoint=checkpoint, fingerprint="fp"
            )
    assert torch.load(checkpoint, weights_only=True)["run"]["step"] == 14
    assert_resumes_to_the_whole_run(lm, repo_root, checkpoint, finished)
