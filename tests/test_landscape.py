import numpy as np
import pytest
import torch

from inputspace import experiments, landscape, models
from inputspace.sequences import from_prompts

KINDS = ["modernbert", "llama"]
SOURCE = "A dog says [MASK]."
TARGET = "The animal that says 'neigh' is a [MASK]."


def sequence_of(lm, prompt=SOURCE, keep: int | None = None, dtype=torch.float32) -> landscape.Sequence:
    batch = from_prompts(lm, [prompt])
    trainable = batch.trainable[0].clone()
    if keep is not None:  # optimise only the first `keep` optimisable positions
        trainable[torch.nonzero(trainable)[keep:, 0]] = False
    return landscape.Sequence(
        embeddings=batch.embeddings[0].to(dtype),
        attention_mask=batch.attention_mask[0],
        trainable=trainable,
        site=int(batch.sites[0]),
        target_logprobs=experiments.target_logprobs(lm, [TARGET])[0].to(dtype),
    )


@pytest.fixture(scope="module")
def double_models(tiny_folders):
    """Float64 copies with eager attention (double backward), for exact derivative checks."""
    loaded = {}
    for name in KINDS:
        lm = models.load(tiny_folders[name], attention="eager")
        loaded[name] = (lm, sequence_of(lm, keep=2))
        lm.model.double()
        sequence = loaded[name][1]
        sequence.embeddings = sequence.embeddings.double()
        sequence.target_logprobs = sequence.target_logprobs.double()
    return loaded


@pytest.mark.parametrize("name", KINDS)
def test_hessian_vector_product_equals_finite_differences_of_gradients(double_models, name):
    lm, sequence = double_models[name]
    x = sequence.point()
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # ModernBERT keeps some internals (rotary tables) in fp32 even in a float64 model, so
    # compare at a step where that rounding is small, to 1e-3 of the product's norm
    h = 1e-4
    numeric = (landscape.gradient(lm, sequence, x + h * v) - landscape.gradient(lm, sequence, x - h * v)) / (2 * h)
    analytic = landscape.hessian_vector_product(lm, sequence, x, v)
    assert analytic.norm() > 1e-4
    assert (analytic - numeric).norm() <= 1e-3 * analytic.norm()


@pytest.mark.parametrize("name", KINDS)
def test_lanczos_top_eigenvalues_match_the_dense_hessian(double_models, name):
    lm, sequence = double_models[name]
    x = sequence.point()  # 2 tokens x 64 dimensions
    dense = landscape.dense_hessian(lm, sequence, x)
    assert (dense - dense.T).norm() <= 1e-4 * dense.norm()  # a Hessian is symmetric
    exact = torch.linalg.eigvalsh((dense + dense.T) / 2).flip(0).numpy()
    found = landscape.top_eigenvalues(landscape.hessian_operator(lm, sequence, x), k=4, tol=1e-10)
    np.testing.assert_allclose(found, exact[:4], rtol=1e-4, atol=1e-4 * abs(exact[0]))


def test_flatness_by_hand():
    values = np.array([10.0, 1.0, 0.05, 0.001])
    flat = landscape.flatness(values, dimensions=100, threshold=1e-2)
    assert (flat.above_threshold, flat.resolved) == (2, True)  # 10 and 1 exceed 0.01 x 10
    assert flat.flat_fraction == pytest.approx(0.98)
    assert not landscape.flatness(np.array([3.0, 2.0]), 100, 1e-2).resolved


def test_barrier_by_hand():
    assert landscape.barrier(np.array([0.1, 0.5, 0.2])) == pytest.approx(0.3)
    assert landscape.barrier(np.array([0.3, 0.2, 0.1])) == 0.0


def test_loss_along_starts_and_ends_at_the_endpoints(tiny_models):
    lm = tiny_models["llama"]
    sequence = sequence_of(lm)
    a = sequence.point()
    b = a + 0.3 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))
    m = (a + b) / 2 + 0.1
    values = landscape.loss_along(lm, sequence, [a, m, b], samples=5)
    assert len(values) == 9  # 5 + 5 - the shared corner
    with torch.no_grad():
        assert values[0] == pytest.approx(float(landscape.loss(lm, sequence, a)), rel=1e-6)
        assert values[4] == pytest.approx(float(landscape.loss(lm, sequence, m)), rel=1e-6)
        assert values[-1] == pytest.approx(float(landscape.loss(lm, sequence, b)), rel=1e-6)


def test_bending_lowers_the_path(tiny_models):
    lm = tiny_models["modernbert"]
    sequence = sequence_of(lm)
    a = sequence.point()
    b = a + 1.0 * torch.randn(a.shape, generator=torch.Generator().manual_seed(2))
    straight = landscape.loss_along(lm, sequence, [a, b], samples=9)
    middle = landscape.bend(lm, sequence, a, b, steps=30, lr=0.05)
    bent = landscape.loss_along(lm, sequence, [a, middle, b], samples=5)
    assert bent.mean() < straight.mean()


def test_losses_in_one_batch_equal_one_point_at_a_time(tiny_models):
    lm = tiny_models["llama"]
    sequence = sequence_of(lm)
    generator = torch.Generator().manual_seed(3)
    points = torch.stack([sequence.point() + 0.3 * torch.randn(sequence.size, generator=generator) for _ in range(5)])
    batched = points.clone().requires_grad_(True)
    landscape.losses(lm, sequence, batched).sum().backward()
    singles = points.clone().requires_grad_(True)
    alone = torch.stack([landscape.loss(lm, sequence, point) for point in singles])
    alone.sum().backward()
    torch.testing.assert_close(landscape.losses(lm, sequence, points), alone.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched.grad, singles.grad, rtol=1e-4, atol=1e-6)
