"""results/summary.md: per experiment and model, the study's claims next to what this
run measured."""

import html
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from inputspace.analysis import SMALL_DISPLACEMENT, THRESHOLD, mean_kl

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


def measured(tables: RunTables, model: str, median_pair: float) -> dict[str, str]:
    """The summary's rows for one model of one experiment, formatted."""
    conv = tables.convergence[tables.convergence.model == model]
    reached = conv.steps_to_threshold.dropna()
    mean = mean_kl(tables.curves[tables.curves.model == model])
    below = mean.step[mean.kl < THRESHOLD]
    disp = tables.displacement[tables.displacement.model == model].iloc[0]
    counts = tables.counts[tables.counts.model == model].set_index("measure")
    return {
        f"sequences reaching KL < {KL_LEVEL}": f"{len(reached)} / {len(conv)}",
        f"steps to KL < {KL_LEVEL} (median; max)": (
            f"{reached.median():.0f}; {reached.max():.0f}" if len(reached) else "not reached"
        ),
        f"first step with mean KL < {KL_LEVEL}": f"{below.iloc[0]}"
        if len(below)
        else "not reached",
        "final KL (median; max)": f"{conv.final_kl.median():.3g}; {conv.final_kl.max():.3g}",
        "L2 travelled per token (median; max)": f"{disp.median_l2:.3g}; {disp.max_l2:.3g}",
        "median distance of random vocabulary pairs": f"{median_pair:.3g}",
        "median travel / median pair distance": f"{disp.median_l2 / median_pair:.1%}",
        "total L2 added in the last tenth of steps (median)": (
            f"{conv.l2_growth_last_tenth.median():.1%}"
        ),
        "back-projection changed (Euclidean; cosine)": (
            f"{counts.loc['euclidean', 'fraction_changed']:.1%}; "
            f"{counts.loc['cosine', 'fraction_changed']:.1%}"
            f" of {int(counts.loc['euclidean', 'tokens'])} tokens"
        ),
        "largest per-dimension displacement": f"{disp.max_abs_dimension:.3g}",
        f"coordinates moved less than {SMALL_DISPLACEMENT}": f"{disp.share_below_small:.1%}",
        "squared displacement in the top 1% of dimensions": f"{disp.top_dimensions_share:.1%}",
    }


def followed_word(path: pd.DataFrame) -> dict[str, str]:
    """The case study's rows: each followed token against each target token, last step."""
    end = path[path.step == path.step.max()]

    def each(render) -> str:
        return "; ".join(render(row) for row in end.itertuples())

    return {
        "case study: followed token -> target token": each(
            lambda r: f"{r.token!r} -> {r.toward_token!r}"
        ),
        "case study: L2 travelled / start distance to target": each(
            lambda r: f"{r.l2_travelled:.3g} / {r.start_distance_to_toward:.3g}"
        ),
        "case study: nearest token at the end (L2 / cos)": each(
            lambda r: f"{r.nearest_euclidean_token!r} / {r.nearest_cosine_token!r}"
        ),
        "case study: heading toward target, cosine (rank)": each(
            lambda r: f"{r.toward_heading_cosine:.3f} ({r.toward_heading_rank})"
        ),
        "case study: best heading, cosine": each(
            lambda r: f"{r.heading_token!r}, {r.heading_cosine:.3f}"
        ),
    }


@dataclass
class Section:
    experiment: str
    claims: list[str]
    table: pd.DataFrame  # rows: measures, columns: models


# ------------------------------------------------------------------ verdicts


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


def section(
    experiment: str,
    spec: dict,
    kinds: dict[str, str],
    tables: RunTables,
    pairs: dict[str, float],
    paths: dict[str, pd.DataFrame] | None = None,
) -> Section:
    models = spec["models"]
    sequence_kind = spec["sequences"]["kind"]
    by_kind: dict[str, list[str]] = {}
    for model in models:
        by_kind.setdefault(kinds[model], []).append(model)
    claims = [
        f"for {kind} models ({', '.join(names)}): {STUDY_SAYS[(sequence_kind, kind)]}"
        for kind, names in by_kind.items()
    ]
    paths = paths or {}
    table = pd.DataFrame(
        {
            m: {
                **measured(tables, m, pairs[m]),
                **(followed_word(paths[m]) if m in paths else {}),
                **study_verdicts(sequence_kind, kinds[m], tables, m, pairs[m], paths.get(m)),
            }
            for m in models
        }
    )
    return Section(experiment, claims, table)


def markdown(sections: list[Section], header: str) -> str:
    lines = ["# inputspace: the study's claims against this run", "", header, ""]
    for part in sections:
        lines += [f"## {part.experiment}", ""]
        for claim in part.claims:
            lines += [claim if claim.startswith("The study") else f"**The study,** {claim}", ""]
        columns = ["measured", *part.table.columns]
        lines += ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        cells = part.table.fillna("").to_numpy()
        lines += [
            "| " + " | ".join([name, *row]) + " |" for name, row in zip(part.table.index, cells)
        ]
        lines.append("")
    return "\n".join(lines)


def as_html(sections: list[Section], header: str) -> str:
    body = [f"<h1>inputspace: the study's claims against this run</h1><p>{html.escape(header)}</p>"]
    for part in sections:
        body.append(f"<h2>{html.escape(part.experiment)}</h2>")
        body += [f"<p><b>The study,</b> {html.escape(claim)}</p>" for claim in part.claims]
        body.append(part.table.fillna("").rename_axis("measured").to_html(border=1))
    style = "body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:left}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def median_pair_distance(pairs: pd.DataFrame) -> float:
    return float(np.median(pairs.euclidean))


HYPOTHESES = (
    "The study's hypothesis (from indirect evidence): (1) in high dimension all points are close; "
    "(2) a zero-loss set lies close to almost every start, so descent nearly always reaches "
    "near-zero loss after a short trip; (3) that set is itself high-dimensional (and only a "
    "tiny fraction of its points back-project to sensible tokens). Measured directly here, "
    "each verdict with its numbers; flatness and barriers only at starts solved to the stated KL."
)


@dataclass
class LandscapeTables:
    solutions: pd.DataFrame  # seq, start_kl, final_kl, steps, converged
    flatness: pd.DataFrame  # one row per probed point (solutions and controls)
    barriers: pd.DataFrame
    nearness: pd.DataFrame


def landscape_rows(
    tables: LandscapeTables, median_pair: float, solve_below: float
) -> dict[str, str]:
    """The landscape study's numbers and a verdict on each part of the hypothesis."""
    solutions, flat, barriers, near = (
        tables.solutions,
        tables.flatness,
        tables.barriers,
        tables.nearness,
    )
    solved = int(solutions.converged.sum())
    token = float(near.to_nearest_token.median())
    concentrated = token / median_pair
    rows = {
        "(1) median distance, random start to nearest vocabulary token": (
            f"{token:.3g}, {concentrated:.0%} of the median random-pair distance {median_pair:.3g}"
        ),
        "(1) verdict": _hypothesis(
            concentrated >= CONCENTRATED,
            "the nearest token is about as far as a random one: distances "
            "concentrate (criterion: nearest at least half the random-pair distance)",
        ),
        "(2) starts solved to KL <= solve level": (
            f"{solved} / {len(solutions)} to KL <= {solve_below:g} "
            f"(steps: {', '.join(map(str, solutions.steps))}; final KL: "
            f"{', '.join(f'{v:.2g}' for v in solutions.final_kl)})"
        ),
    }
    converged_near = near[near.converged.astype(bool)]
    if len(converged_near):
        own = float(converged_near.to_own_solution.median())
        other = float(converged_near.to_other_solution.median())
        rows["(2) median distance, start to its own solution (per token)"] = (
            f"{own:.3g} ({own / token:.0%} of the way to the nearest token); "
            f"to another start's solution {other:.3g}"
        )
        rows["(2) verdict"] = _hypothesis(
            solved >= CONVERGED_SHARE * len(solutions) and own < token,
            f"{solved} / {len(solutions)} starts reach the zero-loss set, each after a trip "
            "shorter than the way to its nearest token (criterion: 90% solved, median trip "
            "under the nearest-token distance)",
        )
    else:
        rows["(2) verdict"] = (
            f"not measured: no start reached KL <= {solve_below:g} within the step cap"
        )
    rows.update(_flatness_rows(flat))
    rows.update(_barrier_rows(barriers))
    return rows


def _hypothesis(holds: bool, evidence: str) -> str:
    return f"{'supported' if holds else 'NOT supported'}: {evidence}"


def _flatness_rows(flat: pd.DataFrame) -> dict[str, str]:
    rows = {}
    for row in flat.itertuples():
        after = (
            ""
            if np.isnan(row.eigenvalue_after_d)
            else (
                f"; |lambda_d| / largest = {row.eigenvalue_d / row.largest:.3g}, "
                "|lambda_d+1| / largest = "
                f"{row.eigenvalue_after_d / row.largest:.3g}"
            )
        )
        rows[f"(3) Hessian at {row.point} (KL {row.kl:.2g}, {row.method})"] = (
            f"numerical rank {row.numerical_rank:.0f} against d = {row.hidden} "
            f"(tolerance {row.rank_cutoff:.3g}); "
            f"flat {row.flat_fraction:.2%} of {row.dimensions} "
            f"(|lambda| <= {row.flat_threshold:g} x largest "
            f"{row.largest:.3g}; "
            f"at least {row.bound_flat_fraction:.2%} at a zero-loss point){after}"
        )
    solutions = flat[flat.kind == "solution"]
    controls = flat[flat.kind.isin(["random start", "prompt"])]
    exact_zero = flat[(flat.kl == 0) & (flat.method == "exact")]
    if len(exact_zero):
        row = exact_zero.iloc[0]
        rows["(3) prediction at an exact zero-loss point: rank at most d"] = _hypothesis(
            row.numerical_rank <= row.hidden,
            f"{row.point}: numerical rank {row.numerical_rank:.0f} against d = {row.hidden} "
            f"at tolerance {row.rank_cutoff:.3g} "
            f"({row.rank_cutoff / row.largest:.2g} of the largest); at index d the spectrum "
            f"is down to {row.eigenvalue_d / row.largest:.2g} of the largest",
        )
    if len(solutions):
        high = bool(
            (solutions.flat_fraction >= FLAT_OF_BOUND * solutions.bound_flat_fraction).all()
        )
        special = len(controls) > 0 and bool(
            (controls.flat_fraction < solutions.flat_fraction.min() - SPECIAL_FLATNESS).all()
        )
        rows["(3) verdict: dimension of the zero-loss set"] = _hypothesis(
            high,
            f"flat at the solutions: {', '.join(f'{f:.1%}' for f in solutions.flat_fraction)} "
            "of the directions "
            f"({', '.join(f'{r:.0f}' for r in solutions.numerical_rank)} curved, against d = "
            f"{int(solutions.hidden.iloc[0])}; predicted at a zero-loss point: at least "
            f"{solutions.bound_flat_fraction.iloc[0]:.1%} flat; "
            "high-dimensional: at least 90% of that); at the "
            "controls: "
            + ", ".join(f"{r.point} {r.flat_fraction:.1%}" for r in controls.itertuples())
            + (
                "; flatness is special to solutions"
                if special
                else "; the controls are about as flat"
            ),
        )
    else:
        rows["(3) verdict: dimension of the zero-loss set"] = (
            "not measured: no converged solution was probed"
        )
    return rows


def _barrier_rows(barriers: pd.DataFrame) -> dict[str, str]:
    both = barriers[barriers.both_converged.astype(bool)]
    left_out = len(barriers) - len(both)
    if not len(both):
        return {
            "(3) verdict: connectivity": (
                f"not measured: no pair with both ends converged ({left_out} left out)"
            )
        }
    best = both.bent_barrier.fillna(both.straight_barrier)
    relative = best / both.start_loss
    return {
        "(3) loss barrier between two solutions, straight / best of bent paths "
        "(relative to the start loss)": "; ".join(
            f"pair {r.pair}: {r.straight_barrier:.3g} / {b:.3g} ({rel:.2%})"
            for r, b, rel in zip(both.itertuples(), best, relative)
        )
        + (f"; {left_out} pair(s) left out" if left_out else ""),
        "(3) verdict: connectivity": _hypothesis(
            bool((relative < CONNECTED_BELOW).all()),
            f"largest barrier {relative.max():.2%} of the start loss "
            f"(connected: under {CONNECTED_BELOW:.0%} on the best path)",
        ),
    }


def landscape_section(
    experiment: str, tables: dict[str, LandscapeTables], pairs: dict[str, float], solve_below: float
) -> Section:
    table = pd.DataFrame({m: landscape_rows(t, pairs[m], solve_below) for m, t in tables.items()})
    return Section(f"{experiment}: the zero-loss set", [HYPOTHESES], table)
