"""LanguageModel: embeddings as the model consumes them, logits at prediction sites."""

import pytest
import torch
from torch import nn

from inputspace.errors import InputspaceError
from inputspace.model import models
from inputspace.optimisation.sequences import pad_batch, trainable_positions

ARCHS = ["modernbert", "llama"]

TEXTS = [
    "The capital of France is [MASK].",
    "The animal that says bark is a [MASK] and not a cat.",
    "One plus one is [MASK]",
]


def texts_for(lm: models.LanguageModel) -> list[str]:
    """Masked LMs see the [MASK]; causal LMs see the text before it."""
    if lm.kind == "masked":
        return TEXTS
    return [text.split("[MASK]")[0].rstrip() for text in TEXTS]


def encode(lm: models.LanguageModel) -> list[list[int]]:
    return [lm.tokenizer(text)["input_ids"] for text in texts_for(lm)]


def pad_id(lm: models.LanguageModel) -> int:
    return lm.tokenizer.pad_token_id


@pytest.fixture(params=ARCHS)
def lm(request, tiny_models):
    return tiny_models[request.param]


def test_kinds(tiny_models):
    assert tiny_models["modernbert"].kind == "masked"
    assert tiny_models["llama"].kind == "causal"


def test_pad_batch_right_pads():
    ids, mask = pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert ids.dtype == mask.dtype == torch.long


def test_batch_has_different_lengths(lm):
    lengths = [len(seq) for seq in encode(lm)]
    assert len(set(lengths)) == 3


@torch.no_grad()
def test_logits_at_sites_equal_full_model_logits(lm):
    ids, mask = pad_batch(encode(lm), pad_id(lm))
    sites = lm.prediction_sites(ids, mask)
    logits = lm.logits_at(lm.embed(ids), mask, sites)
    rows = torch.arange(ids.shape[0])
    full = lm.model(input_ids=ids, attention_mask=mask).logits[rows, sites]
    assert logits.shape == (3, lm.vocab_size)
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_padded_batch_equals_each_sequence_alone(lm):
    sequences = encode(lm)
    ids, mask = pad_batch(sequences, pad_id(lm))
    assert mask.sum(dim=1).tolist() == [len(seq) for seq in sequences]
    batched = lm.logits_at(lm.embed(ids), mask, lm.prediction_sites(ids, mask))
    for row, sequence in enumerate(sequences):
        one_ids, one_mask = pad_batch([sequence], pad_id(lm))
        alone = lm.logits_at(lm.embed(one_ids), one_mask, lm.prediction_sites(one_ids, one_mask))
        torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=0)


def test_frozen_prefix_length_by_hand(tiny_models):
    lm = tiny_models["llama"]
    trainable = torch.tensor([[False, False, True, True], [False, False, False, True]])
    mask = torch.ones(2, 4, dtype=torch.long)
    # common to both rows
    assert lm.frozen_prefix_length(trainable, mask, torch.tensor([3, 3])) == 2
    assert lm.frozen_prefix_length(trainable, mask, torch.tensor([3, 1])) == 1  # never past a site
    padded = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    # padding is not a prefix
    assert lm.frozen_prefix_length(trainable, padded, torch.tensor([3, 3])) == 0
    assert (
        tiny_models["modernbert"].frozen_prefix_length(trainable, mask, torch.tensor([3, 3])) == 0
    )


def test_frozen_prefix_gives_the_same_logits_and_gradients(tiny_models):
    """The BOS position's keys and values, computed once, stand in for it exactly."""
    lm = tiny_models["llama"]
    ids, mask = pad_batch(encode(lm), pad_id(lm))
    sites = lm.prediction_sites(ids, mask)
    length = lm.frozen_prefix_length(trainable_positions(lm, ids, mask), mask, sites)
    assert length == 1  # the BOS token
    start = lm.embed(ids).detach()
    prefix = lm.frozen_prefix(start, mask, length)
    results = []
    for use in (None, prefix, prefix):  # twice: the stored keys and values are not consumed
        leaf = start.clone().requires_grad_(True)
        logits = lm.logits_at(leaf, mask, sites, prefix=use)
        logits.logsumexp(dim=-1).sum().backward()
        results.append((logits.detach(), leaf.grad))
    (full_logits, full_grad), *cached = results
    for logits, grad in cached:
        torch.testing.assert_close(logits, full_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(grad[:, length:], full_grad[:, length:], atol=1e-5, rtol=1e-4)
        assert torch.all(grad[:, :length] == 0)
    assert full_grad[:, :length].abs().sum() > 0  # the skipped gradient was real, and never used


def test_causal_sites_are_last_real_positions(tiny_models):
    lm = tiny_models["llama"]
    sequences = encode(lm)
    ids, mask = pad_batch(sequences, pad_id(lm))
    expected = [len(seq) - 1 for seq in sequences]
    assert lm.prediction_sites(ids, mask).tolist() == expected
    # By hand: rows of length 3, 1 and 2 (the pad id is also eos here, so ids can't tell).
    ids, mask = pad_batch([[0, 7, 8], [0], [0, 9]], pad_id(lm))
    assert lm.prediction_sites(ids, mask).tolist() == [2, 0, 1]


def test_causal_texts_carry_bos_and_no_mask(tiny_models):
    lm = tiny_models["llama"]
    for sequence in encode(lm):
        assert sequence[0] == lm.tokenizer.bos_token_id
        assert lm.tokenizer.bos_token_id not in sequence[1:]


def test_masked_sites_are_the_mask_positions(tiny_models):
    lm = tiny_models["modernbert"]
    sequences = encode(lm)
    assert all(seq.count(lm.mask_id) == 1 for seq in sequences)
    ids, mask = pad_batch(sequences, pad_id(lm))
    expected = [seq.index(lm.mask_id) for seq in sequences]
    assert lm.prediction_sites(ids, mask).tolist() == expected
    # By hand, with the mask at positions 1, 0 and 2.
    m = lm.mask_id
    ids, mask = pad_batch([[1, m, 9, 2], [m, 2], [1, 9, m]], pad_id(lm))
    assert lm.prediction_sites(ids, mask).tolist() == [1, 0, 2]


def test_mask_token_in_padding_is_not_a_site(tiny_models):
    lm = tiny_models["modernbert"]
    m = lm.mask_id
    ids, mask = pad_batch([[1, m, 2], [1, 9, m, 2, 2]], pad_id(lm))
    ids[0, 4] = m  # under the attention mask: not part of the sequence
    assert lm.prediction_sites(ids, mask).tolist() == [1, 2]


@pytest.mark.parametrize("text", ["The capital of France is Paris.", "[MASK] is [MASK]."])
def test_masked_sequence_needs_exactly_one_mask(tiny_models, text):
    lm = tiny_models["modernbert"]
    good = lm.tokenizer("One plus one is [MASK]")["input_ids"]
    bad = lm.tokenizer(text)["input_ids"]
    ids, mask = pad_batch([good, bad], pad_id(lm))
    with pytest.raises(InputspaceError, match="sequence 1 has [02] mask tokens") as info:
        lm.prediction_sites(ids, mask)
    assert "\n" not in str(info.value)


@torch.no_grad()
def test_vocab_embeddings_in_chunks_equal_embedding_of_every_id(lm):
    vocab = lm.vocab_embeddings(chunk_size=7)
    assert vocab.shape == (lm.vocab_size, lm.embedding_dim)
    assert vocab.dtype == torch.float32
    assert lm.vocab_size == len(lm.tokenizer)
    torch.testing.assert_close(vocab, lm.embed(torch.arange(lm.vocab_size)), atol=0, rtol=0)
    torch.testing.assert_close(vocab, lm.vocab_embeddings(), atol=0, rtol=0)
    ragged = 100  # a last chunk shorter than the others
    assert lm.vocab_size % ragged != 0
    torch.testing.assert_close(vocab, lm.vocab_embeddings(chunk_size=ragged), atol=0, rtol=0)


class TimesThreeEmbedding(nn.Embedding):
    """Like Gemma's scaled word embedding: the module, not the table, does the scaling."""

    def forward(self, ids):
        return super().forward(ids) * 3.0


@torch.no_grad()
def test_embeddings_come_from_the_input_embedding_module(tiny_folders):
    lm = models.load(tiny_folders["llama"])  # a private copy: the shared one stays unscaled
    old = lm.model.get_input_embeddings()
    scaled = TimesThreeEmbedding(old.num_embeddings, old.embedding_dim)
    scaled.weight = old.weight
    lm.model.set_input_embeddings(scaled)
    weight = old.weight.detach().clone()

    vocab = lm.vocab_embeddings(chunk_size=100)
    torch.testing.assert_close(vocab, 3.0 * weight, atol=1e-6, rtol=0)
    ids = torch.tensor([[0, 5, 17, 3]])
    torch.testing.assert_close(lm.embed(ids), 3.0 * weight[ids], atol=1e-6, rtol=0)

    # The model consumes the scaled embeddings too: logits through inputs_embeds agree.
    mask = torch.ones_like(ids)
    sites = lm.prediction_sites(ids, mask)
    full = lm.model(input_ids=ids, attention_mask=mask).logits[:, -1]
    torch.testing.assert_close(lm.logits_at(lm.embed(ids), mask, sites), full, atol=1e-5, rtol=0)
