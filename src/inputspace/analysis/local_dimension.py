"""The local dimension of the zero-loss set around a solution, from the exact Jacobian.

At a point x of the n optimised coordinates the prediction is softmax(logits(x)), and the
logits depend on x only through the final hidden state at the prediction site, h(x) (d
numbers): logits = head(h(x)). The loss is zero wherever the prediction equals the
target, so around a solution x* the zero-loss set is the level set {x : p(x) = p(x*)}.
The prediction sees the logits only up to a constant, so that set is the level set of
x -> C logits(x) (C takes away the mean over the vocabulary); where its Jacobian
C J_head J_h has constant rank r, the set is a manifold of dimension n - r (the constant
rank theorem). Dimension counting alone gives r <= d, so n - d is a bound that holds by
construction; the measurement says what r is.

The Jacobian [vocab, n] is never formed: its singular values are those of the d x n
matrix R J_h, where R^T R = (C J_head)^T (C J_head). J_h takes d backward passes through
the body (`jacobian`) in the run's precision, J_head d forward-mode products through the
head (`forward_jacobian`). The rank counts singular values above the rounding of the
computed matrix, measured by recomputing its first rows in float64 (`rounding`).

Everything here sees the model only as functions of a batch of coordinate vectors; what
the coordinates mean is the caller's.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

BatchedMap = Callable[[Tensor], Tensor]  # [k, n_in] -> [k, n_out]


def jacobian(outputs: BatchedMap, flat: Tensor, rows: range, batch: int, label: str = "") -> Tensor:
    """Rows `rows` of the Jacobian of `outputs` at `flat` [n], as float64 [len(rows), n]:
    one forward pass, then `batch` rows per (vectorised) backward pass, each contracting
    the output with one basis vector."""
    x = flat.detach().unsqueeze(0).clone().requires_grad_(True)
    out = outputs(x)  # [1, n_out]
    found = []
    starts = range(rows.start, rows.stop, batch)
    for start in tqdm(starts, desc=f"Jacobian {label}".strip(), file=sys.stderr, mininterval=5.0):
        k = min(batch, rows.stop - start)
        basis = torch.zeros((k, *out.shape), dtype=out.dtype, device=out.device)
        basis[torch.arange(k), 0, start + torch.arange(k)] = 1
        (grads,) = torch.autograd.grad(
            out, x, grad_outputs=basis, retain_graph=True, is_grads_batched=True
        )
        found.append(grads[:, 0].detach().cpu().double())
    return torch.cat(found)


def forward_jacobian(outputs: BatchedMap, point: Tensor, batch: int = 256) -> Tensor:
    """The transposed Jacobian [n_in, n_out] of `outputs` at `point` [n_in], as float64:
    row i is the derivative along the i-th basis vector, `batch` of them at a time (a
    forward-mode product by two backward passes, which every differentiable module
    supports; batches keep a head of 128k outputs within memory), each written into the
    one result (no second copy of it)."""
    n, found = point.numel(), None
    for start in range(0, n, batch):
        k = min(batch, n - start)
        x = point.detach().expand(k, -1).clone().requires_grad_(True)
        out = outputs(x)
        dual = torch.zeros_like(out, requires_grad=True)
        (pulled,) = torch.autograd.grad(out, x, grad_outputs=dual, create_graph=True)
        basis = torch.zeros_like(pulled)
        basis[torch.arange(k), start + torch.arange(k)] = 1
        (rows,) = torch.autograd.grad(pulled, dual, grad_outputs=basis)
        if found is None:
            found = torch.empty((n, rows.shape[1]), dtype=torch.float64)
        found[start : start + k] = rows.detach()
    assert found is not None, "a point has at least one coordinate"
    return found


METRIC_BLOCK = 8192  # vocabulary columns centred at a time: no centred copy of the whole head


def prediction_metric(head_rows: Tensor) -> Tensor:
    """R [d, d] with R^T R = (C J_head)^T (C J_head), from the head's transposed Jacobian
    [d, vocab]: how far a change of the final hidden state moves the logits, up to a
    constant (the only change a prediction sees)."""
    mean = head_rows.mean(dim=1, keepdim=True)
    gram = head_rows.new_zeros((len(head_rows), len(head_rows)))
    for start in range(0, head_rows.shape[1], METRIC_BLOCK):
        centred = head_rows[:, start : start + METRIC_BLOCK] - mean
        gram += centred @ centred.T
    values, vectors = torch.linalg.eigh(gram)
    return values.clamp_min(0).sqrt().unsqueeze(1) * vectors.T


@dataclass(frozen=True)
class LocalDimension:
    """The rank of the prediction's Jacobian at a point and what it says of the level set."""

    dimensions: int  # n: optimised coordinates
    hidden: int  # d: the final hidden state's size, the bound on the rank
    rank: int  # r: singular values above the cutoff
    cutoff: float  # the rounding of the computed Jacobian, relative to the largest value
    largest: float
    gap: float  # sigma_r / sigma_{r+1} (inf where r is d)
    smallest_kept: float  # sigma_r / sigma_1
    head_rank: int  # rank of C J_head alone: what the head can pass on

    @property
    def set_dimension(self) -> int:
        """The zero-loss set's dimension around the point: n - r."""
        return self.dimensions - self.rank

    @property
    def bound(self) -> int:
        """What dimension counting guarantees: n - d."""
        return self.dimensions - self.hidden

    def as_dict(self) -> dict:
        return {
            **vars(self),
            "set_dimension": self.set_dimension,
            "bound": self.bound,
            "set_share": self.set_dimension / self.dimensions,
        }


def rounding(state_rows: Tensor, exact_rows: Tensor, metric: Tensor) -> float:
    """The spectral norm of the rounding in R J_h, measured: `exact_rows`, the first k rows
    of J_h recomputed with a float64 model, against the same rows of `state_rows`; what
    their difference adds to R J_h (through R's first k columns), scaled from k rows to
    all d (rounding errors are independent from row to row)."""
    k, d = exact_rows.shape[0], state_rows.shape[0]
    added = metric[:, :k] @ (state_rows[:k] - exact_rows)
    return float(torch.linalg.matrix_norm(added, ord=2) * np.sqrt(d / k))


def local_dimension(
    state_rows: Tensor, metric: Tensor, noise: float
) -> tuple[LocalDimension, np.ndarray]:
    """The rank of R J_h from the body's Jacobian [d, n] and the head's metric R [d, d]:
    singular values above `noise` (the measured rounding, `rounding`) and at least
    float64's own floor; and the singular values (largest first)."""
    values = torch.linalg.svdvals(metric @ state_rows).numpy()
    head = torch.linalg.svdvals(metric).numpy()
    hidden, n = state_rows.shape
    largest = float(values[0]) if len(values) else 0.0
    floor = max(hidden, n) * float(np.finfo(np.float64).eps) * largest
    cutoff = max(noise, floor)
    rank = int((values > cutoff).sum()) if largest > 0 else 0
    head_floor = hidden * float(np.finfo(np.float64).eps) * head[0]
    after = float(values[rank]) if rank < len(values) else 0.0
    found = LocalDimension(
        dimensions=n,
        hidden=hidden,
        rank=rank,
        cutoff=cutoff / largest if largest > 0 else float("nan"),
        largest=largest,
        gap=float(values[rank - 1] / after) if rank and after > 0 else float("inf"),
        smallest_kept=float(values[rank - 1] / largest) if rank else 0.0,
        head_rank=int((head > head_floor).sum()) if head[0] > 0 else 0,
    )
    return found, values
