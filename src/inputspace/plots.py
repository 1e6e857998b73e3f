"""One style for every figure, and the figures themselves.

Figures are sized for print (single column 3.5 in, double 7 in) at 200 dpi, with
labelled axes and titles that name the model and experiment.
"""

from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

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
DOUBLE_COLUMN = (7.0, 3.0)


@contextmanager
def figure(path: Path, size: tuple[float, float] = DOUBLE_COLUMN, **subplots) -> Iterator:
    """Yield (fig, axes) in the house style; save to `path` atomically and close."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(figsize=size, layout="constrained", **subplots)
        try:
            yield fig, axes
            with atomic_output(path) as partial:
                fig.savefig(partial, format="png")
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
    with figure(path, size=(3.5, 3.0)) as (fig, ax):
        n_bins = int(np.clip(2 * np.sqrt(sample_norms.size), 10, 60))
        bins = np.histogram_bin_edges(np.concatenate([sample_norms, vocab_norms]), bins=n_bins)
        ax.hist(vocab_norms, bins=bins, density=True, alpha=0.5, label="vocabulary", color="C0")
        ax.hist(
            sample_norms, bins=bins, density=True, histtype="step", linewidth=1.6,
            label=f"sampled (n={sample_norms.size})", color="C1",
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
    with figure(path, size=(7.0, 4.8), nrows=2, sharex=True) as (fig, (top, bottom)):
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


def case_path(path_table: pd.DataFrame, kl: pd.DataFrame, candidates: int, title: str, path: Path) -> None:
    """The followed word's path under Adam: loss, distances, heading toward the
    counterpart word, and that heading's rank among all candidate tokens. One colour per
    (followed token, counterpart token) pair."""
    with figure(path, size=(7.0, 6.0), nrows=2, ncols=2, sharex=True) as (fig, axes):
        (loss_ax, distance_ax), (heading_ax, rank_ax) = axes
        loss_ax.semilogy(kl.step, kl.kl, color="k")
        loss_ax.set_ylabel("KL(target || predicted)")
        loss_ax.set_title("Loss at the prediction site")
        last_step = path_table.step.max()
        pair_handles = []
        for number, ((pos, _), rows) in enumerate(path_table.groupby(["pos", "toward_id"], sort=True)):
            colour = f"C{number % 10}"
            end = rows[rows.step == last_step].iloc[0]
            label = (
                f"{_token_label(end.token)} (position {pos}) vs {_token_label(end.toward_token)}; at step "
                f"{last_step} nearest to {_token_label(end.nearest_euclidean_token)} (L2), "
                f"{_token_label(end.nearest_cosine_token)} (cos)"
            )
            pair_handles.append(distance_ax.plot(rows.step, rows.l2_travelled, color=colour, label=label)[0])
            distance_ax.plot(rows.step, rows.distance_to_toward, color=colour, linestyle="--")
            distance_ax.axhline(rows.start_distance_to_toward.iloc[0], color=colour, linestyle=":", linewidth=1.0)
            heading_ax.plot(rows.step, rows.toward_heading_cosine, color=colour)
            heading_ax.plot(rows.step, rows.heading_cosine, color=colour, linestyle=":", linewidth=1.0)
            rank_ax.plot(rows.step, rows.toward_heading_rank.where(rows.toward_heading_rank > 0), color=colour)
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
        fig.legend(handles=pair_handles, loc="outside lower center", ncols=1, fontsize=7, frameon=False)
        fig.suptitle(title)
