import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from inputspace.analysis import geometry


def known_points(n=20000, seed=0):
    """Points from a Gaussian with a known, deliberately anisotropic covariance."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.tensor(
        [[2.0, 0.0, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0], [0.0, 0.3, 0.2, 0.0], [0.1, 0.0, 0.0, 0.05]]
    )
    z = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return (
        z @ mixing.T.double() + torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    ).float()


def test_fit_matches_numpy_mean_and_covariance():
    points = known_points()
    ellipse = geometry.fit_ellipse(points)
    x = points.double().numpy()
    np.testing.assert_allclose(ellipse.mean.numpy(), x.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(ellipse.covariance.numpy(), np.cov(x.T), rtol=1e-4, atol=1e-6)


def test_fit_axes_are_orthonormal_and_scales_descend():
    ellipse = geometry.fit_ellipse(known_points())
    np.testing.assert_allclose((ellipse.axes.T @ ellipse.axes).numpy(), np.eye(4), atol=1e-5)
    assert torch.all(ellipse.scales[:-1] >= ellipse.scales[1:])
    # Largest variance: the first coordinate's 2.0**2 = 4, within sampling error.
    assert ellipse.eigenvalues[0].item() == pytest.approx(4.0 + 0.25, rel=0.05)


def test_samples_match_the_fit():
    """Sample mean and covariance match the ellipse; each standardised principal
    coordinate is N(0, 1) by a Kolmogorov-Smirnov test."""
    ellipse = geometry.fit_ellipse(known_points())
    n = 50000
    drawn = geometry.sample_ellipse(ellipse, n, torch.Generator().manual_seed(1)).double()
    z = ((drawn - ellipse.mean.double()) @ ellipse.axes.double()) / ellipse.scales.double()
    se = 1 / np.sqrt(n)
    assert np.abs(z.mean(dim=0).numpy()).max() < 5 * se
    np.testing.assert_allclose(np.cov(z.numpy().T), np.eye(4), atol=5 * np.sqrt(2) * se)
    for column in z.T.numpy():
        assert stats.kstest(column, "norm").pvalue > 1e-3
    refit = geometry.fit_ellipse(drawn.float())
    np.testing.assert_allclose(
        refit.covariance.numpy(), ellipse.covariance.numpy(), rtol=0.05, atol=0.03
    )


def test_sampling_is_seeded():
    ellipse = geometry.fit_ellipse(known_points(1000))
    a = geometry.sample_ellipse(ellipse, 10, torch.Generator().manual_seed(7))
    b = geometry.sample_ellipse(ellipse, 10, torch.Generator().manual_seed(7))
    c = geometry.sample_ellipse(ellipse, 10, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ellipse_round_trips(tmp_path):
    ellipse = geometry.fit_ellipse(known_points(1000))
    geometry.save_ellipse(ellipse, tmp_path / "e.safetensors")
    loaded = geometry.load_ellipse(tmp_path / "e.safetensors")
    assert torch.equal(loaded.mean, ellipse.mean) and torch.equal(loaded.axes, ellipse.axes)
    assert list(tmp_path.iterdir()) == [tmp_path / "e.safetensors"]


def test_spectrum_table_fractions():
    table = geometry.spectrum_table(geometry.fit_ellipse(known_points(1000)))
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table.explained.sum() == pytest.approx(1.0)
    assert table.cumulative.iloc[-1] == pytest.approx(1.0)
    assert table.cumulative.is_monotonic_increasing


def slow_nearest(queries, matrix, candidates, exclude):
    """Obviously correct: loop over every query and candidate."""
    out = []
    for i, q in enumerate(queries):
        best_e, best_c = None, None
        for token in candidates.tolist():
            if exclude is not None and token == exclude[i]:
                continue
            v = matrix[token]
            e = torch.dist(q, v).item()
            c = (q @ v / (q.norm() * v.norm())).item()
            if best_e is None or e < best_e[1]:
                best_e = (token, e)
            if best_c is None or c > best_c[1]:
                best_c = (token, c)
        out.append((best_e, best_c))
    return out


@pytest.mark.parametrize("block_size", [7, geometry.SCAN_COLUMNS])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_nearest_tokens_equals_brute_force(exclude_self, block_size):
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(40, 6, generator=generator)
    candidates = torch.arange(3, 40)
    queries = matrix[5:15] + 0.01 * torch.randn(10, 6, generator=generator)
    exclude = torch.arange(5, 15) if exclude_self else None
    fast = geometry.nearest_tokens(
        queries, matrix, candidates, exclude=exclude, chunk_size=3, block_size=block_size
    )
    for i, ((e_id, e), (c_id, c)) in enumerate(slow_nearest(queries, matrix, candidates, exclude)):
        assert fast.euclidean_id[i].item() == e_id
        assert fast.euclidean[i].item() == pytest.approx(e, rel=1e-5)
        assert fast.cosine_id[i].item() == c_id
        assert fast.cosine[i].item() == pytest.approx(c, rel=1e-5)
    if not exclude_self:  # a slightly moved token is nearest to itself
        assert torch.equal(fast.euclidean_id, torch.arange(5, 15))


def test_nearest_distance_is_exact_for_small_moves():
    matrix = torch.full((4, 8), 100.0) + torch.eye(4, 8)
    query = matrix[2:3] + torch.tensor([[1e-3] + [0.0] * 7])
    nearest = geometry.nearest_tokens(query, matrix, torch.arange(4))
    assert nearest.euclidean_id.item() == 2
    assert nearest.euclidean.item() == pytest.approx(1e-3, rel=1e-2)


def test_pair_distances_by_hand():
    matrix = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 4.0]])
    euclid, cosine = geometry.pair_distances(
        matrix, torch.tensor([0, 0, 3]), torch.tensor([1, 2, 2])
    )
    np.testing.assert_allclose(euclid.numpy(), [np.sqrt(2), 1.0, np.sqrt(1 + 16)], rtol=1e-6)
    np.testing.assert_allclose(cosine.numpy(), [1.0, 0.0, 1 - 3 / 5], atol=1e-6)


def test_random_pairs_are_distinct_and_seeded():
    ids = torch.tensor([4, 9, 11])
    a, b = geometry.random_pairs(ids, 500, torch.Generator().manual_seed(0))
    assert torch.all(a != b)
    assert set(a.tolist()) | set(b.tolist()) == {4, 9, 11}
    pairs = set(zip(a.tolist(), b.tolist()))
    assert pairs == set(itertools.permutations([4, 9, 11], 2))  # all 6 ordered pairs occur
    again = geometry.random_pairs(ids, 500, torch.Generator().manual_seed(0))
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])


def vocab_table(n, special):
    return pd.DataFrame(
        {
            "token_id": range(n),
            "token": [f"t{i}" for i in range(n)],
            "is_regular": [i not in special for i in range(n)],
        }
    )


def test_distance_tables_use_regular_tokens_only():
    matrix = torch.randn(30, 5, generator=torch.Generator().manual_seed(0))
    table = vocab_table(30, special={0, 1})
    pairs = geometry.random_pair_table(matrix, table, 100, torch.Generator().manual_seed(0))
    assert len(pairs) == 100
    assert not set(pairs.token_a) & {0, 1} and not set(pairs.token_b) & {0, 1}
    assert (pairs.token_a != pairs.token_b).all()
    row = pairs.iloc[0]
    assert row.euclidean == pytest.approx(
        torch.dist(matrix[row.token_a], matrix[row.token_b]).item(), rel=1e-5
    )

    generator = torch.Generator().manual_seed(0)
    nearest = geometry.nearest_neighbour_table(
        matrix, table, sample=1000, generator=generator, chunk_size=4
    )
    # the sample covers the vocabulary: all, exactly
    assert list(nearest.token_id) == list(range(2, 30))
    assert (nearest.euclidean_neighbour != nearest.token_id).all()
    assert not set(nearest.euclidean_neighbour) & {0, 1}
    brute = torch.cdist(matrix[2:], matrix[2:]).fill_diagonal_(float("inf")).min(dim=1).values
    np.testing.assert_allclose(nearest.euclidean.to_numpy(), brute.numpy(), rtol=1e-5)

    sampled = geometry.nearest_neighbour_table(
        matrix, table, sample=10, generator=generator, chunk_size=4
    )
    assert (
        len(sampled) == 10
        and sampled.token_id.is_unique
        and sampled.token_id.is_monotonic_increasing
    )
    assert not set(sampled.token_id) & {0, 1}
    np.testing.assert_allclose(
        sampled.euclidean.to_numpy(), brute[sampled.token_id.to_numpy() - 2].numpy(), rtol=1e-5
    )


def test_projection_without_watch_tokens_and_for_unmoved_rows():
    matrix = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    index = geometry.VocabIndex(matrix, torch.arange(2, 20))
    origin = matrix[[3, 4]]
    current = origin.clone()
    current[0] += 0.1
    result = geometry.project(current, origin, torch.tensor([3, 4]), index, matrix[[]])
    assert result.watch_cosines.shape == (2, 0) and result.watch_ranks.shape == (2, 0)
    assert result.heading_id.tolist()[1] == -1 and torch.isnan(result.heading_cosine[1])
    assert result.heading_id[0].item() not in (-1, 3)  # never heads toward its own token
    assert result.nearest.euclidean_id.tolist() == [3, 4]


def test_cached_origin_terms_give_the_same_projection():
    generator = torch.Generator().manual_seed(1)
    matrix = torch.randn(50, 6, generator=generator)
    index = geometry.VocabIndex(matrix, torch.arange(3, 50))
    ids = torch.arange(5, 25)
    origin = matrix[ids]
    current = origin + 0.05 * torch.randn(20, 6, generator=generator)
    watch = matrix[[7, 9]]
    cached = geometry.OriginTerms(origin, index, chunk_size=6)
    assert cached.chunks is not None and len(cached.chunks) == 4
    too_big = geometry.OriginTerms(origin, index, max_bytes=0)
    assert too_big.chunks is None  # over the memory cap: recomputed per scan instead
    plain = geometry.project(current, origin, ids, index, watch, chunk_size=6)
    for terms in (cached, too_big):
        other = geometry.project(
            current, origin, ids, index, watch, chunk_size=6, origin_terms=terms
        )
        assert torch.equal(other.heading_id, plain.heading_id)
        torch.testing.assert_close(other.heading_cosine, plain.heading_cosine)
        assert torch.equal(other.watch_ranks, plain.watch_ranks)


def test_ties_across_vocabulary_blocks_go_to_the_first_token():
    matrix = torch.randn(30, 5, generator=torch.Generator().manual_seed(2))
    matrix[25] = matrix[4]  # the same vector in another block
    queries = matrix[[4]] + 0.01
    for block_size in (3, 30):
        nearest = geometry.nearest_tokens(queries, matrix, torch.arange(30), block_size=block_size)
        assert nearest.euclidean_id.item() == 4 and nearest.cosine_id.item() == 4


def test_projection_in_blocks_equals_brute_force():
    generator = torch.Generator().manual_seed(3)
    matrix = torch.randn(50, 6, generator=generator)
    candidates = torch.arange(3, 50)
    ids = torch.arange(5, 17)
    origin = matrix[ids]
    current = origin + 0.3 * torch.randn(12, 6, generator=generator)
    watch_ids = [7, 30]
    index = geometry.VocabIndex(matrix, candidates, block_size=5)
    result = geometry.project(current, origin, ids, index, matrix[watch_ids], chunk_size=5)
    for i in range(12):
        d = current[i] - origin[i]
        heads = {
            j: (d @ (matrix[j] - origin[i]) / (d.norm() * (matrix[j] - origin[i]).norm())).item()
            for j in candidates.tolist()
            if j != ids[i]
        }
        assert result.heading_id[i].item() == max(heads, key=heads.get)
        assert result.heading_cosine[i].item() == pytest.approx(max(heads.values()), abs=1e-5)
        for w, token in enumerate(watch_ids):
            exact = heads.get(token)
            if exact is None:
                continue
            assert result.watch_cosines[i, w].item() == pytest.approx(exact, abs=1e-5)
            assert result.watch_ranks[i, w].item() == 1 + sum(c > exact for c in heads.values())
        dists = {j: (current[i] - matrix[j]).norm().item() for j in candidates.tolist()}
        assert result.nearest.euclidean_id[i].item() == min(dists, key=dists.get)
