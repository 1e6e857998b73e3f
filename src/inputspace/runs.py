"""Writing a finished run: the trajectory tables and the start and end embeddings."""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from inputspace import trajectory
from inputspace.engine import Settings
from inputspace.recorder import Logging, Result
from inputspace.sequences import SequenceBatch
from inputspace.files import atomic_output
from inputspace.analysis import THRESHOLD
from inputspace.hashing import sha256_file
from inputspace.provenance import RUN_METADATA


def fingerprint(
    manifest: dict, experiment: dict, settings: Settings, logging: Logging, samples: Path | None
) -> str:
    """What a checkpoint must match to be resumed: weights, experiment, settings, samples."""
    parts = {
        "weights": manifest["weights_sha256"],
        "experiment": experiment,
        "settings": dataclasses.asdict(settings),
        "logging": dataclasses.asdict(logging),
        "samples": sha256_file(samples) if samples else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def write(
    result: Result, batch: SequenceBatch, model: str, experiment: str, output: Any, run_info: dict | None = None
) -> None:
    """The three tables (with `run_info`, e.g. device and seed, in their Parquet metadata)
    and the embeddings."""
    label = {"model": model, "experiment": experiment}
    metadata = {RUN_METADATA: json.dumps(run_info, default=str).encode()} if run_info else None
    trajectory.write({**label, **result.steps}, trajectory.STEPS, output.steps, metadata)
    trajectory.write({**label, **result.tokens}, trajectory.TOKENS, output.tokens, metadata)
    trajectory.write({**label, **result.topk}, trajectory.TOPK, output.topk, metadata)
    tensors = {
        "start": result.start,
        "end": result.end,
        "ids": batch.ids,
        "attention_mask": batch.attention_mask,
        "trainable": batch.trainable,
        "sites": batch.sites,
        **{f"step_{step}": embeddings for step, embeddings in result.logged.items()},
    }
    with atomic_output(output.embeddings) as partial:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial))


def describe(result: Result) -> str:
    kl = np.asarray(result.steps["kl"]).reshape(-1, result.start.shape[0])
    l2 = np.asarray(result.steps["l2_max"]).reshape(kl.shape)
    active = np.asarray(result.steps["active"]).reshape(kl.shape)
    reached = (kl < THRESHOLD).any(axis=0)
    stopped = ~active[-1]
    return (
        f"final KL mean {kl[-1].mean():.3g} (max {kl[-1].max():.3g}); "
        f"{reached.sum()}/{kl.shape[1]} sequences reached KL < {THRESHOLD:g}; "
        f"{stopped.sum()} left the batch by the stopping rule; max L2 travelled {l2[-1].max():.3g}"
    )
