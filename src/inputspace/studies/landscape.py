"""The shape of the zero-loss set around converged input embeddings.

The study concluded, from indirect evidence, that input-embedding descent is
over-parameterised: a high-dimensional zero-loss set lies close to almost every start.
This measures it directly, one sequence at a time (the loss is a sum over sequences, so
its Hessian is block-diagonal by sequence):

- local dimension: the Hessian spectrum of the loss with respect to the optimised
  embeddings (inputspace.analysis.spectrum: exact from batched Hessian-vector products, or by
  stochastic Lanczos quadrature where that is too costly).
  With one prediction site the logits depend on the inputs only through the final
  hidden state there (d numbers), so at a zero-loss point the Hessian is J^T F J with
  J of rank at most d: at least n*d - d flat directions. The spectrum says whether it is.
- connectivity: the loss along the straight segment between two solutions of the same
  target from different starts, and along the low path the string method finds;
- nearness: how far a start is from its own solution, from the nearest vocabulary token
  and from the solution of another start.

(Longer than most modules: the study's parts all work on `Point` and its loss, and
`run_study` at the end reads as the study's outline.)
"""

import dataclasses
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from inputspace.analysis.geometry import Ellipse, nearest_tokens
from inputspace.analysis.local_dimension import (
    LocalDimension,
    forward_jacobian,
    jacobian,
    local_dimension,
    prediction_metric,
    rounding,
)
from inputspace.analysis.spectrum import Flatness, Surface, exact_spectrum, flatness, slq_spectrum
from inputspace.model.models import LanguageModel
from inputspace.optimisation import engine
from inputspace.optimisation.engine import Problem, Settings, Step, StopRule, kl_divergence
from inputspace.optimisation.experiments import optimisation_settings, target_logprobs
from inputspace.optimisation.sequences import SequenceBatch, from_prompts, sample_random


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


def solver_settings(
    study: dict, optimize: dict, precision: str, token_norm: float | None = None
) -> Settings:
    """Adam as in the experiment (its rate, resolved with the model's median token norm
    `token_norm` if relative; betas and chunking), each start until its KL is at most
    `solve_below` or for at most `solve_steps` steps."""
    loop, _ = optimisation_settings(optimize, precision, token_norm)
    stop = StopRule(below=study["solve_below"], patience=1)
    return dataclasses.replace(loop, steps=study["solve_steps"], stop=stop)


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
    logits = lm.logits_at(*_batch_at(lm, point, flats))
    k = flats.shape[0]
    return kl_divergence(logits, point.target_logprobs.to(lm.device).expand(k, -1))


def states(lm: LanguageModel, point: Point, flats: Tensor) -> Tensor:
    """The final hidden state at the prediction site [k, d] at each of `flats` [k, size]."""
    return lm.hidden_at(*_batch_at(lm, point, flats))


def _batch_at(lm: LanguageModel, point: Point, flats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The point's sequence with its optimised coordinates set to each row of `flats`:
    (input embeddings, attention mask, sites) for a batch of len(flats)."""
    device, k = lm.device, flats.shape[0]
    embeddings = point.embeddings.to(device).expand(k, -1, -1)
    trainable = point.trainable.to(device).expand(k, -1)
    full = embeddings.masked_scatter(trainable.unsqueeze(-1), flats.to(device).to(embeddings.dtype))
    return (
        full,
        point.attention_mask.to(device).expand(k, -1),
        torch.full((k,), point.site, device=device),
    )


ROUNDING_ROWS = 32  # rows of the Jacobian recomputed in float64 to measure its rounding


def local_dimension_at(
    lm: LanguageModel, point: Point, batch: int, label: str
) -> tuple[LocalDimension, np.ndarray]:
    """The zero-loss set's local dimension at `point` from the exact Jacobian of the
    prediction in `lm`'s precision (`batch` rows per backward pass), its rounding measured
    on its first ROUNDING_ROWS rows recomputed with the model in float64; and its
    singular values."""
    flat = point.flat().to(lm.device)
    hidden = lm.model.config.hidden_size
    state_rows = jacobian(lambda f: states(lm, point, f), flat, range(hidden), batch, label)
    wide = dataclasses.replace(point, embeddings=point.embeddings.double())
    with lm.float64_for_now() as lm64:
        exact_rows = jacobian(  # float64 activations are twice as wide: half the rows per pass
            lambda f: states(lm64, wide, f),
            flat.double(),
            range(min(ROUNDING_ROWS, hidden)),
            max(1, batch // 2),
        )
        with torch.no_grad():
            state = states(lm64, wide, flat.double().unsqueeze(0))[0]
    with lm.head_in_float64_for_now() as head64, head64.arithmetic():
        head_rows = forward_jacobian(head64.head, state, batch=64)
    metric = prediction_metric(head_rows)
    return local_dimension(state_rows, metric, rounding(state_rows, exact_rows, metric))


def surface(lm: LanguageModel, point: Point) -> Surface:
    """The loss around `point` as the spectrum's Hessian-vector products see it."""
    return Surface(lambda flats: losses(lm, point, flats), lm.device)


@dataclass
class Probe:
    """A point whose Hessian spectrum is taken: a solution or a control."""

    label: str
    kind: str  # "solution", "random start", "prompt", "zero-loss prompt"
    point: Point
    kl: float
    # the prompt whose prediction is the point's target: recomputed in the precision the
    # spectrum is taken in (for the prompt's own prediction, the loss stays exactly zero)
    target_prompt: str


def point_in_float64(lm64: LanguageModel, probe: Probe) -> Point:
    """The probe's point in float64 (the same point exactly), toward its target prompt's
    prediction by the float64 model."""
    point = probe.point
    return dataclasses.replace(
        point,
        embeddings=point.embeddings.double(),
        target_logprobs=target_logprobs(lm64, [probe.target_prompt])[0],
    )


def prompt_controls(lm: LanguageModel, prompt: str, target_prompt: str) -> list[Probe]:
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
        Probe("prompt", "prompt", away, kl, target_prompt),
        Probe("prompt, own prediction", "zero-loss prompt", at_home, 0.0, prompt),
    ]


def spectra(
    lm: LanguageModel, probes: list[Probe], study: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Hessian spectrum at each probe: exact up to `exact_up_to` coordinates, with the
    model and the point in float64 (so that rounding lies far below the spectrum's
    structure); else by stochastic Lanczos quadrature in the run's float32; and how flat
    each is. No probes: empty tables."""
    spectrum_rows, flat_rows = [], []
    hidden = lm.model.config.hidden_size
    for probe in probes:
        if probe.point.size <= study["exact_up_to"]:
            with lm.float64_for_now() as lm64:
                point = point_in_float64(lm64, probe)
                around, flat = surface(lm64, point), point.flat()
                found = exact_spectrum(around, flat, study["hessian_batch"], probe.label)
        else:
            around, flat = surface(lm, probe.point), probe.point.flat()
            found = slq_spectrum(around, flat, study["slq_probes"], study["slq_steps"])
        summary = flatness(
            found, probe.point.size, hidden, study["flat_threshold"], study["rank_tolerance"]
        )
        spectrum_rows.append(
            found.table().assign(point=probe.label, kind=probe.kind, method=found.method)
        )
        flat_rows.append(
            {"point": probe.label, "kind": probe.kind, "kl": probe.kl, **vars(summary)}
        )
        print(f"{probe.label}: {summary}", file=sys.stderr)
    if not probes:
        return pd.DataFrame(columns=SPECTRUM_COLUMNS), pd.DataFrame(columns=FLATNESS_COLUMNS)
    return pd.concat(spectrum_rows, ignore_index=True), pd.DataFrame(flat_rows)


SPECTRUM_COLUMNS = [
    "index",
    "eigenvalue",
    "weight",
    "probe",
    "precision",
    "point",
    "kind",
    "method",
]
FLATNESS_COLUMNS = ["point", "kind", "kl", *(f.name for f in dataclasses.fields(Flatness))]


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


def evenly_spaced(a: Tensor, images: Tensor, b: Tensor) -> Tensor:
    """The interior points [k, size] of the polyline a -> images -> b, moved along it so
    that the k + 1 segments are of equal length (the string method's reparametrisation)."""
    corners = torch.cat([a.unsqueeze(0), images, b.unsqueeze(0)])
    lengths = (corners[1:] - corners[:-1]).norm(dim=1)
    arc = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    wanted = torch.linspace(0, 1, len(images) + 2, dtype=arc.dtype, device=arc.device)[1:-1]
    wanted = wanted * arc[-1]
    segment = torch.searchsorted(arc, wanted, right=True).clamp(1, len(lengths)) - 1
    share = ((wanted - arc[segment]) / lengths[segment].clamp_min(1e-30)).unsqueeze(1)
    return corners[segment] + share * (corners[segment + 1] - corners[segment])


@dataclass
class Strung:
    """A path between two solutions found by the string method: its interior points, and
    the trace of its optimisation (the highest and mean loss at those points, step by
    step, and the whole path's highest loss at each check)."""

    images: Tensor  # [k, size]
    along: np.ndarray  # the loss along the final path, as its last check sampled it
    trace: pd.DataFrame  # step, highest, mean, path_highest (NaN between checks)
    converged: bool  # the path reached the solved level, or its highest loss stopped falling


def string_path(
    lm: LanguageModel, point: Point, a: Tensor, b: Tensor, search: "PathSearch"
) -> Strung:
    """A low path a -> b by the string method (E, Ren and Vanden-Eijnden): `search.images`
    points start evenly on the straight segment; each step moves all of them by one Adam
    step on their loss (model frozen, one batch) and then spaces them evenly along the
    polyline again, so that they slide neither into the ends nor together. Every
    `search.check_every` steps the whole polyline is checked (`path_highest`: the highest
    loss of `loss_along`, `search.checks` samples inside each segment, points the search
    does not optimise): the quantity a verdict judges. Stops once that is at most
    `search.goal`, or once it has not fallen by `search.tolerance` (relative) for
    `search.patience` steps (both: converged); else after `search.steps`."""
    a, b = a.to(lm.device), b.to(lm.device)
    ts = torch.linspace(0, 1, search.images + 2, dtype=a.dtype, device=a.device)[1:-1]
    images = (a + ts.unsqueeze(1) * (b - a)).requires_grad_(True)
    optimizer = torch.optim.Adam([images], lr=search.lr)
    rows, best, since, reached = [], np.inf, 0, False
    for step in range(search.steps + 1):  # every step it stops at is a check
        values = losses(lm, point, images)
        row = {"step": step, "highest": float(values.detach().max())}
        row.update(mean=float(values.detach().mean()), path_highest=np.nan)
        if step % search.check_every == 0 or step == search.steps:
            corners = [a, *images.detach(), b]
            along = loss_along(lm, point, corners, search.checks + 2)
            row["path_highest"] = float(along.max())
            reached = row["path_highest"] <= search.goal
            if row["path_highest"] < best * (1 - search.tolerance):
                best, since = row["path_highest"], 0
            else:
                since += search.check_every
        rows.append(row)
        if reached or since >= search.patience or step == search.steps:
            break
        optimizer.zero_grad(set_to_none=True)
        values.sum().backward()
        optimizer.step()
        with torch.no_grad():
            images.copy_(evenly_spaced(a, images, b))
    converged = reached or since >= search.patience
    return Strung(images.detach(), along, pd.DataFrame(rows), converged)


@dataclass(frozen=True)
class PathSearch:
    """How the paths between two solutions are sampled and, where they rise, searched."""

    samples: int  # loss samples along the straight segment
    above: float  # a straight barrier above this is searched for a lower path
    images: int  # interior points of the string
    steps: int  # the step cap of a search
    lr: float
    goal: float  # the loss a path must stay under everywhere (the solved level)
    patience: int = 30  # steps without improvement after which a search has converged
    tolerance: float = 0.01  # relative fall of the path's highest loss that counts
    checks: int = 3  # loss samples inside each segment when the path is checked
    check_every: int = 10  # steps between checks of the whole path

    @classmethod
    def of(cls, study: dict) -> "PathSearch":
        return cls(
            study["line_points"],
            study["bend_above"],
            study["path_images"],
            study["bend_steps"],
            study["bend_lr"],
            study["solve_below"],
            study["bend_patience"],
            study["bend_tolerance"],
        )


def connectivity(
    lm: LanguageModel,
    solutions: list[Point],
    converged: list[bool],
    start_losses: list[float],
    search: PathSearch,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Solutions 2p and 2p+1 share a target and a frame: the loss between them, for the
    pairs whose two ends both converged (the others are listed and left out): along the
    straight segment and, where it rises above `search.above`, along the path the string
    method finds; the search's trace. Barriers are given relative to the higher end's loss
    and to the mean loss at the pair's two starts."""
    path_rows, barrier_rows, traces = [], [], []
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
        straight = loss_along(lm, first, [a, b], search.samples)
        path_rows.append(_path_rows(pair, "straight", straight))
        row.update(loss_a=straight[0], loss_b=straight[-1], straight_barrier=barrier(straight))
        if row["straight_barrier"] > search.above:
            strung = string_path(lm, first, a, b, search)
            found = strung.along
            path_rows.append(_path_rows(pair, "bent", found))
            traces.append(strung.trace.assign(pair=pair))
            row.update(
                bent_barrier=barrier(found),
                bend_steps=int(strung.trace.step.max()),
                bend_converged=strung.converged,
            )
        barrier_rows.append(row)
    frame = pd.DataFrame(barrier_rows, columns=BARRIER_COLUMNS)
    frame["straight_relative"] = frame.straight_barrier / frame.start_loss
    frame["bent_relative"] = frame.bent_barrier / frame.start_loss
    ends = frame[["loss_a", "loss_b"]].max(axis=1)
    frame["highest_end"] = ends
    frame["best_barrier"] = frame.bent_barrier.fillna(frame.straight_barrier)
    frame["best_over_ends"] = frame.best_barrier / ends
    paths = (
        pd.concat(path_rows, ignore_index=True) if path_rows else pd.DataFrame(columns=PATH_COLUMNS)
    )
    trace = pd.concat(traces, ignore_index=True) if traces else pd.DataFrame(columns=TRACE_COLUMNS)
    return paths, frame, trace[TRACE_COLUMNS]


TRACE_COLUMNS = ["pair", "step", "highest", "mean", "path_highest"]
BARRIER_COLUMNS = [
    "pair",
    "both_converged",
    "distance",
    "start_loss",
    "loss_a",
    "loss_b",
    "straight_barrier",
    "bent_barrier",
    "bend_steps",
    "bend_converged",
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


# ------------------------------------------------------------------ the study


@dataclass
class Findings:
    """What the landscape study measured, table by table."""

    solutions: pd.DataFrame
    dimensions: pd.DataFrame  # the Jacobian's rank at each solution and the control
    singular_values: pd.DataFrame
    spectra: pd.DataFrame
    flatness: pd.DataFrame
    paths: pd.DataFrame
    barriers: pd.DataFrame
    traces: pd.DataFrame  # the bent paths' optimisation, step by step
    nearness: pd.DataFrame


def random_starts(lm: LanguageModel, ellipse: Ellipse, study: dict, seed: int) -> SequenceBatch:
    """2 x `pairs` random sentences of `length` sampled points: other starts than the
    experiment's own (seed + 1), solved in pairs toward one target."""
    generator = torch.Generator().manual_seed(seed + 1)
    return sample_random(lm, ellipse, [study["length"]] * (2 * study["pairs"]), generator)


def dimensions(
    lm: LanguageModel, probes: list[Probe], batch: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The local dimension of the prediction's level set at each probe (exact Jacobian):
    one row per probe, and every singular value."""
    rows, values = [], []
    for probe in probes:
        found, singular = local_dimension_at(lm, probe.point, batch, probe.label)
        rows.append({"point": probe.label, "kind": probe.kind, "kl": probe.kl, **found.as_dict()})
        values.append(
            pd.DataFrame(
                {
                    "point": probe.label,
                    "kind": probe.kind,
                    "index": np.arange(1, len(singular) + 1),
                    "singular_value": singular,
                    "relative": singular / max(float(singular[0]), 1e-300),
                }
            )
        )
        print(f"{probe.label}: {found}", file=sys.stderr)
    return pd.DataFrame(rows), pd.concat(values, ignore_index=True)


def jacobian_ends(converged: list[int], ends: int) -> list[int]:
    """Which converged solutions the exact Jacobian is taken at: the first `ends` of each
    pair's (solutions 2i and 2i+1 are pair i's), so that every pair, an independent draw,
    is measured."""
    taken: Counter[int] = Counter()
    chosen = []
    for index in converged:
        taken[index // 2] += 1
        if taken[index // 2] <= ends:
            chosen.append(index)
    return chosen


def hessian_probes(
    lm: LanguageModel, solutions: list[Probe], start: Probe, study: dict, target_prompt: str
) -> list[Probe]:
    """Where Hessian spectra are taken: the first `hessian_sequences` solutions with the
    random start beside them (the same n), and the control prompt if one is named."""
    chosen = solutions[: study["hessian_sequences"]]
    probes = [*chosen, start] if chosen else []
    if study.get("control_prompt"):
        probes += prompt_controls(lm, study["control_prompt"], target_prompt)
    return probes


def run_study(
    lm: LanguageModel,
    starts: SequenceBatch,
    target_prompt: str,
    vocabulary: tuple[Tensor, Tensor],
    study: dict,
    solver: Settings,
    label: str,
) -> Findings:
    """Solve the starts toward the target prompt's prediction; the local dimension of the
    zero-loss set at `jacobian_ends` solutions of each pair (and, as a control of the same
    size, at a random start) from the exact Jacobian; Hessian spectra where asked for; the
    loss between the solutions of each pair; and how near each start's solution lies.
    `vocabulary`: the embedding matrix and the candidate token ids nearness measures against."""
    targets = target_logprobs(lm, [target_prompt]).expand(len(starts), -1).contiguous()
    solved = solve(lm, starts, targets, solver, label)
    print(solved.describe(study["solve_below"]), file=sys.stderr)
    solutions = points_of(starts, solved.end, targets)
    solved_probes = {
        i: Probe(
            f"solution {i}", "solution", solutions[i], float(solved.final_kl[i]), target_prompt
        )
        for i in solved.converged_indices()
    }
    start = points_of(starts, starts.embeddings, targets)[0]
    control = Probe(
        "random start 0", "random start", start, float(solved.start_kl[0]), target_prompt
    )
    measured = [
        solved_probes[i] for i in jacobian_ends(list(solved_probes), study["jacobian_ends"])
    ]
    dimension_table, singular = dimensions(lm, [*measured, control], study["jacobian_batch"])
    probes = hessian_probes(lm, list(solved_probes.values()), control, study, target_prompt)
    spectrum_table, flatness_table = spectra(lm, probes, study)
    converged, start_losses = solved.converged.tolist(), solved.start_kl.tolist()
    paths, barriers, traces = connectivity(
        lm, solutions, converged, start_losses, PathSearch.of(study)
    )
    matrix, candidates = vocabulary
    near = nearness(starts, solved.end, matrix, candidates, converged)
    return Findings(
        solved.table(),
        dimension_table,
        singular,
        spectrum_table,
        flatness_table,
        paths,
        barriers,
        traces,
        near,
    )
