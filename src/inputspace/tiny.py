"""Random-weight language models of real architectures, small enough for tests.

A tiny model has a byte-level BPE tokenizer trained on a built-in corpus (so words
split into sub-word pieces with leading-space tokens, as in real models), the special
tokens its architecture expects, and seeded random weights.
"""

from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import AddedToken
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

ARCHITECTURES = ("modernbert", "llama")

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

# Ids are fixed by the order here: the first special token gets id 0.
_SPECIALS = {
    "modernbert": {"unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"},
    "llama": {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"},
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


def build_tokenizer(architecture: str, vocab_size: int) -> PreTrainedTokenizerFast:
    specials = _SPECIALS[architecture]
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
    if architecture == "modernbert":
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            special_tokens=[("[CLS]", ids["cls"]), ("[SEP]", ids["sep"])],
        )
        roles = {f"{role}_token": token for role, token in specials.items()}
    else:
        backend.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", ids["bos"])]
        )
        roles = {"bos_token": specials["bos"], "eos_token": specials["eos"], "pad_token": specials["eos"]}
    return PreTrainedTokenizerFast(tokenizer_object=backend, **roles)


def build_model(spec: TinySpec, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    if spec.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {spec.architecture!r}")
    torch.manual_seed(spec.seed)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        max_position_embeddings=spec.max_positions,
        initializer_range=spec.init_std,
    )
    if spec.architecture == "modernbert":
        # The defaults' special-token ids exceed a small vocabulary: set them all.
        config = ModernBertConfig(
            **common,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            global_attn_every_n_layers=2,
            local_attention=16,
        )
        model: PreTrainedModel = ModernBertForMaskedLM(config)
    else:
        config = LlamaConfig(
            **common,
            num_key_value_heads=spec.num_heads,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config)
    return model.eval()


def build(spec: TinySpec) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    tokenizer = build_tokenizer(spec.architecture, spec.vocab_size)
    return build_model(spec, tokenizer), tokenizer
