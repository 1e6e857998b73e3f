"""The Hessian of a loss over flat coordinates, from batched Hessian-vector products: the
whole matrix and its eigenvalues, or a spectral density by stochastic Lanczos quadrature,
and how flat it is against the bound a single prediction site sets.

Everything here sees the loss only as a function of a batch of coordinate vectors
([k, n] -> [k] losses) on a device; what the coordinates mean is the caller's.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

BatchedLoss = Callable[[Tensor], Tensor]  # coordinates [k, n] -> one loss per row [k]


@dataclass(frozen=True)
class Surface:
    """A loss over flat coordinates, where its products are computed."""

    losses: BatchedLoss
    device: torch.device


def hessian_vector_products(surface: Surface, flat: Tensor, vectors: Tensor) -> Tensor:
    """H v for each row v of `vectors` [k, n], at `flat`: k copies of the point in one
    batch, one double backward (the loss needs second derivatives: eager attention)."""
    k = vectors.shape[0]
    x = flat.detach().to(surface.device).expand(k, -1).clone().requires_grad_(True)
    (gradients,) = torch.autograd.grad(surface.losses(x).sum(), x, create_graph=True)
    (products,) = torch.autograd.grad(
        gradients, x, grad_outputs=vectors.to(surface.device).to(gradients.dtype)
    )
    return products.detach()


def hessian(
    surface: Surface, flat: Tensor, batch: int = 64, label: str = ""
) -> tuple[Tensor, float]:
    """The whole Hessian at `flat` in float64, symmetrised, and the spectral norm of the
    part that was not symmetric (the rounding in the products: eigenvalues below it
    cannot be told from zero)."""
    n = flat.numel()
    rows = []
    for start in tqdm(
        range(0, n, batch), desc=f"Hessian {label}".strip(), file=sys.stderr, mininterval=5.0
    ):
        probes = torch.eye(n, dtype=flat.dtype)[start : start + batch]
        rows.append(hessian_vector_products(surface, flat, probes).cpu().double())
    matrix = torch.cat(rows)  # row i = H e_i
    asymmetry = float(torch.linalg.matrix_norm((matrix - matrix.T) / 2, ord=2))
    return (matrix + matrix.T) / 2, asymmetry


@dataclass
class Spectrum:
    """Eigenvalues (largest first) with the share of directions each stands for: 1/n
    each for an exact spectrum, quadrature weights for a stochastic Lanczos estimate."""

    eigenvalues: np.ndarray
    weights: np.ndarray
    method: str  # "exact" or "slq"
    noise: float  # exact: the Hessian's measured rounding; slq: 0

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "index": np.arange(1, len(self.eigenvalues) + 1),
                "eigenvalue": self.eigenvalues,
                "weight": self.weights,
            }
        )


def exact_spectrum(surface: Surface, flat: Tensor, batch: int = 64, label: str = "") -> Spectrum:
    matrix, asymmetry = hessian(surface, flat, batch, label)
    values = torch.linalg.eigvalsh(matrix).flip(0).numpy()
    return Spectrum(values, np.full(len(values), 1 / len(values)), "exact", asymmetry)


def slq_spectrum(
    surface: Surface, flat: Tensor, probes: int, steps: int, seed: int = 0
) -> Spectrum:
    """Spectral density by stochastic Lanczos quadrature (Ubaru, Chen and Saad 2017; the
    method of PyHessian): `steps` Lanczos steps from each of `probes` random sign vectors,
    all probes in one batch of Hessian-vector products per step."""
    n = flat.numel()
    generator = torch.Generator().manual_seed(seed)
    starts = (torch.randint(0, 2, (probes, n), generator=generator) * 2 - 1).double() / np.sqrt(n)

    def apply(vectors: Tensor) -> Tensor:
        return hessian_vector_products(surface, flat, vectors.to(flat.dtype)).cpu().double()

    nodes, weights = lanczos_quadrature(apply, starts, min(steps, n))
    order = np.argsort(nodes)[::-1]
    return Spectrum(nodes[order], weights[order], "slq", 0.0)


def lanczos_quadrature(
    apply: Callable[[Tensor], Tensor], starts: Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the spectral measure of a symmetric operator
    seen from each unit start vector (rows of `starts`), by `steps` Lanczos steps with full
    reorthogonalisation, averaged over the starts: sum(w * theta**k) equals the mean of
    v^T A^k v for every k < 2 * steps (the weights sum to 1). `apply` maps a batch of
    vectors [p, n] to A times each."""
    probes = starts.shape[0]
    basis = [starts / starts.norm(dim=1, keepdim=True)]
    alphas, betas = [], []
    for step in tqdm(range(steps), desc="Lanczos", file=sys.stderr, mininterval=5.0):
        w = apply(basis[-1])
        alphas.append((w * basis[-1]).sum(dim=1))
        if step == steps - 1:
            break
        stacked = torch.stack(basis, dim=1)  # [probes, j, n]
        for _ in range(2):  # twice is enough (Kahan): the basis stays orthogonal to rounding
            w = w - torch.einsum("pj,pjn->pn", torch.einsum("pjn,pn->pj", stacked, w), stacked)
        beta = w.norm(dim=1)
        betas.append(beta)
        basis.append(w / beta.clamp_min(1e-300).unsqueeze(1))
    diagonal, off = torch.stack(alphas, dim=1), torch.stack(betas, dim=1) if betas else None
    nodes, weights = [], []
    for p in range(probes):
        tridiagonal = torch.diag(diagonal[p])
        if off is not None:
            tridiagonal += torch.diag(off[p], 1) + torch.diag(off[p], -1)
        values, vectors = torch.linalg.eigh(tridiagonal)
        nodes.append(values.numpy())
        weights.append((vectors[0] ** 2).numpy() / probes)
    return np.concatenate(nodes), np.concatenate(weights)


@dataclass
class Flatness:
    """How many directions the Hessian curves, against the bound from the hidden size."""

    dimensions: int  # optimised coordinates: tokens x embedding size
    hidden: int  # d: the size of the final hidden state the logits depend on
    method: str
    largest: float
    rank_cutoff: float  # absolute: eigenvalues with |lambda| at most this count as zero
    numerical_rank: int | float  # a count where exact, an estimate by quadrature weights
    flat_threshold: float  # relative: flat means |lambda| <= flat_threshold x largest
    flat_fraction: float
    bound_flat_fraction: float  # 1 - d / dimensions: flat at least this much at a zero-loss point
    eigenvalue_d: float  # the d-th largest |lambda| (exact spectra only)
    eigenvalue_after_d: float  # the (d+1)-th


def flatness(
    spectrum: Spectrum,
    dimensions: int,
    hidden: int,
    flat_threshold: float,
    relative_rank_tolerance: float,
) -> Flatness:
    """Numerical rank: directions with |lambda| above `relative_rank_tolerance` x the
    largest |lambda| or above the spectrum's measured rounding noise, whichever is larger.
    Flat: |lambda| at most `flat_threshold` x the largest. Shares of directions come from
    the spectrum's weights, so a stochastic Lanczos estimate gives estimated counts; its
    nodes do not resolve the eigenvalues inside a cluster near zero, so its rank is
    counted at the flat threshold."""
    values, weights = spectrum.eigenvalues, spectrum.weights
    magnitude = np.abs(values)
    largest = float(magnitude.max())
    exact = spectrum.method == "exact"
    relative = relative_rank_tolerance if exact else max(relative_rank_tolerance, flat_threshold)
    cutoff = max(relative * largest, spectrum.noise)
    ordered = np.sort(magnitude)[::-1] if exact else np.array([])
    curved = magnitude > cutoff
    return Flatness(
        dimensions=dimensions,
        hidden=hidden,
        method=spectrum.method,
        largest=largest,
        rank_cutoff=cutoff,
        numerical_rank=int(curved.sum()) if exact else float(weights[curved].sum() * dimensions),
        flat_threshold=flat_threshold,
        flat_fraction=float(weights[magnitude <= flat_threshold * largest].sum()),
        bound_flat_fraction=1 - hidden / dimensions,
        eigenvalue_d=float(ordered[hidden - 1]) if hidden <= len(ordered) else np.nan,
        eigenvalue_after_d=float(ordered[hidden]) if hidden < len(ordered) else np.nan,
    )
