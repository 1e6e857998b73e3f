"""The study's claims, part by part, as data: each names what it says, which experiments
(sequence kind x model kind) it is about, and a check that reads the run's tables and
returns a verdict with its evidence. Every threshold a verdict uses is named here."""

from collections.abc import Callable
from dataclasses import dataclass

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
NEARLY_ALL = 0.9  # "nearly all dimensions moved less than SMALL_DISPLACEMENT": this share
FAR_LESS = 0.5  # the followed word travels under this fraction of the way to its counterpart
CONCENTRATED = 0.5  # distances concentrate: nearest token at least this share of a random pair
FLAT_OF_BOUND = 0.9  # high-dimensional zero-loss set: flat share at least this of the bound
SPECIAL_FLATNESS = 0.2  # flatness is special to solutions: every control's flat share is
# at least this much below the least flat solution's
CONNECTED_BELOW = 0.01  # connected: barrier under this share of the start loss
RANK_GAP = 10.0  # a numerical rank is meaningful: the eigenvalues either side of its cutoff
# differ by at least this factor (neighbours inside a continuous spectrum differ by percents)

# The study's statement for each experiment (as the README's reference restates it), by
# sequence kind and model kind; the claims below check it part by part.
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
    """What the analysis rules wrote for one experiment (all its models)."""

    convergence: pd.DataFrame
    curves: pd.DataFrame
    displacement: pd.DataFrame
    counts: pd.DataFrame


def converged_run(tables: RunTables, model: str) -> "Judged":
    """Whether the run stands at converged solutions, and the numbers that say so."""
    conv = tables.convergence[tables.convergence.model == model]
    below = int((conv.final_kl < THRESHOLD).sum())
    mean = float(conv.final_kl.mean())
    ok = below >= CONVERGED_SHARE * len(conv) and mean < THRESHOLD
    return (
        ok,
        f"{below} / {len(conv)} sequences end below KL {THRESHOLD:g}, mean final KL {mean:.3g}",
    )


@dataclass
class Evidence:
    """What the claims read for one model of one experiment (a converged run)."""

    convergence: pd.DataFrame  # this model's rows
    displacement: pd.Series
    counts: pd.DataFrame  # indexed by measure: euclidean, cosine
    mean: pd.DataFrame  # mean KL per step
    median_pair: float
    path: pd.DataFrame | None  # the case study's followed words, where there is one

    @classmethod
    def of(
        cls, tables: RunTables, model: str, median_pair: float, path: pd.DataFrame | None
    ) -> "Evidence":
        return cls(
            convergence=tables.convergence[tables.convergence.model == model],
            displacement=tables.displacement[tables.displacement.model == model].iloc[0],
            counts=tables.counts[tables.counts.model == model].set_index("measure"),
            mean=mean_kl(tables.curves[tables.curves.model == model]),
            median_pair=median_pair,
            path=path,
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


Judged = tuple[bool, str]  # (holds, the numbers that say so)


@dataclass(frozen=True)
class Claim:
    """One part of the study's statement, checked against a run's tables."""

    id: str
    says: str  # the part, as the summary's verdict row names it
    about: frozenset[tuple[str, str]]  # the (sequence kind, model kind) it is about
    check: Callable[[Evidence], Judged]
    needs_path: bool = False  # judged only where a case study followed a word


def _levels_off(e: Evidence) -> Judged:
    levels = float(e.convergence.l2_growth_last_tenth.median())
    return (
        levels < LEVELS_OFF,
        f"median {levels:.1%} of the total L2 added in the last tenth "
        f"of the optimised steps (levels off: below {LEVELS_OFF:.0%})",
    )


def _no_dimension_favoured(e: Evidence) -> Judged:
    share = e.displacement.top_dimensions_share
    return (
        share < FAVOURED_SHARE,
        f"top 1% of dimensions hold {share:.1%} of the squared displacement (about 1% "
        f"if none is favoured; favoured: {FAVOURED_SHARE:.0%} or more)",
    )


def _no_token_favoured(e: Evidence) -> Judged:
    ratio = e.displacement.token_l2_max_over_median
    return (
        ratio < TOKEN_FAVOURED,
        f"largest / median L2 per token {ratio:.2g} (favoured: {TOKEN_FAVOURED:g} or more)",
    )


def _no_token_back_projects(e: Evidence) -> Judged:
    euclidean, cosine = e.changed
    return (
        max(euclidean, cosine) == 0,
        f"changed {euclidean:.1%} (Euclidean), {cosine:.1%} (cosine)",
    )


def _some_tokens_back_project(e: Evidence) -> Judged:
    euclidean, _ = e.changed
    return euclidean > 0, f"changed {euclidean:.1%} (Euclidean)"


def _fast_mean_kl(e: Evidence) -> Judged:
    first = e.mean.step[e.mean.kl < THRESHOLD]
    return (
        len(first) > 0 and first.iloc[0] < FAST_STEPS,
        f"first step with mean KL < {KL_LEVEL}: {first.iloc[0] if len(first) else 'never'}",
    )


def _small_travel(e: Evidence) -> Judged:
    median = e.displacement.median_l2
    return (
        median < SMALL_TRAVEL * e.median_pair,
        f"median L2 {median:.3g} against {e.median_pair:.3g} (small: under half)",
    )


def _nearly_all_dimensions_small(e: Evidence) -> Judged:
    share = e.displacement.share_below_small
    return share >= NEARLY_ALL, f"{share:.1%} of coordinates (nearly all: 90% or more)"


def _travels_far_less(e: Evidence) -> Judged:
    end = e.path_end
    ratio = float((end.l2_travelled / end.start_distance_to_toward).max())
    return (
        ratio < FAR_LESS,
        f"travelled / start distance {ratio:.2f} (study: 0.8 / 2.5; far less: under half)",
    )


def _nearest_to_itself(e: Evidence) -> Judged:
    end = e.path_end
    stays = bool(
        (end.nearest_euclidean_token == end.token).all()
        and (end.nearest_cosine_token == end.token).all()
    )
    nearest = sorted(set(end.nearest_euclidean_token) | set(end.nearest_cosine_token))
    return stays, f"nearest at the end: {', '.join(nearest)}"


def _heads_to_counterpart(e: Evidence) -> Judged:
    best = int(e.path_end.toward_heading_rank.min())
    return best == 1, f"the counterpart's heading rank {best} (1: the best of all tokens)"


def about(sequence_kind: str, *model_kinds: str) -> frozenset[tuple[str, str]]:
    """(sequence kind, model kind) pairs: of every model kind unless some are named."""
    return frozenset((sequence_kind, m) for m in model_kinds or ("masked", "causal"))


CLAIMS = [
    Claim(
        "levels_off",
        "travel levels off",
        about("pairs") | about("random", "masked"),
        _levels_off,
    ),
    Claim("no_dimension", "no dimension is favoured", about("pairs"), _no_dimension_favoured),
    Claim("no_token", "no token is favoured", about("pairs"), _no_token_favoured),
    Claim(
        "no_back_projection",
        "no token back-projects to a different token",
        about("random", "masked"),
        _no_token_back_projects,
    ),
    Claim(
        "fast_mean_kl",
        f"mean KL under {KL_LEVEL} in fewer than 1,000 steps",
        about("random", "causal"),
        _fast_mean_kl,
    ),
    Claim(
        "small_travel",
        "travel small next to random vocabulary pairs",
        about("random", "causal"),
        _small_travel,
    ),
    Claim(
        "small_dimensions",
        f"nearly all dimensions moved less than {SMALL_DISPLACEMENT}",
        about("random", "causal"),
        _nearly_all_dimensions_small,
    ),
    Claim(
        "some_back_projection",
        "some tokens back-project to different tokens",
        about("random", "causal"),
        _some_tokens_back_project,
    ),
    Claim(
        "travels_far_less",
        "the followed word travels far less than the distance to its counterpart",
        about("prompt"),
        _travels_far_less,
        needs_path=True,
    ),
    Claim(
        "nearest_itself",
        "the followed word is still nearest to itself (cosine and Euclidean)",
        about("prompt"),
        _nearest_to_itself,
        needs_path=True,
    ),
    Claim(
        "heads_to_counterpart",
        "the followed word heads most toward its counterpart",
        about("prompt"),
        _heads_to_counterpart,
        needs_path=True,
    ),
]
# Claims are checked only at converged runs (the study's criterion): this row says which.
CONVERGES = f"converges (KL < {KL_LEVEL} for {CONVERGED_SHARE:.0%} of sequences, mean < {KL_LEVEL})"


def verdict_row(claim_id: str) -> str:
    """The summary's row that holds the verdict on a claim ("converges" included)."""
    if claim_id == "converges":
        return f"verdict: {CONVERGES}"
    return f"verdict: {next(claim.says for claim in CLAIMS if claim.id == claim_id)}"


def claims_for(sequence_kind: str, model_kind: str) -> list[Claim]:
    return [claim for claim in CLAIMS if (sequence_kind, model_kind) in claim.about]


def _verdict(judged: Judged) -> str:
    holds, evidence = judged
    return f"{'reproduced' if holds else 'NOT reproduced'}: {evidence}"


def study_verdicts(
    sequence_kind: str,
    model_kind: str,
    tables: RunTables,
    model: str,
    median_pair: float,
    path: pd.DataFrame | None = None,
) -> dict[str, str]:
    """Does this run reproduce each part of the study's statement for its experiment? Every
    part but convergence itself is judged only where the run converged."""
    converged = converged_run(tables, model)
    rows = {verdict_row("converges"): _verdict(converged)}
    claims = claims_for(sequence_kind, model_kind)
    if not converged[0]:
        missing = f"not measured at converged solutions ({converged[1]})"
        return {**rows, **{f"verdict: {claim.says}": missing for claim in claims}}
    evidence = Evidence.of(tables, model, median_pair, path)
    judged = [claim for claim in claims if path is not None or not claim.needs_path]
    return {**rows, **{f"verdict: {c.says}": _verdict(c.check(evidence)) for c in judged}}
