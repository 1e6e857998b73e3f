"""What a run of the engine records: per-step metrics, and at logged steps where every
optimised token stands (travel, back-projection, headings) and the top-k predictions.

The recorder watches the bare loop (`engine.Descent`) as its observer. Per-step metrics
stay on the device and are fetched only at the end and for checkpoints. A sequence that
the stopping rule took out of the batch keeps its rows at every later step, with its
frozen values and `active` false.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inputspace.analysis.geometry import OriginTerms, VocabIndex, project
from inputspace.optimisation.engine import Step
from inputspace.optimisation.sequences import SequenceBatch


@dataclass(frozen=True)
class Logging:
    log_points: int = 20
    top_k: int = 10
    save_logged_embeddings: bool = False


@dataclass
class Landmarks:
    """What logged steps measure positions against: the vocabulary's input embeddings,
    the token ids back-projection and headings may pick, and the watched tokens."""

    vocab: Tensor  # [vocab, d]
    candidates: Tensor
    watch_ids: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


@dataclass
class Result:
    steps: dict[str, np.ndarray]
    tokens: dict[str, list]
    topk: dict[str, list]
    start: Tensor
    end: Tensor
    logged: dict[int, Tensor]


def log_schedule(steps: int, points: int) -> list[int]:
    """Step 0, about `points` log-spaced steps, and the last step."""
    spaced = np.geomspace(1, max(steps, 1), num=max(points, 1)).round().astype(int)
    return sorted({0, steps, *[int(s) for s in spaced if s <= steps]})


class _Trace:
    """Per-step metrics of every sequence, kept on the device until fetched."""

    def __init__(self, steps: int, n: int, device: torch.device):
        shape = (steps + 1, n)
        self.kl = torch.full(shape, float("nan"), device=device)
        self.l2_total = torch.zeros(shape, device=device)
        self.l2_max = torch.zeros(shape, device=device)
        self.top1_id = torch.zeros(shape, dtype=torch.long, device=device)
        self.top1_prob = torch.zeros(shape, device=device)
        self.active = torch.zeros(shape, dtype=torch.bool, device=device)

    def state(self) -> dict[str, Tensor]:
        return {k: v.cpu() for k, v in vars(self).items()}

    def restore(self, state: dict[str, Tensor]) -> None:
        for name, value in state.items():
            getattr(self, name).copy_(value)

    def hold_from(self, step: int) -> None:
        """Rows after `step` (the run ended early): every sequence as it stood then."""
        for name, values in vars(self).items():
            values[step + 1 :] = False if name == "active" else values[step]


class Recorder:
    def __init__(
        self,
        batch: SequenceBatch,
        landmarks: Landmarks,
        logging: Logging,
        steps: int,
        device: torch.device,
    ):
        self.logging, self.steps = logging, steps
        n = len(batch)
        self.start = batch.embeddings.to(device)
        self.trainable = batch.trainable.to(device)
        self.trace = _Trace(steps, n, device)
        self.log_steps = set(log_schedule(steps, logging.log_points))
        self.top1_id = torch.zeros(n, dtype=torch.long, device=device)
        self.top1_prob = torch.zeros(n, device=device)
        # of sequences that stopped: their log-probabilities at their last forward
        self.final_logprobs: dict[int, Tensor] = {}
        self.token_rows: list[dict[str, Tensor]] = []
        self.topk_rows: list[dict[str, Tensor]] = []
        self.logged: dict[int, Tensor] = {}
        self.last = -1
        self.index = VocabIndex(landmarks.vocab.to(device), landmarks.candidates.to(device))
        self.watch_ids = landmarks.watch_ids.to(device)
        self.watch_vectors = landmarks.vocab.to(device)[self.watch_ids]
        # What the logged steps compare against: fixed for the whole run.
        self.seq, self.pos = torch.nonzero(self.trainable, as_tuple=True)
        self.origin = self.start[self.seq, self.pos]
        self.original_ids = batch.ids.to(device)[self.seq, self.pos]
        self.origin_terms = OriginTerms(self.origin, self.index)

    def observe(self, step: Step) -> None:
        number, trace = step.number, self.trace
        rows = step.rows.to(self.start.device)
        top_logprob, top_id = step.logprobs.max(dim=-1)
        self.top1_id[rows], self.top1_prob[rows] = top_id, top_logprob.exp()
        trace.kl[number] = step.kl
        trace.top1_id[number], trace.top1_prob[number] = self.top1_id, self.top1_prob
        trace.active[number, rows] = True
        travel = (step.embeddings - self.start).norm(dim=-1) * self.trainable
        trace.l2_total[number] = travel.sum(dim=1)
        trace.l2_max[number] = travel.max(dim=1).values
        for i, row in enumerate(step.rows.tolist()):
            if not step.active[row]:
                self.final_logprobs[row] = step.logprobs[i].clone()
        self.last = number
        if number in self.log_steps or number == self.steps or not step.active.any():
            self._snapshot(step)

    @torch.no_grad()
    def _snapshot(self, step: Step) -> None:
        """Tables at a logged step: travel, back-projection, headings, top-k."""
        seq, origin = self.seq, self.origin
        current = step.embeddings[seq, self.pos].float()
        where = project(
            current,
            origin,
            self.original_ids,
            self.index,
            self.watch_vectors,
            origin_terms=self.origin_terms,
        )
        near = where.nearest
        m = seq.numel()
        active = torch.zeros(len(self.top1_id), dtype=torch.bool)  # optimised at this step
        active[step.rows] = True
        self.token_rows.append(
            {
                "seq": seq.cpu(),
                "pos": self.pos.cpu(),
                "step": torch.full((m,), step.number),
                "active": active[seq.cpu()],
                "token_id": self.original_ids.cpu(),
                "l2": (current - origin).norm(dim=1).cpu(),
                "nearest_euclidean_id": near.euclidean_id.cpu(),
                "nearest_euclidean": near.euclidean.cpu(),
                "nearest_cosine_id": near.cosine_id.cpu(),
                "nearest_cosine": near.cosine.cpu(),
                "heading_id": where.heading_id.cpu(),
                "heading_cosine": where.heading_cosine.cpu(),
                "watch_ids": self.watch_ids.cpu().expand(m, -1),
                "watch_cosines": where.watch_cosines.cpu(),
                "watch_ranks": where.watch_ranks.cpu(),
            }
        )
        probs = self._site_probs(step)
        n, k = probs.shape[0], min(self.logging.top_k, probs.shape[1])
        top_prob, top_id = probs.topk(k, dim=1)
        self.topk_rows.append(
            {
                "seq": torch.arange(n).repeat_interleave(k),
                "step": torch.full((n * k,), step.number),
                "active": active.repeat_interleave(k),
                "rank": torch.arange(1, k + 1).repeat(n),
                "token_id": top_id.cpu().ravel(),
                "prob": top_prob.cpu().ravel(),
            }
        )
        if self.logging.save_logged_embeddings:
            self.logged[step.number] = step.embeddings.cpu().clone()

    def _site_probs(self, step: Step) -> Tensor:
        """[n, vocab] predicted probabilities of every sequence at its current point."""
        logprobs = torch.empty(
            (len(self.top1_id), step.logprobs.shape[1]), device=step.logprobs.device
        )
        for row, final in self.final_logprobs.items():
            logprobs[row] = final
        logprobs[step.rows.to(logprobs.device)] = step.logprobs
        return logprobs.exp()

    def state(self) -> dict[str, Any]:
        return {
            "trace": self.trace.state(),
            "top1": (self.top1_id.cpu(), self.top1_prob.cpu()),
            "final_logprobs": {row: v.cpu() for row, v in self.final_logprobs.items()},
            "token_rows": self.token_rows,
            "topk_rows": self.topk_rows,
            "logged": self.logged,
            "last": self.last,
        }

    def restore(self, state: dict[str, Any]) -> None:
        device = self.start.device
        self.trace.restore(state["trace"])
        self.top1_id.copy_(state["top1"][0])
        self.top1_prob.copy_(state["top1"][1])
        self.final_logprobs = {row: v.to(device) for row, v in state["final_logprobs"].items()}
        self.token_rows, self.topk_rows = state["token_rows"], state["topk_rows"]
        self.logged, self.last = state["logged"], state["last"]

    def result(self, end: Tensor) -> Result:
        trace = self.trace
        if self.last < self.steps:
            trace.hold_from(self.last)
        steps, n = trace.kl.shape
        columns = {
            "seq": np.tile(np.arange(n), steps),
            "step": np.repeat(np.arange(steps), n),
            **{name: values.cpu().numpy().ravel() for name, values in vars(trace).items()},
        }
        return Result(
            steps=columns,
            tokens=_concat(self.token_rows),
            topk=_concat(self.topk_rows),
            start=self.start.cpu(),
            end=end.cpu(),
            logged=self.logged,
        )


def _concat(rows: list[dict[str, Tensor]]) -> dict[str, list]:
    """One column per key; 2-D tensors (the watch columns) become one list per row."""
    if not rows:
        return {}
    columns: dict[str, list] = {}
    for key in rows[0]:
        joined = torch.cat([row[key] for row in rows])
        columns[key] = joined.tolist() if joined.dim() > 1 else joined.numpy()
    return columns
