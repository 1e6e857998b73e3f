"""The vocabulary table and embedding matrix, and their files."""

import pandas as pd
import pytest
import torch

from inputspace.model import vocab

ARCHS = ["modernbert", "llama"]
COLUMNS = ["token_id", "token", "piece", "is_special", "in_tokenizer", "norm", "is_regular"]


@pytest.fixture(params=ARCHS)
def lm(request, tiny_models):
    return tiny_models[request.param]


@pytest.fixture
def matrix(lm):
    return lm.vocab_embeddings()


def test_table_has_one_row_per_vocab_id(lm, matrix):
    table = vocab.vocabulary_table(lm, matrix)
    assert list(table.columns) == COLUMNS
    assert len(table) == lm.vocab_size == matrix.shape[0]
    assert table.token_id.tolist() == list(range(lm.vocab_size))
    assert table.in_tokenizer.all()
    assert table.piece.tolist() == lm.tokenizer.convert_ids_to_tokens(list(range(lm.vocab_size)))
    assert table.token[10] == lm.tokenizer.decode([10])


def test_is_special_matches_the_manifest(lm, matrix):
    table = vocab.vocabulary_table(lm, matrix)
    special = set(lm.manifest["special_token_ids"]["all"])
    assert set(table.token_id[table.is_special]) == special
    assert table.is_regular.tolist() == [i not in special for i in range(lm.vocab_size)]
    assert vocab.regular_ids(table).tolist() == [
        i for i in range(lm.vocab_size) if i not in special
    ]


def test_norm_is_the_row_norm(lm, matrix):
    table = vocab.vocabulary_table(lm, matrix)
    expected = torch.sqrt((matrix.double() ** 2).sum(dim=1))
    torch.testing.assert_close(
        torch.tensor(table.norm.to_numpy(), dtype=torch.float64), expected, atol=1e-5, rtol=1e-5
    )


def test_rows_past_the_tokenizer_are_kept_but_not_regular(tiny_models):
    lm = tiny_models["llama"]
    matrix = torch.cat([lm.vocab_embeddings(), torch.ones(2, lm.embedding_dim)])
    table = vocab.vocabulary_table(lm, matrix)
    assert len(table) == lm.vocab_size + 2
    tail = table.iloc[-2:]
    assert not tail.in_tokenizer.any() and not tail.is_regular.any()
    assert tail.token.tolist() == ["", ""]
    torch.testing.assert_close(
        torch.tensor(tail.norm.to_numpy()), torch.full((2,), lm.embedding_dim**0.5)
    )


def test_write_then_read_round_trips(lm, matrix, tmp_path):
    table = vocab.vocabulary_table(lm, matrix)
    table_path, matrix_path = (
        tmp_path / "out" / "vocab.parquet",
        tmp_path / "out" / "vocab.safetensors",
    )
    vocab.write_vocabulary(table, matrix, table_path, matrix_path)
    assert torch.equal(vocab.read_matrix(matrix_path), matrix)
    pd.testing.assert_frame_equal(vocab.read_table(table_path), table, check_exact=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "vocab.parquet",
        "vocab.safetensors",
    ]
    assert not list(tmp_path.rglob("*.partial"))


def test_thousands_of_reserved_tokens_are_never_candidates(tmp_path):
    """A Gemma/Llama-3-style vocabulary with 3,000 reserved special tokens: they are
    marked special in the manifest and the table and excluded from back-projection, even
    where a reserved token's embedding is exactly the query."""
    from inputspace.analysis import geometry
    from inputspace.model import models, random_model, sources

    model, tokenizer = random_model.build(
        random_model.TinySpec(architecture="llama", hidden_size=32, intermediate_size=64)
    )
    reserved = [f"<reserved_{i}>" for i in range(3000)]
    tokenizer.add_special_tokens({"additional_special_tokens": reserved})
    model.resize_token_embeddings(len(tokenizer))
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    sources.prepare("reserved", {"kind": "local", "path": str(saved)}, tmp_path / "prepared")
    lm = models.load(tmp_path / "prepared")
    matrix = lm.vocab_embeddings()
    table = vocab.vocabulary_table(lm, matrix)
    reserved_ids = tokenizer.convert_tokens_to_ids(reserved)
    assert table.is_special[reserved_ids].all() and not table.is_regular[reserved_ids].any()
    regular = vocab.regular_ids(table)
    assert len(regular) == len(table) - table.is_special.sum() and len(regular) < 600
    near = geometry.nearest_tokens(matrix[reserved_ids[:5]], matrix, regular)
    assert not set(near.euclidean_id.tolist()) & set(reserved_ids)
    assert not set(near.cosine_id.tolist()) & set(reserved_ids)
