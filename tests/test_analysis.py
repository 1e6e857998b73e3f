import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from inputspace import analysis, summary


def steps_table(kl_by_seq: dict[int, list[float]], l2_by_seq: dict[int, list[float]]) -> pd.DataFrame:
    rows = [
        {"model": "m", "seq": seq, "step": step, "kl": kl, "l2_total": l2_by_seq[seq][step]}
        for seq, kls in kl_by_seq.items()
        for step, kl in enumerate(kls)
    ]
    return pd.DataFrame(rows)


def test_convergence_by_hand():
    steps = steps_table(
        {0: [1.0, 0.5, 0.009, 0.001] + [0.001] * 7, 1: [1.0] * 11},
        {0: list(range(11)), 1: [0.0] * 11},
    )
    table = analysis.convergence(steps).set_index("seq")
    assert table.steps_to_threshold[0] == 2
    assert np.isnan(table.steps_to_threshold[1])
    assert table.final_l2_total[0] == 10
    assert table.l2_growth_last_tenth[0] == pytest.approx(0.1)  # from step 9 to step 10 of 10
    assert table.l2_growth_last_tenth[1] == 0


def test_moves_take_only_optimised_positions(tmp_path):
    start = torch.zeros(2, 3, 4)
    end = start.clone()
    end[0, 1] = torch.tensor([3.0, 4.0, 0.0, 0.0])
    end[1, 0] = 5.0  # frozen: must be ignored
    trainable = torch.tensor([[False, True, True], [False, True, False]])
    path = tmp_path / "embeddings.safetensors"
    save_file({"start": start, "end": end, "trainable": trainable}, str(path))
    move = analysis.moves(path)
    assert move.delta.shape == (3, 4)
    np.testing.assert_allclose(sorted(move.l2), [0, 0, 5])


def test_displacement_stats_by_hand():
    delta = np.zeros((4, 100))
    delta[0, 0] = 1.0  # one token, one dimension carries everything
    delta[1:, 1] = 0.01
    stats = analysis.displacement_stats(analysis.Moves(delta, np.zeros(4), np.arange(4)))
    assert stats.max_abs_dimension == 1.0
    assert stats.top_dimensions_share == pytest.approx(1.0 / (1.0 + 3e-4))
    assert stats.share_below_small == pytest.approx(399 / 400)
    assert stats.max_l2 == 1.0 and stats.median_l2 == pytest.approx(0.01)


def test_isotropic_displacement_favours_nothing():
    delta = np.random.default_rng(0).normal(size=(2000, 200))
    stats = analysis.displacement_stats(analysis.Moves(delta, np.zeros(2000), np.zeros(2000)))
    assert 0.01 < stats.top_dimensions_share < 0.015
    assert stats.dimension_rms_max_over_median < 1.2
    assert stats.token_l2_cv < 0.1


def tokens_table(nearest_by_step: list[int], token_id: int = 7) -> pd.DataFrame:
    n = len(nearest_by_step)
    return pd.DataFrame(
        {
            "model": "m", "seq": 0, "pos": 1, "step": [10 * i for i in range(n)], "token_id": token_id,
            "l2": np.linspace(0, 1, n), "nearest_euclidean_id": nearest_by_step,
            "nearest_euclidean": np.linspace(0.0, 0.5, n), "nearest_cosine_id": [token_id] * n,
            "nearest_cosine": 1.0, "heading_id": [-1] + [3] * (n - 1),
            "heading_cosine": [np.nan] + [0.2] * (n - 1),
            "watch_ids": [[3, 4]] * n, "watch_cosines": [[0.2, 0.1]] * n, "watch_ranks": [[1, 9]] * n,
        }
    )


def test_backprojection_change_step_is_where_it_settles():
    tokens = tokens_table([7, 8, 7, 9, 9])
    changes = analysis.backprojection_changes(tokens)
    assert len(changes) == 1
    change = changes.iloc[0]
    assert (change.from_id, change.to_id, change.step_changed) == (7, 9, 30)
    assert change.l2_at_change == pytest.approx(0.75)
    assert analysis.backprojection_changes(tokens, "cosine").empty
    counts = analysis.backprojection_counts(tokens, changes).set_index("measure")
    assert counts.loc["euclidean", "fraction_changed"] == 1.0
    assert counts.loc["cosine", "changed"] == 0


def test_headings_one_row_per_watch_token_at_the_last_step():
    table = analysis.headings(tokens_table([7, 7, 7]))
    assert len(table) == 2
    assert list(table.watch_id) == [3, 4] and list(table.watch_rank) == [1, 9]
    assert (table.step == 20).all() and (table.heading_id == 3).all()


def test_density_curves_share_a_grid_and_integrate_to_one():
    rng = np.random.default_rng(1)
    curves = analysis.density_curves({"a": rng.normal(3, 0.3, 500), "b": rng.normal(1, 0.2, 500), "one": np.ones(3)})
    dx = curves.x[1] - curves.x[0]
    assert curves.a.sum() * dx == pytest.approx(1, abs=0.02)
    assert curves.b.sum() * dx == pytest.approx(1, abs=0.02)
    assert curves.one.isna().all()


def test_summary_markdown_names_every_model_and_claim():
    tables = summary.RunTables(
        convergence=pd.DataFrame({"model": ["a", "a"], "seq": [0, 1], "steps_to_threshold": [5, np.nan],
                                  "final_kl": [0.001, 0.2], "final_l2_total": [1, 2], "l2_growth_last_tenth": [0.01, 0.02]}),
        curves=pd.DataFrame({"model": "a", "seq": [0, 1, 0, 1], "step": [0, 0, 1, 1], "kl": [1, 1, 0.001, 0.001]}),
        displacement=pd.DataFrame([{"model": "a", "median_l2": 0.5, "max_l2": 1.0, "max_abs_dimension": 0.1,
                                    "share_below_small": 0.9, "top_dimensions_share": 0.02}]),
        counts=pd.DataFrame({"model": "a", "measure": ["euclidean", "cosine"], "tokens": 10, "changed": [1, 0],
                             "fraction_changed": [0.1, 0.0]}),
    )
    spec = {"models": ["a"], "sequences": {"kind": "random"}}
    part = summary.section("rand", spec, {"a": "causal"}, tables, {"a": 2.0})
    text = summary.markdown([part], "header")
    assert "Experiment 5" in text and "| measured | a |" in text
    assert "1 / 2" in text and "25.0%" in text and "10.0%; 0.0% of 10 tokens" in text
    assert "<table" in summary.as_html([part], "header")
