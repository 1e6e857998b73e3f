"""Geometry of input-embedding space: the vocabulary's hyper-ellipse, nearest tokens,
and the distance yardstick against which travel is judged."""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from inputspace.tensors import read_tensors, write_tensors


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
    write_tensors({"mean": ellipse.mean, "axes": ellipse.axes, "scales": ellipse.scales}, path)


def load_ellipse(path: Path) -> Ellipse:
    tensors = read_tensors(path)
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

    def columns(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.euclidean_id, self.euclidean, self.cosine_id, self.cosine


SCAN_ROWS = 1024  # query rows per scan tile
# Vocabulary columns per scan tile. A tile's scores stay in cache while they are reduced,
# and the matmul that fills them runs faster than one over the whole vocabulary: the
# engine's logging scan (704 tokens, SmolLM2's 49k x 576 vocabulary, 2 CPU cores) took
# 0.95 s in row tiles over the whole vocabulary, 0.63 s in blocks of 4096, 0.44 s of 2048.
SCAN_COLUMNS = 2048


class VocabIndex:
    """The candidate tokens' embeddings and norms, prepared once for repeated scans in
    blocks of `block_size` candidates."""

    def __init__(self, matrix: Tensor, candidates: Tensor, block_size: int = SCAN_COLUMNS):
        self.ids = candidates
        self.vectors = matrix[candidates].contiguous()
        self.squared = (self.vectors * self.vectors).sum(dim=1)
        self.norms = self.squared.sqrt().clamp_min(1e-12)
        column = torch.full((matrix.shape[0],), -1, dtype=torch.long, device=matrix.device)
        column[candidates] = torch.arange(len(candidates), device=matrix.device)
        self.column_of = column  # token id -> column in the scan, -1 if not a candidate
        self.blocks = [
            slice(s, min(s + block_size, len(candidates)))
            for s in range(0, len(candidates), block_size)
        ]

    def columns(self, token_ids: Tensor) -> Tensor:
        inside = (token_ids >= 0) & (token_ids < len(self.column_of))
        return torch.where(inside, self.column_of[token_ids.clamp(0, len(self.column_of) - 1)], -1)


def nearest_tokens(
    queries: Tensor,
    matrix: Tensor,
    candidates: Tensor,
    exclude: Tensor | None = None,
    chunk_size: int = SCAN_ROWS,
    block_size: int = SCAN_COLUMNS,
    progress: str | None = None,
) -> Nearest:
    """Nearest rows of `matrix` among `candidates` (token ids) for each query [m, d].

    `exclude[i]`, if given, is a token id query i may not match (its own id, or -1).
    Scans tiles of chunk_size queries x block_size candidates, so memory stays at a tile.
    With `progress`, a progress bar of that name goes to stderr (for scans of seconds).
    """
    index = VocabIndex(matrix, candidates, block_size)
    nothing = torch.full((queries.shape[0],), -1, dtype=torch.long, device=queries.device)
    own = index.columns(exclude) if exclude is not None else nothing
    parts = []
    starts = range(0, queries.shape[0], chunk_size)
    for start in tqdm(
        starts, desc=progress, disable=progress is None, file=sys.stderr, mininterval=5.0
    ):
        rows = slice(start, start + chunk_size)
        scan = _NearestScan(queries[rows], index, own[rows])
        for block in index.blocks:
            scan.add(queries[rows] @ index.vectors[block].T, block)
        parts.append(scan.result().columns())
    return Nearest(*(torch.cat(column) for column in zip(*parts)))


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


def nearest_neighbour_table(
    matrix: Tensor,
    vocab: pd.DataFrame,
    sample: int,
    generator: torch.Generator,
    chunk_size: int = SCAN_ROWS,
) -> pd.DataFrame:
    """The nearest other regular token, by Euclidean distance and by cosine, of `sample`
    regular tokens drawn without replacement (of every regular token, exactly, when the
    sample covers them), each against the whole regular vocabulary: the cost grows with
    the sample, not with the vocabulary squared."""
    regular = torch.tensor(vocab.token_id[vocab.is_regular].to_numpy())
    queries = regular
    if sample < len(regular):
        queries = regular[torch.randperm(len(regular), generator=generator)[:sample]].sort().values
    nearest = nearest_tokens(
        matrix[queries],
        matrix,
        regular,
        exclude=queries,
        chunk_size=chunk_size,
        progress=f"nearest neighbours of {len(queries):,} tokens among {len(regular):,}",
    )
    tokens = vocab.token.to_numpy()
    return pd.DataFrame(
        {
            "token_id": queries.numpy(),
            "token": tokens[queries.numpy()],
            "euclidean_neighbour": nearest.euclidean_id.numpy(),
            "euclidean": nearest.euclidean.numpy(),
            "cosine_neighbour": nearest.cosine_id.numpy(),
            "cosine_distance": (1 - nearest.cosine).numpy(),
        }
    )


@dataclass(frozen=True)
class Projection:
    """Where moved embeddings stand: nearest tokens, and where their displacement heads.

    Heading toward token j: cos(e - e0, v_j - e0). Rows that have not moved get
    heading_id -1, NaN cosines and watch rank 0.
    """

    nearest: Nearest
    heading_id: Tensor
    heading_cosine: Tensor
    watch_cosines: Tensor  # [m, n_watch]
    watch_ranks: Tensor  # [m, n_watch], 1 = the best heading among all candidates


class OriginTerms:
    """o.v_j and 1/|v_j - o| for fixed origins: constant through a run, so computed once
    (when they fit in `max_bytes`) instead of at every logged step."""

    def __init__(
        self,
        origin: Tensor,
        index: VocabIndex,
        chunk_size: int = SCAN_ROWS,
        max_bytes: float = 2**30,
    ):
        self.chunk_size = chunk_size
        size = 2 * origin.shape[0] * len(index.ids) * origin.element_size()
        self.chunks: list[list[tuple[Tensor, Tensor]]] | None = None
        if size <= max_bytes:
            self.chunks = [
                [
                    _origin_terms(origin[start : start + chunk_size], index, block)
                    for block in index.blocks
                ]
                for start in range(0, origin.shape[0], chunk_size)
            ]


def _origin_terms(o: Tensor, index: VocabIndex, block: slice) -> tuple[Tensor, Tensor]:
    origin_dots = o @ index.vectors[block].T
    gap_squared = (
        (-2 * origin_dots).add_(index.squared[block]).add_((o * o).sum(dim=1, keepdim=True))
    )
    return origin_dots, gap_squared.clamp_min_(1e-24).rsqrt_()


def project(
    current: Tensor,
    origin: Tensor,
    exclude: Tensor,
    index: VocabIndex,
    watch_vectors: Tensor,
    chunk_size: int = SCAN_ROWS,
    origin_terms: OriginTerms | None = None,
) -> Projection:
    """Back-projection and headings of `current` [m, d] moved from `origin` [m, d].

    One matmul per tile against the vocabulary when `origin_terms` holds the origins'
    terms (two otherwise); everything else is derived from it in place. `exclude[i]`
    (the row's own token id, or -1) is left out of the headings, where it is undefined.
    """
    cached = origin_terms.chunks if origin_terms is not None else None
    if cached:
        chunk_size = origin_terms.chunk_size
    own = index.columns(exclude)
    parts = []
    for number, start in enumerate(range(0, current.shape[0], chunk_size)):
        rows = slice(start, start + chunk_size)
        terms = cached[number] if cached else None
        parts.append(
            _project_rows(current[rows], origin[rows], own[rows], index, watch_vectors, terms)
        )
    fields = [torch.cat(column) for column in zip(*parts)]
    nearest = Nearest(*fields[:4])
    return Projection(nearest, *fields[4:])


class _Best:
    """The running maximum of each row over vocabulary blocks and its column; the first
    column wins a tie, as in one argmax over the whole vocabulary."""

    def __init__(self, rows: int, device: torch.device):
        self.value = torch.full((rows,), -float("inf"), device=device)
        self.column = torch.zeros(rows, dtype=torch.long, device=device)

    def add(self, scores: Tensor, block: slice) -> None:
        value, column = scores.max(dim=1)
        better = value > self.value
        self.value = torch.where(better, value, self.value)
        self.column = torch.where(better, column + block.start, self.column)


def _exclude(scores: Tensor, own: Tensor, block: slice) -> None:
    """Rule out each row's own column (`own`, -1 for none) where it falls in `block`."""
    rows = torch.nonzero((own >= block.start) & (own < block.stop)).squeeze(1)
    scores[rows, own[rows] - block.start] = -float("inf")


class _NearestScan:
    """The nearest candidates of queries `q` by cosine and by Euclidean distance, one
    vocabulary block of dot products q.v_j at a time."""

    def __init__(self, q: Tensor, index: VocabIndex, own: Tensor):
        self.q, self.index, self.own = q, index, own
        self.cosine = _Best(q.shape[0], q.device)
        self.euclidean = _Best(q.shape[0], q.device)

    def add(self, dots: Tensor, block: slice) -> None:
        """Reads `dots` [rows, block] without changing it."""
        index = self.index
        scores = dots / index.norms[block]  # cos(q, v_j) times a per-row constant
        _exclude(scores, self.own, block)
        self.cosine.add(scores, block)
        # 2 q.v_j - |v_j|^2, largest = nearest
        torch.mul(dots, 2, out=scores).sub_(index.squared[block])
        _exclude(scores, self.own, block)
        self.euclidean.add(scores, block)

    def result(self) -> Nearest:
        # Recompute the winners exactly: the expanded form loses precision when the
        # distance is small next to the norms.
        vectors, q = self.index.vectors, self.q
        euclid_col, cosine_col = self.euclidean.column, self.cosine.column
        return Nearest(
            euclidean_id=self.index.ids[euclid_col],
            euclidean=(q - vectors[euclid_col]).norm(dim=1),
            cosine_id=self.index.ids[cosine_col],
            cosine=torch.nn.functional.cosine_similarity(q, vectors[cosine_col], dim=1),
        )


def _project_rows(
    e: Tensor,
    o: Tensor,
    own: Tensor,
    index: VocabIndex,
    watch: Tensor,
    cached: list[tuple[Tensor, Tensor]] | None,
):
    d = e - o
    d_norm = d.norm(dim=1)
    d_dot_o = (d * o).sum(dim=1, keepdim=True)
    watch_cos = torch.nn.functional.cosine_similarity(
        d.unsqueeze(1), watch.unsqueeze(0) - o.unsqueeze(1), dim=2
    )
    # the expanded form carries ~1e-6 of rounding: don't let it reorder near-ties
    threshold = (watch_cos + 1e-5) * d_norm.unsqueeze(1)
    ranks = torch.ones(watch_cos.shape, dtype=torch.long, device=e.device)
    # back-projection may land on its own token
    nearest = _NearestScan(e, index, torch.full_like(own, -1))
    heading = _Best(e.shape[0], e.device)
    for number, block in enumerate(index.blocks):
        dots = e @ index.vectors[block].T
        nearest.add(dots, block)
        # read only
        origin_dots, inverse_gap = cached[number] if cached else _origin_terms(o, index, block)
        # |d| cos(d, v_j - o) = (e.v_j - o.v_j - d.o) / |v_j - o|, built in place
        scaled = dots.sub_(origin_dots).sub_(d_dot_o).mul_(inverse_gap)
        _exclude(scaled, own, block)
        heading.add(scaled, block)
        for w in range(watch.shape[0]):
            ranks[:, w] += (scaled > threshold[:, [w]]).sum(dim=1)
    still = d_norm == 0
    nan = torch.tensor(float("nan"), device=e.device)
    return (
        *nearest.result().columns(),
        torch.where(still, -1, index.ids[heading.column]),
        torch.where(still, nan, heading.value / d_norm),
        torch.where(still.unsqueeze(1), nan, watch_cos),
        torch.where(still.unsqueeze(1), 0, ranks),
    )
