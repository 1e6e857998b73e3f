"""The study's claims, part by part, as data: each names what it says in plain words, which
experiments (sequence kind x model kind) it is about, the number that decides it and the
result that would have contradicted it. A claim is judged on each replicate of a run (an
independent draw of its sequences) and its verdict says in how many it held.

Every threshold a verdict uses is named here; docs/science.md says which were fixed before
any run was seen."""

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from inputspace.analysis.run_measures import SMALL_DISPLACEMENT, THRESHOLD, mean_kl

KL_LEVEL = f"{THRESHOLD:.0e}".replace("e-0", "e-")  # the KL threshold as labels write it: 1e-2

# What each verdict calls holding: the thresholds, in one place.
CONVERGED_SHARE = 0.9  # converged: this share of sequences ends below THRESHOLD (and the mean)
LEVELS_OFF = 0.05  # travel levels off: under this share of total L2 added in the last tenth
FAVOURED_SHARE = 0.03  # a dimension is favoured: the top 1% of them hold this share or more
TOKEN_FAVOURED = 5.0  # a token is favoured: its L2 is this many times the median or more
FAST_STEPS = 1000  # the study's "fewer than 1,000 steps" to mean KL under THRESHOLD
SMALL_TRAVEL = 0.5  # small travel: median L2 under this fraction of the random-pair distance
NEARLY_ALL = 0.9  # "nearly all dimensions": this share of them
FAR_LESS = 0.5  # the followed word travels under this fraction of the way to its counterpart
CHANCE_HEADING = 3.0  # a heading beats chance: its cosine is this many times a random one's
# spread (1 / sqrt(d): the cosine of a random direction with a fixed one)
CONCENTRATED = 0.5  # distances concentrate: nearest token at least this share of a random pair
RANK_GAP = 10.0  # a numerical rank is meaningful: the values either side of its cutoff
# differ by at least this factor (neighbours inside a continuous spectrum differ by percents)

# The models the study ran, by the hub id a run's manifest records for its source.
STUDY_MODELS = {"masked": "answerdotai/ModernBERT-large", "causal": "meta-llama/Llama-3.2-1B"}

# The study's statement for each experiment, by sequence kind and model kind.
STUDY_SAYS = {
    (
        "prompt",
        "masked",
    ): "Experiment 2 (ModernBERT-large): converges quickly; after 500 steps ' bark' has "
    "travelled about 0.8 against a bark-neigh distance of about 2.5, "
    "and even after 10,000 steps it is "
    "still nearest to ' bark' by cosine and Euclidean distance.",
    (
        "prompt",
        "causal",
    ): "Experiment 2 was run on ModernBERT-large (masked) only; there, ' bark' travelled "
    "about 0.8 in 500 steps against a bark-neigh distance of about 2.5 "
    "and stayed nearest to ' bark'.",
    (
        "pairs",
        "masked",
    ): "Experiment 3 (ModernBERT-large, 64 pairs): per-sequence total L2 levels off while "
    "KL goes to about zero; no token and no dimension is favoured.",
    (
        "pairs",
        "causal",
    ): "Experiment 3 was run on ModernBERT-large (masked) only: total L2 levels off while "
    "KL goes to about zero; no token and no dimension is favoured.",
    (
        "random",
        "masked",
    ): "Experiment 4 (ModernBERT-large): the loss converges, embeddings move little and "
    "level off, and no token moves far enough to back-project to a different token.",
    (
        "random",
        "causal",
    ): "Experiment 5 (Llama-3.2-1B, 64 sentences): mean KL under 1e-2 in fewer than "
    "1,000 steps; travel small next to the distances between random vocabulary pairs; nearly all "
    "dimensions moved less than 0.02; some tokens back-project to different tokens.",
}


@dataclass
class RunTables:
    """What the analysis rules wrote for one experiment (all its models): per sequence
    (convergence, curves) and per replicate (displacement, counts)."""

    convergence: pd.DataFrame
    curves: pd.DataFrame
    displacement: pd.DataFrame
    counts: pd.DataFrame


@dataclass(frozen=True)
class Scale:
    """A model's yardsticks: what a distance in its input-embedding space is next to."""

    median_pair: float  # the median distance between two random vocabulary tokens
    coordinate_spread: float  # the root-mean-square coordinate of its vocabulary embeddings
    hidden: int  # d
    source: str  # the hub id (or other source) the model came from
    study_spread: float | None = None  # the coordinate spread of the study's model of the
    # same kind, where this run measured that model too


def replicates(tables: RunTables, model: str) -> list[int]:
    rows = tables.convergence[tables.convergence.model == model]
    return sorted(int(r) for r in rows.replicate.unique())


@dataclass
class Evidence:
    """What the claims read for one replicate of one model of one experiment."""

    convergence: pd.DataFrame  # this replicate's sequences
    displacement: pd.Series
    counts: pd.DataFrame  # indexed by measure: euclidean, cosine
    mean: pd.DataFrame  # mean KL per step over this replicate's sequences
    scale: Scale
    path: pd.DataFrame | None  # the case study's followed words, where there is one

    @classmethod
    def of(
        cls,
        tables: RunTables,
        model: str,
        replicate: int,
        scale: Scale,
        path: pd.DataFrame | None,
    ) -> "Evidence":
        conv = tables.convergence
        conv = conv[(conv.model == model) & (conv.replicate == replicate)]
        curves = tables.curves[(tables.curves.model == model) & tables.curves.seq.isin(conv.seq)]
        displacement = tables.displacement
        counts = tables.counts
        return cls(
            convergence=conv,
            displacement=displacement[
                (displacement.model == model) & (displacement.replicate == replicate)
            ].iloc[0],
            counts=counts[(counts.model == model) & (counts.replicate == replicate)].set_index(
                "measure"
            ),
            mean=mean_kl(curves),
            scale=scale,
            path=None if path is None else path[path.seq.isin(conv.seq)],
        )

    @property
    def changed(self) -> tuple[float, float]:
        """Share of tokens whose back-projection changed: Euclidean, cosine."""
        return (
            self.counts.loc["euclidean", "fraction_changed"],
            self.counts.loc["cosine", "fraction_changed"],
        )

    @property
    def path_end(self) -> pd.DataFrame:
        return self.path[self.path.step == self.path.step.max()]


def converged(e: Evidence) -> bool:
    """The replicate stands at converged solutions (the study's criterion for judging)."""
    below = int((e.convergence.final_kl < THRESHOLD).sum())
    return (
        below >= CONVERGED_SHARE * len(e.convergence) and e.convergence.final_kl.mean() < THRESHOLD
    )


@dataclass(frozen=True)
class Judged:
    holds: bool
    value: float  # the number that decided it, for the range over replicates
    note: str = ""  # what else a reader needs to weigh it (the null, the rescaled threshold)


@dataclass(frozen=True)
class Claim:
    """One part of the study's statement, checked against a run's tables."""

    id: str
    says: str  # the part, in plain words
    measure: str  # the number that decides it, in plain words
    form: str  # how that number prints ("{:.1%}")
    contradicted_by: str  # the result that would have contradicted it
    about: frozenset[tuple[str, str]]  # the (sequence kind, model kind) it is about
    check: Callable[[Evidence], Judged]
    needs_path: bool = False  # judged only where a case study followed a word
    units_of: str | None = None  # the study's model whose units the threshold is in


def _levels_off(e: Evidence) -> Judged:
    levels = float(e.convergence.l2_growth_last_tenth.median())
    return Judged(levels < LEVELS_OFF, levels)


def _no_dimension_favoured(e: Evidence) -> Judged:
    share = float(e.displacement.top_dimensions_share)
    return Judged(share < FAVOURED_SHARE, share)


def _no_token_favoured(e: Evidence) -> Judged:
    ratio = float(e.displacement.token_l2_max_over_median)
    return Judged(ratio < TOKEN_FAVOURED, ratio)


def _no_token_back_projects(e: Evidence) -> Judged:
    changed = max(e.changed)
    return Judged(changed == 0, changed)


def _some_tokens_back_project(e: Evidence) -> Judged:
    euclidean, _ = e.changed
    return Judged(euclidean > 0, euclidean)


def _fast_mean_kl(e: Evidence) -> Judged:
    first = e.mean.step[e.mean.kl < THRESHOLD]
    step = float(first.iloc[0]) if len(first) else np.inf
    return Judged(step < FAST_STEPS, step)


def _small_travel(e: Evidence) -> Judged:
    share = float(e.displacement.median_l2 / e.scale.median_pair)
    return Judged(share < SMALL_TRAVEL, share)


def _nearly_all_dimensions_small(e: Evidence) -> Judged:
    """As the study words it, per dimension: 90% of the dimensions have a root-mean-square
    displacement (over the optimised tokens) under the threshold. The threshold is in the
    study model's units: carried over by the ratio of the two models' coordinate spreads
    where the run measured the study's model too."""
    moved = float(e.displacement.dimension_rms_q90)
    spread = e.scale.coordinate_spread
    own = (
        f"this model's coordinate spread is {spread:.3g}, so {moved:.3g} is "
        f"{moved / spread:.2f} of it"
    )
    if e.scale.study_spread is None:
        return Judged(
            moved < SMALL_DISPLACEMENT,
            moved,
            f"{own}; carried over by the ratio of the spreads, the study's {SMALL_DISPLACEMENT} "
            f"is {SMALL_DISPLACEMENT * spread:.3g} / (the study model's spread), so the claim "
            f"holds here if that spread is under {break_even_spread(moved, spread):.3g} "
            "(this run did not measure it; configs/paper.yaml does)",
        )
    rescaled = SMALL_DISPLACEMENT * spread / e.scale.study_spread
    return Judged(
        moved < rescaled,
        moved,
        f"{own}; the study's {SMALL_DISPLACEMENT} rescaled by the spreads "
        f"({spread:.3g} / {e.scale.study_spread:.3g}) is {rescaled:.3g}: "
        + ("under it" if moved < rescaled else "not under it"),
    )


def break_even_spread(moved: float, spread: float) -> float:
    """The study model's coordinate spread below which `moved` (in a model of coordinate
    spread `spread`) is under the study's threshold carried over by the spreads' ratio."""
    return SMALL_DISPLACEMENT * spread / moved if moved > 0 else np.inf


def _travels_far_less(e: Evidence) -> Judged:
    end = e.path_end
    ratio = float((end.l2_travelled / end.start_distance_to_toward).max())
    return Judged(ratio < FAR_LESS, ratio, "study: 0.8 / 2.5 = 0.32")


def _nearest_to_itself(e: Evidence) -> Judged:
    end = e.path_end
    stays = bool(
        (end.nearest_euclidean_token == end.token).all()
        and (end.nearest_cosine_token == end.token).all()
    )
    nearest = sorted(set(end.nearest_euclidean_token) | set(end.nearest_cosine_token))
    return Judged(stays, float(stays), f"nearest at the end: {', '.join(map(repr, nearest))}")


def _heads_to_counterpart(e: Evidence) -> Judged:
    """Most toward the counterpart of all tokens (rank 1), and against chance: a random
    direction's cosine with any fixed one is about N(0, 1/d)."""
    end = e.path_end
    best = int(end.toward_heading_rank.min())
    cosine = float(end.toward_heading_cosine.max())
    chance = 1 / np.sqrt(e.scale.hidden)
    return Judged(
        best == 1,
        best,
        f"cosine {cosine:.2f} against a random direction's typical {chance:.2f}: "
        + ("beyond chance" if cosine >= CHANCE_HEADING * chance else "within chance"),
    )


def about(sequence_kind: str, *model_kinds: str) -> frozenset[tuple[str, str]]:
    """(sequence kind, model kind) pairs: of every model kind unless some are named."""
    return frozenset((sequence_kind, m) for m in model_kinds or ("masked", "causal"))


CLAIMS = [
    Claim(
        "levels_off",
        "the distance travelled levels off while the loss goes to zero",
        "share of each sequence's travel added in the last tenth of its steps (median)",
        "{:.1%}",
        f"{LEVELS_OFF:.0%} or more of the travel added in the last tenth: still moving",
        about("pairs") | about("random", "masked"),
        _levels_off,
    ),
    Claim(
        "no_dimension",
        "no embedding dimension is favoured",
        "share of the squared displacement in the top 1% of dimensions (about 1% if none is)",
        "{:.1%}",
        f"the top 1% of dimensions holding {FAVOURED_SHARE:.0%} or more of it",
        about("pairs"),
        _no_dimension_favoured,
    ),
    Claim(
        "no_token",
        "no token is favoured",
        "largest travel of a token / the median token's",
        "{:.2g}",
        f"one token travelling {TOKEN_FAVOURED:g} times the median or more",
        about("pairs"),
        _no_token_favoured,
    ),
    Claim(
        "no_back_projection",
        "no token moves far enough to become nearest to another vocabulary token",
        "share of tokens whose nearest vocabulary token changed (the larger of Euclidean, cosine)",
        "{:.1%}",
        "any token whose nearest vocabulary token changed",
        about("random", "masked"),
        _no_token_back_projects,
    ),
    Claim(
        "fast_mean_kl",
        f"the mean loss falls under {KL_LEVEL} in fewer than 1,000 steps",
        f"first step with mean KL under {KL_LEVEL}",
        "{:.0f}",
        f"no mean KL under {KL_LEVEL} before step {FAST_STEPS}",
        about("random", "causal"),
        _fast_mean_kl,
    ),
    Claim(
        "small_travel",
        "tokens travel little next to the distance between two random vocabulary tokens",
        "median travel of a token as a share of the median random-pair distance",
        "{:.1%}",
        f"a median travel of {SMALL_TRAVEL:.0%} of that distance or more",
        about("random", "causal"),
        _small_travel,
    ),
    Claim(
        "small_dimensions",
        f"nearly all dimensions moved less than {SMALL_DISPLACEMENT}",
        "the displacement (root mean square over tokens) that 90% of dimensions stay under",
        "{:.3g}",
        f"more than 10% of the dimensions moving {SMALL_DISPLACEMENT} or more",
        about("random", "causal"),
        _nearly_all_dimensions_small,
        units_of="causal",
    ),
    Claim(
        "some_back_projection",
        "some tokens end nearest to a different vocabulary token",
        "share of tokens whose nearest vocabulary token (Euclidean) changed",
        "{:.1%}",
        "no token's nearest vocabulary token changed",
        about("random", "causal"),
        _some_tokens_back_project,
    ),
    Claim(
        "travels_far_less",
        "the followed word travels far less than the way to its counterpart",
        "distance travelled / its start distance to the counterpart",
        "{:.2f}",
        f"a travel of {FAR_LESS:.0%} of the way or more",
        about("prompt"),
        _travels_far_less,
        needs_path=True,
    ),
    Claim(
        "nearest_itself",
        "the followed word is still nearest to itself at the end",
        "still nearest to itself by cosine and Euclidean distance (1: yes)",
        "{:.0f}",
        "another token nearest at the end, by either measure",
        about("prompt"),
        _nearest_to_itself,
        needs_path=True,
    ),
    Claim(
        "heads_to_counterpart",
        "of all tokens, the followed word heads most toward its counterpart",
        "the counterpart's rank among all tokens by heading cosine (1: first)",
        "{:.0f}",
        "any other token ranked above the counterpart",
        about("prompt"),
        _heads_to_counterpart,
        needs_path=True,
    ),
]


def claims_for(sequence_kind: str, model_kind: str) -> list[Claim]:
    return [claim for claim in CLAIMS if (sequence_kind, model_kind) in claim.about]


@dataclass(frozen=True)
class Verdict:
    """A claim judged over a run's replicates."""

    claim: str  # what it says
    state: str  # agrees, disagrees, mixed, not comparable, not measured
    found: str  # the deciding number, as its range over the replicates judged
    held: int  # replicates in which it held
    judged: int  # replicates judged (converged ones)
    replicates: int
    contradicted_by: str
    note: str = ""

    def plain(self) -> str:
        plural = "s" if self.judged != 1 else ""
        counted = f"{self.held} of {self.judged} replicate{plural}" if self.judged else ""
        return {
            "agrees": f"agrees ({counted})",
            "disagrees": f"disagrees (held in {counted})",
            "mixed": f"mixed (held in {counted})",
            "not comparable": "not comparable (stated in another model's units)",
            "not measured": "not measured (the run did not converge)",
            "connected": f"connected ({self.held} of {self.judged} pairs)",
            "not demonstrated": f"not demonstrated (a solved path found for {self.held} of "
            f"{self.judged} pairs)",
        }[self.state]


def spread(values: list[float], form: str) -> str:
    """The values' range as printed, "12.0–15.3%" ("12.0%" where both ends print alike)."""
    low, high = form.format(min(values)), form.format(max(values))
    if low == high:
        return low
    return f"{low.removesuffix('%') if high.endswith('%') else low}–{high}"


def state_of(held: int, judged: int) -> str:
    """A claim that held in `held` of `judged` replicates: in all, none, or some."""
    return "agrees" if held == judged else "disagrees" if held == 0 else "mixed"


def judge(claim: Claim, evidence: list[Evidence], replicates: int) -> Verdict:
    """The claim on each converged replicate of `evidence`; "not comparable" where its
    threshold is in the units of a study model that is not the one run."""
    judged = [claim.check(e) for e in evidence if converged(e)]
    found = spread([j.value for j in judged], claim.form) if judged else ""
    notes = sorted({j.note for j in judged if j.note})
    held = sum(j.holds for j in judged)
    if not judged:
        state = "not measured"
    elif claim.units_of and evidence[0].scale.source != STUDY_MODELS[claim.units_of]:
        state = "not comparable"
    else:
        state = state_of(held, len(judged))
    return Verdict(
        claim.says,
        state,
        found,
        held,
        len(judged),
        replicates,
        claim.contradicted_by,
        merged_notes(notes),
    )


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def merged_notes(notes: list[str]) -> str:
    """The replicates' notes on one claim as one: where they differ only in their numbers,
    one sentence with each such number given as its range over the replicates."""
    if len(notes) <= 1 or len({NUMBER.sub("#", note) for note in notes}) != 1:
        return "; ".join(notes)
    columns = zip(*(NUMBER.findall(note) for note in notes))
    ranges = iter(
        low if low == high else f"{low}–{high}"
        for low, high in ((min(c, key=float), max(c, key=float)) for c in columns)
    )
    return NUMBER.sub(lambda _: next(ranges), notes[0])


def study_verdicts(
    sequence_kind: str,
    model_kind: str,
    tables: RunTables,
    model: str,
    scale: Scale,
    path: pd.DataFrame | None = None,
) -> list[Verdict]:
    """Does this run reproduce each part of the study's statement for its experiment, replicate
    by replicate? A part is judged only on replicates that converged."""
    numbers = replicates(tables, model)
    evidence = [Evidence.of(tables, model, r, scale, path) for r in numbers]
    held = sum(converged(e) for e in evidence)
    convergence = Verdict(
        f"the loss converges (KL < {KL_LEVEL} for {CONVERGED_SHARE:.0%} of sequences, "
        f"mean < {KL_LEVEL})",
        state_of(held, len(evidence)),
        spread([float((e.convergence.final_kl < THRESHOLD).mean()) for e in evidence], "{:.0%}"),
        held,
        len(evidence),
        len(evidence),
        f"fewer than {CONVERGED_SHARE:.0%} of sequences under {KL_LEVEL}",
    )
    claims = claims_for(sequence_kind, model_kind)
    judged = [c for c in claims if path is not None or not c.needs_path]
    return [convergence] + [judge(c, evidence, len(numbers)) for c in judged]
