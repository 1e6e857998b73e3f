"""results/summary.md: per experiment and model, the study's claims next to what this
run measured."""

import html
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from inputspace import files
from inputspace.analysis.run_measures import SMALL_DISPLACEMENT, THRESHOLD, mean_kl
from inputspace.studies.claims import (
    CONCENTRATED,
    CONNECTED_BELOW,
    CONVERGED_SHARE,
    FLAT_OF_BOUND,
    KL_LEVEL,
    RANK_GAP,
    SPECIAL_FLATNESS,
    STUDY_SAYS,
    RunTables,
    study_verdicts,
)


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


def section(
    experiment: str,
    spec: dict,
    kinds: dict[str, str],
    tables: RunTables,
    pairs: dict[str, float],
    paths: dict[str, pd.DataFrame] | None = None,
    step_sizes: dict[str, str] | None = None,
) -> Section:
    """`step_sizes`: the lr each model's run got, as its record says (StepSize.describe)."""
    models = spec["models"]
    sequence_kind = spec["sequences"]["kind"]
    by_kind: dict[str, list[str]] = {}
    for model in models:
        by_kind.setdefault(kinds[model], []).append(model)
    claims = [
        f"for {kind} models ({', '.join(names)}): {STUDY_SAYS[(sequence_kind, kind)]}"
        for kind, names in by_kind.items()
    ]
    paths, step_sizes = paths or {}, step_sizes or {}
    table = pd.DataFrame(
        {
            m: {
                **({"Adam step size (lr)": step_sizes[m]} if m in step_sizes else {}),
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
    """The landscape tables the summary reads (table_names.SUMMARY_LANDSCAPE_TABLES)."""

    solutions: pd.DataFrame  # seq, start_kl, final_kl, steps, converged
    flatness: pd.DataFrame  # one row per probed point (solutions and controls)
    barriers: pd.DataFrame
    nearness: pd.DataFrame

    @classmethod
    def read(cls, path_of: Callable[[str], str]) -> "LandscapeTables":
        """Each table from the file (CSV or Parquet) `path_of(its name)` names."""
        return cls(**{field.name: _read_frame(path_of(field.name)) for field in fields(cls)})


def _read_frame(path: str) -> pd.DataFrame:
    return pd.read_csv(path) if str(path).endswith(".csv") else files.read_parquet(path)


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
    rows = {
        f"(3) Hessian at {row.point} (KL {row.kl:.2g}, {row.method}, {row.precision})": (
            _exact_spectrum(row) if row.method == "exact" else _estimated_spectrum(row)
        )
        for row in flat.itertuples()
    }
    exact_zero = flat[(flat.kl == 0) & (flat.method == "exact")]
    if len(exact_zero):
        rows["(3) prediction at an exact zero-loss point: rank at most d"] = _rank_at_zero(
            exact_zero.iloc[0]
        )
    rows["(3) verdict: dimension of the zero-loss set"] = _dimension_verdict(flat)
    return rows


CUTOFF_ORIGINS = {
    "rounding": "the measured rounding of the {precision} products",
    "tolerance": "rank_tolerance x the largest",
    "flat threshold": "the flat threshold",
}


def _exact_spectrum(row) -> str:
    """An exact spectrum's count, the eigenvalues either side of its cutoff and the gap
    between them. The eigenvalues in its tail are orders of magnitude (below the rounding,
    or at a point that float32 arithmetic found, their leading digits are another
    machine's too only by chance), so they are printed as the decade they lie in."""
    rank, d, n = int(row.numerical_rank), int(row.hidden), int(row.dimensions)
    origin = CUTOFF_ORIGINS[row.cutoff_origin].format(precision=row.precision)
    cutoff = f"the cutoff {_decade(row.rank_cutoff)} ({origin})"
    if rank == n:
        counted = f"numerical rank {rank} of {n}, full: no eigenvalue below {cutoff}"
    else:
        counted = (
            f"numerical rank {rank} against d = {d} (eigenvalues by magnitude, largest first): "
            f"lambda_{rank} in {_decade(row.eigenvalue_at_rank)} above {cutoff}, "
            f"lambda_{rank + 1} in {_decade(row.eigenvalue_after_rank)} below it, a gap in "
            f"{_decade(row.rank_gap)}"
        )
    return (
        f"{counted}; flat {row.flat_fraction:.2%} of {n} (magnitude at most "
        f"{row.flat_threshold:g} x the largest, {row.largest:.3g}; at least "
        f"{row.bound_flat_fraction:.2%} at a zero-loss point); lambda_d / largest in "
        f"{_decade(row.eigenvalue_d / row.largest)}, lambda_d+1 / largest in "
        f"{_decade(row.eigenvalue_after_d / row.largest)}"
    )


def _decade(value: float) -> str:
    """The power-of-ten range a positive value lies in, "1e-05–1e-04"."""
    if not np.isfinite(value) or value <= 0:
        return {np.inf: "infinity"}.get(value, "n/a" if np.isnan(value) else f"{value:g}")
    low = np.floor(np.log10(value))
    return f"{10**low:.0e}–{10 ** (low + 1):.0e}"


def _estimated_spectrum(row) -> str:
    """An estimate by quadrature: its counts as the brackets the quadrature guarantees."""
    return (
        f"numerical rank {_span(row.rank_low, row.rank_high, '.0f')} against d = {row.hidden} "
        f"(eigenvalues above the flat threshold); flat "
        f"{_span(row.flat_low, row.flat_high, '.1%')} of {row.dimensions} (magnitude at most "
        f"{row.flat_threshold:g} x the largest, {row.largest:.2g}; at least "
        f"{row.bound_flat_fraction:.1%} at a zero-loss point); {_resolution(row)}"
    )


def _span(low: float, high: float, form: str) -> str:
    """A bracket as "low–high" (one number where both print alike), "70.0–100.0%"."""
    a, b = f"{low:{form}}", f"{high:{form}}"
    return a if a == b else f"{a.removesuffix('%') if b.endswith('%') else a}–{b}"


def _resolution(row) -> str:
    nodes = round(1 / row.node_share)
    return (
        f"the brackets hold for every spectrum with the probes' moments, the weight one "
        f"quadrature node can carry at each threshold; {nodes} nodes of {row.node_share:.2%} "
        f"({row.node_share * row.dimensions:.0f} directions) each on average"
    )


def _rank_at_zero(row) -> str:
    """At an exact zero-loss point the rank is at most d; a count is meaningful only
    where the spectrum has a gap at its cutoff."""
    rank, d = int(row.numerical_rank), int(row.hidden)
    evidence = (
        f"{row.point}: numerical rank {rank} against d = {d}, lambda_{rank} / lambda_{rank + 1} "
        f"in {_decade(row.rank_gap)} at the cutoff ({row.precision} products)"
    )
    if not row.rank_gap >= RANK_GAP:
        return (
            f"within resolution: {evidence}; no gap of {RANK_GAP:g} at the cutoff, so the count "
            "depends on where the cutoff falls (a Hessian in float64 would settle it)"
        )
    return _hypothesis(rank <= d, f"{evidence} (a gap: at least {RANK_GAP:g})")


def _dimension_verdict(flat: pd.DataFrame) -> str:
    """Flat at every solution (at least FLAT_OF_BOUND of the bound) and flatter there than at
    the controls, each judged only beyond the quadrature's resolution."""
    solutions = flat[flat.kind == "solution"]
    controls = flat[flat.kind.isin(["random start", "prompt"])]
    if not len(solutions):
        return "not measured: no converged solution was probed"
    needed = FLAT_OF_BOUND * solutions.bound_flat_fraction
    evidence = (
        f"flat at the solutions: "
        f"{', '.join(_span(r.flat_low, r.flat_high, '.1%') for r in solutions.itertuples())} of "
        f"the directions (predicted at a zero-loss point: at least "
        f"{solutions.bound_flat_fraction.iloc[0]:.1%}; high-dimensional: at least "
        f"{FLAT_OF_BOUND:.0%} of that); at the controls: "
        + (
            ", ".join(
                f"{r.point} {_span(r.flat_low, r.flat_high, '.1%')}" for r in controls.itertuples()
            )
            or "none probed"
        )
    )
    least_flat = solutions.flat_low.min()
    if (controls.flat_high < least_flat - SPECIAL_FLATNESS).all() and len(controls):
        evidence += "; flatness is special to solutions"
    elif (controls.flat_low >= solutions.flat_high.min() - SPECIAL_FLATNESS).any():
        evidence += "; a control is about as flat"
    else:
        evidence += "; whether flatness is special to solutions is within resolution"
    if (solutions.flat_low >= needed).all():
        return _hypothesis(True, evidence)
    if (solutions.flat_high < needed).any():
        return _hypothesis(False, evidence)
    return (
        f"within resolution: {evidence}; more probes or Lanczos steps (landscape: slq_probes, "
        "slq_steps) would settle it"
    )


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
            f"pair {r.pair}: {r.straight_barrier:.2g} / {b:.2g} ({_percent(rel)})"
            for r, b, rel in zip(both.itertuples(), best, relative)
        )
        + (f"; {left_out} pair(s) left out" if left_out else ""),
        "(3) verdict: connectivity": _hypothesis(
            bool((relative < CONNECTED_BELOW).all()),
            f"largest barrier {_percent(relative.max())} of the start loss "
            f"(connected: under {CONNECTED_BELOW:.0%} on the best path)",
        ),
    }


def _percent(share: float) -> str:
    """A share to two significant digits (a barrier's third digit moves with the solutions,
    which float32 arithmetic finds)."""
    return f"{float(f'{share * 100:.2g}'):g}%"


def landscape_section(
    experiment: str, tables: dict[str, LandscapeTables], pairs: dict[str, float], solve_below: float
) -> Section:
    table = pd.DataFrame({m: landscape_rows(t, pairs[m], solve_below) for m, t in tables.items()})
    return Section(f"{experiment}: the zero-loss set", [HYPOTHESES], table)
