"""Geometry of input-embedding space: the vocabulary's hyper-ellipse, nearest tokens,
and the distance yardstick against which travel is judged."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from inputspace.files import atomic_output


@dataclass(frozen=True)
class Ellipse:
    """A Gaussian hyper-ellipse: mean, principal axes (columns, by descending variance)
    and the standard deviation along each axis."""

    mean: Tensor  # [d]
    axes: Tensor  # [d, d], column k is the k-th principal axis
    scales: Tensor  # [d], sqrt of the covariance eigenvalues, descending

    @property
    def eigenvalues(self) -> Tensor:
        return self.scales**2

    @property
    def covariance(self) -> Tensor:
        return (self.axes * self.eigenvalues) @ self.axes.T


def fit_ellipse(points: Tensor) -> Ellipse:
    """Mean and covariance of `points` [n, d] (computed in float64), as principal axes."""
    x = points.double()
    mean = x.mean(dim=0)
    centred = x - mean
    covariance = centred.T @ centred / (x.shape[0] - 1)
    eigenvalues, axes = torch.linalg.eigh(covariance)
    order = torch.argsort(eigenvalues, descending=True)
    scales = eigenvalues[order].clamp_min(0).sqrt()
    return Ellipse(mean=mean.float(), axes=axes[:, order].float(), scales=scales.float())


def sample_ellipse(ellipse: Ellipse, n: int, generator: torch.Generator) -> Tensor:
    """`n` points drawn from the Gaussian with the ellipse's mean and covariance."""
    z = torch.randn(n, ellipse.mean.shape[0], generator=generator, dtype=torch.float64)
    points = (z * ellipse.scales.double()) @ ellipse.axes.double().T + ellipse.mean.double()
    return points.float()


def save_ellipse(ellipse: Ellipse, path: Path) -> None:
    with atomic_output(path) as partial:
        tensors = {"mean": ellipse.mean, "axes": ellipse.axes, "scales": ellipse.scales}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial))


def load_ellipse(path: Path) -> Ellipse:
    tensors = load_file(str(path))
    return Ellipse(mean=tensors["mean"], axes=tensors["axes"], scales=tensors["scales"])


def spectrum_table(ellipse: Ellipse) -> pd.DataFrame:
    eigenvalues = ellipse.eigenvalues.double().numpy()
    explained = eigenvalues / eigenvalues.sum()
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(eigenvalues) + 1),
            "eigenvalue": eigenvalues,
            "scale": np.sqrt(eigenvalues),
            "explained": explained,
            "cumulative": np.cumsum(explained),
        }
    )


@dataclass(frozen=True)
class Nearest:
    """Per query: the nearest candidate token by Euclidean distance and by cosine."""

    euclidean_id: Tensor
    euclidean: Tensor
    cosine_id: Tensor
    cosine: Tensor  # cosine similarity (not distance) to `cosine_id`


def nearest_tokens(
    queries: Tensor,
    matrix: Tensor,
    candidates: Tensor,
    exclude: Tensor | None = None,
    chunk_size: int = 1024,
) -> Nearest:
    """Nearest rows of `matrix` among `candidates` (token ids) for each query [m, d].

    `exclude[i]`, if given, is a token id query i may not match (its own id, or -1).
    Scans in chunks of queries so memory stays at chunk_size x len(candidates).
    """
    vocab = matrix[candidates]
    vocab_norm = vocab.norm(dim=1)
    results: list[tuple[Tensor, ...]] = []
    for start in range(0, queries.shape[0], chunk_size):
        q = queries[start : start + chunk_size]
        q_norm = q.norm(dim=1, keepdim=True)
        dots = q @ vocab.T  # one matmul serves both measures
        squared = q_norm**2 - 2 * dots + vocab_norm**2
        cosines = dots / (q_norm * vocab_norm).clamp_min(1e-12)
        if exclude is not None:
            banned = candidates.unsqueeze(0) == exclude[start : start + chunk_size].unsqueeze(1)
            squared = squared.masked_fill(banned, float("inf"))
            cosines = cosines.masked_fill(banned, -float("inf"))
        e_index = squared.argmin(dim=1)
        c_index = cosines.argmax(dim=1)
        # Recompute the winners exactly: the expanded form loses precision when the
        # distance is small next to the norms.
        euclid = (q - vocab[e_index]).norm(dim=1)
        cosine = torch.nn.functional.cosine_similarity(q, vocab[c_index], dim=1)
        results.append((candidates[e_index], euclid, candidates[c_index], cosine))
    e_ids, e_dist, c_ids, c_sim = (torch.cat(parts) for parts in zip(*results))
    return Nearest(euclidean_id=e_ids, euclidean=e_dist, cosine_id=c_ids, cosine=c_sim)


def random_pairs(ids: Tensor, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """`k` random pairs of distinct ids, each pair drawn uniformly."""
    n = ids.shape[0]
    first = torch.randint(n, (k,), generator=generator)
    offset = torch.randint(1, n, (k,), generator=generator)  # never 0: the pair is distinct
    return ids[first], ids[(first + offset) % n]


def pair_distances(matrix: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Euclidean and cosine distance (1 - cosine similarity) between rows a[i] and b[i]."""
    va, vb = matrix[a], matrix[b]
    euclid = (va - vb).norm(dim=1)
    cosine = 1 - torch.nn.functional.cosine_similarity(va, vb, dim=1)
    return euclid, cosine


def random_pair_table(
    matrix: Tensor, vocab: pd.DataFrame, k: int, generator: torch.Generator
) -> pd.DataFrame:
    """Distances between `k` random pairs of distinct regular vocabulary tokens."""
    regular = torch.tensor(vocab.token_id[vocab.is_regular].to_numpy())
    a, b = random_pairs(regular, k, generator)
    euclid, cosine = pair_distances(matrix, a, b)
    tokens = vocab.token.to_numpy()
    return pd.DataFrame(
        {
            "token_a": a.numpy(),
            "token_b": b.numpy(),
            "string_a": tokens[a.numpy()],
            "string_b": tokens[b.numpy()],
            "euclidean": euclid.numpy(),
            "cosine_distance": cosine.numpy(),
        }
    )


def nearest_neighbour_table(matrix: Tensor, vocab: pd.DataFrame, chunk_size: int = 1024) -> pd.DataFrame:
    """Each regular token's nearest other regular token, by Euclidean distance and by cosine."""
    regular = torch.tensor(vocab.token_id[vocab.is_regular].to_numpy())
    nearest = nearest_tokens(matrix[regular], matrix, regular, exclude=regular, chunk_size=chunk_size)
    tokens = vocab.token.to_numpy()
    return pd.DataFrame(
        {
            "token_id": regular.numpy(),
            "token": tokens[regular.numpy()],
            "euclidean_neighbour": nearest.euclidean_id.numpy(),
            "euclidean": nearest.euclidean.numpy(),
            "cosine_neighbour": nearest.cosine_id.numpy(),
            "cosine_distance": (1 - nearest.cosine).numpy(),
        }
    )


@dataclass(frozen=True)
class Headings:
    """Per displacement: the vocab token it points at most, and the watch tokens' cosines
    and ranks (1 = the best heading among all candidates)."""

    best_id: Tensor
    best_cosine: Tensor
    watch_cosines: Tensor  # [m, n_watch]
    watch_ranks: Tensor  # [m, n_watch]


def headings(
    displacement: Tensor,
    origin: Tensor,
    matrix: Tensor,
    candidates: Tensor,
    watch_ids: Tensor,
    exclude: Tensor,
    chunk_size: int = 1024,
) -> Headings:
    """cos(displacement_i, v_j - origin_i) for every candidate j, reduced per row i.

    `exclude[i]` (the row's own token, or -1) is left out: its heading is undefined.
    Rows that have not moved get best_id -1 and NaN cosines.
    """
    vocab = matrix[candidates]
    vocab_sq = (vocab * vocab).sum(dim=1)
    watch = matrix[watch_ids]
    parts: list[tuple[Tensor, ...]] = []
    for start in range(0, displacement.shape[0], chunk_size):
        d = displacement[start : start + chunk_size]
        o = origin[start : start + chunk_size]
        d_norm = d.norm(dim=1, keepdim=True)
        d_dot_o = (d * o).sum(dim=1, keepdim=True)
        o_sq = (o * o).sum(dim=1, keepdim=True)
        gap = (vocab_sq - 2 * (o @ vocab.T) + o_sq).clamp_min(0).sqrt()
        cosines = (d @ vocab.T - d_dot_o) / (d_norm * gap).clamp_min(1e-12)
        banned = candidates.unsqueeze(0) == exclude[start : start + chunk_size].unsqueeze(1)
        cosines = cosines.masked_fill(banned, -float("inf"))
        best_cosine, best_index = cosines.max(dim=1)
        watch_gap = watch.unsqueeze(0) - o.unsqueeze(1)  # [m, w, d]
        watch_cos = torch.nn.functional.cosine_similarity(d.unsqueeze(1), watch_gap, dim=2)
        # The scan's expanded cosines carry ~1e-6 of rounding: don't let it reorder ties.
        ranks = 1 + (cosines.unsqueeze(2) > watch_cos.unsqueeze(1) + 1e-5).sum(dim=1)
        still = d_norm.squeeze(1) == 0
        best_id = torch.where(still, -1, candidates[best_index])
        nan = torch.tensor(float("nan"))
        parts.append(
            (
                best_id,
                torch.where(still, nan, best_cosine),
                torch.where(still.unsqueeze(1), nan, watch_cos),
                torch.where(still.unsqueeze(1), 0, ranks),
            )
        )
    best_id, best_cos, watch_cos, watch_rank = (torch.cat(p) for p in zip(*parts))
    return Headings(best_id, best_cos, watch_cos, watch_rank)
