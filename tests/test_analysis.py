import numpy as np
import pandas as pd
import pytest
import torch

from inputspace.analysis import run_measures
from inputspace.optimisation import runs
from inputspace.studies import claims, summary


def steps_table(
    kl_by_seq: dict[int, list[float]],
    l2_by_seq: dict[int, list[float]],
    stopped: dict | None = None,
) -> pd.DataFrame:
    """`stopped[seq]`: the step after which the stopping rule took it out (its rows then
    hold its last values, inactive, as the recorder writes them)."""
    stopped = stopped or {}
    rows = []
    for seq, kls in kl_by_seq.items():
        last = stopped.get(seq, len(kls))
        for step in range(len(kls)):
            held = min(step, last)
            rows.append(
                {
                    "model": "m",
                    "seq": seq,
                    "step": step,
                    "active": step <= last,
                    "kl": kls[held],
                    "l2_total": l2_by_seq[seq][held],
                }
            )
    return pd.DataFrame(rows)


def test_convergence_by_hand():
    steps = steps_table(
        {0: [1.0, 0.5, 0.009, 0.001] + [0.001] * 7, 1: [1.0] * 11},
        {0: list(range(11)), 1: [0.0] * 11},
    )
    table = run_measures.convergence(steps).set_index("seq")
    assert table.steps_to_threshold[0] == 2
    assert np.isnan(table.steps_to_threshold[1])
    assert table.final_l2_total[0] == 10
    assert table.l2_growth_last_tenth[0] == pytest.approx(0.1)  # from step 9 to step 10 of 10
    assert table.l2_growth_last_tenth[1] == 0
    assert table.steps_past_threshold[0] == 8 and table.l2_growth_past_threshold[
        0
    ] == pytest.approx(0.8)


def test_convergence_of_a_stopped_sequence_counts_its_optimised_steps_only():
    """Stopped at step 5 of 10: travel is judged over steps 0-5, not over the held rows."""
    steps = steps_table(
        {0: [1.0, 0.5, 0.009, 0.005, 0.004, 0.004] + [9.0] * 5},
        {0: list(range(11))},
        stopped={0: 5},
    )
    row = run_measures.convergence(steps).iloc[0]
    assert row.steps_optimised == 5 and row.final_kl == 0.004
    assert row.final_l2_total == 5
    # step 4 (the last at or below 4.5) to 5
    assert row.l2_growth_last_tenth == pytest.approx(1 / 5)
    assert row.steps_past_threshold == 3 and row.l2_growth_past_threshold == pytest.approx(3 / 5)


def test_moves_take_only_optimised_positions(tmp_path):
    start = torch.zeros(2, 3, 4)
    end = start.clone()
    end[0, 1] = torch.tensor([3.0, 4.0, 0.0, 0.0])
    end[1, 0] = 5.0  # frozen: must be ignored
    trainable = torch.tensor([[False, True, True], [False, True, False]])
    ids = torch.zeros(2, 3, dtype=torch.long)
    path = tmp_path / "embeddings.safetensors"
    written = runs.RunEmbeddings(
        start,
        end,
        ids,
        torch.ones_like(ids),
        trainable,
        torch.tensor([2, 1]),
        logged={10: end * 0.5, 1: end * 0.1},
    )
    written.write(path)
    read = runs.RunEmbeddings.read(path)
    assert list(read.logged) == [1, 10] and torch.equal(read.logged[10], end * 0.5)
    assert torch.equal(read.sites, written.sites) and read.trainable.dtype == torch.bool
    move = read.moves()
    assert move.delta.shape == (3, 4)
    np.testing.assert_allclose(sorted(move.l2), [0, 0, 5])


def test_displacement_stats_by_hand():
    delta = np.zeros((4, 100))
    delta[0, 0] = 1.0  # one token, one dimension carries everything
    delta[1:, 1] = 0.01
    stats = run_measures.displacement_stats(run_measures.Moves(delta, np.zeros(4), np.arange(4)))
    assert stats.max_abs_dimension == 1.0
    assert stats.top_dimensions_share == pytest.approx(1.0 / (1.0 + 3e-4))
    assert stats.share_below_small == pytest.approx(399 / 400)
    assert stats.max_l2 == 1.0 and stats.median_l2 == pytest.approx(0.01)


def test_isotropic_displacement_favours_nothing():
    delta = np.random.default_rng(0).normal(size=(2000, 200))
    stats = run_measures.displacement_stats(
        run_measures.Moves(delta, np.zeros(2000), np.zeros(2000))
    )
    assert 0.01 < stats.top_dimensions_share < 0.015
    assert stats.dimension_rms_max_over_median < 1.2
    assert stats.token_l2_cv < 0.1


def tokens_table(nearest_by_step: list[int], token_id: int = 7) -> pd.DataFrame:
    n = len(nearest_by_step)
    return pd.DataFrame(
        {
            "model": "m",
            "seq": 0,
            "pos": 1,
            "step": [10 * i for i in range(n)],
            "token_id": token_id,
            "l2": np.linspace(0, 1, n),
            "nearest_euclidean_id": nearest_by_step,
            "nearest_euclidean": np.linspace(0.0, 0.5, n),
            "nearest_cosine_id": [token_id] * n,
            "nearest_cosine": 1.0,
            "heading_id": [-1] + [3] * (n - 1),
            "heading_cosine": [np.nan] + [0.2] * (n - 1),
            "watch_ids": [[3, 4]] * n,
            "watch_cosines": [[0.2, 0.1]] * n,
            "watch_ranks": [[1, 9]] * n,
        }
    )


def test_backprojection_change_step_is_where_it_settles():
    tokens = tokens_table([7, 8, 7, 9, 9])
    changes = run_measures.backprojection_changes(tokens)
    assert len(changes) == 1
    change = changes.iloc[0]
    assert (change.from_id, change.to_id, change.step_changed) == (7, 9, 30)
    assert change.l2_at_change == pytest.approx(0.75)
    assert run_measures.backprojection_changes(tokens, "cosine").empty
    counts = run_measures.backprojection_counts(tokens, changes).set_index("measure")
    assert counts.loc["euclidean", "fraction_changed"] == 1.0
    assert counts.loc["cosine", "changed"] == 0


def test_replicates_are_contiguous_blocks_by_hand():
    of = run_measures.replicate_of
    assert list(of(np.arange(8), 8, 3)) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert list(of(np.arange(9), 9, 3)) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert list(of(np.arange(2), 2, 3)) == [0, 1]  # more replicates than sequences: one each
    assert list(of(np.arange(16), 16, 4)) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert of(5, 8, 3) == 1 and isinstance(of(5, 8, 3), int)
    assert list(of(np.arange(4), 4, 1)) == [0] * 4
    assert list(of(np.array([0, 1, 0, 1]), np.array([2, 2, 4, 4]), 2)) == [0, 1, 0, 0]
    with pytest.raises(ValueError):
        of(8, 8, 3)


def test_replicates_for_an_experiment():
    def spec(sequences, **more):
        return {"sequences": sequences, **more}

    for_ = run_measures.replicates_for
    assert for_(spec({"kind": "prompt", "prompt": "p"}, replicates=4)) == 1
    assert for_(spec({"kind": "prompt", "prompt": ["p", "q", "r"]}, replicates=5)) == 3
    assert for_(spec({"kind": "random", "count": 9})) == 3  # the default
    assert for_(spec({"kind": "random", "count": 64}, replicates=4)) == 4
    assert for_(spec({"kind": "random", "count": 2}, replicates=3)) == 2
    assert for_(spec({"kind": "pairs", "file": "f", "count": 16}, replicates=3)) == 3
    assert for_(spec({"kind": "pairs", "file": "f"}, replicates=5)) == 5  # the table clamps


def test_tables_split_into_replicates_by_their_own_sequence_count():
    table = pd.DataFrame({"model": ["a"] * 8 + ["b"] * 2, "seq": [*range(8), 0, 1], "x": 0.0})
    split = run_measures.with_replicates(table, 3)
    assert list(split.columns) == ["model", "seq", "replicate", "x"]
    assert list(split.replicate) == [0, 0, 0, 1, 1, 1, 2, 2, 0, 1]
    assert "replicate" not in table


def test_moves_split_per_replicate():
    seq = np.array([0, 0, 1, 2, 3, 3, 3])
    move = run_measures.Moves(np.arange(14.0).reshape(7, 2), seq, np.arange(7))
    split = run_measures.split_moves(move, 2)
    assert list(split) == [0, 1]
    assert list(split[0].seq) == [0, 0, 1] and list(split[1].seq) == [2, 3, 3, 3]
    np.testing.assert_array_equal(split[1].delta, move.delta[3:])
    alone = run_measures.moves_of_replicate(move, 1, 4, 2)
    np.testing.assert_array_equal(alone.pos, [3, 4, 5, 6])
    assert list(run_measures.split_moves(move, 9)) == [0, 1, 2, 3]  # clamped to 4 sequences


def test_backprojection_counts_per_replicate():
    """Sequences 0-3 in two replicates: 0-1 (one of its 2 tokens changed), 2-3 (none)."""
    tokens = pd.concat(
        [tokens_table([7, 7]).assign(seq=seq) for seq in range(4)], ignore_index=True
    )
    changes = run_measures.backprojection_changes(tokens_table([7, 8]).assign(seq=1))
    counts = run_measures.backprojection_counts(tokens, changes, 2)
    assert list(counts.columns) == [
        "model",
        "replicate",
        "measure",
        "tokens",
        "changed",
        "fraction_changed",
    ]
    assert list(counts.replicate) == [0, 0, 1, 1]
    euclidean = counts[counts.measure == "euclidean"].set_index("replicate")
    assert list(euclidean.tokens) == [2, 2] and list(euclidean.changed) == [1, 0]
    assert list(euclidean.fraction_changed) == [0.5, 0.0]
    pooled = run_measures.backprojection_counts(tokens, changes).set_index("measure")
    assert "replicate" not in pooled and pooled.loc["euclidean", "fraction_changed"] == 0.25


def test_headings_one_row_per_watch_token_at_the_last_step():
    table = run_measures.headings(tokens_table([7, 7, 7]))
    assert len(table) == 2
    assert list(table.watch_id) == [3, 4] and list(table.watch_rank) == [1, 9]
    assert (table.step == 20).all() and (table.heading_id == 3).all()


def test_density_curves_share_a_grid_and_integrate_to_one():
    rng = np.random.default_rng(1)
    curves = run_measures.density_curves(
        {"a": rng.normal(3, 0.3, 500), "b": rng.normal(1, 0.2, 500), "one": np.ones(3)}
    )
    dx = curves.x[1] - curves.x[0]
    assert curves.a.sum() * dx == pytest.approx(1, abs=0.02)
    assert curves.b.sum() * dx == pytest.approx(1, abs=0.02)
    assert curves.one.isna().all()


def run_tables(final_kl: list[float]) -> claims.RunTables:
    n = len(final_kl)
    return claims.RunTables(
        convergence=pd.DataFrame(
            {
                "model": "a",
                "seq": range(n),
                "replicate": 0,  # one replicate: with_replicates splits a real table
                "steps_to_threshold": [5.0] * n,
                "final_kl": final_kl,
                "final_l2_total": 1.0,
                "l2_growth_last_tenth": 0.01,
            }
        ),
        curves=pd.DataFrame(
            {
                "model": "a",
                "seq": [*range(n)] * 2,
                "step": [0] * n + [1] * n,
                "kl": [1.0] * n + final_kl,
            }
        ),
        displacement=pd.DataFrame(
            [
                {
                    "model": "a",
                    "replicate": 0,
                    "median_l2": 0.5,
                    "max_l2": 1.0,
                    "max_abs_dimension": 0.1,
                    "share_below_small": 0.95,
                    "top_dimensions_share": 0.02,
                    "token_l2_max_over_median": 2.0,
                    "dimension_rms_q90": 0.01,
                }
            ]
        ),
        counts=pd.DataFrame(
            {
                "model": "a",
                "replicate": 0,
                "measure": ["euclidean", "cosine"],
                "tokens": 10,
                "changed": [1, 0],
                "fraction_changed": [0.1, 0.0],
            }
        ),
    )


SCALE = claims.Scale(median_pair=2.0, coordinate_spread=0.1, hidden=576, source="package_gguf")


def three_replicates(final_kl: list[float]) -> claims.RunTables:
    """`run_tables` as three replicates of the same sequences (seq numbered apart)."""
    one = run_tables(final_kl)
    n = len(final_kl)

    def stacked(table, per_seq):
        parts = []
        for r in range(3):
            part = table.assign(replicate=r)
            if per_seq:
                part = part.assign(seq=part.seq + r * n)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    return claims.RunTables(
        convergence=stacked(one.convergence, True),
        curves=stacked(one.curves, True),
        displacement=stacked(one.displacement, False),
        counts=stacked(one.counts, False),
    )


def by_claim(verdicts):
    return {v.claim: v for v in verdicts}


def claim_says(claim_id: str) -> str:
    return next(c.says for c in claims.CLAIMS if c.id == claim_id)


def test_the_page_opens_in_plain_words_and_names_every_model_and_claim():
    part = summary.section(
        "rand",
        {"models": ["a"], "sequences": {"kind": "random"}},
        {"a": "causal"},
        three_replicates([0.001] * 9 + [0.05]),
        {"a": SCALE},
    )
    text = summary.markdown(summary.page([part], ["a"], "note"))
    top = text.split("## Terms")[0]
    assert "**In short:**" in top and "agree" in top and "not comparable" in top
    assert claim_says("small_travel") in top  # every claim in the overview
    assert "## Terms" in text and "**d**" in text and "**back-projection**" in text
    assert "Experiment 5" in text and "| measured | a |" in text
    assert "3 (30 sequences)" in text and "25.0%" in text
    assert "<table" in summary.as_html(summary.page([part], ["a"], "note"))


def test_verdicts_are_judged_on_each_converged_replicate():
    """9 of 10 below 1e-2 in every replicate: judged, 3 of 3; 8 of 10: 'not measured'."""
    judged = by_claim(
        claims.study_verdicts(
            "random", "causal", three_replicates([0.001] * 9 + [0.05]), "a", SCALE
        )
    )
    converges = next(v for v in judged.values() if v.claim.startswith("the loss converges"))
    assert converges.state == "agrees" and (converges.held, converges.judged) == (3, 3)
    assert judged[claim_says("fast_mean_kl")].state == "agrees"
    assert judged[claim_says("some_back_projection")].plain() == "agrees (3 of 3 replicates)"
    masked = by_claim(
        claims.study_verdicts("random", "masked", three_replicates([0.001] * 10), "a", SCALE)
    )
    assert masked[claim_says("no_back_projection")].state == "disagrees"
    short = by_claim(
        claims.study_verdicts(
            "random", "causal", three_replicates([0.001] * 8 + [0.05] * 2), "a", SCALE
        )
    )
    assert short[claim_says("small_travel")].state == "not measured"


def test_a_replicate_that_disagrees_makes_the_verdict_mixed_with_its_range():
    tables = three_replicates([0.001] * 10)
    tables.displacement.loc[tables.displacement.replicate == 2, "median_l2"] = 1.5  # 75% of 2.0
    verdict = by_claim(claims.study_verdicts("random", "causal", tables, "a", SCALE))[
        claim_says("small_travel")
    ]
    assert verdict.state == "mixed" and (verdict.held, verdict.judged) == (2, 3)
    assert verdict.found == "25.0–75.0%" and "50%" in verdict.contradicted_by


def test_a_threshold_in_another_models_units_is_not_comparable_unless_that_model_ran():
    """The 0.02 of Experiment 5 is in Llama-3.2-1B's units: on another model 'not
    comparable' with this model's scale beside; where the run has Llama too, the threshold
    is carried over by the two spreads and judged."""
    tables = three_replicates([0.001] * 10)
    tables.displacement["dimension_rms_q90"] = 0.03
    says = claim_says("small_dimensions")
    other = by_claim(claims.study_verdicts("random", "causal", tables, "a", SCALE))[says]
    assert other.state == "not comparable" and "0.03 is 0.30 of it" in other.note
    # break-even: 0.02 x 0.1 / 0.03, the study model's spread under which it would hold
    assert "holds here if that spread is under 0.0667" in other.note
    with_llama = claims.Scale(**{**vars(SCALE), "study_spread": 0.02})  # rescaled: 0.1
    carried = by_claim(claims.study_verdicts("random", "causal", tables, "a", with_llama))[says]
    assert carried.state == "not comparable" and "is 0.1: under it" in carried.note
    llama = claims.Scale(**{**vars(SCALE), "source": claims.STUDY_MODELS["causal"]})
    same = by_claim(claims.study_verdicts("random", "causal", tables, "a", llama))[says]
    assert same.state == "disagrees"  # 0.03 is not under the study's own 0.02


@pytest.mark.parametrize(
    ("kinds", "expected_ids"),
    [
        (("pairs", "masked"), ["levels_off", "no_dimension", "no_token"]),
        (("random", "masked"), ["levels_off", "no_back_projection"]),
        (
            ("random", "causal"),
            ["fast_mean_kl", "small_travel", "small_dimensions", "some_back_projection"],
        ),
        (("prompt", "causal"), ["travels_far_less", "nearest_itself", "heads_to_counterpart"]),
    ],
)
def test_each_experiment_kind_is_judged_on_its_own_claims(kinds, expected_ids):
    assert [claim.id for claim in claims.claims_for(*kinds)] == expected_ids
    judged = claims.study_verdicts(*kinds, three_replicates([0.001] * 10), "a", SCALE)
    path_claims = {"travels_far_less", "nearest_itself", "heads_to_counterpart"}
    expected = [claim_says(c) for c in expected_ids if c not in path_claims]
    assert [v.claim for v in judged[1:]] == expected


def test_a_threshold_decides_its_verdict():
    """Travel levels off below LEVELS_OFF of the total added in the last tenth."""
    says = claim_says("levels_off")
    tables = three_replicates([0.001] * 10)
    tables.convergence["l2_growth_last_tenth"] = claims.LEVELS_OFF * 0.99
    assert (
        by_claim(claims.study_verdicts("pairs", "masked", tables, "a", SCALE))[says].state
        == "agrees"
    )
    tables.convergence["l2_growth_last_tenth"] = claims.LEVELS_OFF * 1.01
    assert (
        by_claim(claims.study_verdicts("pairs", "masked", tables, "a", SCALE))[says].state
        == "disagrees"
    )


def test_every_claim_names_what_would_have_contradicted_it():
    ids = [claim.id for claim in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    assert all(claims.claims_for(*kinds) for kinds in claims.STUDY_SAYS)
    assert all(claim.contradicted_by and claim.measure for claim in claims.CLAIMS)


def test_table_keys_name_each_table_of_each_experiment_and_model_apart():
    from inputspace.workflow.table_names import table_key

    keys = {
        table_key("model", model="a_b"),
        table_key("model", model="a"),
        table_key("convergence", "a_b"),
        table_key("path", "a", "b"),
        table_key("path", "a_b", "c"),
        table_key("path", "a", "b_c"),
    }
    assert len(keys) == 6
    assert table_key("path", "e", "m") == "path/e/m" and table_key("model", model="m") == "model//m"


def test_replicates_notes_that_differ_only_in_numbers_read_as_one_with_ranges():
    notes = [
        "cosine 0.15 against a random direction's typical 0.04: beyond chance",
        "cosine 0.16 against a random direction's typical 0.04: beyond chance",
        "cosine 0.146 against a random direction's typical 0.04: beyond chance",
    ]
    assert claims.merged_notes(notes) == (
        "cosine 0.146–0.16 against a random direction's typical 0.04: beyond chance"
    )
    assert claims.merged_notes(["within chance at 1e-3", "beyond chance at 2e-3"]) == (
        "within chance at 1e-3; beyond chance at 2e-3"  # not one shape: both kept
    )
    assert claims.merged_notes(["on configs/paper.yaml 2 of 3"]) == "on configs/paper.yaml 2 of 3"
