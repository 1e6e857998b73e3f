"""Every figure of the workflow, in one house style: the geometry and case-study
figures of one model, then the figures over finished runs, one experiment at a time,
with its models side by side on shared scales.

Figures are sized for a book page (one-column and two-column widths from the config's
`figures` block, 3.5 and 7 inches by default), with labelled axes and titles that name the
model and experiment. Each static figure is a 200 dpi PNG and, for print, a PDF with its
fonts embedded as TrueType and an SVG, as the config's formats ask.

(Longer than most modules: one function per figure, all in this one style, so that a
figure's look is changed in one place.)
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from inputspace.analysis.run_measures import SMALL_DISPLACEMENT, THRESHOLD, Moves, dimension_rms  # noqa: E402
from inputspace.files import atomic_output  # noqa: E402

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
}
# Print copies: fonts embedded as TrueType (not Type 3), no creation date and fixed SVG
# ids, so that the same figure gives the same bytes.
PRINT_STYLE = {"pdf.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "inputspace"}
UNDATED = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


@dataclass(frozen=True)
class Page:
    """The config's `figures` block: widths in inches and the formats saved."""

    one_column: float = 3.5
    two_column: float = 7.0
    formats: tuple[str, ...] = ("png",)


page = Page()


def use(style: dict[str, Any]) -> None:
    """Draw this job's figures for the config's `figures` block."""
    global page
    page = Page(style["one_column"], style["two_column"], tuple(style["formats"]))


def one_column(height: float) -> tuple[float, float]:
    return page.one_column, height


def two_column(height: float) -> tuple[float, float]:
    return page.two_column, height


def print_copies(path: Path) -> list[Path]:
    """The PDF and SVG beside a PNG that the formats ask for."""
    return [Path(path).with_suffix(f".{kind}") for kind in page.formats if kind != "png"]


@contextmanager
def figure(path: Path, size: tuple[float, float] | None = None, **subplots) -> Iterator:
    """Yield (fig, axes) in the house style (two columns wide unless `size`); save the
    PNG at `path` and its print copies beside it, each atomically, and close."""
    with plt.rc_context({**STYLE, **PRINT_STYLE}):
        fig, axes = plt.subplots(figsize=size or two_column(3.0), layout="constrained", **subplots)
        try:
            yield fig, axes
            for target in [Path(path), *print_copies(path)]:
                kind = target.suffix.lstrip(".")
                with atomic_output(target) as partial:
                    fig.savefig(partial, format=kind, metadata=UNDATED.get(kind))
        finally:
            plt.close(fig)


def ellipse_spectrum(spectrum: pd.DataFrame, model: str, path: Path) -> None:
    """Eigenvalues of the vocabulary covariance, and the variance the top axes explain."""
    with figure(path, ncols=2) as (fig, (left, right)):
        left.semilogy(spectrum["rank"], spectrum["eigenvalue"], color="C0")
        left.set_xlabel("principal axis (rank)")
        left.set_ylabel("eigenvalue (variance along axis)")
        left.set_title("Covariance spectrum")
        right.plot(spectrum["rank"], spectrum["cumulative"], color="C1")
        for level, colour in ((0.5, "0.5"), (0.9, "0.3"), (0.99, "0.1")):
            axes_needed = int(np.searchsorted(spectrum["cumulative"].to_numpy(), level) + 1)
            right.axhline(level, color=colour, linestyle=":", linewidth=0.8)
            right.annotate(
                f"{level:.0%}: {axes_needed} axes",
                (axes_needed, level),
                xytext=(-4, -10),
                textcoords="offset points",
                ha="right",
                fontsize=7,
            )
        right.set_xlabel("number of principal axes")
        right.set_ylabel("cumulative fraction of variance")
        right.set_ylim(0, 1.02)
        right.set_title("Variance explained")
        fig.suptitle(f"{model}: hyper-ellipse of the non-special vocabulary embeddings")


def norm_comparison(
    sample_norms: np.ndarray, vocab_norms: np.ndarray, ks: float, title: str, path: Path
) -> None:
    """Histograms of the L2 norms of sampled points and of vocabulary embeddings."""
    with figure(path, size=one_column(3.0)) as (fig, ax):
        n_bins = int(np.clip(2 * np.sqrt(sample_norms.size), 10, 60))
        bins = np.histogram_bin_edges(np.concatenate([sample_norms, vocab_norms]), bins=n_bins)
        ax.hist(vocab_norms, bins=bins, density=True, alpha=0.5, label="vocabulary", color="C0")
        ax.hist(
            sample_norms,
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.6,
            label=f"sampled (n={sample_norms.size})",
            color="C1",
        )
        ax.set_xlabel("L2 norm of input embedding")
        ax.set_ylabel("density")
        ax.legend(title=f"KS statistic {ks:.3f}")
        ax.set_title(title)


def _token_label(token: str) -> str:
    return repr(token)


def gradient_bars(table: pd.DataFrame, followed: list[int], title: str, path: Path) -> None:
    """Per token of the source prompt: the gradient's L2 norm, and its cosine with the
    token's own embedding; the followed word's tokens stand out, special tokens are grey."""
    x = np.arange(len(table))
    colours = np.where(table.optimised.to_numpy(), "C0", "0.7").astype(object)
    colours[[pos for pos in followed if pos < len(table)]] = "C3"
    with figure(path, size=two_column(4.8), nrows=2, sharex=True) as (fig, (top, bottom)):
        top.bar(x, table.grad_norm, color=colours)
        top.set_ylabel("L2 norm of gradient")
        top.set_title("Gradient norm per token")
        bottom.bar(x, table.cos_grad_embedding, color=colours)
        bottom.axhline(0, color="0.3", linewidth=0.8)
        limit = max(0.05, float(np.abs(table.cos_grad_embedding).max()) * 1.15)
        bottom.set_ylim(-limit, limit)
        bottom.set_ylabel("cos(gradient, own embedding)")
        bottom.set_title("Alignment of the gradient with the token's own embedding")
        bottom.set_xticks(x, [_token_label(t) for t in table.token], rotation=40, ha="right")
        bottom.set_xlabel("source prompt token")
        handles = [
            Patch(color="C0", label="optimised token"),
            Patch(color="C3", label="followed word"),
            Patch(color="0.7", label="special (not optimised)"),
        ]
        top.set_ylim(0, float(table.grad_norm.max()) * 1.3)  # headroom for the legend
        top.legend(handles=handles, loc="upper left", ncols=3)
        fig.suptitle(title)


def case_path(
    path_table: pd.DataFrame, kl: pd.DataFrame, candidates: int, title: str, path: Path
) -> None:
    """The followed word's path under Adam: loss, distances, heading toward the
    counterpart word, and that heading's rank among all candidate tokens. One colour per
    (followed token, counterpart token) pair."""
    with figure(path, size=two_column(6.0), nrows=2, ncols=2, sharex=True) as (fig, axes):
        (loss_ax, distance_ax), (heading_ax, rank_ax) = axes
        loss_ax.semilogy(kl.step, kl.kl, color="k")
        loss_ax.set_ylabel("KL(target || predicted)")
        loss_ax.set_title("Loss at the prediction site")
        last_step = path_table.step.max()
        pair_handles = [
            _followed_pair(axes, rows, pos, f"C{number % 10}", last_step)
            for number, ((pos, _), rows) in enumerate(
                path_table.groupby(["pos", "toward_id"], sort=True)
            )
        ]
        _label_case_axes(axes, candidates, last_step)
        fig.legend(
            handles=pair_handles, loc="outside lower center", ncols=1, fontsize=7, frameon=False
        )
        fig.suptitle(title)


def _followed_pair(axes, rows: pd.DataFrame, pos: int, colour: str, last_step: int) -> Line2D:
    """One followed token against its counterpart, on the three path panels; the handle
    its legend entry names it by."""
    (_, distance_ax), (heading_ax, rank_ax) = axes
    end = rows[rows.step == last_step].iloc[0]
    label = (
        f"{_token_label(end.token)} (position {pos}) vs {_token_label(end.toward_token)}; "
        f"at step {last_step} nearest to {_token_label(end.nearest_euclidean_token)} (L2), "
        f"{_token_label(end.nearest_cosine_token)} (cos)"
    )
    (handle,) = distance_ax.plot(rows.step, rows.l2_travelled, color=colour, label=label)
    distance_ax.plot(rows.step, rows.distance_to_toward, color=colour, linestyle="--")
    distance_ax.axhline(
        rows.start_distance_to_toward.iloc[0], color=colour, linestyle=":", linewidth=1.0
    )
    heading_ax.plot(rows.step, rows.toward_heading_cosine, color=colour)
    heading_ax.plot(rows.step, rows.heading_cosine, color=colour, linestyle=":", linewidth=1.0)
    rank_ax.plot(
        rows.step, rows.toward_heading_rank.where(rows.toward_heading_rank > 0), color=colour
    )
    return handle


def _label_case_axes(axes, candidates: int, last_step: int) -> None:
    (_, distance_ax), (heading_ax, rank_ax) = axes
    styles = [
        Line2D([], [], color="0.2", label="travelled from start"),
        Line2D([], [], color="0.2", linestyle="--", label="to target token"),
        Line2D([], [], color="0.2", linestyle=":", label="start distance to target"),
    ]
    distance_ax.legend(handles=styles, loc="center right", fontsize=7)
    distance_ax.set_ylabel("Euclidean distance")
    distance_ax.set_title("Distances of the followed token")
    heading_ax.plot([], [], color="0.2", label="toward target token")
    heading_ax.plot([], [], color="0.2", linestyle=":", label="best of all tokens")
    heading_ax.legend(fontsize=7)
    heading_ax.axhline(0, color="0.3", linewidth=0.8)
    heading_ax.set_ylabel("cos(e - e0, v - e0)")
    heading_ax.set_title("Cosine of the heading")
    rank_ax.set_yscale("log")
    rank_ax.invert_yaxis()
    rank_ax.set_ylabel(f"rank among {candidates:,} tokens (1 = best)")
    rank_ax.set_title("Rank of the heading toward target")
    for ax in axes.flat:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, last_step)
    for ax in (heading_ax, rank_ax):
        ax.set_xlabel("Adam step (symlog scale)")


# -------------------------------------------------------------- per experiment, models side by side

PANEL = (3.4, 2.6)  # inches per model panel


def _size(columns: int, rows: int = 1) -> tuple[float, float]:
    return min(page.two_column, max(5.2, PANEL[0] * columns + 0.4)), PANEL[1] * rows + 0.6


def kl_curves(steps: pd.DataFrame, models: list[str], title: str, path: Path) -> None:
    """KL per sequence (thin) and its mean (thick), log scale, one panel per model."""
    with _sequence_panels(steps, models, "kl", "C0", title, path) as (axes, runs):
        for ax, run in zip(axes, runs):
            mean = run.groupby("step").kl.mean()
            ax.plot(
                mean.index, mean.to_numpy(), color="k", linewidth=2, label="mean over sequences"
            )
            ax.axhline(THRESHOLD, color="C3", linestyle=":", label=f"KL = {THRESHOLD:g}")
            ax.set_yscale("log")
        axes[0].set_ylabel("KL(target || predicted) [nats]")
        axes[0].legend(loc="lower left")


def travel_curves(steps: pd.DataFrame, models: list[str], title: str, path: Path) -> None:
    """Total L2 travelled by each sequence's optimised tokens over the steps."""
    with _sequence_panels(steps, models, "l2_total", "C2", title, path) as (axes, _):
        axes[0].set_ylabel("total L2 travelled per sequence")


@contextmanager
def _sequence_panels(
    steps: pd.DataFrame, models: list[str], column: str, colour: str, title: str, path: Path
):
    """One panel per model, shared y, one thin line per sequence of `column` over steps."""
    with figure(path, size=_size(len(models)), ncols=len(models), sharey=True, squeeze=False) as (
        fig,
        axes,
    ):
        runs = [steps[steps.model == model] for model in models]
        for ax, model, run in zip(axes[0], models, runs):
            for _, sequence in run.groupby("seq"):
                optimised = sequence[
                    sequence.active
                ]  # a stopped sequence's line ends where it left the batch
                ax.plot(optimised.step, optimised[column], color=colour, alpha=0.35, linewidth=0.7)
            ax.set_xlabel("Adam step")
            ax.set_title(f"{model} ({run.seq.nunique()} sequences)")
        yield axes[0], runs
        fig.suptitle(title)


def displacement_distribution(moves: dict[str, Moves], title: str, path: Path) -> None:
    """Per-dimension displacement over all tokens and dimensions: histogram and the
    cumulative distribution of its magnitude; one row per model, shared axes."""
    models = list(moves)
    size = two_column(2.4 * len(models) + 0.6)
    limit = max(float(np.abs(m.delta).max()) for m in moves.values())
    with figure(path, size=size, nrows=len(models), ncols=2, squeeze=False, sharex="col") as (
        fig,
        axes,
    ):
        for (hist_ax, cdf_ax), model in zip(axes, models):
            values = moves[model].delta.ravel()
            hist_ax.hist(values, bins=np.linspace(-limit, limit, 101), color="C0")
            hist_ax.set_yscale("log")
            hist_ax.set_ylabel("count of (token, dimension)")
            hist_ax.set_title(f"{model}: histogram")
            magnitude = np.sort(np.abs(values))
            cdf_ax.plot(magnitude, np.arange(1, magnitude.size + 1) / magnitude.size, color="C1")
            cdf_ax.axvline(SMALL_DISPLACEMENT, color="0.4", linestyle=":")
            below = (magnitude < SMALL_DISPLACEMENT).mean()
            cdf_ax.annotate(
                f"{below:.1%} below {SMALL_DISPLACEMENT}",
                (SMALL_DISPLACEMENT, below),
                xytext=(5, -12),
                textcoords="offset points",
                fontsize=7,
            )
            cdf_ax.set_xscale("log")
            cdf_ax.set_ylabel("cumulative fraction")
            cdf_ax.set_title(f"{model}: cumulative, magnitude")
        axes[-1, 0].set_xlabel("end - start, one coordinate")
        axes[-1, 1].set_xlabel("|end - start|, one coordinate (log scale)")
        fig.suptitle(title)


def favoured(moves: dict[str, Moves], title: str, path: Path) -> None:
    """Is any dimension or token favoured? Left: RMS displacement of each dimension over
    all tokens; right: each token's L2 displacement, sorted. Flat profiles: none is."""
    models = list(moves)
    size = two_column(2.4 * len(models) + 0.6)
    with figure(
        path, size=size, nrows=len(models), ncols=2, squeeze=False, sharex="col", sharey="col"
    ) as (fig, axes):
        for (dim_ax, token_ax), model in zip(axes, models):
            move = moves[model]
            rms = dimension_rms(move.delta)
            dim_ax.plot(np.arange(rms.size), rms, ".", markersize=2, color="C0")
            dim_ax.axhline(np.median(rms), color="k", linewidth=0.8, label="median")
            dim_ax.set_ylabel("RMS displacement")
            dim_ax.set_title(f"{model}: dimensions, max/median {rms.max() / np.median(rms):.1f}")
            dim_ax.legend(loc="upper right")
            l2 = np.sort(move.l2)[::-1]
            token_ax.bar(np.arange(l2.size), l2, width=1.0, color="C2")
            token_ax.axhline(np.median(l2), color="k", linewidth=0.8)
            token_ax.set_ylabel("L2 travelled")
            token_ax.set_title(f"{model}: tokens, max/median {l2.max() / np.median(l2):.1f}")
        axes[-1, 0].set_xlabel("embedding dimension")
        axes[-1, 1].set_xlabel("optimised token, by L2 travelled")
        fig.suptitle(title)


def travel_against_vocabulary(
    curves: dict[str, pd.DataFrame], travel: dict[str, np.ndarray], title: str, path: Path
) -> None:
    """Smoothed histograms (KDE) of per-token L2 travelled, distances between random
    vocabulary pairs and nearest-neighbour distances, on a shared distance axis."""
    models = list(curves)
    labels = {
        "travelled": ("L2 travelled per token", "C3"),
        "random_pairs": ("random vocabulary pairs", "C0"),
        "nearest_neighbours": ("vocabulary nearest neighbours", "C1"),
    }
    with figure(path, size=_size(len(models)), ncols=len(models), sharex=True, squeeze=False) as (
        fig,
        axes,
    ):
        for ax, model in zip(axes[0], models):
            curve = curves[model]
            for column, (label, colour) in labels.items():
                if curve[column].notna().any():
                    ax.fill_between(curve.x, curve[column], color=colour, alpha=0.25)
                    ax.plot(curve.x, curve[column], color=colour, label=label)
            ax.plot(travel[model], np.zeros_like(travel[model]), "|", color="C3", markersize=10)
            ax.set_xlabel("Euclidean distance in input-embedding space")
            ax.set_title(model)
        axes[0, 0].set_ylabel("density")
        axes[0, 0].legend(loc="upper right")
        fig.suptitle(title)


def _topk_panel(ax, frame: pd.DataFrame, strings: np.ndarray, step: int, top: float) -> None:
    frame = frame.sort_values("rank")
    y = np.arange(len(frame))[::-1]
    ax.barh(y, frame.prob, color="C0")
    ax.set_yticks(y, [repr(t) for t in strings[frame.token_id.to_numpy()]], fontsize=6.5)
    ax.set_xlim(0, top)
    ax.set_title(f"step {step}", fontsize=8)


def _topk_layout(topk: pd.DataFrame) -> tuple[list[int], float]:
    steps = sorted(topk.step.unique())
    return steps, min(1.0, float(topk.prob.max()) * 1.1)


def topk_small_multiples(
    topk: pd.DataFrame, strings: dict[str, np.ndarray], columns: int, title: str, path: Path
) -> None:
    """Top-k predictions at the prediction site at a few logged steps (sequence 0)."""
    models = list(strings)
    steps, top = _topk_layout(topk)
    shown = [
        steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, columns).round().astype(int))
    ]
    size = two_column(1.9 * len(models) + 0.7)
    with figure(
        path, size=size, nrows=len(models), ncols=len(shown), squeeze=False, sharex=True
    ) as (fig, axes):
        for row, model in enumerate(models):
            run = topk[topk.model == model]
            for ax, step in zip(axes[row], shown):
                _topk_panel(ax, run[run.step == step], strings[model], step, top)
            axes[row, 0].set_ylabel(model)
        for ax in axes[-1]:
            ax.set_xlabel("probability")
        fig.suptitle(title)


def topk_animation(
    topk: pd.DataFrame, strings: dict[str, np.ndarray], title: str, path: Path, fps: int = 3
) -> None:
    """GIF: one frame per logged step, the top-k predictions of sequence 0, per model."""
    models = list(strings)
    steps, top = _topk_layout(topk)
    frames = []
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(models), figsize=_size(len(models)), layout="constrained", squeeze=False
        )
        try:
            for step in steps:
                for ax, model in zip(axes[0], models):
                    ax.clear()
                    _topk_panel(
                        ax,
                        topk[(topk.model == model) & (topk.step == step)],
                        strings[model],
                        step,
                        top,
                    )
                    ax.set_title(f"{model}, step {step}")
                    ax.set_xlabel("probability")
                fig.suptitle(title)
                fig.canvas.draw()
                frames.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB"))
        finally:
            plt.close(fig)
    with atomic_output(path) as partial:
        frames[0].save(
            partial,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=int(1000 / fps),
            loop=0,
        )


def local_dimension(
    singular: pd.DataFrame, dimensions: pd.DataFrame, title: str, path: Path
) -> None:
    """Singular values of the prediction's Jacobian at each point, relative to the
    largest, by index: index d dotted (the bound on the rank), each point's cutoff dashed."""
    with figure(path, size=one_column(3.4)) as (fig, ax):
        for number, row in enumerate(dimensions.itertuples()):
            colour = f"C{number % 10}"
            values = singular[singular.point == row.point]
            ax.semilogy(
                values["index"],
                values.relative.clip(lower=1e-18),
                color=colour,
                linewidth=1.0,
                linestyle="-" if row.kind == "solution" else "-.",
                label=f"{row.point} (KL {row.kl:.1e}): rank {row.rank}, "
                f"set of dimension {row.set_dimension} of {row.dimensions}",
            )
            ax.axhline(row.cutoff, color=colour, linestyle="--", linewidth=0.6)
        if len(dimensions):
            hidden = int(dimensions.hidden.iloc[0])
            ax.axvline(hidden, color="k", linestyle=":", linewidth=0.9)
            ax.annotate(
                f" d = {hidden}",
                (hidden, 0.98),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                va="top",
                ha="right",
            )
        ax.set_xlabel("singular value index (largest first)")
        ax.set_ylabel("singular value / largest")
        ax.legend(fontsize=5.5, title="dashed: rounding cutoff", title_fontsize=6)
        ax.set_title(title.replace(": ", ":\n", 1), fontsize=8.5)


def hessian_spectrum(spectra: pd.DataFrame, flatness: pd.DataFrame, title: str, path: Path) -> None:
    """|eigenvalue| / the largest, for the Hessian at each point: exact spectra as curves
    by index (index d marked: the rank bound at a zero-loss point; dashed, each point's
    rank tolerance), stochastic Lanczos estimates as the share of directions at least as
    curved; the dotted horizontal / vertical line is the flat threshold. Where the config
    took no spectrum, the figure says so."""
    exact = flatness[flatness.method == "exact"]
    estimated = flatness[flatness.method == "slq"]
    columns = max(1, int(len(exact) > 0) + int(len(estimated) > 0))
    colours = {point: f"C{number % 10}" for number, point in enumerate(flatness.point)}
    with figure(
        path, size=(min(page.two_column, 3.6 * columns + 0.4), 3.6), ncols=columns, squeeze=False
    ) as (fig, axes):
        panels = iter(axes[0])
        if not len(flatness):
            _not_taken(next(panels))
        else:
            threshold = float(flatness.flat_threshold.iloc[0])
            if len(exact):
                _exact_spectra(next(panels), spectra, exact, colours, threshold)
            if len(estimated):
                _estimated_spectra(next(panels), spectra, estimated, colours, threshold)
        fig.suptitle(title, fontsize=9)


def _not_taken(ax) -> None:
    ax.text(
        0.5,
        0.5,
        "No Hessian spectrum was taken in this config\n"
        "(landscape: hessian_sequences 0, control_prompt null).\n"
        "The zero-loss set's dimension is measured from the\n"
        "exact Jacobian instead (local_dimension figure).",
        ha="center",
        va="center",
        fontsize=8,
        transform=ax.transAxes,
    )
    ax.set_axis_off()


def _exact_spectra(ax, spectra, exact, colours, threshold: float) -> None:
    for row in exact.itertuples():
        values = spectra[spectra.point == row.point].eigenvalue.abs().sort_values(ascending=False)
        relative = (values / row.largest).clip(lower=1e-16)
        ax.semilogy(
            np.arange(1, len(values) + 1),
            relative,
            color=colours[row.point],
            linewidth=1.0,
            label=f"{row.point} (KL {row.kl:.1e}): "
            f"rank {row.numerical_rank:.0f} of {row.dimensions}",
        )
        ax.axhline(
            row.rank_cutoff / row.largest, color=colours[row.point], linestyle="--", linewidth=0.7
        )
    hidden = int(exact.hidden.iloc[0])
    ax.axvline(hidden, color="k", linestyle=":", linewidth=0.9)
    ax.annotate(
        f" d = {hidden}", (hidden, 0.98), xycoords=("data", "axes fraction"), fontsize=7, va="top"
    )
    ax.axhline(threshold, color="0.4", linestyle=":", linewidth=0.9)
    ax.set_xlabel("eigenvalue index (largest |eigenvalue| first)")
    ax.set_ylabel("|eigenvalue| / largest")
    ax.legend(fontsize=6, title="dashed: rank tolerance; dotted: flat threshold", title_fontsize=6)
    ax.set_title("whole Hessian (exact)", fontsize=8.5)


def _estimated_spectra(ax, spectra, estimated, colours, threshold: float) -> None:
    for row in estimated.itertuples():
        nodes = spectra[spectra.point == row.point]
        relative = (nodes.eigenvalue.abs() / row.largest).clip(lower=1e-16)
        order = np.argsort(relative.to_numpy())
        weights = nodes.weight.to_numpy()[order]
        share = 1 - np.cumsum(weights) + weights
        ax.step(
            relative.to_numpy()[order],
            share,
            where="post",
            color=colours[row.point],
            label=f"{row.point} (KL {row.kl:.1e}): "
            f"flat {row.flat_fraction:.1%} of {row.dimensions}",
        )
    ax.axvline(threshold, color="0.4", linestyle=":", linewidth=0.9)
    ax.set_xscale("log")
    ax.set_xlabel("|eigenvalue| / largest")
    ax.set_ylabel("share of directions at least this curved")
    ax.legend(fontsize=6, title="dotted: flat threshold", title_fontsize=6)
    ax.set_title("density by stochastic Lanczos quadrature", fontsize=8.5)


PATH_NAMES = {"straight": "straight", "bent": "string method"}


def barrier_paths(
    paths: pd.DataFrame, barriers: pd.DataFrame, traces: pd.DataFrame, title: str, path: Path
) -> None:
    """Left: KL along the straight segment between two converged solutions (solid) and
    along the path the string method found (dashed), one colour per pair; pairs with an
    unconverged end are named and left out. Right: over the search, the highest KL on the
    whole path at each check (solid) and the mean KL at the points it moves (dotted)."""
    with figure(path, size=two_column(3.2), ncols=2) as (fig, (ax, trace_ax)):
        for row in barriers.itertuples():
            for kind, style, height in (
                ("straight", "-", row.straight_barrier),
                ("bent", "--", row.bent_barrier),
            ):
                line = paths[(paths.pair == row.pair) & (paths.path == kind)]
                if len(line):
                    ax.plot(
                        line.position,
                        line.loss,
                        linestyle=style,
                        color=f"C{row.pair % 10}",
                        label=f"pair {row.pair} ({PATH_NAMES[kind]}): barrier {height:.2g}",
                    )
        for pair, rows in traces.groupby("pair"):
            colour, checked = f"C{int(pair) % 10}", rows.dropna(subset=["path_highest"])
            trace_ax.plot(
                checked.step,
                checked.path_highest,
                color=colour,
                linewidth=0.9,
                marker=".",
                label=f"pair {pair}: highest on the path",
            )
            trace_ax.plot(rows.step, rows["mean"], color=colour, linewidth=0.7, linestyle=":")
        left_out = barriers[~barriers.both_converged.astype(bool)]
        if len(left_out):
            ax.text(
                0.02,
                0.02,
                "left out (an end not converged): pair " + ", ".join(map(str, left_out.pair)),
                transform=ax.transAxes,
                fontsize=6.5,
            )
        ax.set_yscale("log")
        ax.set_xlabel("position along the path (0, 1: the two solutions)")
        ax.set_ylabel("KL(target || predicted)")
        ax.legend(fontsize=6)
        trace_ax.set_yscale("log")
        trace_ax.set_xlabel("path optimisation step")
        trace_ax.set_ylabel("KL (dotted: mean at the moved points)")
        if len(traces):
            trace_ax.legend(fontsize=6)
        else:
            trace_ax.text(
                0.5, 0.5, "no path was searched", ha="center", transform=trace_ax.transAxes
            )
        fig.suptitle(title, fontsize=9)


def nearness(table: pd.DataFrame, title: str, path: Path) -> None:
    """Per token of each random start: distance to its own solution, to the nearest
    vocabulary token and to another start's solution."""
    columns = {
        "to_own_solution": ("to its own solution", "C3"),
        "to_nearest_token": ("to the nearest vocabulary token", "C1"),
        "to_other_solution": ("to another start's solution", "C0"),
    }
    with figure(path, size=one_column(3.4)) as (fig, ax):
        bins = np.histogram_bin_edges(table[list(columns)].to_numpy().ravel(), bins=30)
        for column, (label, colour) in columns.items():
            ax.hist(
                table[column],
                bins=bins,
                histtype="stepfilled",
                alpha=0.35,
                color=colour,
                label=label,
            )
            ax.axvline(table[column].median(), color=colour, linewidth=1.0)
        ax.set_xlabel("distance from a random start, per token")
        ax.set_ylabel("tokens")
        ax.legend(fontsize=6.5, title="lines: medians", title_fontsize=6.5)
        ax.set_title(title.replace(": ", ":\n", 1), fontsize=8.5)
