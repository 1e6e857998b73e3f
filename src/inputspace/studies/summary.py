"""results/summary.md: what the study claimed, what this run found and whether they agree,
in words a reader outside the field can follow; the numbers behind each verdict in an
appendix of the same page.

The page is a list of blocks (headings, paragraphs, lists, tables) rendered once as
Markdown and once as HTML."""

import html
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from inputspace import files
from inputspace.analysis.run_measures import SMALL_DISPLACEMENT, THRESHOLD, mean_kl
from inputspace.studies.claims import (
    CONCENTRATED,
    KL_LEVEL,
    RANK_GAP,
    STUDY_SAYS,
    RunTables,
    Scale,
    Verdict,
    spread,
    state_of,
    study_verdicts,
)

TERMS = [
    "**input embedding**: the list of numbers (a vector) a language model reads for each "
    "word-piece (token) of its input, before it adds anything about word order; the study "
    "moves these vectors and nothing else, the model's own weights stay frozen.",
    "**d**: how many numbers one such vector has (576 for SmolLM2-135M, 2,048 for "
    "Llama-3.2-1B); the model's last layer also hands d numbers to its word predictor.",
    "**KL (the loss)**: how far the model's prediction for the next word (or the masked word) "
    "is from the prediction it should make, the target; 0 means identical, and below "
    f"{KL_LEVEL} the two are practically the same.",
    "**solution**: input vectors at which the loss has been brought that low.",
    "**travel**: how far a token's vector moved from where it started, measured against the "
    "distance between two random words' vectors of the same model (a share of that distance "
    "is comparable across models; a raw distance is not).",
    "**back-projection**: the vocabulary word whose vector is nearest a moved vector: does the "
    "moved vector still 'mean' its old word, another word, or nothing nameable?",
    "**replicate**: an independent repetition of an experiment with other random sentences "
    "or other prompt pairs; a verdict says in how many replicates the claim held.",
    "**n**: how many numbers were optimised in one sentence (its tokens times d).",
]

STATE_MEANING = {
    "agrees": "the run found what the study claimed",
    "disagrees": "the run found the opposite",
    "mixed": "it held in some replicates and not in others",
    "not comparable": "the claim is stated in the units of another model; the rescaled "
    "comparison stands beside it",
    "not measured": "the run did not reach the state the claim is about",
    "connected": "a path between two solutions was found along which the loss stays solved",
    "not demonstrated": "the search found no such path (which shows nothing about separation)",
}


TALLY = {
    "agrees": "agree",
    "disagrees": "disagree",
    "mixed": "mixed",
    "not comparable": "not comparable",
    "not measured": "not measured",
}


# ------------------------------------------------------------------ the page's blocks


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


Block = tuple[str, object]  # ("h1" | "h2" | "h3" | "p" | "ul", text or items) or ("table", Table)


def markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + str(content), ""]
        elif kind == "p":
            lines += [str(content), ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in content] + [""]
        else:
            lines += _markdown_table(content) + [""]
    return "\n".join(lines)


def _markdown_table(table: Table) -> list[str]:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    return [
        "| " + " | ".join(map(cell, table.columns)) + " |",
        "|" + " --- |" * len(table.columns),
        *("| " + " | ".join(map(cell, row)) + " |" for row in table.rows),
    ]


def as_html(blocks: list[Block]) -> str:
    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{_inline(str(content))}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in content) + "</ul>")
        else:
            head = "".join(f"<th>{_inline(c)}</th>" for c in content.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                for row in content.rows
            )
            body.append(f"<table border='1'><tr>{head}</tr>{rows}</table>")
    style = "body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:left}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def _inline(text: str) -> str:
    """Escaped, with Markdown's **bold** as <b>."""
    parts = html.escape(str(text)).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


# ------------------------------------------------------------------ one experiment


@dataclass
class Section:
    experiment: str
    study_says: list[str]
    verdicts: dict[str, list[Verdict]]  # by model
    appendix: pd.DataFrame  # rows: measures, columns: models
    extension: bool = False  # this project's own measurements, not the study's claims
    dimensions: pd.DataFrame | None = None  # landscape: the local dimension at each point
    checks: list[str] = field(default_factory=list)  # properties that hold by construction


def measured(tables: RunTables, model: str, median_pair: float) -> dict[str, str]:
    """The appendix's rows for one model of one experiment, over all its sequences."""
    conv = tables.convergence[tables.convergence.model == model]
    reached = conv.steps_to_threshold.dropna()
    mean = mean_kl(tables.curves[tables.curves.model == model])
    below = mean.step[mean.kl < THRESHOLD]
    disp = tables.displacement[tables.displacement.model == model]
    counts = tables.counts[tables.counts.model == model]
    changed = counts.groupby("measure").changed.sum() / counts.groupby("measure").tokens.sum()

    def per_replicate(column: str, form: str) -> str:
        return spread(disp[column].tolist(), form)

    return {
        "replicates": f"{conv.replicate.nunique()} ({len(conv)} sequences)",
        f"sequences reaching KL < {KL_LEVEL}": f"{len(reached)} / {len(conv)}",
        f"steps to KL < {KL_LEVEL} (median; max)": (
            f"{reached.median():.0f}; {reached.max():.0f}" if len(reached) else "not reached"
        ),
        f"first step with mean KL < {KL_LEVEL}": f"{below.iloc[0]}"
        if len(below)
        else "not reached",
        "final KL (median; max)": f"{conv.final_kl.median():.3g}; {conv.final_kl.max():.3g}",
        "median travel per token (range over replicates)": per_replicate("median_l2", "{:.3g}"),
        "median distance of random vocabulary pairs": f"{median_pair:.3g}",
        "median travel / median pair distance (range over replicates)": spread(
            (disp.median_l2 / median_pair).tolist(), "{:.1%}"
        ),
        "total travel added in the last tenth of steps (median)": (
            f"{conv.l2_growth_last_tenth.median():.1%}"
        ),
        "back-projection changed (Euclidean; cosine)": (
            f"{changed.get('euclidean', np.nan):.1%}; {changed.get('cosine', np.nan):.1%}"
            f" of {int(counts[counts.measure == 'euclidean'].tokens.sum())} tokens"
        ),
        "largest per-coordinate displacement": per_replicate("max_abs_dimension", "{:.3g}"),
        f"coordinates moved less than {SMALL_DISPLACEMENT}": per_replicate(
            "share_below_small", "{:.1%}"
        ),
        "90% of dimensions moved (root mean square) less than": per_replicate(
            "dimension_rms_q90", "{:.3g}"
        ),
        "squared displacement in the top 1% of dimensions": per_replicate(
            "top_dimensions_share", "{:.1%}"
        ),
    }


def followed_word(path: pd.DataFrame, median_pair: float) -> dict[str, str]:
    """The case study's rows: each followed token against each target token, last step."""
    end = path[path.step == path.step.max()]

    def each(render) -> str:
        return "; ".join(render(row) for row in end.itertuples())

    return {
        "case study: followed token -> target token": each(
            lambda r: f"{r.token!r} -> {r.toward_token!r}"
        ),
        "case study: travelled / start distance to target (as shares of a random pair)": each(
            lambda r: (
                f"{r.l2_travelled:.3g} / {r.start_distance_to_toward:.3g} "
                f"({r.l2_travelled / median_pair:.0%} / "
                f"{r.start_distance_to_toward / median_pair:.0%})"
            )
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


def section(
    experiment: str,
    spec: dict,
    kinds: dict[str, str],
    tables: RunTables,
    scales: dict[str, Scale],
    paths: dict[str, pd.DataFrame] | None = None,
    step_sizes: dict[str, str] | None = None,
) -> Section:
    """`step_sizes`: the lr each model's run got, as its record says (StepSize.describe)."""
    models = spec["models"]
    sequence_kind = spec["sequences"]["kind"]
    by_kind: dict[str, list[str]] = {}
    for model in models:
        by_kind.setdefault(kinds[model], []).append(model)
    says = [
        f"For {kind} models ({', '.join(names)}): {STUDY_SAYS[(sequence_kind, kind)]}"
        for kind, names in by_kind.items()
    ]
    paths, step_sizes = paths or {}, step_sizes or {}
    verdicts = {
        m: study_verdicts(sequence_kind, kinds[m], tables, m, scales[m], paths.get(m))
        for m in models
    }
    appendix = pd.DataFrame(
        {
            m: {
                **({"Adam step size (lr)": step_sizes[m]} if m in step_sizes else {}),
                **measured(tables, m, scales[m].median_pair),
                **(followed_word(paths[m], scales[m].median_pair) if m in paths else {}),
            }
            for m in models
        }
    )
    return Section(experiment, says, verdicts, appendix)


# ------------------------------------------------------------------ the landscape


@dataclass
class LandscapeTables:
    """The landscape tables the summary reads (table_names.SUMMARY_LANDSCAPE_TABLES)."""

    solutions: pd.DataFrame  # seq, start_kl, final_kl, steps, converged
    dimensions: pd.DataFrame  # one row per point: the Jacobian's rank and the set's dimension
    flatness: pd.DataFrame  # one row per point whose Hessian spectrum was taken
    barriers: pd.DataFrame
    nearness: pd.DataFrame

    @classmethod
    def read(cls, path_of: Callable[[str], str]) -> "LandscapeTables":
        """Each table from the file (CSV or Parquet) `path_of(its name)` names."""
        return cls(**{field.name: _read_frame(path_of(field.name)) for field in fields(cls)})


def _read_frame(path: str) -> pd.DataFrame:
    if not str(path).endswith(".csv"):
        return files.read_parquet(path)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a table with no columns: nothing was measured
        return pd.DataFrame()


HYPOTHESIS = (
    "The study's explanation of its results (a hypothesis it did not test directly): (1) in "
    "many dimensions all points are about equally far apart; (2) a set of inputs with zero "
    "loss lies close to almost every starting point, so descent reaches it after a short "
    "trip; (3) that set is itself high-dimensional, and only a tiny fraction of its points "
    "are near real words. This run measures (1) and (2) directly over pairs of random "
    "starts (each pair a replicate), and the dimension of the set in (3) at solutions of "
    "every pair."
)


def _pair_of(seq: pd.Series) -> pd.Series:
    return seq // 2


def _pair_verdict(
    says: str, held: list[bool], values: list[float], form: str, against: str
) -> Verdict:
    count = sum(held)
    state = state_of(count, len(held))
    return Verdict(says, state, spread(values, form), count, len(held), len(held), against)


def landscape_verdicts(
    tables: LandscapeTables, median_pair: float, solve_below: float
) -> list[Verdict]:
    """(1) and (2) per pair of starts; connectivity (this project's extension) per pair."""
    near, solved = tables.nearness, tables.solutions
    near = near.assign(pair=_pair_of(near.seq))
    by_pair = near.groupby("pair")
    concentrated = (by_pair.to_nearest_token.median() / median_pair).tolist()
    verdicts = [
        _pair_verdict(
            "(1) a random point is about as far from its nearest word as two random words are "
            "from each other",
            [share >= CONCENTRATED for share in concentrated],
            concentrated,
            "{:.0%}",
            f"a nearest word closer than {CONCENTRATED:.0%} of the random-pair distance",
        )
    ]
    converged_pairs = solved.assign(pair=_pair_of(solved.seq)).groupby("pair").converged.all()
    if not converged_pairs.any():
        verdicts.append(
            _not_measured("(2) every start reaches zero loss after a short trip", solve_below)
        )
    else:
        trips = by_pair.to_own_solution.median() / by_pair.to_nearest_token.median()
        verdicts.append(
            _pair_verdict(
                "(2) every start reaches zero loss after a trip shorter than the way to its "
                "nearest word",
                [bool(converged_pairs[p]) and trips[p] < 1 for p in trips.index],
                trips.tolist(),
                "{:.0%}",
                f"a start left above KL {solve_below:g}, or a median trip at least as long "
                "as the way to the nearest word",
            )
        )
    verdicts.append(connectivity_verdict(tables.barriers, solve_below))
    return verdicts


def _not_measured(says: str, solve_below: float) -> Verdict:
    return Verdict(
        says,
        "not measured",
        "",
        0,
        0,
        0,
        f"no start solved to KL {solve_below:g} within the step cap",
    )


def connectivity_verdict(barriers: pd.DataFrame, solve_below: float) -> Verdict:
    """Connected: along the best path found between two solutions the loss never leaves the
    solved level. A search that finds no such path demonstrates nothing; this never says
    "separated", which would need a lower bound on every path."""
    says = "(extension) two solutions of one target are joined by a path of solved points"
    both = barriers[barriers.both_converged.astype(bool)] if len(barriers) else barriers
    if not len(both):
        return _not_measured(says, solve_below)
    highest = both.best_barrier + both.highest_end
    connected = (highest <= solve_below).tolist()
    unconverged = int((both.bend_converged.astype(str) == "False").sum())
    count = sum(connected)
    return Verdict(
        says,
        "connected" if count == len(connected) else "not demonstrated",
        spread((both.best_over_ends).tolist(), "{:.3g}") + " x the higher end's loss",
        count,
        len(connected),
        len(connected),
        f"a path whose highest loss stays at most KL {solve_below:g} (the solved level)",
        f"{unconverged} path search(es) stopped at the step cap still improving"
        if unconverged
        else "every path search converged",
    )


def dimension_rows(dimensions: pd.DataFrame) -> Table:
    """The measured local dimension at each point, with the bound it is held against."""
    rows = [
        [
            r.model,
            r.point,
            f"{r.kl:.2g}",
            f"{r.dimensions}",
            f"{r.rank} (d = {r.hidden})",
            f"{r.set_dimension} ({r.set_share:.1%} of n)",
            f"{r.bound}",
            f"{r.gap:.3g}" if np.isfinite(r.gap) else "none below the cutoff",
        ]
        for r in dimensions.itertuples()
    ]
    return Table(
        [
            "model",
            "point",
            "KL",
            "n",
            "rank r of the prediction's Jacobian",
            "dimension of the zero-loss set here, n - r",
            "bound n - d",
            "gap at the cutoff",
        ],
        rows,
    )


def control_comparison(dimensions: pd.DataFrame) -> str:
    """Whether the dimension found at solutions is special to them: the same measurement at
    a random start of the same size."""
    said = []
    for model, rows in dimensions.groupby("model", sort=False):
        solutions = rows[rows.kind == "solution"]["rank"]
        control = rows[rows.kind == "random start"]["rank"]
        if not len(solutions) or not len(control):
            continue
        same = set(solutions) == set(control)
        said.append(
            f"{model}: rank {spread(solutions.tolist(), '{:.0f}')} at the solutions, "
            f"{spread(control.tolist(), '{:.0f}')} at the random start"
            + (
                " (the same: the dimension belongs to the model's map, not to solutions)"
                if same
                else " (they differ)"
            )
        )
    return "Against the control of the same size: " + ("; ".join(said) or "none measured") + "."


def landscape_checks(tables: LandscapeTables) -> list[str]:
    """What holds by construction, shown as a check of the code with its numbers."""
    dims, checks = tables.dimensions, []
    if len(dims):
        within = bool(
            (dims["rank"] <= dims.hidden).all() and (dims["rank"] <= dims.head_rank).all()
        )
        checks.append(
            f"{'passed' if within else 'FAILED'}: the Jacobian's rank is at most d (and at most "
            "what the head passes on) at every point, so the zero-loss set's dimension is at "
            f"least n - d: ranks {spread(dims['rank'].tolist(), '{:.0f}')} against d = "
            f"{int(dims.hidden.iloc[0])}. This follows from the model's shape (the prediction "
            "sees the inputs only through d numbers), so it is no evidence for the study: any "
            "sentence longer than one token has a high-dimensional zero-loss set."
        )
    flat = tables.flatness
    zero = flat[(flat.kl == 0) & (flat.method == "exact")] if len(flat) else flat
    for row in zero.itertuples():
        meaningful = row.rank_gap >= RANK_GAP
        ok = row.numerical_rank <= row.hidden
        checks.append(
            f"{'passed' if ok else 'FAILED'}: the exact Hessian at {row.point} (a zero-loss "
            f"point) has rank {int(row.numerical_rank)} against d = {int(row.hidden)} "
            + (
                "(a gap of at least 10 at the cutoff)"
                if meaningful
                else "(no clear gap: the count depends on the cutoff)"
            )
        )
    return checks


def landscape_appendix(
    tables: LandscapeTables, median_pair: float, solve_below: float
) -> dict[str, str]:
    solutions, near, barriers, dims = (
        tables.solutions,
        tables.nearness,
        tables.barriers,
        tables.dimensions,
    )
    nearest = near.to_nearest_token.median()
    rows = {
        "starts solved": (
            f"{int(solutions.converged.sum())} / {len(solutions)} to KL <= {solve_below:g} "
            f"(steps: {', '.join(map(str, solutions.steps))})"
        ),
        "median distance, random start to nearest word": (
            f"{nearest:.3g} ({nearest / median_pair:.0%} of the random-pair distance "
            f"{median_pair:.3g})"
        ),
        "median distance, start to its own solution / to another start's solution": (
            f"{near.to_own_solution.median():.3g} / {near.to_other_solution.median():.3g}"
        ),
    }
    for r in dims.itertuples():
        rows[f"Jacobian at {r.point}"] = (
            f"singular values above the measured rounding {r.cutoff:.1e} x the largest "
            f"({r.largest:.3g}): {r.rank}; the smallest counted is {r.smallest_kept:.1e} of the "
            f"largest; the head passes on {r.head_rank} directions"
        )
    for r in barriers.itertuples():
        if not r.both_converged:
            rows[f"pair {r.pair}"] = "left out: an end did not converge"
            continue
        rows[f"pair {r.pair}: distance, barrier straight / best"] = (
            f"{r.distance:.3g} apart ({r.distance / median_pair:.1f} random-pair distances); "
            f"{r.straight_barrier:.2g} / {r.best_barrier:.2g} above the higher end's "
            f"{r.highest_end:.2g}"
            + (f"; path search {int(r.bend_steps)} steps" if pd.notna(r.bend_steps) else "")
        )
    for r in tables.flatness.itertuples() if len(tables.flatness) else []:
        rows[f"Hessian at {r.point} ({r.method}, {r.precision})"] = (
            f"rank {_span(r.rank_low, r.rank_high, '.0f')} of {r.dimensions}; flat "
            f"{_span(r.flat_low, r.flat_high, '.1%')} (at most {r.flat_threshold:g} x the largest)"
        )
    return rows


def _span(low: float, high: float, form: str) -> str:
    return spread([low, high], "{:" + form + "}")


def landscape_section(
    experiment: str, tables: dict[str, LandscapeTables], pairs: dict[str, float], solve_below: float
) -> Section:
    verdicts = {m: landscape_verdicts(t, pairs[m], solve_below) for m, t in tables.items()}
    appendix = pd.DataFrame(
        {m: landscape_appendix(t, pairs[m], solve_below) for m, t in tables.items()}
    )
    dims = pd.concat([t.dimensions.assign(model=m) for m, t in tables.items()], ignore_index=True)
    checks = [c for m, t in tables.items() for c in (f"{m}: {x}" for x in landscape_checks(t))]
    return Section(
        f"{experiment}: the zero-loss set", [HYPOTHESIS], verdicts, appendix, True, dims, checks
    )


# ------------------------------------------------------------------ the page


def verdict_table(verdicts: dict[str, list[Verdict]]) -> Table:
    rows = []
    for model, found in verdicts.items():
        for v in found:
            rows.append([v.claim, model, v.found, v.plain(), v.contradicted_by, v.note])
    return Table(
        [
            "claim",
            "model",
            "this run (range over replicates)",
            "verdict",
            "would have contradicted it",
            "note",
        ],
        rows,
    )


def overview(sections: list[Section], models: list[str]) -> list[Block]:
    """The top of the page: what the study claimed and what this run supports, briefly."""
    study = [v for s in sections if not s.extension for found in s.verdicts.values() for v in found]
    counts = {state: sum(v.state == state for v in study) for state in TALLY}
    tally = ", ".join(f"{n} {TALLY[state]}" for state, n in counts.items() if n)
    rows = [
        [s.experiment, model, v.claim, v.plain()]
        for s in sections
        for model, found in s.verdicts.items()
        for v in found
    ]
    return [
        (
            "p",
            "The study this run reproduces (docs/study.md in the project) froze a language model "
            "and moved only the vectors that stand for its input words, by gradient descent, "
            "until the model predicted what it predicts for another sentence. It reported that "
            "the vectors get there after a short trip, stay close to where they started and "
            "mostly still 'mean' their old words, and explained this by a large set of "
            f"solutions near every start. This run repeated it on {', '.join(models)}.",
        ),
        ("p", f"**In short:** of the study's claims checked here, {tally}."),
        ("table", Table(["experiment", "model", "claim", "verdict"], rows)),
    ]


def page(sections: list[Section], models: list[str], note: str) -> list[Block]:
    blocks: list[Block] = [("h1", "What this run found, against the study it reproduces")]
    blocks += overview(sections, models)
    blocks += [("p", note), ("h2", "Terms"), ("ul", TERMS), ("h2", "What a verdict means")]
    blocks += [("ul", [f"**{state}**: {meaning}" for state, meaning in STATE_MEANING.items()])]
    checks = []
    for part in sections:
        blocks += [("h2", part.experiment)]
        blocks += [
            ("p", ("**The study** " if not part.extension else "") + says)
            for says in part.study_says
        ]
        blocks += [("table", verdict_table(part.verdicts))]
        if part.dimensions is not None and len(part.dimensions):
            blocks += [
                (
                    "p",
                    "The zero-loss set's local dimension at each solution, measured from the "
                    "exact Jacobian of the prediction (a random start beside them as a control of "
                    "the same size). That it is at least n - d holds by construction (see the "
                    "checks below); the measurement says how much of the bound is reached.",
                ),
                ("table", dimension_rows(part.dimensions)),
                ("p", control_comparison(part.dimensions)),
            ]
        checks += part.checks
    blocks += [
        ("h2", "Checks of the code (these hold by construction and are no evidence)"),
        ("ul", checks or ["none applies to this config"]),
        ("h2", "Appendix: the numbers behind each verdict"),
    ]
    for part in sections:
        table = part.appendix.fillna("")
        blocks += [
            ("h3", part.experiment),
            (
                "table",
                Table(
                    ["measured", *table.columns],
                    [[i, *row] for i, row in zip(table.index, table.to_numpy())],
                ),
            ),
        ]
    return blocks


def median_pair_distance(pairs: pd.DataFrame) -> float:
    return float(np.median(pairs.euclidean))


def coordinate_spread(vocab: pd.DataFrame, hidden: int) -> float:
    """The root-mean-square coordinate of the regular tokens' input embeddings."""
    norms = vocab.norm[vocab.is_regular].to_numpy(np.float64)
    return float(np.sqrt(np.mean(norms**2) / hidden))
