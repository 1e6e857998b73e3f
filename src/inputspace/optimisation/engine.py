"""Adam in input-embedding space: the bare loop, used by the rule, the landscape, the
tests and the benchmark.

The model is frozen (no weight gradients). All sequences form one right-padded batch
(optionally split into chunks of sequences for memory). The loss is the sum over
sequences of KL(target || predicted) at each prediction site; the gradients of special
tokens and padding are zeroed between backward() and step(), so those embeddings stay
bit-identical. A causal LM's leading positions that no sequence optimises (a BOS
token) get their keys and values computed once, not at every step.

Adam acts coordinate by coordinate and the sequences do not see each other, so each
sequence's trajectory is its own: a stopping rule may take a converged sequence out of
the batch (its embeddings frozen from then on) and the others go on as before, in a
cheaper batch.

What a run records (KL curves, back-projections, headings, top-k tables) is left to an
`Observer` (`inputspace.optimisation.recorder`), which sees every step's forward pass.

(Longer than most modules: the loop keeps its checkpointing beside it, so that what a run
saves and resumes is visibly the state it advances.)
"""

import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from inputspace.errors import InputspaceError, first_line
from inputspace.files import atomic_output, partial_of
from inputspace.model.models import FrozenPrefix, LanguageModel
from inputspace.optimisation import termination
from inputspace.optimisation.sequences import SequenceBatch

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class StopRule:
    """A sequence leaves the batch once its KL has been below `below` at `patience`
    consecutive steps; it is not updated after the last of them."""

    below: float
    patience: int = 1


@dataclass(frozen=True)
class Settings:
    steps: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    checkpoint_every: int = 50
    precision: str = "fp32"
    chunk_size: int | None = None  # sequences per forward pass; None: all at once
    stop: StopRule | None = None  # None: every sequence runs all the steps


@dataclass
class Problem:
    """What to optimise and toward what."""

    batch: SequenceBatch
    target_logprobs: Tensor  # [n, vocab] log-probabilities at the prediction sites


@dataclass(frozen=True)
class Step:
    """What one step's forward pass saw, handed to the observer before the update."""

    number: int
    rows: Tensor  # [m] the sequences in this step's forward pass
    logprobs: Tensor  # [m, vocab] their log-probabilities at the prediction sites (detached)
    kl: Tensor  # [n] every sequence's KL at its current point (a stopped one: where it stopped)
    embeddings: Tensor  # [n, t, d] the current point (detached; the update has not happened)
    active: Tensor  # [n] bool: still optimised after this step


class Observer(Protocol):
    def observe(self, step: Step) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def kl_divergence(logits: Tensor, target_logprobs: Tensor) -> Tensor:
    """KL(target || softmax(logits)) per row, in fp32 at least (fp64 logits stay fp64)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return kl_from_logprobs(F.log_softmax(logits, dim=-1), target_logprobs.to(logits.dtype))


def kl_from_logprobs(logprobs: Tensor, target_logprobs: Tensor) -> Tensor:
    return F.kl_div(logprobs, target_logprobs, log_target=True, reduction="none").sum(dim=-1)


class _Faults:
    """The first step at which each sequence's loss, gradient or point was non-finite,
    kept on the device (no synchronisation per step)."""

    KINDS = ("embeddings", "loss", "gradient")  # at one step, a non-finite point is the cause

    def __init__(self, n: int, never: int, device: torch.device):
        self.never = never
        self.first = {
            kind: torch.full((n,), never, dtype=torch.long, device=device) for kind in self.KINDS
        }

    def note(self, kind: str, step: int, rows: Tensor, finite: Tensor) -> None:
        first = self.first[kind]
        first[rows] = torch.where(finite, first[rows], torch.clamp_max(first[rows], step))

    def earliest(self) -> tuple[int, int, str] | None:
        """(step, sequence, what) of the earliest fault, if any."""
        found = None
        for kind in self.KINDS:
            step, seq = (int(v) for v in self.first[kind].min(dim=0))
            if step < self.never and (found is None or step < found[0]):
                found = (step, seq, kind)
        return found


_WHY = {"embeddings": " (a coordinate or its position's squared norm overflows)"}


def _representable(points: Tensor) -> Tensor:
    """[n] per sequence of [n, t, d] `points`: every coordinate finite and every
    position's squared L2 norm within the dtype's range (past it, distances and the
    model's own normalisation overflow: a point at 1e20 is as lost as one at inf)."""
    return torch.isfinite(points.square().sum(dim=-1)).all(dim=1)


class Descent:
    """The state of one run of Adam over a batch of sequences, one step at a time."""

    def __init__(self, lm: LanguageModel, problem: Problem, settings: Settings, label: str = "run"):
        if settings.precision not in PRECISIONS:
            raise InputspaceError(
                f"{label}: precision {settings.precision!r}; use one of {PRECISIONS}"
            )
        self.lm, self.settings, self.label = lm, settings, label
        device = lm.device
        batch = problem.batch
        n = len(batch)
        self.start = batch.embeddings.to(device)
        self.embeddings = self.start.clone().requires_grad_(True)
        self.frozen = ~batch.trainable.to(device).unsqueeze(-1)
        self.attention_mask = batch.attention_mask.to(device)
        self.lengths = batch.attention_mask.sum(dim=1)
        self.sites = batch.sites.to(device)
        self.target = problem.target_logprobs.to(device)
        self.optimizer = torch.optim.Adam([self.embeddings], lr=settings.lr, betas=settings.betas)
        self.scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
        self.step = 0
        # on the CPU: it picks the rows of each forward
        self.active = torch.ones(n, dtype=torch.bool)
        # consecutive steps with KL below the stop level
        self.below_for = torch.zeros(n, dtype=torch.long)
        self.kl = torch.full((n,), float("nan"), device=device)
        self.faults = _Faults(n, settings.steps + 1, device)
        prefix_length = lm.frozen_prefix_length(
            batch.trainable.to(device), self.attention_mask, self.sites
        )
        with self.autocast():
            self.prefix = lm.frozen_prefix(self.start, self.attention_mask, prefix_length)
        self._chunks: dict[tuple[int, ...], tuple[slice | Tensor, int, FrozenPrefix | None]] = {}

    @property
    def finished(self) -> bool:
        return self.step > self.settings.steps or not self.active.any()

    def autocast(self):
        if self.settings.precision == "fp32" or self.lm.device.type == "cpu":
            return nullcontext()
        dtype = torch.bfloat16 if self.settings.precision == "bf16" else torch.float16
        return torch.autocast(self.lm.device.type, dtype=dtype)

    def advance(self, observer: Observer | None = None) -> Step:
        """One step: forward on the active sequences, the observer, and (before the last
        step) backward and update; a sequence that meets the stopping rule here is not
        updated and leaves the batch."""
        last = self.step == self.settings.steps
        rows = self._active_rows()
        logprobs = self._forward_backward(rows.to(self.lm.device), with_grad=not last)
        self._apply_stop_rule(rows)
        step = Step(
            self.step,
            rows,
            logprobs,
            self.kl.detach().clone(),
            self.embeddings.detach(),
            self.active.clone(),
        )
        if observer is not None:
            observer.observe(step)
        if not last:
            self._update(rows)
        self.step += 1
        return step

    def _active_rows(self) -> Tensor:
        """The sequences still optimised; in chunks, longest first, so that each chunk is
        padded only to its own longest row."""
        rows = torch.nonzero(self.active).squeeze(1)
        if self.settings.chunk_size:
            rows = rows[torch.argsort(self.lengths[rows], descending=True, stable=True)]
        return rows

    def _forward_backward(self, rows: Tensor, with_grad: bool) -> Tensor:
        """Every chunk of `rows`: site log-probabilities, KL into `self.kl`, and (if asked)
        the gradient of the summed KL. Trailing padding that no row in the chunk needs is
        not computed."""
        size = self.settings.chunk_size or len(rows)
        kept = []
        for chunk in rows.split(size):
            picked, length, prefix = self._chunk(chunk)
            with self.autocast():
                logits = self.lm.logits_at(
                    self.embeddings[picked, :length],
                    self.attention_mask[picked, :length],
                    self.sites[picked],
                    prefix=prefix,
                )
            logprobs = F.log_softmax(logits.float(), dim=-1)
            kl = kl_from_logprobs(logprobs, self.target[chunk])
            self.kl[chunk] = kl.detach()
            self.faults.note("loss", self.step, chunk, torch.isfinite(kl.detach()))
            kept.append(logprobs.detach())
            if with_grad:
                loss = kl.sum()
                (self.scaler.scale(loss) if self.scaler else loss).backward()
        return torch.cat(kept)

    def _chunk(self, chunk: Tensor) -> tuple[slice | Tensor, int, FrozenPrefix | None]:
        """How to pick a chunk's rows (a slice while they are consecutive: no copy), the
        length that its longest row needs, and its rows of the frozen prefix (cut once per
        set of rows)."""
        key = tuple(chunk.tolist())
        if key not in self._chunks:
            consecutive = key == tuple(range(key[0], key[-1] + 1))
            picked = slice(key[0], key[-1] + 1) if consecutive else chunk
            length = int(self.lengths[list(key)].max())
            self._chunks[key] = (picked, length, self.prefix.rows(picked) if self.prefix else None)
        return self._chunks[key]

    def _apply_stop_rule(self, rows: Tensor) -> None:
        rule = self.settings.stop
        if rule is None or self.step == self.settings.steps:
            return
        below = (self.kl[rows.to(self.kl.device)] < rule.below).cpu()
        self.below_for[rows] = torch.where(below, self.below_for[rows] + 1, 0)
        still = self.below_for[rows] < rule.patience
        if not still.all():
            self.active[rows] = still
            self._chunks.clear()

    def _update(self, rows: Tensor) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad = self.embeddings.grad
        grad.masked_fill_(self.frozen, 0.0)
        device_rows = rows.to(grad.device)
        # with fp16's scaler an overflowing gradient skips the step and lowers the scale
        if not self.scaler:
            self.faults.note(
                "gradient",
                self.step,
                device_rows,
                torch.isfinite(grad[device_rows]).flatten(1).all(dim=1),
            )
        stopped = torch.nonzero(~self.active).squeeze(1).to(grad.device)
        held = self.embeddings.detach()[stopped].clone()
        try:
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        except RuntimeError as error:  # Adam's step size lr / (1 - beta1^t) past float32's range
            raise InputspaceError(
                f"{self.label}: Adam's step overflows at step {self.step} ({first_line(error)}); "
                "lower the learning rate (lr)"
            ) from None
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            # Adam's momentum would carry a stopped sequence on: put it back where it stopped.
            self.embeddings[stopped] = held
            moved = self.embeddings[device_rows]
        self.faults.note("embeddings", self.step + 1, device_rows, _representable(moved))

    def check_finite(self) -> None:
        fault = self.faults.earliest()
        if fault:
            step, seq, what = fault
            raise InputspaceError(
                f"{self.label}: non-finite {what} at step {step} in sequence {seq}"
                f"{_WHY.get(what, '')}; "
                "lower the learning rate (lr) or use precision fp32"
            )

    @property
    def end(self) -> Tensor:
        return self.embeddings.detach()

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "embeddings": self.embeddings.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "active": self.active.clone(),
            "below_for": self.below_for.clone(),
            "kl": self.kl.cpu(),
            "faults": {kind: first.cpu() for kind, first in self.faults.first.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        with torch.no_grad():
            self.embeddings.copy_(state["embeddings"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.active.copy_(state["active"])
        self.below_for.copy_(state["below_for"])
        self.kl.copy_(state["kl"])
        for kind, first in state["faults"].items():
            self.faults.first[kind].copy_(first)


def optimise(
    lm: LanguageModel,
    problem: Problem,
    settings: Settings,
    observer: Observer | None = None,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    label: str = "run",
    progress: bool = True,
) -> Descent:
    """Run Adam until `settings.steps` steps are done or every sequence has stopped,
    resuming from `checkpoint` if it holds a state with the same fingerprint; the
    checkpoint is removed once the run ends."""
    run = Descent(lm, problem, settings, label)
    resumed = _load_checkpoint(checkpoint, fingerprint)
    if resumed:
        run.restore(resumed["run"])
        if observer is not None:
            observer.restore(resumed["observer"])
        print(f"{label}: resumed from {checkpoint} at step {run.step}", file=sys.stderr)
    bar = tqdm(
        total=settings.steps,
        initial=run.step,
        desc=label,
        disable=not progress,
        mininterval=2.0,
        file=sys.stderr,
    )
    refresh = max(1, settings.steps // 100)

    def save() -> None:
        run.check_finite()
        state = {"run": run.state(), "observer": observer.state() if observer else None}
        _save_checkpoint(checkpoint, fingerprint, state)

    try:
        with termination.deferred():
            while not run.finished and not termination.requested():
                step = run.advance(observer)
                if run.step <= settings.steps:  # the last forward makes no step
                    bar.update(1)
                if run.step % refresh == 0 or run.finished:
                    run.check_finite()
                    bar.set_postfix(
                        mean_kl=f"{step.kl.mean().item():.3g}", active=int(step.active.sum())
                    )
                if checkpoint and run.step % settings.checkpoint_every == 0 and not run.finished:
                    save()
            if termination.requested():
                _stop_at(run.step, save if checkpoint else None)
        run.check_finite()
    except InputspaceError:
        _remove_checkpoint(checkpoint)  # a faulty run is not resumed
        raise
    finally:
        bar.close()
    _remove_checkpoint(checkpoint)
    return run


def _stop_at(step: int, save: Callable[[], None] | None) -> None:
    """A scheduler asked the job to stop: keep the state of `step` for the rerun."""
    if save:
        save()
    where = "checkpoint saved, the rerun resumes here" if save else "no checkpoint configured"
    raise termination.Terminated(f"stopped by SIGTERM at step {step} ({where})")


def _remove_checkpoint(path: Path | None) -> None:
    """The checkpoint and any write of it a killed job left unfinished."""
    if path:
        for stale in (Path(path), partial_of(path)):
            stale.unlink(missing_ok=True)


def _save_checkpoint(path: Path, fingerprint: str, state: dict[str, Any]) -> None:
    with atomic_output(path) as partial:
        torch.save({"fingerprint": fingerprint, **state}, partial)


def _load_checkpoint(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The state saved at `path` if it is this run's; loaded as data only (tensors,
    numbers, lists: no pickled code runs). One that does not load is set aside."""
    if not path or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # any unreadable file: torch raises many kinds
        aside = _set_aside(Path(path))
        print(
            f"checkpoint {path} does not load as data ({first_line(error)}); "
            f"set aside as {aside}, starting over",
            file=sys.stderr,
        )
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        print(
            f"ignoring checkpoint {path}: it belongs to other inputs or settings", file=sys.stderr
        )
        return None
    return state


def _set_aside(path: Path) -> Path:
    """Rename `path` to a free `<name>.unreadable[-n]` beside it (kept for inspection)."""
    aside = path.with_name(path.name + ".unreadable")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.unreadable-{number}")
    path.rename(aside)
    return aside
