"""The paper models' shapes that benchmarks/paper_cost.py measures are the published ones."""

import pytest
import torch
import transformers
import yaml
from helpers import REPO

PAPER_MODELS = yaml.safe_load((REPO / "benchmarks/paper_models.yaml").read_text())
PAPER = yaml.safe_load((REPO / "configs/paper.yaml").read_text())


def built(name: str) -> transformers.PreTrainedModel:
    spec = PAPER_MODELS[name]
    config = getattr(transformers, spec["config"])(**spec["values"])
    with torch.device("meta"):  # shapes only: no memory, no weights
        return getattr(transformers, spec["model"])(config)


@pytest.mark.parametrize("name", sorted(PAPER_MODELS))
def test_the_parameter_count_is_the_model_cards(name):
    parameters = sum(p.numel() for p in built(name).parameters())
    assert abs(parameters / 1e6 - PAPER_MODELS[name]["published_millions"]) < 1


def test_the_shapes_are_the_paper_configs_models():
    assert sorted(PAPER_MODELS) == sorted(PAPER["models"])
    masked = built("modernbert_large")
    assert masked.get_input_embeddings().weight.shape == (50368, 1024)
    causal = built("llama_1b")
    assert causal.get_input_embeddings().weight.shape == (128256, 2048)
    assert causal.config.num_key_value_heads == 8 and causal.config.tie_word_embeddings


@pytest.mark.parametrize("name", sorted(PAPER_MODELS))
def test_the_special_tokens_lie_inside_the_vocabulary(name):
    spec = PAPER_MODELS[name]
    assert all(0 <= token < spec["values"]["vocab_size"] for token in spec["special"].values())
