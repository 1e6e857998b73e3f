"""Random sentences for an experiment, and how their norms compare with the vocabulary's."""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats

from inputspace.analysis.geometry import Ellipse
from inputspace.model.models import LanguageModel
from inputspace.optimisation.sequences import SequenceBatch, random_lengths, sample_random


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


def sample_sentences(lm: LanguageModel, ellipse: Ellipse, spec: dict, seed: int) -> SequenceBatch:
    generator = torch.Generator().manual_seed(seed)
    lengths = random_lengths(spec["count"], spec["min_length"], spec["max_length"], generator)
    return sample_random(lm, ellipse, lengths, generator)


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
