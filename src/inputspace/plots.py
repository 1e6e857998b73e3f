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
