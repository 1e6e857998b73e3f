import numpy as np
import pytest
import torch

from inputspace.analysis import geometry
from inputspace.model.prompts import read_pairs
from inputspace.optimisation import samples, sequences

KINDS = ["modernbert", "llama"]


@pytest.fixture(scope="module")
def ellipses(tiny_models):
    return {name: geometry.fit_ellipse(lm.vocab_embeddings()) for name, lm in tiny_models.items()}


def test_special_frame(tiny_models):
    bert, llama = tiny_models["modernbert"], tiny_models["llama"]
    assert sequences.special_frame(bert) == (
        [bert.tokenizer.cls_token_id],
        [bert.tokenizer.sep_token_id],
    )
    assert sequences.special_frame(llama) == ([llama.tokenizer.bos_token_id], [])


@pytest.mark.parametrize("name", KINDS)
def test_prompt_batch(tiny_models, repo_root, name):
    lm = tiny_models[name]
    prompts = [p.source for p in read_pairs(repo_root / "prompts/pairs.tsv")[:4]]
    batch = sequences.from_prompts(lm, prompts)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(batch.embeddings[real], lm.embed(batch.ids[real]))
    special = torch.isin(batch.ids, torch.tensor(lm.special_ids))
    assert torch.equal(batch.trainable, real & ~special)
    if lm.kind == "masked":
        assert torch.all(batch.ids[torch.arange(4), batch.sites] == lm.mask_id)
    else:
        assert torch.equal(batch.sites, batch.attention_mask.sum(dim=1) - 1)
        assert not torch.any(batch.ids == lm.tokenizer.mask_token_id) if lm.mask_id else True


@pytest.mark.parametrize("name", KINDS)
def test_random_sentences(tiny_models, ellipses, tmp_path, name):
    lm = tiny_models[name]
    spec = {"count": 6, "min_length": 2, "max_length": 5}
    batch = samples.sample_sentences(lm, ellipses[name], spec, seed=3)
    described = batch.describe()
    assert len(batch) == 6
    assert described.n_optimised.between(2, 5).all()
    assert torch.equal(batch.trainable, batch.ids == sequences.NO_TOKEN)
    prefix, suffix = sequences.special_frame(lm)
    site_tokens = [lm.mask_id] if lm.kind == "masked" else []
    for row in range(6):
        n = int(described.n_optimised[row])
        ids = batch.ids[row, : int(described.length[row])].tolist()
        assert ids == prefix + [sequences.NO_TOKEN] * n + site_tokens + suffix
    # special tokens keep their real embeddings
    fixed = batch.attention_mask.bool() & ~batch.trainable
    torch.testing.assert_close(batch.embeddings[fixed], lm.embed(batch.ids[fixed]))
    expected_sites = (
        described.length - 1 - len(suffix) if lm.kind == "masked" else described.length - 1
    )
    assert batch.sites.tolist() == list(expected_sites)

    batch.save(tmp_path / "b.safetensors")
    loaded = sequences.SequenceBatch.load(tmp_path / "b.safetensors")
    for field in ("ids", "attention_mask", "embeddings", "trainable", "sites"):
        assert torch.equal(getattr(loaded, field), getattr(batch, field))
    again = samples.sample_sentences(lm, ellipses[name], spec, seed=3)
    assert torch.equal(again.embeddings, batch.embeddings)


@pytest.mark.parametrize("name", KINDS)
def test_each_replicate_is_its_own_seeds_draw(tiny_models, ellipses, name):
    """8 sentences in 3 replicates (3, 3, 2): replicate k's lengths and points are what a
    one-replicate draw of its size seeded replicate_seed(3, k) gives; replicate 0 keeps
    the experiment's seed."""
    lm = tiny_models[name]
    spec = {"count": 8, "min_length": 2, "max_length": 5}
    batch = samples.sample_sentences(lm, ellipses[name], spec, seed=3, replicates=3)
    assert len(batch) == 8
    assert samples.replicate_seed(3, 0) == 3 and samples.replicate_seed(3, 1) != 3
    start = 0
    for replicate, size in enumerate([3, 3, 2]):
        alone = samples.sample_sentences(
            lm,
            ellipses[name],
            {**spec, "count": size},
            seed=samples.replicate_seed(3, replicate),
        )
        rows = slice(start, start + size)
        assert torch.equal(batch.attention_mask[rows].sum(dim=1), alone.attention_mask.sum(dim=1))
        assert torch.equal(batch.sites[rows], alone.sites)
        width = alone.ids.shape[1]
        for field in ("ids", "trainable", "embeddings"):
            mine = getattr(batch, field)[rows]
            assert torch.equal(
                mine[:, :width][alone.attention_mask.bool()],
                getattr(alone, field)[alone.attention_mask.bool()],
            ), field
        start += size
    # one replicate is the draw as before: lengths then points from one seeded generator
    generator = torch.Generator().manual_seed(3)
    lengths = sequences.random_lengths(8, 2, 5, generator)
    before = sequences.sample_random(lm, ellipses[name], lengths, generator)
    once = samples.sample_sentences(lm, ellipses[name], spec, seed=3)
    assert torch.equal(once.embeddings, before.embeddings) and torch.equal(once.ids, before.ids)
    # the replicates differ from one another
    first, second = batch.embeddings[0][batch.trainable[0]], batch.embeddings[3][batch.trainable[3]]
    assert not torch.equal(first[: len(second)], second[: len(first)])


def test_norm_comparison_statistic():
    same = samples.compare_norms(np.arange(100.0), np.arange(100.0))
    apart = samples.compare_norms(np.arange(100.0), np.arange(100.0) + 1000)
    assert same.ks_statistic == 0.0 and apart.ks_statistic == 1.0
    assert apart.n_sampled == 100 and apart.vocab_norm_mean == pytest.approx(1049.5)
