"""The bark-to-neigh case study (experiments 1 and 2 of the study).

Experiment 1: the gradient of cross-entropy(source prediction, target distribution)
with respect to the source prompt's input embeddings, and which vocabulary tokens it
points at. Descending the loss moves an embedding along MINUS the gradient, so the
tables name the tokens of both signs: `descent` (along -g) and `ascent` (along +g).

Experiment 2: the path of a followed word (" bark") while Adam moves the prompt toward
the target, measured against the target's counterpart word (" neigh"). A word the
tokenizer splits into several tokens is followed token by token, and each of its tokens
is compared with each token of the counterpart word.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from inputspace.analysis.geometry import VocabIndex, project
from inputspace.model.models import LanguageModel
from inputspace.model.prompts import render, word_span

TOP = 5  # vocabulary tokens listed per direction and measure


# ------------------------------------------------------------------ the followed word


def locate(
    tokenizer, manifest: dict[str, Any], prompt: str, word: str
) -> tuple[list[int], list[int]]:
    """(positions, token ids) of the non-special tokens covering `word` in `prompt` as a
    model of the manifest's kind reads it (positions as in `sequences.from_prompts`)."""
    text = render(prompt, manifest["kind"], tokenizer.mask_token)
    start, end = word_span(text, word)
    encoded = tokenizer(text, return_offsets_mapping=True)
    special = set(manifest["special_token_ids"]["all"])
    found = [
        (pos, token_id)
        for pos, (token_id, (first, last)) in enumerate(
            zip(encoded.input_ids, encoded.offset_mapping)
        )
        if token_id not in special and first < end and last > start
    ]
    return [pos for pos, _ in found], [token_id for _, token_id in found]


# ------------------------------------------------------------------ experiment 1


def cross_entropy(logits: Tensor, target_logprobs: Tensor) -> Tensor:
    """Cross-entropy of softmax(logits) against the target's probabilities, per row (in
    the logits' precision). Its gradient equals that of KL(target || predicted)."""
    logprobs = F.log_softmax(logits, dim=-1)
    return -(target_logprobs.to(logprobs.dtype).exp() * logprobs).sum(dim=-1)


def input_gradient(
    lm: LanguageModel,
    embeddings: Tensor,
    attention_mask: Tensor,
    sites: Tensor,
    target_logprobs: Tensor,
) -> tuple[Tensor, Tensor]:
    """(gradient of the summed loss with respect to `embeddings`, loss per sequence)."""
    device = lm.device
    leaf = embeddings.detach().to(device).requires_grad_(True)
    logits = lm.logits_at(leaf, attention_mask.to(device), sites.to(device))
    loss = cross_entropy(logits, target_logprobs.to(device))
    (gradient,) = torch.autograd.grad(loss.sum(), leaf)
    return gradient, loss.detach()


@dataclass(frozen=True)
class Pointing:
    """For each gradient row: the top tokens along -g and +g by one cosine measure."""

    descent_ids: Tensor  # [m, TOP]
    descent_cos: Tensor
    ascent_ids: Tensor
    ascent_cos: Tensor


def pointing(scores: Tensor, index: VocabIndex, k: int = TOP) -> Pointing:
    """Top-k candidates of +cos (ascent) and of -cos (descent); NaN scores never win."""
    up = scores.nan_to_num(nan=-float("inf")).topk(k, dim=1)
    down = (-scores).nan_to_num(nan=-float("inf")).topk(k, dim=1)
    return Pointing(index.ids[down.indices], down.values, index.ids[up.indices], up.values)


def gradient_cosines(
    gradient: Tensor, embeddings: Tensor, index: VocabIndex
) -> tuple[Tensor, Tensor]:
    """cos(g, v_j) and cos(g, v_j - e) for every candidate j, [m, candidates] each; the
    second is NaN where v_j = e (a token against itself, where it is undefined)."""
    g = gradient.float()
    e = embeddings.float()
    g_norm = g.norm(dim=1, keepdim=True).clamp_min(1e-30)
    dots = g @ index.vectors.T
    toward_v = dots / (g_norm * index.norms)
    gap_squared = index.squared - 2 * (e @ index.vectors.T) + (e * e).sum(dim=1, keepdim=True)
    gap = gap_squared.clamp_min(0).sqrt()
    along_gap = dots - (g * e).sum(dim=1, keepdim=True)
    # Both expansions lose the difference to rounding (about sqrt(eps) of the norm) where
    # v_j is near e: there, from the difference itself
    rows, columns = torch.nonzero(gap_squared <= 1e-4 * index.squared, as_tuple=True)
    difference = index.vectors[columns] - e[rows]
    gap[rows, columns] = difference.norm(dim=1)
    along_gap[rows, columns] = (g[rows] * difference).sum(dim=1)
    toward_gap = along_gap / (g_norm * gap)
    toward_gap[gap <= 1e-6 * index.norms] = float("nan")
    return toward_v, toward_gap


def gradient_table(
    ids: Tensor,
    embeddings: Tensor,
    gradient: Tensor,
    optimised: Tensor,
    index: VocabIndex,
    strings: np.ndarray,
) -> pd.DataFrame:
    """One row per position of one sequence: its token, the gradient's norm and cosine
    with the token's own embedding, and the top tokens along -g and +g by cos(g, v_j)
    and by cos(g, v_j - e)."""
    toward_v, toward_gap = gradient_cosines(gradient, embeddings, index)
    table = pd.DataFrame(
        {
            "pos": np.arange(len(ids)),
            "token_id": ids.numpy(),
            "token": strings[ids.numpy()],
            "optimised": optimised.numpy(),
            "grad_norm": gradient.float().norm(dim=1).cpu().numpy(),
            "cos_grad_embedding": F.cosine_similarity(gradient.float(), embeddings.float(), dim=1)
            .cpu()
            .numpy(),
        }
    )
    for measure, scores in (("v", toward_v), ("v_minus_e", toward_gap)):
        point = pointing(scores, index)
        for sign in ("descent", "ascent"):
            top_ids = getattr(point, f"{sign}_ids").cpu().numpy()
            table[f"{sign}_{measure}_tokens"] = [list(strings[row]) for row in top_ids]
            table[f"{sign}_{measure}_cos"] = list(getattr(point, f"{sign}_cos").cpu().numpy())
    return table


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The gradient table with list columns folded into 'token (cosine)' strings."""
    out = table.drop(columns=[c for c in table if c.endswith("_cos") or c.endswith("_tokens")])
    out["token"] = [repr(t) for t in table.token]
    for column in table:
        if column.endswith("_tokens"):
            cosines = table[column.removesuffix("_tokens") + "_cos"]
            out[column.removesuffix("_tokens")] = [
                "; ".join(f"{t!r} ({c:+.3f})" for t, c in zip(tokens, cos))
                for tokens, cos in zip(table[column], cosines)
            ]
    return out


# ------------------------------------------------------------------ experiment 2


def follow_path(
    logged: dict[int, Tensor],
    start: Tensor,
    positions: list[int],
    original_ids: Tensor,
    toward_ids: Tensor,
    matrix: Tensor,
    index: VocabIndex,
) -> pd.DataFrame:
    """Where the followed tokens stand at each logged step: one row per (step, followed
    position, toward token). `logged[step]` and `start` are one sequence's [t, d]."""
    where = torch.tensor(positions, dtype=torch.long)
    origin = start[where].float()
    own = original_ids[where]
    toward = matrix[toward_ids].float()
    parts = []
    for step in sorted(logged):
        current = logged[step][where].float()
        seen = project(current, origin, own, index, toward)
        for w, toward_id in enumerate(toward_ids.tolist()):
            parts.append(
                pd.DataFrame(
                    {
                        "step": step,
                        "pos": where.numpy(),
                        "token_id": own.numpy(),
                        "toward_id": toward_id,
                        "l2_travelled": (current - origin).norm(dim=1).numpy(),
                        "distance_to_toward": (current - toward[w]).norm(dim=1).numpy(),
                        "start_distance_to_toward": (origin - toward[w]).norm(dim=1).numpy(),
                        "nearest_euclidean_id": seen.nearest.euclidean_id.numpy(),
                        "nearest_euclidean": seen.nearest.euclidean.numpy(),
                        "nearest_cosine_id": seen.nearest.cosine_id.numpy(),
                        "nearest_cosine": seen.nearest.cosine.numpy(),
                        "heading_id": seen.heading_id.numpy(),
                        "heading_cosine": seen.heading_cosine.numpy(),
                        "toward_heading_cosine": seen.watch_cosines[:, w].numpy(),
                        "toward_heading_rank": seen.watch_ranks[:, w].numpy(),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)
