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
    each for an exact spectrum, quadrature weights for a stochastic Lanczos estimate
    (with the probe each node belongs to: a probe's nodes bracket its own measure)."""

    eigenvalues: np.ndarray
    weights: np.ndarray
    method: str  # "exact" or "slq"
    noise: float  # exact: the Hessian's measured rounding; slq: 0
    precision: str = "float32"  # of the Hessian-vector products
    probes: np.ndarray | None = None  # slq: the probe of each node
    recurrence: "Recurrence | None" = None  # slq: the Lanczos coefficients behind the nodes

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "index": np.arange(1, len(self.eigenvalues) + 1),
                "eigenvalue": self.eigenvalues,
                "weight": self.weights,
                "probe": self.probes if self.probes is not None else 0,
                "precision": self.precision,
            }
        )


def precision_of(flat: Tensor) -> str:
    return str(flat.dtype).removeprefix("torch.")


def exact_spectrum(surface: Surface, flat: Tensor, batch: int = 64, label: str = "") -> Spectrum:
    """Every eigenvalue of the Hessian at `flat`, in the precision of `flat` (and of the
    loss's arithmetic, which the caller sets)."""
    matrix, asymmetry = hessian(surface, flat, batch, label)
    values = torch.linalg.eigvalsh(matrix).flip(0).numpy()
    weights = np.full(len(values), 1 / len(values))
    return Spectrum(values, weights, "exact", asymmetry, precision_of(flat))


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

    return estimated(lanczos(apply, starts, min(steps, n)), precision_of(flat))


def estimated(recurrence: "Recurrence", precision: str) -> Spectrum:
    """The spectrum a Lanczos recurrence estimates: its Gauss nodes, largest first."""
    nodes, weights, owners = recurrence.gauss()
    order = np.argsort(nodes, kind="stable")[::-1]
    return Spectrum(nodes[order], weights[order], "slq", 0.0, precision, owners[order], recurrence)


@dataclass(frozen=True)
class Recurrence:
    """What `steps` Lanczos steps know of each probe's spectral measure: its Jacobi matrix
    (diagonal `alphas`, off-diagonal `betas[:, :-1]`) and the norm of the residual after
    the last step (`betas[:, -1]`); the moments of the measure up to order 2 x steps."""

    alphas: np.ndarray  # [probes, steps]
    betas: np.ndarray  # [probes, steps]

    def jacobi(self, probe: int) -> np.ndarray:
        off = self.betas[probe, :-1]
        return np.diag(self.alphas[probe]) + np.diag(off, 1) + np.diag(off, -1)

    def gauss(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each probe's Gauss quadrature: nodes, weights (summing to 1 over all probes)
        and the probe of each node."""
        probes, steps = self.alphas.shape
        nodes, weights = [], []
        for probe in range(probes):
            values, vectors = np.linalg.eigh(self.jacobi(probe))
            nodes.append(values)
            weights.append(vectors[0] ** 2 / probes)
        return np.concatenate(nodes), np.concatenate(weights), np.repeat(np.arange(probes), steps)

    def share(self, low: float, high: float) -> tuple[float, float]:
        """Bounds on the share of directions with eigenvalue in [low, high], over every
        measure with the probes' moments: sum over probes of its measure of (-inf, high]
        less that of (-inf, low), each bounded by `_below`."""
        probes = self.alphas.shape[0]
        lower = upper = 0.0
        for probe in range(probes):
            high_least, high_most = self._below(probe, high)
            low_least, low_most = self._below(probe, low)
            lower += max(high_least - low_most, 0.0) / probes
            upper += min(high_most - low_least, 1.0) / probes
        return lower, upper

    def _below(self, probe: int, point: float) -> tuple[float, float]:
        """(at least the measure of (-inf, point), at most that of (-inf, point]) for one
        probe: the sharp Chebyshev-Markov-Stieltjes bounds, from the Gauss-Radau rule with
        a node prescribed at `point` (Golub and Meurant), whose weight there is the most
        mass any measure with these moments can put at `point`: the quadrature's
        resolution at `point`, about one node's weight."""
        jacobi, residual = self.jacobi(probe), self.betas[probe, -1]
        steps = len(jacobi)
        last = np.zeros(steps)
        last[-1] = residual**2
        try:
            shift = np.linalg.solve(jacobi - point * np.eye(steps), last)[-1]
        except np.linalg.LinAlgError:  # `point` is a Gauss node: move it by a rounding
            return self._below(probe, np.nextafter(point, np.inf))
        extended = np.zeros((steps + 1, steps + 1))
        extended[:steps, :steps] = jacobi
        extended[steps, steps - 1] = extended[steps - 1, steps] = residual
        extended[steps, steps] = point + shift
        values, vectors = np.linalg.eigh(extended)
        weights = vectors[0] ** 2
        at = int(np.argmin(np.abs(values - point)))
        below = float(weights[(values < point) & (np.arange(steps + 1) != at)].sum())
        return below, below + float(weights[at])


def lanczos(apply: Callable[[Tensor], Tensor], starts: Tensor, steps: int) -> Recurrence:
    """`steps` Lanczos steps with full reorthogonalisation from each unit start vector
    (rows of `starts`), all in one batch: `apply` maps vectors [p, n] to A times each."""
    basis = [starts / starts.norm(dim=1, keepdim=True)]
    alphas, betas = [], []
    for _ in tqdm(range(steps), desc="Lanczos", file=sys.stderr, mininterval=5.0):
        w = apply(basis[-1])
        alphas.append((w * basis[-1]).sum(dim=1))
        stacked = torch.stack(basis, dim=1)  # [probes, j, n]
        for _ in range(2):  # twice is enough (Kahan): the basis stays orthogonal to rounding
            w = w - torch.einsum("pj,pjn->pn", torch.einsum("pjn,pn->pj", stacked, w), stacked)
        beta = w.norm(dim=1)
        betas.append(beta)
        basis.append(w / beta.clamp_min(1e-300).unsqueeze(1))
    return Recurrence(torch.stack(alphas, dim=1).numpy(), torch.stack(betas, dim=1).numpy())


def lanczos_quadrature(
    apply: Callable[[Tensor], Tensor], starts: Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the spectral measure of a symmetric operator
    seen from each unit start vector (rows of `starts`), by `steps` Lanczos steps,
    averaged over the starts: sum(w * theta**k) equals the mean of v^T A^k v for every
    k < 2 * steps (the weights sum to 1)."""
    nodes, weights, _ = lanczos(apply, starts, steps).gauss()
    return nodes, weights


@dataclass
class Flatness:
    """How many directions the Hessian curves, against the bound from the hidden size.
    Exact spectra give counts (with the gap at the rank cutoff that makes the rank
    meaningful); stochastic Lanczos estimates give brackets as wide as the quadrature
    resolves (`*_low`, `*_high`: over every measure with the probes' moments)."""

    dimensions: int  # optimised coordinates: tokens x embedding size
    hidden: int  # d: the size of the final hidden state the logits depend on
    method: str
    precision: str  # of the Hessian-vector products
    largest: float
    rank_cutoff: float  # absolute: eigenvalues with |lambda| at most this count as zero
    cutoff_origin: str  # "rounding", "tolerance" (exact); "flat threshold" (slq)
    numerical_rank: int | float  # a count where exact, an estimate by quadrature weights
    rank_low: float  # the rank's bracket: equal to it where exact
    rank_high: float
    eigenvalue_at_rank: float  # exact: the smallest |lambda| counted in the rank...
    eigenvalue_after_rank: float  # ...and the largest not counted
    rank_gap: float  # their ratio: a rank is meaningful where this is large
    flat_threshold: float  # relative: flat means |lambda| <= flat_threshold x largest
    flat_fraction: float
    flat_low: float  # the flat fraction's bracket: equal to it where exact
    flat_high: float
    node_share: float  # slq: the mean weight of one quadrature node (1 / nodes); exact: 1 / n
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
    if spectrum.method == "exact":
        return _exact_flatness(
            spectrum, dimensions, hidden, flat_threshold, relative_rank_tolerance, largest
        )
    cutoff = max(relative_rank_tolerance, flat_threshold) * largest
    flat = flat_threshold * largest
    flat_low, flat_high = spectrum.recurrence.share(-flat, flat)
    rank_low, rank_high = spectrum.recurrence.share(-cutoff, cutoff)
    return Flatness(
        **_described(spectrum, dimensions, hidden, flat_threshold, largest),
        rank_cutoff=cutoff,
        cutoff_origin="flat threshold",
        numerical_rank=float(weights[magnitude > cutoff].sum() * dimensions),
        rank_low=(1 - rank_high) * dimensions,
        rank_high=(1 - rank_low) * dimensions,
        eigenvalue_at_rank=np.nan,
        eigenvalue_after_rank=np.nan,
        rank_gap=np.nan,
        flat_fraction=float(weights[magnitude <= flat].sum()),
        flat_low=flat_low,
        flat_high=flat_high,
        node_share=1 / len(values),
        eigenvalue_d=np.nan,
        eigenvalue_after_d=np.nan,
    )


def _exact_flatness(
    spectrum: Spectrum,
    dimensions: int,
    hidden: int,
    flat_threshold: float,
    relative_rank_tolerance: float,
    largest: float,
) -> Flatness:
    ordered = np.sort(np.abs(spectrum.eigenvalues))[::-1]
    relative = relative_rank_tolerance * largest
    cutoff = max(relative, spectrum.noise)
    rank = int((ordered > cutoff).sum())
    flat = float((ordered <= flat_threshold * largest).mean())

    def at(index: int) -> float:  # the index-th largest |lambda|, 1-based
        return float(ordered[index - 1]) if 1 <= index <= len(ordered) else np.nan

    return Flatness(
        **_described(spectrum, dimensions, hidden, flat_threshold, largest),
        rank_cutoff=cutoff,
        cutoff_origin="rounding" if spectrum.noise > relative else "tolerance",
        numerical_rank=rank,
        rank_low=rank,
        rank_high=rank,
        eigenvalue_at_rank=at(rank),
        eigenvalue_after_rank=at(rank + 1),
        rank_gap=_ratio(at(rank), at(rank + 1)),
        flat_fraction=flat,
        flat_low=flat,
        flat_high=flat,
        node_share=1 / len(ordered),
        eigenvalue_d=at(hidden),
        eigenvalue_after_d=at(hidden + 1),
    )


def _described(
    spectrum: Spectrum, dimensions: int, hidden: int, flat_threshold: float, largest: float
) -> dict:
    """The fields of a Flatness that say what was measured, whichever way it was."""
    return {
        "dimensions": dimensions,
        "hidden": hidden,
        "method": spectrum.method,
        "precision": spectrum.precision,
        "largest": largest,
        "flat_threshold": flat_threshold,
        "bound_flat_fraction": 1 - hidden / dimensions,
    }


def _ratio(above: float, below: float) -> float:
    """above / below; infinite when nothing is left below (an exact zero), NaN when either
    side has no eigenvalue."""
    return np.inf if below == 0 and above > 0 else above / below if below > 0 else np.nan
