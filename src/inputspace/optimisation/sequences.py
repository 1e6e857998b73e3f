"""A batch of sequences to optimise: the one form every experiment's sources take.

Positions hold either a vocabulary token (its id, embedded as the model consumes it)
or a sampled point with no token (id -1). Special tokens and padding are never moved.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from inputspace.analysis.geometry import Ellipse, sample_ellipse
from inputspace.model.models import LanguageModel
from inputspace.model.prompts import render
from inputspace.tensors import read_tensors, write_tensors

NO_TOKEN = -1


@dataclass
class SequenceBatch:
    ids: Tensor  # [n, t] long: token id, NO_TOKEN for sampled points, pad id past the end
    attention_mask: Tensor  # [n, t] long
    embeddings: Tensor  # [n, t, d] float32 input embeddings
    trainable: Tensor  # [n, t] bool: positions the optimiser may move
    sites: Tensor  # [n] long: prediction site of each sequence

    def __len__(self) -> int:
        return self.ids.shape[0]

    def save(self, path: Path) -> None:
        write_tensors({name: getattr(self, name) for name in _FIELDS}, path)

    @classmethod
    def load(cls, path: Path) -> "SequenceBatch":
        tensors = read_tensors(path)
        return cls(**{name: tensors[name] for name in _FIELDS})

    def describe(self) -> pd.DataFrame:
        """One row per sequence: length, optimised tokens, prediction site, mean norm."""
        lengths = self.attention_mask.sum(dim=1)
        n_trainable = self.trainable.sum(dim=1)
        norms = self.embeddings.norm(dim=2)
        mean_norm = (norms * self.trainable).sum(dim=1) / n_trainable.clamp_min(1)
        return pd.DataFrame(
            {
                "seq": range(len(self)),
                "length": lengths.numpy(),
                "n_optimised": n_trainable.numpy(),
                "site": self.sites.numpy(),
                "mean_optimised_norm": mean_norm.numpy(),
            }
        )


_FIELDS = ("ids", "attention_mask", "embeddings", "trainable", "sites")


def special_frame(lm: LanguageModel) -> tuple[list[int], list[int]]:
    """The special-token ids the tokenizer puts before and after a single text."""
    probe = "a"
    bare = lm.tokenizer(probe, add_special_tokens=False).input_ids
    framed = lm.tokenizer(probe, add_special_tokens=True).input_ids
    start = next(i for i in range(len(framed)) if framed[i : i + len(bare)] == bare)
    return framed[:start], framed[start + len(bare) :]


def _pad_id(lm: LanguageModel) -> int:
    pad = lm.tokenizer.pad_token_id
    return pad if pad is not None else lm.tokenizer.eos_token_id


def trainable_positions(lm: LanguageModel, ids: Tensor, attention_mask: Tensor) -> Tensor:
    """The positions Adam may move: real tokens that are not special."""
    special = torch.tensor(lm.special_ids, dtype=ids.dtype)
    return attention_mask.bool() & ~torch.isin(ids, special)


@torch.no_grad()
def of_ids(lm: LanguageModel, ids: Tensor, attention_mask: Tensor) -> SequenceBatch:
    """A right-padded batch of token ids at their own input embeddings: its special
    tokens and padding held, its prediction sites where the model kind puts them."""
    return SequenceBatch(
        ids=ids,
        attention_mask=attention_mask,
        embeddings=lm.embed(ids).float().cpu(),
        trainable=trainable_positions(lm, ids, attention_mask),
        sites=lm.prediction_sites(ids, attention_mask),
    )


def from_prompts(lm: LanguageModel, prompts: list[str]) -> SequenceBatch:
    """Tokenize prompts (with their prediction sites) into a right-padded batch."""
    texts = [render(p, lm.kind, lm.tokenizer.mask_token) for p in prompts]
    token_lists = [lm.tokenizer(text).input_ids for text in texts]
    return of_ids(lm, *pad_batch(token_lists, _pad_id(lm)))


@torch.no_grad()
def sample_random(
    lm: LanguageModel, ellipse: Ellipse, lengths: list[int], generator: torch.Generator
) -> SequenceBatch:
    """Random sentences: each has `lengths[i]` points sampled from the ellipse, framed by
    the special tokens the model expects (and, for a masked LM, its mask token as the
    prediction site just before the closing special tokens)."""
    return framed_points(lm, lengths, sample_ellipse(ellipse, sum(lengths), generator))


@torch.no_grad()
def framed_points(lm: LanguageModel, lengths: list[int], points: Tensor) -> SequenceBatch:
    """Sentences of sampled `points` [sum(lengths), d], taken in order: `lengths[i]` of
    them for sentence i, framed as sample_random frames them."""
    prefix, suffix = special_frame(lm)
    site_tokens = [lm.mask_id] if lm.kind == "masked" else []
    token_lists = [prefix + [NO_TOKEN] * n + site_tokens + suffix for n in lengths]
    ids, attention_mask = pad_batch(token_lists, _pad_id(lm))
    sampled = ids == NO_TOKEN
    embeddings = lm.embed(ids.clamp_min(0)).float().cpu()
    embeddings[sampled] = points.to(embeddings.dtype)
    return SequenceBatch(
        ids=ids,
        attention_mask=attention_mask,
        embeddings=embeddings,
        trainable=sampled,
        sites=lm.prediction_sites(ids, attention_mask),
    )


def random_lengths(count: int, low: int, high: int, generator: torch.Generator) -> list[int]:
    return torch.randint(low, high + 1, (count,), generator=generator).tolist()


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad id lists into (ids, attention_mask), both [batch, longest]."""
    longest = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
