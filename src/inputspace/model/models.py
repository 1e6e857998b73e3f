"""Model access, the same for masked and causal LMs of any architecture.

A `LanguageModel` wraps a prepared folder. It embeds token ids exactly as the model
consumes them through `inputs_embeds` (through `get_input_embeddings()`, including any
scaling inside that module), and returns logits only at each sequence's prediction
site: the mask position of a masked LM, the last real position of a causal LM. Those
logits come from the model's own output path (its head and whatever its forward does
after the body: final-logit softcapping, scaling, tied or untied weights), run on the
sites' final hidden states only.
"""

import contextlib
import copy
import ctypes
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from transformers import AutoTokenizer, DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from inputspace.errors import InputspaceError
from inputspace.model.manifest import read_manifest
from inputspace.model.sources import auto_class, check_unchanged


@dataclass(frozen=True)
class FrozenPrefix:
    """Keys and values of a causal LM's leading positions that no sequence optimises.

    In a causal LM those positions see only each other, so their keys and values stay
    the same at every step: computed once, they spare every step's forward and
    backward pass over them.
    """

    length: int
    keys_values: list[tuple[Tensor, Tensor]]  # per layer, each [batch, kv_heads, length, head_dim]

    def rows(self, rows: slice | Tensor) -> "FrozenPrefix":
        return FrozenPrefix(self.length, [(k[rows], v[rows]) for k, v in self.keys_values])


class _KeepFloat64(TorchFunctionMode):
    """Inside a float64 model's forward, the casts to float32 that models' own code makes
    for stability (norms, attention softmax, rotary tables) stay in float64: every value,
    and so every derivative, is computed in float64."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.float:
            func = torch.Tensor.double
        args = tuple(torch.float64 if a is torch.float32 else a for a in args)
        kwargs = {k: torch.float64 if v is torch.float32 else v for k, v in (kwargs or {}).items()}
        return func(*args, **kwargs)


@dataclass
class LanguageModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    manifest: dict[str, Any]
    float64: bool = False  # weights and every computation in float64 (see `in_float64`)

    def in_float64(self) -> "LanguageModel":
        """A float64 copy: the same weights exactly, its forward (and derivatives) rounded
        to about 1e-16 of each value instead of float32's 1e-7."""
        return dataclasses.replace(self, model=copy.deepcopy(self.model).double(), float64=True)

    def float64_for_now(self) -> contextlib.AbstractContextManager["LanguageModel"]:
        """This model in float64 inside the block: its weights converted in place and back
        after (float32 -> float64 -> float32 is exact), so that one copy of the weights is
        in memory, not two as with `in_float64`. Inside, use only the model it yields."""
        return self._in_float64_for_now([self.model])

    def head_in_float64_for_now(self) -> contextlib.AbstractContextManager["LanguageModel"]:
        """Only the head in float64 inside the block (the modules outside the body, with
        the weights tied to them), converted in place and back like `float64_for_now`: a
        head's Jacobian at a float64 state needs no float64 body, and the body is most of a
        model's weights. Inside, use only the yielded model's `head`."""
        body = self.model.base_model
        return self._in_float64_for_now([m for m in self.model.children() if m is not body])

    @contextlib.contextmanager
    def _in_float64_for_now(self, modules: list[torch.nn.Module]) -> Iterator["LanguageModel"]:
        dtype = next(self.model.parameters()).dtype
        for module in modules:
            convert_in_place(module, torch.float64)
        try:
            yield dataclasses.replace(self, float64=True)
        finally:
            for module in modules:
                convert_in_place(module, dtype)

    def arithmetic(self) -> contextlib.AbstractContextManager:
        """Where the model runs: float64 throughout for a float64 copy."""
        return _KeepFloat64() if self.float64 else contextlib.nullcontext()

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest.get("name", "the model")

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def vocab_size(self) -> int:
        return self.model.get_input_embeddings().num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    @property
    def special_ids(self) -> list[int]:
        return list(self.manifest["special_token_ids"]["all"])

    @property
    def mask_id(self) -> int | None:
        return self.manifest["special_token_ids"]["named"]["mask"]

    def embed(self, ids: Tensor) -> Tensor:
        """Input embeddings of token ids, as `inputs_embeds` expects them."""
        return self.model.get_input_embeddings()(ids.to(self.device))

    @torch.no_grad()
    def vocab_embeddings(self, chunk_size: int = 8192) -> Tensor:
        """The [vocab_size, dim] matrix of every token's input embedding, on the CPU in fp32."""
        chunks = [
            self.embed(torch.arange(start, min(start + chunk_size, self.vocab_size))).float().cpu()
            for start in range(0, self.vocab_size, chunk_size)
        ]
        return torch.cat(chunks)

    def prediction_sites(self, ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Index of the prediction site of each row of a right-padded batch of ids."""
        if self.kind == "causal":
            return attention_mask.sum(dim=1) - 1
        is_mask = (ids == self.mask_id) & attention_mask.bool()
        counts = is_mask.sum(dim=1)
        if not torch.all(counts == 1):
            row = int(torch.nonzero(counts != 1)[0])
            raise InputspaceError(
                f"sequence {row} has {int(counts[row])} mask tokens; a masked LM needs exactly one "
                "prediction site per sequence"
            )
        return is_mask.int().argmax(dim=1)

    def logits_at(
        self,
        inputs_embeds: Tensor,
        attention_mask: Tensor,
        sites: Tensor,
        prefix: FrozenPrefix | None = None,
    ) -> Tensor:
        """[batch, vocab] logits at `sites` for a right-padded batch of input embeddings.

        Runs the transformer body on every position (after `prefix`, whose keys and values
        it reuses) but the LM head only at the sites.
        """
        hidden = self.hidden_at(inputs_embeds, attention_mask, sites, prefix)
        with self.arithmetic():
            return self.head(hidden)

    def hidden_at(
        self,
        inputs_embeds: Tensor,
        attention_mask: Tensor,
        sites: Tensor,
        prefix: FrozenPrefix | None = None,
    ) -> Tensor:
        """[batch, d] final hidden states at `sites`: all the logits there depend on."""
        start, extra = 0, ({"use_cache": False} if self.kind == "causal" else {})
        if prefix is not None:
            cache = DynamicCache(ddp_cache_data=prefix.keys_values, config=self.model.config)
            start, extra = prefix.length, {"use_cache": True, "past_key_values": cache}
        if self.float64:  # a norm's parameters and its input must agree (LayerNorm checks)
            inputs_embeds = inputs_embeds.double()
        with self.arithmetic():
            hidden = self.model.base_model(
                inputs_embeds=inputs_embeds[:, start:], attention_mask=attention_mask, **extra
            ).last_hidden_state
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            return hidden[rows, sites.to(hidden.device) - start]

    def head(self, hidden: Tensor) -> Tensor:
        """[n, vocab] logits from [n, d] final hidden states, by the model's own forward
        after its body (see `own_output_path`)."""
        return own_output_path(self.model, hidden)

    def frozen_prefix_length(self, trainable: Tensor, attention_mask: Tensor, sites: Tensor) -> int:
        """How many leading positions no sequence optimises, up to the first prediction
        site; 0 for a masked LM, where every position sees every other."""
        if self.kind != "causal":
            return 0
        fixed = (~trainable & attention_mask.bool()).all(dim=0)
        return min(int(fixed.int().cumprod(dim=0).sum()), int(sites.min()))

    @torch.no_grad()
    def frozen_prefix(
        self, inputs_embeds: Tensor, attention_mask: Tensor, length: int
    ) -> FrozenPrefix | None:
        """The keys and values of the first `length` positions; None if there are none, or
        if the model keeps another kind of state (then every step computes them)."""
        if length == 0:
            return None
        cache = self.model.base_model(
            inputs_embeds=inputs_embeds[:, :length],
            attention_mask=attention_mask[:, :length],
            use_cache=True,
        ).past_key_values
        if type(cache) is not DynamicCache:
            return None
        return FrozenPrefix(length, [(layer.keys, layer.values) for layer in cache.layers])


class _BodyOutput:
    """A body's output holding only its last hidden state: field 0 and `last_hidden_state`;
    every other field a head's forward may pass on (cache, attentions, ...) is None."""

    def __init__(self, last_hidden_state: Tensor):
        self.last_hidden_state = last_hidden_state

    def __getattr__(self, name: str) -> None:
        return None

    def __getitem__(self, key: int | slice | str):
        return getattr(self, key) if isinstance(key, str) else (self.last_hidden_state,)[key]


def convert_in_place(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """`model.to(dtype)`, handing what it frees back to the system: glibc keeps freed
    blocks of a weight's size in its heap, where later allocations fit only in part, so
    that on SmolLM2 0.5 GB more stayed resident after each float64 block (measured,
    docs/costs.md)."""
    model.to(dtype)
    release_freed_memory()


def release_freed_memory() -> None:
    """Hand the memory the process freed back to the system (glibc's malloc_trim);
    elsewhere, nothing to do."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


_LIBC = ctypes.CDLL(None)  # the C library this process runs on


def own_output_path(model: PreTrainedModel, hidden: Tensor) -> Tensor:
    """What `model`'s forward makes of final hidden states `hidden` [n, d]: its own code
    after the body, run on a one-position batch whose body output is `hidden`.

    The forward of every *ForCausalLM / *LMHeadModel / *ForMaskedLM calls its body
    (`base_model`) first and builds the logits from the body's last hidden state; for
    this one call the body answers with `hidden` instead of running. So the head,
    softcapping, scaling and weight tying are the model's own, and the head runs only on
    the rows given.
    """
    body = model.base_model
    if body is model:
        raise InputspaceError(
            f"{type(model).__name__} has no separate body (base_model); inputspace needs a model "
            "whose forward runs a body and then a language-model head"
        )
    n = hidden.shape[0]
    answer = _BodyOutput(hidden.unsqueeze(1))
    body.forward = lambda *args, **kwargs: answer  # this instance only, for this call
    try:
        ids = torch.zeros((n, 1), dtype=torch.long, device=hidden.device)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    finally:
        del body.forward
    return logits[:, 0]


def attention_for(device: torch.device, setting: str = "auto") -> str:
    """Eager attention on the CPU: the study's sequences are short, where the fused kernel
    costs more than it saves (and eager supports double backward); sdpa elsewhere."""
    if setting != "auto":
        return setting
    return "eager" if torch.device(device).type == "cpu" else "sdpa"


def _with_attention(
    folder: Path, manifest: dict[str, Any], attention: str, chosen: bool
) -> PreTrainedModel:
    """The model with `attention`; where the architecture lacks it, eager attention if
    the config said auto, else one line naming what to set."""
    try:
        return auto_class(manifest["kind"]).from_pretrained(
            folder, dtype=torch.float32, attn_implementation=attention
        )
    except ValueError as error:
        if "does not support an attention implementation" not in str(error) or attention == "eager":
            raise
        if chosen:
            raise InputspaceError(
                f"model {manifest.get('name')!r} ({manifest['architecture']}) does not support "
                f"attention {attention!r}; set attention: eager (or auto)"
            ) from None
    return auto_class(manifest["kind"]).from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    )


def load(
    folder: Path, device: str | torch.device = "cpu", attention: str = "auto"
) -> LanguageModel:
    """Load a prepared model folder with frozen fp32 weights in eval mode."""
    manifest = read_manifest(folder)
    check_unchanged(folder)
    model = _with_attention(
        folder, manifest, attention_for(device, attention), chosen=attention != "auto"
    )
    model.requires_grad_(False).eval().to(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return LanguageModel(model=model, tokenizer=tokenizer, manifest=manifest)
