"""From an experiment's config to the engine's Problem (source sequences and target
distributions at their prediction sites) and the recorder's landmarks (vocabulary and
watch tokens)."""

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from inputspace.errors import InputspaceError, InputspaceWarning
from inputspace.model.models import LanguageModel
from inputspace.model.prompts import prompt_pairs, read_pairs
from inputspace.model.vocab import regular_ids, vocabulary_table
from inputspace.optimisation.engine import Problem, Settings, StopRule
from inputspace.optimisation.recorder import Landmarks, Logging
from inputspace.optimisation.sequences import SequenceBatch, from_prompts
from inputspace.optimisation.step_size import StepSize


@torch.no_grad()
def target_logprobs(lm: LanguageModel, prompts: list[str]) -> Tensor:
    """Log-probabilities each target prompt predicts at its prediction site, [n, vocab]:
    in float32 at least (a float64 model's in float64)."""
    batch = from_prompts(lm, prompts)
    logits = lm.logits_at(
        batch.embeddings.to(lm.device),
        batch.attention_mask.to(lm.device),
        batch.sites.to(lm.device),
    )
    return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), -1).cpu()


def sources_and_targets(
    lm: LanguageModel, experiment: dict[str, Any], samples: Path | None, prompts: Path | None
) -> tuple[SequenceBatch, list[str]]:
    """The batch to optimise and one target prompt per sequence (`prompts`: the pairs
    file of a pairs experiment, `samples`: the sampled batch of a random one)."""
    spec = experiment["sequences"]
    if spec["kind"] == "pairs":
        if prompts is None:
            raise InputspaceError("pairs sequences need their prompts file")
        pairs = read_pairs(prompts)[: spec.get("count")]
        return from_prompts(lm, [p.source for p in pairs]), [p.target for p in pairs]
    if spec["kind"] == "prompt":
        sources, targets = zip(*prompt_pairs(experiment))
        return from_prompts(lm, list(sources)), list(targets)
    target = experiment["target"]["prompt"]
    if samples is None:
        raise InputspaceError("random sequences need the samples file from sample_sequences")
    batch = SequenceBatch.load(samples)
    return batch, [target] * len(batch)


def watch_token_ids(lm: LanguageModel, words: list[str], pieces: str = "first") -> Tensor:
    """Token ids of the watch words. A word the tokenizer splits is tracked by its first
    piece that holds more than white space, or by every piece (`pieces`), with a warning
    naming the pieces, or refused; a word it cannot represent as tokens is an error."""
    ids: list[int] = []
    for word in words:
        word_ids = lm.tokenizer(word, add_special_tokens=False).input_ids
        texts = [lm.tokenizer.decode([i]) for i in word_ids]
        _check_representable(lm, word, word_ids, texts)
        if len(word_ids) > 1:
            split = (
                f"watch word {word!r} is not one token of {lm.name}'s tokenizer "
                f"but {len(word_ids)}: {texts}"
            )
            if pieces == "refuse":
                raise InputspaceError(
                    f"{split}; watch_pieces is refuse: "
                    "choose a single-token word or set watch_pieces"
                )
            first = next((i for i, text in enumerate(texts) if text.strip()), 0)
            tracked = (
                f"only its first piece {texts[first]!r}" if pieces == "first" else "each piece"
            )
            warnings.warn(
                f"{split}; tracking {tracked} (watch_pieces: {pieces})",
                InputspaceWarning,
                stacklevel=2,
            )
            word_ids = word_ids[first : first + 1] if pieces == "first" else word_ids
        ids.extend(word_ids)
    return torch.tensor(ids, dtype=torch.long)


def _check_representable(
    lm: LanguageModel, word: str, word_ids: list[int], texts: list[str]
) -> None:
    unknown = lm.tokenizer.unk_token_id
    if not word_ids:
        why = "it has no tokens"
    elif unknown is not None and unknown in word_ids:
        why = f"it contains the unknown token {lm.tokenizer.unk_token!r}"
    elif any(REPLACEMENT in text for text in texts) and REPLACEMENT not in word:
        why = f"its pieces {texts} are fragments of a character's bytes, not text"
    else:
        return
    raise InputspaceError(
        f"watch word {word!r} cannot be represented by {lm.name}'s tokenizer "
        f"({why}); remove it from watch"
    )


REPLACEMENT = "\ufffd"  # what decoding a lone fragment of a UTF-8 character gives


def build_problem(
    lm: LanguageModel,
    experiment: dict[str, Any],
    vocab: Tensor,
    candidates: Tensor,
    samples: Path | None = None,
    prompts: Path | None = None,
) -> tuple[Problem, Landmarks]:
    batch, targets = sources_and_targets(lm, experiment, samples, prompts)
    watch_ids = watch_token_ids(
        lm, experiment.get("watch", []), experiment.get("watch_pieces", "first")
    )
    problem = Problem(batch=batch, target_logprobs=target_logprobs(lm, targets))
    return problem, Landmarks(vocab=vocab, candidates=candidates, watch_ids=watch_ids)


def build_problem_from_model(
    lm: LanguageModel, experiment: dict[str, Any], prompts: Path | None = None
) -> tuple[Problem, Landmarks]:
    """`build_problem` with the vocabulary read off the model itself, as extract_vocab
    writes it (for tests and benchmarks, which have no workflow files)."""
    matrix = lm.vocab_embeddings()
    candidates = regular_ids(vocabulary_table(lm, matrix))
    return build_problem(lm, experiment, matrix, candidates, prompts=prompts)


LOGGING_KEYS = ("log_points", "top_k", "save_logged_embeddings")


def median_token_norm(table: pd.DataFrame) -> float:
    """The median input-embedding norm of the regular tokens of a vocabulary table."""
    return float(np.median(table.norm[table.is_regular].to_numpy(dtype=np.float64)))


def optimisation_settings(
    optimize: dict[str, Any], precision: str = "fp32", token_norm: float | None = None
) -> tuple[Settings, Logging]:
    """The loop's settings and the recorder's, from an experiment's validated `optimize`
    block (same names); a relative step size is resolved with the model's median token
    norm `token_norm`."""
    loop = {k: v for k, v in optimize.items() if k not in (*LOGGING_KEYS, "lr_relative")}
    loop["lr"] = StepSize.of(optimize, token_norm).lr
    stop = StopRule(**loop["stop"]) if loop.get("stop") else None
    engine = Settings(**{**loop, "betas": tuple(loop["betas"]), "stop": stop}, precision=precision)
    return engine, Logging(**{k: optimize[k] for k in LOGGING_KEYS})
