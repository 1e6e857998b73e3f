"""Random-weight language models of real architectures, small enough for tests.

A tiny model has a byte-level BPE tokenizer trained on a built-in corpus (so words
split into sub-word pieces with leading-space tokens, as in real models), the special
tokens its family expects, and seeded random weights, built from transformers' own
config and model classes. `ARCHITECTURES` is the tested matrix; adding one is a line
there (the config class, the model class and how the spec's sizes are spelt).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedModel, PreTrainedTokenizerFast

_CORPUS = """\
The animal that says bark is a dog. The animal that says neigh is a horse.
The animal that says moo is a cow. The animal that says meow is a cat.
The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.
The colour of grass is green. The colour of the sky is blue. The colour of snow is white.
The opposite of hot is cold. The opposite of up is down. The opposite of big is small.
A person who bakes bread is a baker. A person who teaches is a teacher.
The day after Monday is Tuesday. The month after May is June. One plus one is two.
We see with our eyes and hear with our ears. Bread is made from flour and water.
"""

# Tokenizer styles; ids are fixed by the order here: the first special token gets id 0.
_SPECIALS = {
    "bert": {"unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"},
    "bos": {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"},  # BOS before every text
    "plain": {"eos": "<|endoftext|>"},  # GPT-2 style: nothing added to a text
}


@dataclass(frozen=True)
class TinySpec:
    architecture: str
    vocab_size: int = 512
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 256
    init_std: float = 0.2  # peaked predictions, so there is a distribution to move toward
    seed: int = 0


@dataclass(frozen=True)
class Architecture:
    kind: str  # "causal" or "masked"
    config: str  # transformers config class
    model: str  # transformers model class
    tokenizer: str  # a key of _SPECIALS
    sizes: Callable[[TinySpec], dict[str, Any]]  # the spec in this config's own names
    extra: Callable[[PreTrainedTokenizerFast], dict[str, Any]] = lambda tokenizer: {}


def _standard(spec: TinySpec) -> dict[str, Any]:
    return dict(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        max_position_embeddings=spec.max_positions,
        initializer_range=spec.init_std,
    )


def _decoder(spec: TinySpec) -> dict[str, Any]:
    return {**_standard(spec), "num_key_value_heads": spec.num_heads, "tie_word_embeddings": True}


def _bos_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    return dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _bert_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    return dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )


def _plain_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    return dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)


ARCHITECTURES: dict[str, Architecture] = {
    # causal
    "llama": Architecture("causal", "LlamaConfig", "LlamaForCausalLM", "bos", _decoder, _bos_ids),
    "mistral": Architecture(
        "causal", "MistralConfig", "MistralForCausalLM", "bos", _decoder, _bos_ids
    ),
    "qwen2": Architecture("causal", "Qwen2Config", "Qwen2ForCausalLM", "bos", _decoder, _bos_ids),
    "qwen3": Architecture(
        "causal",
        "Qwen3Config",
        "Qwen3ForCausalLM",
        "bos",
        lambda s: {**_decoder(s), "head_dim": s.hidden_size // s.num_heads},
        _bos_ids,
    ),
    "gemma": Architecture(
        "causal",
        "GemmaConfig",
        "GemmaForCausalLM",
        "bos",
        lambda s: {**_decoder(s), "head_dim": s.hidden_size // s.num_heads},
        _bos_ids,
    ),
    "gemma2": Architecture(
        "causal",
        "Gemma2Config",
        "Gemma2ForCausalLM",
        "bos",
        lambda s: {
            **_decoder(s),
            "head_dim": s.hidden_size // s.num_heads,
            "sliding_window": 8,
            "final_logit_softcapping": 5.0,
            "attn_logit_softcapping": 20.0,
        },
        _bos_ids,
    ),
    "gemma3": Architecture(
        "causal",
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        "bos",
        lambda s: {
            **_decoder(s),
            "head_dim": s.hidden_size // s.num_heads,
            "sliding_window": 8,
            "final_logit_softcapping": 5.0,
        },
        _bos_ids,
    ),
    "phi3": Architecture("causal", "Phi3Config", "Phi3ForCausalLM", "bos", _decoder, _bos_ids),
    "olmo2": Architecture("causal", "Olmo2Config", "Olmo2ForCausalLM", "bos", _decoder, _bos_ids),
    "gpt2": Architecture(
        "causal",
        "GPT2Config",
        "GPT2LMHeadModel",
        "plain",
        lambda s: dict(
            n_embd=s.hidden_size,
            n_layer=s.num_layers,
            n_head=s.num_heads,
            n_inner=s.intermediate_size,
            n_positions=s.max_positions,
            initializer_range=s.init_std,
        ),
        _plain_ids,
    ),
    "gpt_neox": Architecture(
        "causal",
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        "plain",
        lambda s: {**_standard(s), "tie_word_embeddings": False},
        _plain_ids,
    ),
    # masked
    "modernbert": Architecture(
        "masked",
        "ModernBertConfig",
        "ModernBertForMaskedLM",
        "bert",
        lambda s: {**_standard(s), "global_attn_every_n_layers": 2, "local_attention": 16},
        lambda t: {**_bert_ids(t), "cls_token_id": t.cls_token_id, "sep_token_id": t.sep_token_id},
    ),
    "bert": Architecture("masked", "BertConfig", "BertForMaskedLM", "bert", _standard, _bert_ids),
    # RoBERTa counts positions from padding_idx + 1
    "roberta": Architecture(
        "masked",
        "RobertaConfig",
        "RobertaForMaskedLM",
        "bert",
        lambda s: {**_standard(s), "max_position_embeddings": s.max_positions + 8},
        _bert_ids,
    ),
    "distilbert": Architecture(
        "masked",
        "DistilBertConfig",
        "DistilBertForMaskedLM",
        "bert",
        lambda s: dict(
            dim=s.hidden_size,
            hidden_dim=s.intermediate_size,
            n_layers=s.num_layers,
            n_heads=s.num_heads,
            max_position_embeddings=s.max_positions,
            initializer_range=s.init_std,
        ),
        lambda t: {"pad_token_id": t.pad_token_id},
    ),
    "deberta_v2": Architecture(
        "masked",
        "DebertaV2Config",
        "DebertaV2ForMaskedLM",
        "bert",
        lambda s: {**_standard(s), "relative_attention": True, "position_buckets": 16},
        _bert_ids,
    ),
}


def build_tokenizer(style: str, vocab_size: int) -> PreTrainedTokenizerFast:
    specials = _SPECIALS[style]
    special_tokens = [
        AddedToken(token, special=True, lstrip=(role == "mask")) for role, token in specials.items()
    ]
    backend = Tokenizer(models.BPE(unk_token=specials.get("unk")))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    ids = {role: backend.token_to_id(token) for role, token in specials.items()}
    if style == "bert":
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            special_tokens=[("[CLS]", ids["cls"]), ("[SEP]", ids["sep"])],
        )
        roles = {f"{role}_token": token for role, token in specials.items()}
    elif style == "bos":
        backend.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", ids["bos"])]
        )
        roles = {
            "bos_token": specials["bos"],
            "eos_token": specials["eos"],
            "pad_token": specials["eos"],
        }
    else:
        roles = {
            "bos_token": specials["eos"],
            "eos_token": specials["eos"],
            "pad_token": specials["eos"],
        }
    return PreTrainedTokenizerFast(tokenizer_object=backend, **roles)


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {name!r}; use one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build_model(spec: TinySpec, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    family = architecture(spec.architecture)
    torch.manual_seed(spec.seed)
    config_class = getattr(transformers, family.config)
    # The defaults' special-token ids exceed a small vocabulary: set them from the tokenizer.
    config = config_class(
        vocab_size=len(tokenizer), **family.sizes(spec), **family.extra(tokenizer)
    )
    model: PreTrainedModel = getattr(transformers, family.model)(config)
    return model.eval()


def build(spec: TinySpec) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    tokenizer = build_tokenizer(architecture(spec.architecture).tokenizer, spec.vocab_size)
    return build_model(spec, tokenizer), tokenizer
