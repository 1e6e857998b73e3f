"""A step size relative to each model's geometry: lr_relative x the median input-embedding
norm of the model's regular tokens, resolved per model, recorded in the run and shown in
the summary."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import PAIRS, make_problem
from test_analysis import run_tables
from test_config import SCHEMA, base_config

from inputspace.errors import ConfigError, InputspaceError
from inputspace.model import models, sources, vocab
from inputspace.optimisation import engine, experiments, runs, trajectory
from inputspace.optimisation.step_size import StepSize
from inputspace.studies import claims, summary
from inputspace.workflow.config import validated

OPTIMIZE = {
    "steps": 400,
    "betas": [0.9, 0.999],
    "checkpoint_every": 50,
    "chunk_size": None,
    "stop": {"below": 0.01, "patience": 1},
    "log_points": 5,
    "top_k": 5,
    "save_logged_embeddings": False,
}


def test_a_config_gives_lr_or_lr_relative_and_keeps_only_the_one_given():
    config = base_config()
    experiment = config["experiments"]["prompt_pairs"]
    experiment["optimize"] = {"lr_relative": 0.001, "steps": 10}
    filled = validated(config, SCHEMA)["experiments"]
    assert filled["prompt_pairs"]["optimize"]["lr_relative"] == 0.001
    assert "lr" not in filled["prompt_pairs"]["optimize"]  # its default is not filled in
    assert (
        filled["bark_neigh"]["optimize"]["lr"] == 0.003
        and "lr_relative" not in (filled["bark_neigh"]["optimize"])
    )
    experiment["optimize"]["lr"] = 0.01
    with pytest.raises(ConfigError) as info:
        validated(config, SCHEMA)
    message = str(info.value)
    assert "\n" not in message and "experiments.prompt_pairs.optimize" in message
    assert "both lr and lr_relative" in message
    experiment["optimize"] = {"lr_relative": 0}
    with pytest.raises(ConfigError, match="lr_relative"):
        validated(config, SCHEMA)


def test_the_default_config_is_filled_as_before():
    """No lr_relative key appears where a config has none: the rules' params, and so what
    reruns, stay as they were."""
    filled = validated(base_config(), SCHEMA)
    for experiment in filled["experiments"].values():
        assert set(experiment["optimize"]) == {
            "steps",
            "lr",
            "betas",
            "log_points",
            "top_k",
            "checkpoint_every",
            "save_logged_embeddings",
            "chunk_size",
            "stop",
        }


def test_the_step_size_by_hand():
    table = pd.DataFrame(
        {"norm": [9.0, 1.0, 2.0, 4.0, 100.0], "is_regular": [False, True, True, True, False]}
    )
    assert experiments.median_token_norm(table) == 2.0  # of 1, 2, 4: specials left out
    relative = StepSize.of({"lr_relative": 0.01}, 2.0)
    assert (relative.lr, relative.relative, relative.median_token_norm) == (0.02, 0.01, 2.0)
    assert relative.describe() == "0.02 (lr_relative 0.01 x median token norm 2)"
    absolute = StepSize.of({"lr": 0.003}, 2.0)
    assert absolute.lr == 0.003 and absolute.record() == {}  # the config holds it
    assert StepSize.recorded({"lr_relative": 0.01}, relative.record()) == relative
    assert StepSize.recorded({"lr": 0.003}, {"seed": 0}) == absolute
    with pytest.raises(InputspaceError, match="median token norm"):
        experiments.optimisation_settings({**OPTIMIZE, "lr_relative": 0.01})
    settings, _ = experiments.optimisation_settings({**OPTIMIZE, "lr_relative": 0.01}, "fp32", 3.0)
    assert settings.lr == pytest.approx(0.03)


def test_the_run_records_the_lr_it_got_and_the_summary_shows_it(finished, tmp_path):
    problem, _, result = finished["llama"]
    step = StepSize.of({"lr_relative": 0.004}, 2.5)
    paths = runs.RunPaths(
        *(tmp_path / name for name in ("s.parquet", "t.parquet", "k.parquet")),
        tmp_path / "e.safetensors",
    )
    runs.write_run(result, problem.batch, "a", "x", paths, {"seed": 0, **step.record()})
    info = trajectory.read_run_info(paths.steps)
    assert info["lr"] == pytest.approx(0.01) and info["median_token_norm"] == 2.5
    shown = StepSize.recorded({"lr_relative": 0.004}, info).describe()
    assert shown == "0.01 (lr_relative 0.004 x median token norm 2.5)"
    part = summary.section(
        "x",
        {"models": ["a"], "sequences": {"kind": "random"}},
        {"a": "causal"},
        run_tables([0.001, 0.2]),
        {"a": claims.Scale(median_pair=2.0, coordinate_spread=0.1, hidden=8, source="random")},
        step_sizes={"a": shown},
    )
    assert part.appendix.loc["Adam step size (lr)", "a"] == shown


def unscaled_twin(lm: models.LanguageModel) -> models.LanguageModel:
    """The same function of the token ids with the embedding module's sqrt(d) scale moved
    into the body (as Gemma 1 and 2 do it): its input space is the scaled model's, shrunk
    by sqrt(d)."""
    twin = models.LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, lm.manifest)
    embedding = twin.model.get_input_embeddings()
    scale = float(embedding.embed_scale)
    embedding.embed_scale.fill_(1.0)

    def scale_inputs(module, args, kwargs):
        if kwargs.get("inputs_embeds") is None:  # the head's own forward, run on ids
            return None
        return args, {**kwargs, "inputs_embeds": kwargs["inputs_embeds"] * scale}

    twin.model.base_model.register_forward_pre_hook(scale_inputs, with_kwargs=True)
    return twin


def steps_to_converge(lm, repo_root, optimize: dict) -> tuple[np.ndarray, float]:
    """Steps each of 8 prompt pairs takes to KL 0.01 (Adam, the stopping rule), and the lr."""
    norm = experiments.median_token_norm(vocab.vocabulary_table(lm, lm.vocab_embeddings()))
    settings, _ = experiments.optimisation_settings({**OPTIMIZE, **optimize}, "fp32", norm)
    problem, _ = make_problem(
        lm, repo_root, {**PAIRS, "sequences": {**PAIRS["sequences"], "count": 8}}
    )
    steps = np.zeros(len(problem.batch), dtype=int)

    class Last:
        def observe(self, step):
            steps[step.rows.numpy()] = step.number

        def state(self):
            return {}

        def restore(self, state):
            pass

    run = engine.optimise(lm, problem, settings, Last(), progress=False)
    assert float(run.kl.max()) <= 0.01  # every pair converged within the cap
    return steps, settings.lr


def test_a_sqrt_d_scaled_model_converges_like_an_unscaled_one_with_a_relative_step(
    tmp_path, repo_root
):
    """Gemma 3 scales its input embeddings by sqrt(d) inside the embedding module (8 for
    the tiny one's 64): its token norms are 8 times its unscaled twin's. At one absolute lr
    it needs far more steps; at one relative lr it takes the same steps (Adam's step is
    scale-free in the gradient, so only the step's size against the geometry counts)."""
    folder = tmp_path / "gemma3"
    sources.prepare("gemma3", {"kind": "random", "architecture": "gemma3", "seed": 0}, folder)
    scaled = models.load(folder)
    unscaled = unscaled_twin(scaled)
    norms = [
        experiments.median_token_norm(vocab.vocabulary_table(lm, lm.vocab_embeddings()))
        for lm in (scaled, unscaled)
    ]
    assert norms[0] == pytest.approx(8 * norms[1], rel=1e-6)
    plain_scaled, _ = steps_to_converge(scaled, repo_root, {"lr": 0.01})
    plain_unscaled, _ = steps_to_converge(unscaled, repo_root, {"lr": 0.01})
    relative_scaled, lr_scaled = steps_to_converge(scaled, repo_root, {"lr_relative": 0.006})
    relative_unscaled, lr_unscaled = steps_to_converge(unscaled, repo_root, {"lr_relative": 0.006})
    assert lr_scaled == pytest.approx(8 * lr_unscaled, rel=1e-6)
    assert np.median(plain_scaled) >= 2 * np.median(plain_unscaled)
    assert np.abs(relative_scaled - relative_unscaled).max() <= 1
    torch.testing.assert_close(torch.tensor(norms[0]), torch.tensor(8 * norms[1]))
