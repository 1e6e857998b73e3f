"""The shape of the zero-loss set around converged input embeddings.

The study concluded, from indirect evidence, that input-embedding descent is
over-parameterised: a high-dimensional zero-loss set lies close to almost every start.
This measures it directly, one sequence at a time (the loss is a sum over sequences, so
its Hessian is block-diagonal by sequence):

- local dimension: the Hessian of the loss with respect to the optimised embeddings,
  probed only through Hessian-vector products (double backward) by a Lanczos solver
  (scipy `eigsh` over a `LinearOperator`), never materialised;
- connectivity: the loss along the straight segment between two solutions of the same
  target from different starts, and along a path bent through one optimised midpoint;
- nearness: how far a start is from its own solution, from the nearest vocabulary token
  and from the solution of another start.
"""

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor
from tqdm import tqdm

from inputspace.engine import kl_divergence
from inputspace.geometry import nearest_tokens
from inputspace.models import LanguageModel
from inputspace.sequences import SequenceBatch


@dataclass
class Sequence:
    """One sequence at a point of input space: only `trainable` positions vary."""

    embeddings: Tensor  # [t, d]
    attention_mask: Tensor  # [t]
    trainable: Tensor  # [t] bool
    site: int
    target_logprobs: Tensor  # [vocab]

    @property
    def size(self) -> int:
        return int(self.trainable.sum()) * self.embeddings.shape[1]

    def point(self) -> Tensor:
        """The optimised coordinates as one flat vector."""
        return self.embeddings[self.trainable].reshape(-1)


def loss(lm: LanguageModel, sequence: Sequence, flat: Tensor) -> Tensor:
    """KL(target || predicted) at the sequence's prediction site, at coordinates `flat`."""
    return losses(lm, sequence, flat.unsqueeze(0))[0]


def losses(lm: LanguageModel, sequence: Sequence, flats: Tensor) -> Tensor:
    """The loss at each of the points `flats` [k, coordinates], in one batch."""
    device, k = lm.device, flats.shape[0]
    embeddings = sequence.embeddings.to(device).expand(k, -1, -1)
    trainable = sequence.trainable.to(device).expand(k, -1)
    full = embeddings.masked_scatter(trainable.unsqueeze(-1), flats.to(device).to(embeddings.dtype))
    logits = lm.logits_at(
        full,
        sequence.attention_mask.to(device).expand(k, -1),
        torch.full((k,), sequence.site, device=device),
    )
    return kl_divergence(logits, sequence.target_logprobs.to(device).expand(k, -1))


def hessian_vector_product(lm: LanguageModel, sequence: Sequence, point: Tensor, vector: Tensor) -> Tensor:
    """H v at `point` by double backward (needs an attention implementation with second
    derivatives: eager)."""
    x = point.detach().to(lm.device).requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss(lm, sequence, x), x, create_graph=True)
    (product,) = torch.autograd.grad(gradient, x, grad_outputs=vector.to(lm.device).to(gradient.dtype))
    return product.detach()


def gradient(lm: LanguageModel, sequence: Sequence, point: Tensor) -> Tensor:
    x = point.detach().to(lm.device).requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(lm, sequence, x), x)
    return grad


def hessian_operator(lm: LanguageModel, sequence: Sequence, point: Tensor) -> LinearOperator:
    """The Hessian at `point` as a scipy LinearOperator (float64 in, float64 out)."""
    n = point.numel()
    counter = {"products": 0}

    def matvec(v: np.ndarray) -> np.ndarray:
        counter["products"] += 1
        vector = torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1)).to(point.dtype)
        return hessian_vector_product(lm, sequence, point, vector).cpu().double().numpy()

    operator = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    operator.counter = counter  # type: ignore[attr-defined]
    return operator


def top_eigenvalues(operator: LinearOperator, k: int, seed: int = 0, tol: float = 1e-4) -> np.ndarray:
    """The k largest (algebraic) eigenvalues, largest first, by Lanczos."""
    n = operator.shape[0]
    start = np.random.default_rng(seed).standard_normal(n)
    values = eigsh(operator, k=min(k, n - 1), which="LA", v0=start, tol=tol, return_eigenvectors=False)
    return np.sort(values)[::-1]


@dataclass
class Flatness:
    dimensions: int  # optimised coordinates of the sequence
    largest: float
    above_threshold: int  # eigenvalues found above threshold * largest
    resolved: bool  # the smallest computed eigenvalue fell below the threshold
    flat_fraction: float  # 1 - above/dimensions: exact if resolved, else an upper bound


def flatness(eigenvalues: np.ndarray, dimensions: int, threshold: float) -> Flatness:
    """How many directions are not flat (|lambda| > threshold * lambda_max) among the
    computed top eigenvalues; every other direction of the n is flat or negative-curved
    no more than the smallest computed one."""
    largest = float(eigenvalues[0])
    above = int((eigenvalues > threshold * largest).sum())
    resolved = above < len(eigenvalues)
    return Flatness(dimensions, largest, above, resolved, 1 - above / dimensions)


def dense_hessian(lm: LanguageModel, sequence: Sequence, point: Tensor) -> Tensor:
    """The whole Hessian, one product per coordinate: for tests on very small cases."""
    n = point.numel()
    columns = [hessian_vector_product(lm, sequence, point, torch.eye(n, dtype=point.dtype)[i]) for i in range(n)]
    return torch.stack(columns, dim=1).cpu()


# ------------------------------------------------------------------ connectivity


@torch.no_grad()
def loss_along(lm: LanguageModel, sequence: Sequence, points: list[Tensor], samples: int) -> np.ndarray:
    """Loss at `samples` evenly spaced points of each segment of the polyline `points`,
    joined end to end (shared corners counted once)."""
    along = []
    for number, (a, b) in enumerate(zip(points[:-1], points[1:])):
        ts = torch.linspace(0, 1, samples, dtype=a.dtype)[(1 if number else 0):].unsqueeze(1)
        along.append(a + ts * (b - a))
    return losses(lm, sequence, torch.cat(along)).cpu().double().numpy()


def barrier(losses: np.ndarray) -> float:
    """Height of the path's highest point above the higher of its two ends."""
    return float(losses.max() - max(losses[0], losses[-1]))


def bend(lm: LanguageModel, sequence: Sequence, a: Tensor, b: Tensor, steps: int, lr: float, probes: int = 3) -> Tensor:
    """A midpoint m, from (a + b) / 2, moved by Adam (model frozen) to lower the loss
    along a -> m -> b, sampled at `probes` interior points of each half and at m."""
    a, b = a.to(lm.device), b.to(lm.device)
    middle = ((a + b) / 2).detach().requires_grad_(True)
    optimizer = torch.optim.Adam([middle], lr=lr)
    ts = [(i + 1) / (probes + 1) for i in range(probes)]
    for _ in range(steps):
        points = [middle] + [a + t * (middle - a) for t in ts] + [middle + t * (b - middle) for t in ts]
        total = losses(lm, sequence, torch.stack(points)).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    return middle.detach()


# ------------------------------------------------------------------ the study


@dataclass
class Study:
    """Tables of one landscape study (one model, one experiment)."""

    spectra: pd.DataFrame  # seq, rank, eigenvalue
    flatness: pd.DataFrame  # seq, dimensions, largest, above_threshold, resolved, flat_fraction, products
    paths: pd.DataFrame  # pair, path (straight / bent), position, loss
    barriers: pd.DataFrame  # pair, distance, loss_a, loss_b, straight_barrier, bent_barrier
    nearness: pd.DataFrame  # seq, pos, to_own_solution, to_nearest_token, to_other_solution


def sequences_of(batch: SequenceBatch, ends: Tensor, target_logprobs: Tensor) -> list[Sequence]:
    return [
        Sequence(ends[i], batch.attention_mask[i], batch.trainable[i], int(batch.sites[i]), target_logprobs[i])
        for i in range(len(batch))
    ]


def spectra(lm: LanguageModel, sequences: list[Sequence], k: int, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    eigen_rows, flat_rows = [], []
    for number, sequence in enumerate(tqdm(sequences, desc="Hessian spectra", file=sys.stderr)):
        operator = hessian_operator(lm, sequence, sequence.point())
        values = top_eigenvalues(operator, k, seed=number)
        eigen_rows.append(pd.DataFrame({"seq": number, "rank": np.arange(1, len(values) + 1), "eigenvalue": values}))
        flat = flatness(values, sequence.size, threshold)
        flat_rows.append({"seq": number, **vars(flat), "products": operator.counter["products"]})
    return pd.concat(eigen_rows, ignore_index=True), pd.DataFrame(flat_rows)


def connectivity(
    lm: LanguageModel, sequences: list[Sequence], samples: int, bend_above: float, bend_steps: int, bend_lr: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sequences 2p and 2p+1 share a target and a frame: the loss between their solutions."""
    path_rows, barrier_rows = [], []
    for pair in tqdm(range(len(sequences) // 2), desc="paths between solutions", file=sys.stderr):
        first, second = sequences[2 * pair], sequences[2 * pair + 1]
        a, b = first.point(), second.point()
        straight = loss_along(lm, first, [a, b], samples)
        path_rows.append(pd.DataFrame({"pair": pair, "path": "straight", "position": np.linspace(0, 1, len(straight)), "loss": straight}))
        bent_barrier = np.nan
        if barrier(straight) > bend_above:
            middle = bend(lm, first, a, b, bend_steps, bend_lr)
            bent = loss_along(lm, first, [a, middle, b], samples // 2 + 1)
            bent_barrier = barrier(bent)
            path_rows.append(pd.DataFrame({"pair": pair, "path": "bent", "position": np.linspace(0, 1, len(bent)), "loss": bent}))
        barrier_rows.append(
            {
                "pair": pair, "distance": float((a - b).norm()), "loss_a": straight[0], "loss_b": straight[-1],
                "straight_barrier": barrier(straight), "bent_barrier": bent_barrier,
            }
        )
    return pd.concat(path_rows, ignore_index=True), pd.DataFrame(barrier_rows)


def nearness(batch: SequenceBatch, ends: Tensor, matrix: Tensor, candidates: Tensor) -> pd.DataFrame:
    """Per optimised token of each start: distance to its own solution, to the nearest
    vocabulary token, and to the solution of the other start of its pair."""
    rows = []
    partner = [i ^ 1 for i in range(len(batch))]  # 0<->1, 2<->3, ...
    for i in range(len(batch)):
        where = torch.nonzero(batch.trainable[i]).squeeze(1)
        start = batch.embeddings[i, where]
        near = nearest_tokens(start, matrix, candidates)
        rows.append(
            pd.DataFrame(
                {
                    "seq": i, "pos": where.numpy(),
                    "to_own_solution": (ends[i, where] - start).norm(dim=1).numpy(),
                    "to_nearest_token": near.euclidean.numpy(),
                    "to_other_solution": (ends[partner[i], where] - start).norm(dim=1).numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
