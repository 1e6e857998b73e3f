"""Analyses over finished runs (experiments 2 to 5): pure functions from the trajectory
tables and start/end embeddings to the tables behind every figure and the summary.
Without torch: the figure and table jobs that use it import neither torch nor
transformers, and read a run's embeddings as numpy arrays."""

import os
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from inputspace.files import read_arrays
from inputspace.model.prompts import as_list

THRESHOLD = 1e-2  # "converged": KL below this
SMALL_DISPLACEMENT = 0.02  # the study: "nearly all dimensions moved less than 0.02"
TAIL = 0.1  # fraction of the run whose L2 growth says whether travel levels off


# ------------------------------------------------------------------ replicates

DEFAULT_REPLICATES = 3  # the schema's default of an experiment's `replicates`


def replicate_of(seq: np.ndarray | int, count: int, replicates: int) -> np.ndarray | int:
    """The replicate of sequence `seq` of `count`: the sequences split in order into
    R = min(replicates, count) contiguous blocks whose sizes differ by at most one
    (seq * R // count). `count` may be an array beside `seq` (one count per row)."""
    seq, count = np.asarray(seq), np.asarray(count)
    if replicates < 1 or np.any(count < 1):
        raise ValueError(f"replicates ({replicates}) and count ({count}) must be at least 1")
    if np.any(seq < 0) or np.any(seq >= count):
        raise ValueError(f"sequence numbers must lie in [0, count): {seq} of {count}")
    found = seq * np.minimum(replicates, count) // count
    return int(found) if found.ndim == 0 else found.astype(np.int64)


def replicates_for(spec: dict) -> int:
    """How many replicates an experiment's sequences are split into: for a single prompt
    (nothing random in it) one per wording of it, else its `replicates` but at most its
    sequences (a pairs experiment without a count gets its `replicates`; replicate_of
    clamps it to the pairs a table holds)."""
    sequences = spec["sequences"]
    if sequences["kind"] == "prompt":
        return len(as_list(sequences["prompt"]))
    wanted = int(spec.get("replicates", DEFAULT_REPLICATES))
    count = sequences.get("count")
    return wanted if count is None else min(wanted, int(count))


def sequence_counts(table: pd.DataFrame) -> pd.Series:
    """Per row of a table with model and seq columns: how many sequences its model's run
    has, as the table shows them (its sequences are numbered 0 to count - 1)."""
    return table.groupby("model").seq.transform("max").astype(np.int64) + 1


def with_replicates(table: pd.DataFrame, replicates: int) -> pd.DataFrame:
    """`table` (rows with model and seq) with a `replicate` column after seq: each model's
    sequences split by replicate_of, the count taken from the table itself."""
    out = table.copy()
    found = replicate_of(out.seq.to_numpy(), sequence_counts(out).to_numpy(), replicates)
    out.insert(list(out.columns).index("seq") + 1, "replicate", np.asarray(found, np.int64))
    return out


# ------------------------------------------------------------------ convergence


def convergence(steps: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Per (model, seq): first step with KL < threshold (NaN if never), final KL, the steps
    it was optimised for (fewer than the run's when the stopping rule took it out), the
    final total L2 travelled, and whether travel levels off while KL goes to zero: the
    share of the total added over the last TAIL of its optimised steps, and the share
    added after it first reached the threshold (with how many steps it went on past it)."""
    rows = []
    for (model, seq), run in steps.sort_values("step").groupby(["model", "seq"], sort=True):
        optimised = run[run.active] if "active" in run else run
        below = optimised.step[optimised.kl < threshold]
        last = int(optimised.step.max())
        final = optimised.l2_total.iloc[-1]
        tail_start = optimised.l2_total[optimised.step <= last * (1 - TAIL)].iloc[-1]
        reached = float(below.iloc[0]) if len(below) else np.nan
        at_threshold = (
            optimised.l2_total[optimised.step == reached].iloc[0] if len(below) else np.nan
        )
        rows.append(
            {
                "model": model,
                "seq": seq,
                "steps_to_threshold": reached,
                "final_kl": run.kl.iloc[-1],
                "steps_optimised": last,
                "final_l2_total": final,
                "l2_growth_last_tenth": _share(final - tail_start, final),
                "steps_past_threshold": last - reached,
                "l2_growth_past_threshold": _share(final - at_threshold, final),
            }
        )
    return pd.DataFrame(rows)


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def converged_share(convergence_table: pd.DataFrame, threshold: float = THRESHOLD) -> float:
    """The share of sequences whose final KL is below the threshold."""
    return float((convergence_table.final_kl < threshold).mean())


def mean_kl(steps: pd.DataFrame) -> pd.DataFrame:
    return steps.groupby(["model", "step"], as_index=False).kl.mean()


# ------------------------------------------------------------------ displacement


@dataclass
class Moves:
    """Displacement end - start of every optimised position of a run."""

    delta: np.ndarray  # [tokens, d]
    seq: np.ndarray
    pos: np.ndarray

    @property
    def l2(self) -> np.ndarray:
        return np.linalg.norm(self.delta, axis=1)


def moves(start: np.ndarray, end: np.ndarray, trainable: np.ndarray) -> Moves:
    """The displacement of every trainable position of [n, t, d] `start` and `end`."""
    seq, pos = np.nonzero(trainable)
    delta = (end - start)[seq, pos]
    return Moves(delta.astype(np.float64), seq.astype(np.int64), pos.astype(np.int64))


def moves_of_replicate(move: Moves, replicate: int, count: int, replicates: int) -> Moves:
    """The displacements of the tokens of `replicate`'s sequences (of `count`)."""
    keep = replicate_of(move.seq, count, replicates) == replicate
    return Moves(move.delta[keep], move.seq[keep], move.pos[keep])


def split_moves(move: Moves, replicates: int) -> dict[int, Moves]:
    """A run's displacements per replicate, in order (the count of sequences: those the
    moves show, numbered 0 to count - 1)."""
    count = int(move.seq.max()) + 1
    return {
        replicate: moves_of_replicate(move, replicate, count, replicates)
        for replicate in range(min(replicates, count))
    }


def run_moves(embeddings: str | os.PathLike) -> Moves:
    """`moves` of a run's embeddings file (as `runs.RunEmbeddings` writes it)."""
    arrays = read_arrays(embeddings)
    return moves(arrays["start"], arrays["end"], arrays["trainable"])


@dataclass
class DisplacementStats:
    tokens: int
    dimensions: int
    median_l2: float
    max_l2: float
    max_abs_dimension: float  # largest |displacement| of any token in any dimension
    share_below_small: float  # of all (token, dimension) displacements, |x| < SMALL_DISPLACEMENT
    top_dimensions_share: float  # share of squared displacement in the top 1% of dimensions
    dimension_rms_max_over_median: float
    dimension_rms_q90: float  # 90% of dimensions have a root-mean-square displacement under this
    token_l2_max_over_median: float
    token_l2_cv: float  # std / mean of per-token L2

    def as_dict(self) -> dict:
        return asdict(self)


def dimension_rms(delta: np.ndarray) -> np.ndarray:
    """Root-mean-square displacement of each dimension over all tokens."""
    return np.sqrt((delta**2).mean(axis=0))


def displacement_stats(move: Moves) -> DisplacementStats:
    """Is any token or dimension favoured? With none favoured the top 1% of dimensions hold
    about 1% of the squared displacement and the max/median ratios stay near 1-3."""
    delta, l2 = move.delta, move.l2
    energy = np.sort((delta**2).sum(axis=0))[::-1]
    top = max(1, int(round(0.01 * delta.shape[1])))
    rms = dimension_rms(delta)
    return DisplacementStats(
        tokens=int(delta.shape[0]),
        dimensions=int(delta.shape[1]),
        median_l2=float(np.median(l2)),
        max_l2=float(l2.max()),
        max_abs_dimension=float(np.abs(delta).max()),
        share_below_small=float((np.abs(delta) < SMALL_DISPLACEMENT).mean()),
        top_dimensions_share=float(energy[:top].sum() / max(energy.sum(), 1e-30)),
        dimension_rms_max_over_median=float(rms.max() / max(np.median(rms), 1e-30)),
        dimension_rms_q90=float(np.quantile(rms, 0.9)),
        token_l2_max_over_median=float(l2.max() / max(np.median(l2), 1e-30)),
        token_l2_cv=float(l2.std() / max(l2.mean(), 1e-30)),
    )


def density_curves(samples: dict[str, np.ndarray], points: int = 256) -> pd.DataFrame:
    """Gaussian KDE of each named sample on one shared grid; a sample with fewer than two
    distinct values gets no curve (its rows are NaN) and is left to a rug plot."""
    values = np.concatenate([v for v in samples.values() if len(v)])
    grid = np.linspace(0, values.max() * 1.05, points)
    columns = {"x": grid}
    for name, sample in samples.items():
        columns[name] = _kde(sample, grid)
    return pd.DataFrame(columns)


def _kde(sample: np.ndarray, grid: np.ndarray) -> np.ndarray:
    # imported here: the workflow reads replicates_for while it is parsed, without scipy
    from scipy.stats import gaussian_kde

    if len(np.unique(sample)) < 2:
        return np.full_like(grid, np.nan)
    try:
        return gaussian_kde(sample)(grid)
    except np.linalg.LinAlgError:
        return np.full_like(grid, np.nan)


# ------------------------------------------------------------------ back-projection and headings


def backprojection_changes(tokens: pd.DataFrame, measure: str = "euclidean") -> pd.DataFrame:
    """Positions whose nearest vocabulary token (by `measure`) at the last logged step
    differs from the one at step 0, with the step from which it stayed the new token."""
    column = f"nearest_{measure}_id"
    rows = []
    for (model, seq, pos), track in tokens.sort_values("step").groupby(
        ["model", "seq", "pos"], sort=True
    ):
        start, end = track.iloc[0], track.iloc[-1]
        if start[column] == end[column]:
            continue
        settled = track[column].to_numpy() == end[column]
        first = len(settled) - int(np.argmin(settled[::-1]))  # after the last step it differed
        changed = track.iloc[first]
        rows.append(
            {
                "model": model,
                "seq": seq,
                "pos": pos,
                "measure": measure,
                "token_id": start.token_id,
                "from_id": start[column],
                "to_id": end[column],
                "step_changed": changed.step,
                "l2_at_change": changed.l2,
                "from_value_at_start": start[f"nearest_{measure}"],
                "to_value_at_end": end[f"nearest_{measure}"],
                "l2_at_end": end.l2,
            }
        )
    return pd.DataFrame(rows, columns=_CHANGE_COLUMNS)


_CHANGE_COLUMNS = [
    "model",
    "seq",
    "pos",
    "measure",
    "token_id",
    "from_id",
    "to_id",
    "step_changed",
    "l2_at_change",
    "from_value_at_start",
    "to_value_at_end",
    "l2_at_end",
]


def backprojection_counts(
    tokens: pd.DataFrame, changes: pd.DataFrame, replicates: int | None = None
) -> pd.DataFrame:
    """Per model and measure: optimised tokens, how many changed back-projection, fraction.
    Given `replicates`, per model, replicate and measure (a `replicate` column after model:
    each model's sequences split by replicate_of, the count from the tokens table)."""
    rows = []
    for model, own in tokens.groupby("model", sort=True):
        positions = own[["seq", "pos"]].drop_duplicates()
        changed = changes[changes.model == model]
        if replicates is None:
            rows += _counts(positions, changed, {"model": model})
            continue
        count = int(positions.seq.max()) + 1
        position_replicate = replicate_of(positions.seq.to_numpy(), count, replicates)
        change_replicate = replicate_of(changed.seq.to_numpy(), count, replicates)
        for replicate in range(min(replicates, count)):
            rows += _counts(
                positions[position_replicate == replicate],
                changed[change_replicate == replicate],
                {"model": model, "replicate": replicate},
            )
    return pd.DataFrame(rows)


def _counts(positions: pd.DataFrame, changed: pd.DataFrame, key: dict) -> list[dict]:
    total = len(positions)
    rows = []
    for measure in ("euclidean", "cosine"):
        number = int((changed.measure == measure).sum())
        rows.append(
            {
                **key,
                "measure": measure,
                "tokens": int(total),
                "changed": number,
                "fraction_changed": number / total if total else np.nan,
            }
        )
    return rows


def headings(tokens: pd.DataFrame) -> pd.DataFrame:
    """At each position's last logged step: the token its displacement heads toward most
    and the cosine, and each watch token's heading cosine and rank (one row per watch
    token; a position with no watch tokens gets one row with empty watch columns)."""
    last = tokens[tokens.step == tokens.groupby(["model", "seq", "pos"]).step.transform("max")]
    base = last[["model", "seq", "pos", "step", "token_id", "l2", "heading_id", "heading_cosine"]]
    watched = last[["watch_ids", "watch_cosines", "watch_ranks"]].apply(lambda c: c.map(list))
    rows = pd.concat([base, watched], axis=1).explode(["watch_ids", "watch_cosines", "watch_ranks"])
    return rows.rename(
        columns={
            "watch_ids": "watch_id",
            "watch_cosines": "watch_cosine",
            "watch_ranks": "watch_rank",
        }
    ).reset_index(drop=True)


def name_tokens(table: pd.DataFrame, strings: np.ndarray) -> pd.DataFrame:
    """Add a string column beside every `*_id` column: `token` for `token_id`, else
    `<name>_token` (empty where the id is -1 or missing: a heading of a token that has not
    moved)."""
    out = table.copy()
    for column in [c for c in table if c.endswith("_id")]:
        ids = pd.to_numeric(table[column], errors="coerce").fillna(-1).astype(int).to_numpy()
        name = "token" if column == "token_id" else column.removesuffix("_id") + "_token"
        out[name] = np.where(ids >= 0, strings[np.clip(ids, 0, None)], "")
    return out
