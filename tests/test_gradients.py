import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inputspace.analysis import run_measures
from inputspace.analysis.geometry import VocabIndex
from inputspace.errors import PromptError
from inputspace.model import models, vocab
from inputspace.optimisation import experiments
from inputspace.optimisation.sequences import from_prompts
from inputspace.studies import case_study

KINDS = ["modernbert", "llama"]
SOURCE = "The animal that says 'bark' is a [MASK]."
TARGET = "The animal that says 'neigh' is a [MASK]."


def vocab_index(lm):
    matrix = lm.vocab_embeddings()
    table = vocab.vocabulary_table(lm, matrix)
    return matrix, table, VocabIndex(matrix, vocab.regular_ids(table))


@pytest.mark.parametrize("name", KINDS)
def test_directional_derivative_matches_autograd(tiny_folders, name):
    """Central finite differences in float64 along a random direction, against autograd."""
    lm = models.load(tiny_folders[name])
    batch = from_prompts(lm, [SOURCE, "The capital of France is [MASK]."])
    target = experiments.target_logprobs(lm, [TARGET, TARGET]).double()
    lm.model.double()
    start = batch.embeddings.double()
    gradient, _ = case_study.input_gradient(lm, start, batch.attention_mask, batch.sites, target)
    direction = torch.randn(
        start.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    def loss(embeddings):
        _, per_sequence = case_study.input_gradient(
            lm, embeddings, batch.attention_mask, batch.sites, target
        )
        return float(per_sequence.sum())

    h = 1e-4
    numeric = (loss(start + h * direction) - loss(start - h * direction)) / (2 * h)
    analytic = float((gradient * direction).sum())
    assert abs(analytic) > 1e-3  # a direction the loss actually changes along
    assert abs(numeric - analytic) <= 1e-3 * abs(analytic)


def test_cross_entropy_by_hand():
    target = torch.log(torch.tensor([[0.25, 0.75]]))
    logits = torch.log(torch.tensor([[0.5, 0.5]]))
    assert float(case_study.cross_entropy(logits, target)) == pytest.approx(np.log(2), rel=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_cross_entropy_and_kl_share_the_gradient(tiny_models, name):
    lm = tiny_models[name]
    batch = from_prompts(lm, [SOURCE])
    target = experiments.target_logprobs(lm, [TARGET])
    ce_gradient, _ = case_study.input_gradient(
        lm, batch.embeddings, batch.attention_mask, batch.sites, target
    )
    leaf = batch.embeddings.clone().requires_grad_(True)
    kl = F.kl_div(
        F.log_softmax(lm.logits_at(leaf, batch.attention_mask, batch.sites), dim=-1),
        target,
        log_target=True,
        reduction="sum",
    )
    (kl_gradient,) = torch.autograd.grad(kl, leaf)
    torch.testing.assert_close(ce_gradient, kl_gradient, rtol=1e-4, atol=1e-7)


def test_gradient_cosines_match_a_slow_loop():
    generator = torch.Generator().manual_seed(1)
    matrix = torch.randn(40, 6, generator=generator)
    index = VocabIndex(matrix, torch.arange(3, 40))
    g = torch.randn(2, 6, generator=generator)
    e = torch.stack([matrix[5], torch.randn(6, generator=generator)])  # row 0 is token 5 itself
    toward_v, toward_gap = case_study.gradient_cosines(g, e, index)
    for row in range(2):
        for column, j in enumerate(range(3, 40)):
            expected_v = F.cosine_similarity(g[row], matrix[j], dim=0)
            assert float(toward_v[row, column]) == pytest.approx(float(expected_v), abs=1e-5)
            if row == 0 and j == 5:
                assert torch.isnan(toward_gap[row, column])
                continue
            expected_gap = F.cosine_similarity(g[row], matrix[j] - e[row], dim=0)
            assert float(toward_gap[row, column]) == pytest.approx(float(expected_gap), abs=1e-5)


def test_descent_lists_the_tokens_minus_the_gradient_points_at():
    matrix = torch.eye(4) * torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    index = VocabIndex(matrix, torch.arange(4))
    scores = torch.tensor([[0.9, -0.8, 0.1, float("nan")]])
    point = case_study.pointing(scores, index, k=2)
    assert point.ascent_ids.tolist() == [[0, 2]]
    assert point.descent_ids.tolist() == [[1, 2]]
    torch.testing.assert_close(point.descent_cos, torch.tensor([[0.8, -0.1]]))


@pytest.mark.parametrize("name", KINDS)
def test_gradient_table_rows_and_columns(tiny_models, name):
    lm = tiny_models[name]
    matrix, table, index = vocab_index(lm)
    batch = from_prompts(lm, [SOURCE])
    target = experiments.target_logprobs(lm, [TARGET])
    gradient, _ = case_study.input_gradient(
        lm, batch.embeddings, batch.attention_mask, batch.sites, target
    )
    result = case_study.gradient_table(
        batch.ids[0],
        batch.embeddings[0],
        gradient[0],
        batch.trainable[0],
        index,
        table.token.to_numpy(),
    )
    assert len(result) == batch.ids.shape[1]
    np.testing.assert_allclose(result.grad_norm, gradient[0].norm(dim=1).numpy(), rtol=1e-6)
    assert all(len(tokens) == case_study.TOP for tokens in result.descent_v_minus_e_tokens)
    readable = case_study.readable(result)
    assert "descent_v" in readable and "(" in readable.descent_v.iloc[0]


@pytest.mark.parametrize("name", KINDS)
def test_locate_follows_every_token_of_a_split_word(tiny_models, name):
    lm = tiny_models[name]
    positions, ids = case_study.locate(lm.tokenizer, lm.manifest, SOURCE, "bark")
    batch = from_prompts(lm, [SOURCE])
    assert batch.ids[0, positions].tolist() == ids
    assert lm.tokenizer.decode(ids).strip() == "bark"
    assert all(batch.trainable[0, positions])


def test_locate_rejects_a_missing_or_partial_word(tiny_models):
    lm = tiny_models["llama"]
    with pytest.raises(PromptError, match="does not occur"):
        case_study.locate(lm.tokenizer, lm.manifest, SOURCE, "bar")


@pytest.mark.parametrize("name", KINDS)
def test_follow_path_matches_brute_force(tiny_models, name):
    lm = tiny_models[name]
    matrix, table, index = vocab_index(lm)
    batch = from_prompts(lm, [SOURCE])
    positions, own_ids = case_study.locate(lm.tokenizer, lm.manifest, SOURCE, "bark")
    _, toward_ids = case_study.locate(lm.tokenizer, lm.manifest, TARGET, "neigh")
    start = batch.embeddings[0]
    moved = start.clone()
    moved[positions] += 0.3 * torch.randn(
        len(positions), start.shape[1], generator=torch.Generator().manual_seed(2)
    )
    path = case_study.follow_path(
        {0: start, 7: moved},
        start,
        positions,
        batch.ids[0],
        torch.tensor(toward_ids),
        matrix,
        index,
    )
    assert len(path) == 2 * len(positions) * len(toward_ids)
    end = path[path.step == 7]
    candidates = vocab.regular_ids(table)
    for row in end.itertuples():
        e, o, v = moved[row.pos], start[row.pos], matrix[row.toward_id]
        assert row.l2_travelled == pytest.approx(float((e - o).norm()), rel=1e-5)
        assert row.distance_to_toward == pytest.approx(float((e - v).norm()), rel=1e-5)
        headings = torch.stack(
            [
                F.cosine_similarity(e - o, matrix[j] - o, dim=0)
                for j in candidates
                if j != row.token_id
            ]
        )
        toward = float(F.cosine_similarity(e - o, v - o, dim=0))
        assert row.toward_heading_cosine == pytest.approx(toward, abs=1e-5)
        assert row.toward_heading_rank == 1 + int((headings > toward + 1e-5).sum())
        assert row.heading_cosine == pytest.approx(float(headings.max()), abs=1e-5)
        distances = (matrix[candidates] - e).norm(dim=1)
        assert row.nearest_euclidean_id == int(candidates[distances.argmin()])
    named = run_measures.name_tokens(path, table.token.to_numpy())
    assert (named[named.step == 0].heading_token == "").all()
    assert set(named.toward_token) == {table.token[i] for i in toward_ids}


def test_a_token_against_itself_is_nan_however_large_its_norm():
    """|v - e|^2 expanded as |v|^2 - 2 v.e + |e|^2 rounds to about eps |v|^2, not 0: the
    gap near e is taken from the difference itself."""
    generator = torch.Generator().manual_seed(2)
    matrix = torch.randn(20, 64, generator=generator) * 1000
    index = VocabIndex(matrix, torch.arange(20))
    g = torch.randn(1, 64, generator=generator)
    near = matrix[7] + 1e-2 * torch.randn(64, generator=generator)  # close, not equal
    _, itself = case_study.gradient_cosines(g, matrix[7:8], index)
    _, close = case_study.gradient_cosines(g, near.unsqueeze(0), index)
    assert torch.isnan(itself[0, 7]) and torch.isnan(itself[0]).sum() == 1
    expected = F.cosine_similarity(g[0], matrix[7] - near, dim=0)
    assert float(close[0, 7]) == pytest.approx(float(expected), abs=1e-4)
