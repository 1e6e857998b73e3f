"""A finished run on disk: the trajectory tables, and the embeddings file (start, end,
the batch's layout and the embeddings at logged steps) with its one reader."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from inputspace.analysis.run_measures import THRESHOLD, Moves, moves
from inputspace.hashing import sha256_file
from inputspace.optimisation import trajectory
from inputspace.optimisation.engine import Settings
from inputspace.optimisation.recorder import Logging, Result
from inputspace.optimisation.sequences import SequenceBatch
from inputspace.tensors import read_tensors, write_tensors


def fingerprint(
    manifest: dict, experiment: dict, settings: Settings, logging: Logging, samples: Path | None
) -> str:
    """What a checkpoint must match to be resumed: the model's files, experiment, settings,
    samples."""
    parts = {
        "model": manifest["files_sha256"],
        "experiment": experiment,
        "settings": dataclasses.asdict(settings),
        "logging": dataclasses.asdict(logging),
        "samples": sha256_file(samples) if samples else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class RunPaths:
    """Where a run's three tables and its embeddings go."""

    steps: Path
    tokens: Path
    topk: Path
    embeddings: Path


def write_run(
    result: Result,
    batch: SequenceBatch,
    model: str,
    experiment: str,
    output: RunPaths,
    run_info: dict | None = None,
) -> None:
    """The three tables (with `run_info`, e.g. device and seed, in their Parquet metadata)
    and the embeddings."""
    label = {"model": model, "experiment": experiment}
    metadata = (
        {trajectory.RUN_METADATA: json.dumps(run_info, default=str).encode()} if run_info else None
    )
    trajectory.write_columns({**label, **result.steps}, trajectory.STEPS, output.steps, metadata)
    trajectory.write_columns({**label, **result.tokens}, trajectory.TOKENS, output.tokens, metadata)
    trajectory.write_columns({**label, **result.topk}, trajectory.TOPK, output.topk, metadata)
    embeddings = RunEmbeddings(
        result.start,
        result.end,
        batch.ids,
        batch.attention_mask,
        batch.trainable,
        batch.sites,
        result.logged,
    )
    embeddings.write(output.embeddings)


_LOGGED = "step_"


@dataclass
class RunEmbeddings:
    """What a run's embeddings file holds."""

    start: Tensor  # [n, t, d] embeddings before the first step
    end: Tensor  # [n, t, d] after the last
    ids: Tensor  # [n, t] the batch's token ids (sequences.NO_TOKEN at sampled points)
    attention_mask: Tensor  # [n, t]
    trainable: Tensor  # [n, t] bool: the positions optimised
    sites: Tensor  # [n] prediction sites
    logged: dict[int, Tensor]  # step -> [n, t, d], when the run saved its logged steps

    def write(self, path: str | Path) -> None:
        fixed = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "logged"
        }
        write_tensors(
            {**fixed, **{f"{_LOGGED}{step}": value for step, value in self.logged.items()}}, path
        )

    def moves(self) -> Moves:
        return moves(self.start.numpy(), self.end.numpy(), self.trainable.numpy())

    @classmethod
    def read(cls, path: str | Path) -> "RunEmbeddings":
        tensors = read_tensors(path)
        logged = {
            int(k.removeprefix(_LOGGED)): v for k, v in tensors.items() if k.startswith(_LOGGED)
        }
        fixed = {k: v for k, v in tensors.items() if not k.startswith(_LOGGED)}
        return cls(**fixed, logged=dict(sorted(logged.items())))


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
