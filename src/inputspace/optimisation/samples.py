"""Random sentences for an experiment, and how their norms compare with the vocabulary's."""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats

from inputspace.analysis.geometry import Ellipse, sample_ellipse
from inputspace.analysis.run_measures import replicate_of
from inputspace.model.models import LanguageModel
from inputspace.optimisation.sequences import SequenceBatch, framed_points, random_lengths

REPLICATE_SEED_STRIDE = 1_000_003  # a prime: replicate seeds of nearby seeds do not meet


@dataclass(frozen=True)
class NormComparison:
    ks_statistic: float
    ks_p_value: float
    n_sampled: int
    n_vocab: int
    sampled_norm_mean: float
    sampled_norm_std: float
    vocab_norm_mean: float
    vocab_norm_std: float

    def as_dict(self) -> dict:
        return asdict(self)


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed replicate `replicate` of an experiment seeded `seed` draws from (replicate
    0 keeps `seed`)."""
    return seed + REPLICATE_SEED_STRIDE * replicate


def sample_sentences(
    lm: LanguageModel, ellipse: Ellipse, spec: dict, seed: int, replicates: int = 1
) -> SequenceBatch:
    """`spec["count"]` random sentences in `replicates` contiguous blocks (the sizes
    replicate_of gives): block k's lengths, then its points, drawn from its own generator
    seeded replicate_seed(seed, k), so each replicate is the draw one replicate of its
    size with that seed would make."""
    count = spec["count"]
    sizes = np.bincount(replicate_of(np.arange(count), count, replicates))
    lengths, points = [], []
    for replicate, size in enumerate(sizes.tolist()):
        generator = torch.Generator().manual_seed(replicate_seed(seed, replicate))
        block = random_lengths(size, spec["min_length"], spec["max_length"], generator)
        lengths += block
        points.append(sample_ellipse(ellipse, sum(block), generator))
    return framed_points(lm, lengths, torch.cat(points))


def sampled_norms(batch: SequenceBatch) -> np.ndarray:
    return batch.embeddings[batch.trainable].norm(dim=1).numpy()


def compare_norms(sample: np.ndarray, vocab: np.ndarray) -> NormComparison:
    """Two-sample Kolmogorov-Smirnov comparison of sampled and vocabulary norms."""
    result = stats.ks_2samp(sample, vocab)
    return NormComparison(
        ks_statistic=float(result.statistic),
        ks_p_value=float(result.pvalue),
        n_sampled=int(sample.size),
        n_vocab=int(vocab.size),
        sampled_norm_mean=float(sample.mean()),
        sampled_norm_std=float(sample.std()),
        vocab_norm_mean=float(vocab.mean()),
        vocab_norm_std=float(vocab.std()),
    )
