"""The shape of the zero-loss set around converged input embeddings.

The study concluded, from indirect evidence, that input-embedding descent is
over-parameterised: a high-dimensional zero-loss set lies close to almost every start.
This measures it directly, one sequence at a time (the loss is a sum over sequences, so
its Hessian is block-diagonal by sequence):

- local dimension: the whole Hessian of the loss with respect to the optimised
  embeddings, from Hessian-vector products batched as many copies of the sequence in
  one double backward, each copy with its own probe; its eigenvalues in float64. Where
  that is too costly, a spectral density by stochastic Lanczos quadrature instead.
  With one prediction site the logits depend on the inputs only through the final
  hidden state there (d numbers), so at a zero-loss point the Hessian is J^T F J with
  J of rank at most d: at least n*d - d flat directions. The spectrum says whether it is.
- connectivity: the loss along the straight segment between two solutions of the same
  target from different starts, and along paths bent through optimised midpoints;
- nearness: how far a start is from its own solution, from the nearest vocabulary token
  and from the solution of another start.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from inputspace import engine
from inputspace.engine import Problem, Settings, Step, StopRule, kl_divergence
from inputspace.experiments import target_logprobs
from inputspace.geometry import nearest_tokens
from inputspace.models import LanguageModel
from inputspace.sequences import SequenceBatch, from_prompts


@dataclass
class Point:
    """One sequence at a point of input space: only `trainable` positions vary."""

    embeddings: Tensor  # [t, d]
    attention_mask: Tensor  # [t]
    trainable: Tensor  # [t] bool
    site: int
    target_logprobs: Tensor  # [vocab]

    @property
    def size(self) -> int:
        return int(self.trainable.sum()) * self.embeddings.shape[1]

    def flat(self) -> Tensor:
        """The optimised coordinates as one flat vector."""
        return self.embeddings[self.trainable].reshape(-1)


def points_of(batch: SequenceBatch, embeddings: Tensor, target_logprobs: Tensor) -> list[Point]:
    """Each sequence of `batch` at `embeddings` [n, t, d], toward its target."""
    return [
        Point(
            embeddings[i],
            batch.attention_mask[i],
            batch.trainable[i],
            int(batch.sites[i]),
            target_logprobs[i],
        )
        for i in range(len(batch))
    ]


# ------------------------------------------------------------------ solutions


@dataclass
class Solved:
    """Starts solved toward their targets: where each ended and whether it converged."""

    end: Tensor  # [n, t, d]
    start_kl: np.ndarray
    final_kl: np.ndarray
    steps: np.ndarray  # Adam steps each sequence took
    converged: np.ndarray  # bool: final KL at most the level asked for

    def converged_indices(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.converged)]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "seq": np.arange(len(self.final_kl)),
                "start_kl": self.start_kl,
                "final_kl": self.final_kl,
                "steps": self.steps,
                "converged": self.converged,
            }
        )

    def describe(self, level: float) -> str:
        return (
            f"{int(self.converged.sum())} of {len(self.converged)} starts "
            f"solved to KL <= {level:g} "
            f"(final KL {np.round(self.final_kl, 6).tolist()}; steps {self.steps.tolist()})"
        )


class _Ends:
    """Observer of a solve: each sequence's first KL and the step after which it stopped."""

    def __init__(self, n: int):
        self.start_kl = np.full(n, np.nan)
        self.steps = np.zeros(n, dtype=int)

    def observe(self, step: Step) -> None:
        if step.number == 0:
            self.start_kl = step.kl.cpu().double().numpy()
        self.steps[step.rows.numpy()] = step.number

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass


def solver_settings(study: dict, optimize: dict, precision: str) -> Settings:
    """Adam as in the experiment, each start until its KL is at most `solve_below` or for
    at most `solve_steps` steps."""
    return Settings(
        steps=study["solve_steps"],
        lr=optimize["lr"],
        betas=tuple(optimize["betas"]),
        precision=precision,
        stop=StopRule(below=study["solve_below"], patience=1),
    )


def solve(
    lm: LanguageModel, starts: SequenceBatch, targets: Tensor, settings: Settings, label: str
) -> Solved:
    ends = _Ends(len(starts))
    run = engine.optimise(lm, Problem(starts, targets), settings, ends, label=f"{label} solutions")
    final = run.kl.cpu().double().numpy()
    return Solved(run.end.cpu(), ends.start_kl, final, ends.steps, final <= settings.stop.below)


def loss(lm: LanguageModel, point: Point, flat: Tensor) -> Tensor:
    """KL(target || predicted) at the point's prediction site, at coordinates `flat`."""
    return losses(lm, point, flat.unsqueeze(0))[0]


def losses(lm: LanguageModel, point: Point, flats: Tensor) -> Tensor:
    """The loss at each of the coordinates `flats` [k, size], in one batch."""
    device, k = lm.device, flats.shape[0]
    embeddings = point.embeddings.to(device).expand(k, -1, -1)
    trainable = point.trainable.to(device).expand(k, -1)
    full = embeddings.masked_scatter(trainable.unsqueeze(-1), flats.to(device).to(embeddings.dtype))
    logits = lm.logits_at(
        full,
        point.attention_mask.to(device).expand(k, -1),
        torch.full((k,), point.site, device=device),
    )
    return kl_divergence(logits, point.target_logprobs.to(device).expand(k, -1))


def hessian_vector_products(
    lm: LanguageModel, point: Point, flat: Tensor, vectors: Tensor
) -> Tensor:
    """H v for each row v of `vectors` [k, size], at `flat`: k copies of the sequence in
    one batch, one double backward (needs an attention implementation with second
    derivatives: eager)."""
    k = vectors.shape[0]
    x = flat.detach().to(lm.device).expand(k, -1).clone().requires_grad_(True)
    (gradients,) = torch.autograd.grad(losses(lm, point, x).sum(), x, create_graph=True)
    (products,) = torch.autograd.grad(
        gradients, x, grad_outputs=vectors.to(lm.device).to(gradients.dtype)
    )
    return products.detach()


def hessian(
    lm: LanguageModel, point: Point, flat: Tensor, batch: int = 64, label: str = ""
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
        rows.append(hessian_vector_products(lm, point, flat, probes).cpu().double())
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


def exact_spectrum(
    lm: LanguageModel, point: Point, flat: Tensor, batch: int = 64, label: str = ""
) -> Spectrum:
    matrix, asymmetry = hessian(lm, point, flat, batch, label)
    values = torch.linalg.eigvalsh(matrix).flip(0).numpy()
    return Spectrum(values, np.full(len(values), 1 / len(values)), "exact", asymmetry)


def slq_spectrum(
    lm: LanguageModel, point: Point, flat: Tensor, probes: int, steps: int, seed: int = 0
) -> Spectrum:
    """Spectral density by stochastic Lanczos quadrature (Ubaru, Chen and Saad 2017; the
    method of PyHessian): `steps` Lanczos steps from each of `probes` random sign vectors,
    all probes in one batch of Hessian-vector products per step."""
    n = flat.numel()
    generator = torch.Generator().manual_seed(seed)
    starts = (torch.randint(0, 2, (probes, n), generator=generator) * 2 - 1).double() / np.sqrt(n)

    def apply(vectors: Tensor) -> Tensor:
        return hessian_vector_products(lm, point, flat, vectors.to(flat.dtype)).cpu().double()

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
    rank_tolerance: float  # eigenvalues with |lambda| at most this count as zero
    numerical_rank: float
    flat_threshold: float  # relative: flat means |lambda| <= flat_threshold x largest
    flat_fraction: float
    bound_flat_fraction: float  # 1 - d / dimensions: flat at least this much at a zero-loss point
    eigenvalue_d: float  # the d-th largest |lambda| (exact spectra only)
    eigenvalue_after_d: float  # the (d+1)-th


def flatness(
    spectrum: Spectrum, dimensions: int, hidden: int, threshold: float, rank_tolerance: float
) -> Flatness:
    """Numerical rank: directions with |lambda| above `rank_tolerance` x the largest |lambda|
    or above the spectrum's measured rounding noise, whichever is larger. Flat: |lambda| at
    most `threshold` x the largest. Shares of directions come from the spectrum's weights,
    so a stochastic Lanczos estimate gives estimated counts; its nodes do not resolve the
    eigenvalues inside a cluster near zero, so its rank is counted at the flat threshold."""
    values, weights = spectrum.eigenvalues, spectrum.weights
    magnitude = np.abs(values)
    largest = float(magnitude.max())
    relative = rank_tolerance if spectrum.method == "exact" else max(rank_tolerance, threshold)
    tolerance = max(relative * largest, spectrum.noise)
    ordered = np.sort(magnitude)[::-1] if spectrum.method == "exact" else np.array([])
    return Flatness(
        dimensions=dimensions,
        hidden=hidden,
        method=spectrum.method,
        largest=largest,
        rank_tolerance=tolerance,
        numerical_rank=float(weights[magnitude > tolerance].sum() * dimensions),
        flat_threshold=threshold,
        flat_fraction=float(weights[magnitude <= threshold * largest].sum()),
        bound_flat_fraction=1 - hidden / dimensions,
        eigenvalue_d=float(ordered[hidden - 1]) if hidden <= len(ordered) else np.nan,
        eigenvalue_after_d=float(ordered[hidden]) if hidden < len(ordered) else np.nan,
    )


def prompt_controls(
    lm: LanguageModel, prompt: str, target_prompt: str
) -> list[tuple[str, str, Point, float]]:
    """A prompt's own token embeddings as two controls: toward the experiment's target (not
    a solution), and toward the prompt's own prediction, where the loss is exactly zero: a
    zero-loss point made of real tokens."""
    batch = from_prompts(lm, [prompt])
    toward_target, own = target_logprobs(lm, [target_prompt, prompt]).split(1)
    away = points_of(batch, batch.embeddings, toward_target)[0]
    at_home = points_of(batch, batch.embeddings, own)[0]
    with torch.no_grad():
        kl = float(loss(lm, away, away.flat()))
    return [
        ("prompt", "prompt", away, kl),
        ("prompt, own prediction", "zero-loss prompt", at_home, 0.0),
    ]


def spectra(
    lm: LanguageModel, probed: list[tuple[str, str, Point, float]], study: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Hessian spectrum at each (label, kind, point, loss): exact up to
    `exact_up_to` coordinates, else by stochastic Lanczos quadrature."""
    spectrum_rows, flat_rows = [], []
    hidden = lm.model.config.hidden_size
    for label, kind, point, kl in probed:
        flat = point.flat()
        if point.size <= study["exact_up_to"]:
            spectrum = exact_spectrum(lm, point, flat, study["hessian_batch"], label)
        else:
            spectrum = slq_spectrum(lm, point, flat, study["slq_probes"], study["slq_steps"])
        summary = flatness(
            spectrum, point.size, hidden, study["flat_threshold"], study["rank_tolerance"]
        )
        spectrum_rows.append(
            spectrum.table().assign(point=label, kind=kind, method=spectrum.method)
        )
        flat_rows.append({"point": label, "kind": kind, "kl": kl, **vars(summary)})
        print(f"{label}: {summary}", file=sys.stderr)
    return pd.concat(spectrum_rows, ignore_index=True), pd.DataFrame(flat_rows)


# ------------------------------------------------------------------ connectivity


@torch.no_grad()
def loss_along(lm: LanguageModel, point: Point, corners: list[Tensor], samples: int) -> np.ndarray:
    """Loss at `samples` evenly spaced points of each segment of the polyline `corners`,
    joined end to end (shared corners counted once)."""
    along = []
    for number, (a, b) in enumerate(zip(corners[:-1], corners[1:])):
        ts = torch.linspace(0, 1, samples, dtype=a.dtype)[(1 if number else 0) :].unsqueeze(1)
        along.append(a + ts * (b - a))
    return losses(lm, point, torch.cat(along)).cpu().double().numpy()


def barrier(values: np.ndarray) -> float:
    """Height of the path's highest point above the higher of its two ends."""
    return float(values.max() - max(values[0], values[-1]))


def bend(
    lm: LanguageModel,
    point: Point,
    a: Tensor,
    b: Tensor,
    steps: int,
    lr: float,
    midpoints: int = 1,
    spread: float = 0.25,
    probes: int = 3,
    seed: int = 0,
) -> Tensor:
    """`midpoints` midpoints m [midpoints, size], moved by Adam (model frozen) to lower the
    loss along a -> m -> b, sampled at `probes` interior points of each half and at m.
    The first starts at (a + b) / 2, the others there plus a random offset of norm
    `spread` x |a - b|; they move independently, in one batch."""
    a, b = a.to(lm.device), b.to(lm.device)
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randn((midpoints, a.numel()), generator=generator, dtype=a.dtype)
    offsets[0] = 0
    offsets *= spread * (a - b).norm().cpu() / offsets.norm(dim=1, keepdim=True).clamp_min(1e-30)
    middle = ((a + b) / 2 + offsets.to(lm.device)).detach().requires_grad_(True)
    optimizer = torch.optim.Adam([middle], lr=lr)
    ts = torch.tensor(
        [(i + 1) / (probes + 1) for i in range(probes)], dtype=a.dtype, device=a.device
    )
    ts = ts.view(1, -1, 1)
    for _ in range(steps):
        m = middle.unsqueeze(1)
        # [midpoints, 2 probes + 1, size]
        along = torch.cat([m, a + ts * (m - a), m + ts * (b - m)], dim=1)
        total = losses(lm, point, along.reshape(-1, a.numel())).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    return middle.detach()


def connectivity(
    lm: LanguageModel,
    solutions: list[Point],
    converged: list[bool],
    start_losses: list[float],
    samples: int,
    bend_above: float,
    bend_steps: int,
    bend_lr: float,
    midpoints: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Solutions 2p and 2p+1 share a target and a frame: the loss between them, for the
    pairs whose two ends both converged; the others are listed and left out. Barriers are
    also given relative to the mean loss at the pair's two starts."""
    path_rows, barrier_rows = [], []
    for pair in tqdm(range(len(solutions) // 2), desc="paths between solutions", file=sys.stderr):
        first, second = solutions[2 * pair], solutions[2 * pair + 1]
        a, b = first.flat(), second.flat()
        start_loss = (start_losses[2 * pair] + start_losses[2 * pair + 1]) / 2
        row = {
            "pair": pair,
            "both_converged": converged[2 * pair] and converged[2 * pair + 1],
            "distance": float((a - b).norm()),
            "start_loss": start_loss,
        }
        if not row["both_converged"]:
            barrier_rows.append(row)
            continue
        straight = loss_along(lm, first, [a, b], samples)
        path_rows.append(_path_rows(pair, "straight", straight))
        row.update(loss_a=straight[0], loss_b=straight[-1], straight_barrier=barrier(straight))
        if row["straight_barrier"] > bend_above:
            middles = bend(lm, first, a, b, bend_steps, bend_lr, midpoints, seed=pair)
            bents = [loss_along(lm, first, [a, m, b], samples // 2 + 1) for m in middles]
            heights = [barrier(bent) for bent in bents]
            best = int(np.argmin(heights))
            path_rows.append(_path_rows(pair, "bent", bents[best]))
            row.update(
                bent_barrier=heights[best], bent_barriers=" ".join(f"{h:.4g}" for h in heights)
            )
        barrier_rows.append(row)
    frame = pd.DataFrame(barrier_rows, columns=BARRIER_COLUMNS)
    frame["straight_relative"] = frame.straight_barrier / frame.start_loss
    frame["bent_relative"] = frame.bent_barrier / frame.start_loss
    paths = (
        pd.concat(path_rows, ignore_index=True) if path_rows else pd.DataFrame(columns=PATH_COLUMNS)
    )
    return paths, frame


BARRIER_COLUMNS = [
    "pair",
    "both_converged",
    "distance",
    "start_loss",
    "loss_a",
    "loss_b",
    "straight_barrier",
    "bent_barrier",
    "bent_barriers",
]
PATH_COLUMNS = ["pair", "path", "position", "loss"]


def _path_rows(pair: int, kind: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"pair": pair, "path": kind, "position": np.linspace(0, 1, len(values)), "loss": values}
    )


def nearness(
    batch: SequenceBatch, ends: Tensor, matrix: Tensor, candidates: Tensor, converged: list[bool]
) -> pd.DataFrame:
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
                    "seq": i,
                    "pos": where.numpy(),
                    "converged": converged[i],
                    "to_own_solution": (ends[i, where] - start).norm(dim=1).numpy(),
                    "to_nearest_token": near.euclidean.numpy(),
                    "to_other_solution": (ends[partner[i], where] - start).norm(dim=1).numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
