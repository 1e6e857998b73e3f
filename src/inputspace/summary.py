"""results/summary.md: per experiment and model, the study's claims next to what this
run measured."""

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from inputspace.analysis import SMALL_DISPLACEMENT, THRESHOLD, mean_kl

# The study's claims (../shared/reference-study.md), by sequence kind and model kind.
CLAIMS = {
    ("prompt", "masked"): "Experiment 2 (ModernBERT-large): converges quickly; after 500 steps ' bark' has "
    "travelled about 0.8 against a bark-neigh distance of about 2.5, and even after 10,000 steps it is "
    "still nearest to ' bark' by cosine and Euclidean distance.",
    ("prompt", "causal"): "Experiment 2 was run on ModernBERT-large (masked) only; there, ' bark' travelled "
    "about 0.8 in 500 steps against a bark-neigh distance of about 2.5 and stayed nearest to ' bark'.",
    ("pairs", "masked"): "Experiment 3 (ModernBERT-large, 64 pairs): per-sequence total L2 levels off while "
    "KL goes to about zero; no token and no dimension is favoured.",
    ("pairs", "causal"): "Experiment 3 was run on ModernBERT-large (masked) only: total L2 levels off while "
    "KL goes to about zero; no token and no dimension is favoured.",
    ("random", "masked"): "Experiment 4 (ModernBERT-large): the loss converges, embeddings move little and "
    "level off, and no token moves far enough to back-project to a different token.",
    ("random", "causal"): "Experiment 5 (Llama-3.2-1B, 64 sentences): mean KL under 1e-2 in fewer than "
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
        "sequences reaching KL < 1e-2": f"{len(reached)} / {len(conv)}",
        "steps to KL < 1e-2 (median; max)": (
            f"{reached.median():.0f}; {reached.max():.0f}" if len(reached) else "not reached"
        ),
        "first step with mean KL < 1e-2": f"{below.iloc[0]}" if len(below) else "not reached",
        "final KL (median; max)": f"{conv.final_kl.median():.3g}; {conv.final_kl.max():.3g}",
        "L2 travelled per token (median; max)": f"{disp.median_l2:.3g}; {disp.max_l2:.3g}",
        "median distance of random vocabulary pairs": f"{median_pair:.3g}",
        "median travel / median pair distance": f"{disp.median_l2 / median_pair:.1%}",
        "total L2 added in the last tenth of steps (median)": f"{conv.l2_growth_last_tenth.median():.1%}",
        "back-projection changed (Euclidean; cosine)": (
            f"{counts.loc['euclidean', 'fraction_changed']:.1%}; {counts.loc['cosine', 'fraction_changed']:.1%}"
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
        "case study: followed token -> target token": each(lambda r: f"{r.token!r} -> {r.toward_token!r}"),
        "case study: L2 travelled / start distance to target": each(
            lambda r: f"{r.l2_travelled:.3g} / {r.start_distance_to_toward:.3g}"
        ),
        "case study: nearest token at the end (L2 / cos)": each(
            lambda r: f"{r.nearest_euclidean_token!r} / {r.nearest_cosine_token!r}"
        ),
        "case study: heading toward target, cosine (rank)": each(
            lambda r: f"{r.toward_heading_cosine:.3f} ({r.toward_heading_rank})"
        ),
        "case study: best heading, cosine": each(lambda r: f"{r.heading_token!r}, {r.heading_cosine:.3f}"),
    }


@dataclass
class Section:
    experiment: str
    description: str
    claims: list[str]
    table: pd.DataFrame  # rows: measures, columns: models


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
        f"for {kind} models ({', '.join(names)}): {CLAIMS[(sequence_kind, kind)]}" for kind, names in by_kind.items()
    ]
    paths = paths or {}
    table = pd.DataFrame(
        {m: {**measured(tables, m, pairs[m]), **(followed_word(paths[m]) if m in paths else {})} for m in models}
    )
    return Section(experiment, spec.get("description", ""), claims, table)


def markdown(sections: list[Section], header: str) -> str:
    lines = ["# inputspace: the study's claims against this run", "", header, ""]
    for part in sections:
        lines += [f"## {part.experiment}", ""]
        if part.description:
            lines += [part.description, ""]
        for claim in part.claims:
            lines += [claim if claim.startswith("The study") else f"**The study,** {claim}", ""]
        columns = ["measured", *part.table.columns]
        lines += ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join([name, *row]) + " |" for name, row in zip(part.table.index, part.table.to_numpy())]
        lines.append("")
    return "\n".join(lines)


def as_html(sections: list[Section], header: str) -> str:
    body = [f"<h1>inputspace: the study's claims against this run</h1><p>{html.escape(header)}</p>"]
    for part in sections:
        body.append(f"<h2>{html.escape(part.experiment)}</h2><p>{html.escape(part.description)}</p>")
        body += [f"<p><b>The study,</b> {html.escape(claim)}</p>" for claim in part.claims]
        body.append(part.table.rename_axis("measured").to_html(border=1))
    style = "body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:left}"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(body)}</body></html>"


def median_pair_distance(pairs: pd.DataFrame) -> float:
    return float(np.median(pairs.euclidean))


HYPOTHESES = (
    "The study's hypothesis (from indirect evidence): (1) in high dimension all points are close; "
    "(2) a zero-loss set lies close to almost every start, so descent nearly always reaches near-zero "
    "loss after a short trip; (3) that set is itself high-dimensional (and only a tiny fraction of its "
    "points back-project to sensible tokens). Measured directly here:"
)


def landscape_rows(flatness: pd.DataFrame, barriers: pd.DataFrame, near: pd.DataFrame, median_pair: float) -> dict[str, str]:
    """The landscape study's numbers, each tied to the hypothesis it speaks to."""
    own, token, other = (near[c].median() for c in ("to_own_solution", "to_nearest_token", "to_other_solution"))
    bent = barriers.bent_barrier.dropna()
    resolved = flatness.resolved.all()
    return {
        "(1) median distance, random start to nearest vocabulary token": f"{token:.3g} (random vocabulary pairs: {median_pair:.3g})",
        "(2) solutions with KL < 1e-2 (of those probed for the Hessian)": f"{int((flatness.final_kl < THRESHOLD).sum())} / {len(flatness)}",
        "(2) median distance, start to its own solution (per token)": f"{own:.3g} ({own / token:.0%} of the way to the nearest token)",
        "(2) median distance, start to another start's solution": f"{other:.3g}",
        "(3) flat directions of the Hessian at a solution": (
            f"{'' if resolved else 'at most '}{flatness.flat_fraction.min():.2%} to {flatness.flat_fraction.max():.2%} "
            f"of {int(flatness.dimensions.iloc[0])}; top eigenvalue {flatness.largest.median():.3g}; "
            f"directions above threshold: {', '.join(map(str, flatness.above_threshold))}"
        ),
        "(3) loss barrier on the straight path between two solutions (median; max)": (
            f"{barriers.straight_barrier.median():.3g}; {barriers.straight_barrier.max():.3g} over {len(barriers)} pairs"
        ),
        "(3) barrier after bending through one optimised midpoint (max)": (
            f"{bent.max():.3g} ({len(bent)} paths bent)" if len(bent) else "no straight path needed bending"
        ),
    }


def landscape_section(experiment: str, tables: dict[str, tuple], pairs: dict[str, float]) -> Section:
    """`tables[model]` = (flatness, barriers, nearness)."""
    table = pd.DataFrame({m: landscape_rows(*t, pairs[m]) for m, t in tables.items()})
    return Section(f"{experiment}: the zero-loss set", "", [HYPOTHESES], table)
