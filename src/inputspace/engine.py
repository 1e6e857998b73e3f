"""Adam in input-embedding space: one loop, used by the rule, the tests and the benchmark.

The model is frozen (no weight gradients). All sequences form one right-padded batch
(optionally split into chunks of sequences for memory). The loss is the sum over
sequences of KL(target || predicted) at each prediction site; the gradients of special
tokens and padding are zeroed between backward() and step(), so those embeddings stay
bit-identical. A causal LM's leading positions that no sequence optimises (a BOS
token) get their keys and values computed once, not at every step. Per-step metrics
stay on the device and are fetched only at logged steps, checkpoints and progress
refreshes.
"""

import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from inputspace.errors import InputspaceError
from inputspace.files import atomic_output
from inputspace.geometry import OriginTerms, VocabIndex, project
from inputspace.models import LanguageModel
from inputspace.sequences import SequenceBatch

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Settings:
    steps: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    log_points: int = 20
    top_k: int = 10
    checkpoint_every: int = 100
    save_logged_embeddings: bool = False
    precision: str = "fp32"
    chunk_size: int | None = None  # sequences per forward pass; None: all at once


@dataclass
class Problem:
    """What to optimise and toward what."""

    batch: SequenceBatch
    target_logprobs: Tensor  # [n, vocab] log-probabilities at the prediction sites
    vocab: Tensor  # [vocab, d] input embeddings of every token
    candidates: Tensor  # token ids that back-projection and headings may pick
    watch_ids: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


@dataclass
class Result:
    steps: dict[str, np.ndarray]
    tokens: dict[str, list]
    topk: dict[str, list]
    start: Tensor
    end: Tensor
    logged: dict[int, Tensor]


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def log_schedule(steps: int, points: int) -> list[int]:
    """Step 0, about `points` log-spaced steps, and the last step."""
    spaced = np.geomspace(1, max(steps, 1), num=max(points, 1)).round().astype(int)
    return sorted({0, steps, *[int(s) for s in spaced if s <= steps]})


def kl_divergence(logits: Tensor, target_logprobs: Tensor) -> Tensor:
    """KL(target || softmax(logits)) per row, in fp32 at least (fp64 logits stay fp64)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return kl_from_logprobs(F.log_softmax(logits, dim=-1), target_logprobs.to(logits.dtype))


def kl_from_logprobs(logprobs: Tensor, target_logprobs: Tensor) -> Tensor:
    return F.kl_div(logprobs, target_logprobs, log_target=True, reduction="none").sum(dim=-1)


class _Trace:
    """Per-step metrics, kept on the device until fetched."""

    def __init__(self, steps: int, n: int, device: torch.device):
        shape = (steps + 1, n)
        self.kl = torch.full(shape, float("nan"), device=device)
        self.l2_total = torch.zeros(shape, device=device)
        self.l2_max = torch.zeros(shape, device=device)
        self.top1_id = torch.zeros(shape, dtype=torch.long, device=device)
        self.top1_prob = torch.zeros(shape, device=device)
        self.grad_finite = torch.ones(shape, dtype=torch.bool, device=device)

    def state(self) -> dict[str, Tensor]:
        return {k: v.cpu() for k, v in vars(self).items()}

    def restore(self, state: dict[str, Tensor]) -> None:
        for name, value in state.items():
            getattr(self, name).copy_(value)

    def first_fault(self, upto: int) -> tuple[int, int, str] | None:
        """(step, sequence, what) of the first non-finite loss or gradient before `upto`."""
        kl_bad = ~torch.isfinite(self.kl[:upto])
        grad_bad = ~self.grad_finite[:upto]
        for bad, what in ((kl_bad, "loss"), (grad_bad, "gradient")):
            if bad.any():
                step, seq = (int(i) for i in torch.nonzero(bad)[0])
                return step, seq, what
        return None


class _Run:
    def __init__(self, lm: LanguageModel, problem: Problem, settings: Settings, label: str):
        self.lm, self.settings, self.label = lm, settings, label
        device = lm.device
        batch = problem.batch
        self.start = batch.embeddings.to(device)
        self.embeddings = self.start.clone().requires_grad_(True)
        self.trainable = batch.trainable.to(device)
        self.frozen = ~self.trainable.unsqueeze(-1)
        self.attention_mask = batch.attention_mask.to(device)
        self.sites = batch.sites.to(device)
        self.target = problem.target_logprobs.to(device)
        self.optimizer = torch.optim.Adam([self.embeddings], lr=settings.lr, betas=settings.betas)
        self.scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
        self.trace = _Trace(settings.steps, len(batch), device)
        self.log_steps = set(log_schedule(settings.steps, settings.log_points))
        self.token_rows: list[dict[str, Any]] = []
        self.topk_rows: list[dict[str, Any]] = []
        self.logged: dict[int, Tensor] = {}
        self.step = 0
        n = len(batch)
        size = settings.chunk_size or n
        self.chunks = [slice(i, min(i + size, n)) for i in range(0, n, size)]
        vocab = problem.vocab.to(device)
        self.index = VocabIndex(vocab, problem.candidates.to(device))
        self.watch_ids = problem.watch_ids.to(device)
        self.watch_vectors = vocab[self.watch_ids]
        # What the logged steps compare against: fixed for the whole run.
        self.seq, self.pos = torch.nonzero(self.trainable, as_tuple=True)
        self.origin = self.start[self.seq, self.pos]
        self.original_ids = batch.ids.to(device)[self.seq, self.pos]
        self.origin_terms = OriginTerms(self.origin, self.index)
        prefix_length = lm.frozen_prefix_length(self.trainable, self.attention_mask, self.sites)
        with self.autocast():
            prefix = lm.frozen_prefix(self.start, self.attention_mask, prefix_length)
        self.chunk_prefixes = [prefix.rows(rows) if prefix else None for rows in self.chunks]

    def autocast(self):
        if self.settings.precision == "fp32" or self.lm.device.type == "cpu":
            return nullcontext()
        dtype = torch.bfloat16 if self.settings.precision == "bf16" else torch.float16
        return torch.autocast(self.lm.device.type, dtype=dtype)

    def forward_backward(self, with_grad: bool) -> Tensor | None:
        """Record this step's metrics; accumulate gradients if asked. Returns the site
        logits at logged steps (for the top-k table)."""
        step = self.step
        keep = step in self.log_steps
        kept = []
        for rows, prefix in zip(self.chunks, self.chunk_prefixes):
            with self.autocast():
                logits = self.lm.logits_at(
                    self.embeddings[rows], self.attention_mask[rows], self.sites[rows], prefix=prefix
                )
            logprobs = F.log_softmax(logits.float(), dim=-1)
            kl = kl_from_logprobs(logprobs, self.target[rows])
            top_logprob, top_id = logprobs.detach().max(dim=-1)
            self.trace.kl[step, rows] = kl.detach()
            self.trace.top1_id[step, rows] = top_id
            self.trace.top1_prob[step, rows] = top_logprob.exp()
            if keep:
                kept.append(logprobs.detach().exp())
            if with_grad:
                loss = kl.sum()
                (self.scaler.scale(loss) if self.scaler else loss).backward()
        travel = (self.embeddings.detach() - self.start).norm(dim=-1) * self.trainable
        self.trace.l2_total[step] = travel.sum(dim=1)
        self.trace.l2_max[step] = travel.max(dim=1).values
        return torch.cat(kept) if keep else None

    def update(self) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad = self.embeddings.grad
        grad.masked_fill_(self.frozen, 0.0)
        self.trace.grad_finite[self.step] = torch.isfinite(grad).flatten(1).all(dim=1)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def snapshot(self, probs: Tensor) -> None:
        """Tables at a logged step: travel, back-projection, headings, top-k."""
        step, seq, origin = self.step, self.seq, self.origin
        current = self.embeddings.detach()[seq, self.pos].float()
        where = project(
            current, origin, self.original_ids, self.index, self.watch_vectors,
            origin_terms=self.origin_terms,
        )
        near = where.nearest
        self.token_rows.append(
            {
                "seq": seq.cpu().numpy(),
                "pos": self.pos.cpu().numpy(),
                "step": np.full(seq.numel(), step),
                "token_id": self.original_ids.cpu().numpy(),
                "l2": (current - origin).norm(dim=1).cpu().numpy(),
                "nearest_euclidean_id": near.euclidean_id.cpu().numpy(),
                "nearest_euclidean": near.euclidean.cpu().numpy(),
                "nearest_cosine_id": near.cosine_id.cpu().numpy(),
                "nearest_cosine": near.cosine.cpu().numpy(),
                "heading_id": where.heading_id.cpu().numpy(),
                "heading_cosine": where.heading_cosine.cpu().numpy(),
                "watch_ids": [self.watch_ids.tolist()] * seq.numel(),
                "watch_cosines": where.watch_cosines.cpu().tolist(),
                "watch_ranks": where.watch_ranks.cpu().tolist(),
            }
        )
        k = min(self.settings.top_k, probs.shape[1])
        top_prob, top_id = probs.topk(k, dim=1)
        n = probs.shape[0]
        self.topk_rows.append(
            {
                "seq": np.repeat(np.arange(n), k),
                "step": np.full(n * k, step),
                "rank": np.tile(np.arange(1, k + 1), n),
                "token_id": top_id.cpu().numpy().ravel(),
                "prob": top_prob.cpu().numpy().ravel(),
            }
        )
        if self.settings.save_logged_embeddings:
            self.logged[step] = self.embeddings.detach().cpu().clone()

    @property
    def finished(self) -> bool:
        return self.step > self.settings.steps

    def advance(self) -> None:
        """One step: forward (and, before the last step, backward and update), with the
        tables at a logged step. After the last step's forward and tables, `finished`."""
        last = self.step == self.settings.steps
        probs = self.forward_backward(with_grad=not last)
        if probs is not None:
            self.snapshot(probs)
        if not last:
            self.update()
        self.step += 1

    def check_finite(self, upto: int) -> None:
        fault = self.trace.first_fault(upto)
        if fault:
            step, seq, what = fault
            raise InputspaceError(
                f"{self.label}: non-finite {what} at step {step} in sequence {seq}; lower the "
                "learning rate (lr) or use precision fp32"
            )

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "embeddings": self.embeddings.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "trace": self.trace.state(),
            "token_rows": self.token_rows,
            "topk_rows": self.topk_rows,
            "logged": self.logged,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        with torch.no_grad():
            self.embeddings.copy_(state["embeddings"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.trace.restore(state["trace"])
        self.token_rows, self.topk_rows, self.logged = (
            state["token_rows"], state["topk_rows"], state["logged"]
        )


def optimise(
    lm: LanguageModel,
    problem: Problem,
    settings: Settings,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    label: str = "run",
    progress: bool = True,
) -> Result:
    """Run Adam for `settings.steps` steps, resuming from `checkpoint` if it holds a state
    with the same fingerprint; the checkpoint is removed once the run completes."""
    if settings.precision not in PRECISIONS:
        raise InputspaceError(f"{label}: precision {settings.precision!r}; use one of {PRECISIONS}")
    run = _Run(lm, problem, settings, label)
    resumed = _load_checkpoint(checkpoint, fingerprint)
    if resumed:
        run.restore(resumed)
        print(f"{label}: resumed from {checkpoint} at step {run.step}", file=sys.stderr)
    refresh = max(1, settings.steps // 100)
    bar = tqdm(total=settings.steps, initial=run.step, desc=label, disable=not progress, mininterval=2.0, file=sys.stderr)
    try:
        while True:
            run.advance()
            if run.finished:
                break
            bar.update(1)
            if run.step % refresh == 0 or run.step == settings.steps:
                done = run.trace.kl[run.step - 1]
                bar.set_postfix(mean_kl=f"{done.mean().item():.3g}", max_l2=f"{run.trace.l2_max[run.step - 1].max().item():.3g}")
            if checkpoint and run.step % settings.checkpoint_every == 0 and run.step < settings.steps:
                run.check_finite(run.step)
                _save_checkpoint(checkpoint, fingerprint, run.state())
        run.check_finite(settings.steps + 1)
    except InputspaceError:
        if checkpoint:
            Path(checkpoint).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    result = _result(run)
    if checkpoint:
        Path(checkpoint).unlink(missing_ok=True)
    return result


def _save_checkpoint(path: Path, fingerprint: str, state: dict[str, Any]) -> None:
    with atomic_output(path) as partial:
        torch.save({"fingerprint": fingerprint, **state}, partial)


def _load_checkpoint(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    state = torch.load(path, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        print(f"ignoring checkpoint {path}: it belongs to other inputs or settings", file=sys.stderr)
        return None
    return state


def _concat(rows: list[dict[str, Any]]) -> dict[str, list]:
    if not rows:
        return {}
    return {key: [v for row in rows for v in row[key]] for key in rows[0]}


def _result(run: _Run) -> Result:
    trace = run.trace
    steps, n = trace.kl.shape
    columns = {
        "seq": np.tile(np.arange(n), steps),
        "step": np.repeat(np.arange(steps), n),
        "kl": trace.kl.cpu().numpy().ravel(),
        "l2_total": trace.l2_total.cpu().numpy().ravel(),
        "l2_max": trace.l2_max.cpu().numpy().ravel(),
        "top1_id": trace.top1_id.cpu().numpy().ravel(),
        "top1_prob": trace.top1_prob.cpu().numpy().ravel(),
    }
    return Result(
        steps=columns,
        tokens=_concat(run.token_rows),
        topk=_concat(run.topk_rows),
        start=run.start.cpu(),
        end=run.embeddings.detach().cpu(),
        logged=run.logged,
    )
