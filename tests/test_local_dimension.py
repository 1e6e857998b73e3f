"""The zero-loss set's local dimension from the exact Jacobian: each piece against a
hand-computed case, and on tiny models where the rank is known from their shape."""

import numpy as np
import pytest
import torch
from test_landscape import point_of

from inputspace.analysis.local_dimension import (
    forward_jacobian,
    jacobian,
    local_dimension,
    prediction_metric,
    rounding,
)
from inputspace.model import models
from inputspace.studies import landscape

GENERATOR = torch.Generator().manual_seed(0)


def test_the_jacobian_of_a_linear_map_is_its_matrix_in_any_batch():
    matrix = torch.randn((7, 11), generator=GENERATOR, dtype=torch.float64)
    x = torch.randn(11, generator=GENERATOR, dtype=torch.float64)
    for batch in (1, 3, 7):
        found = jacobian(lambda rows: rows @ matrix.T, x, range(7), batch)
        torch.testing.assert_close(found, matrix)
    torch.testing.assert_close(jacobian(lambda r: r @ matrix.T, x, range(2, 5), 2), matrix[2:5])


def test_the_forward_jacobian_of_a_nonlinear_map_holds_its_derivatives_by_hand():
    """f(x) = (x0 * x1, sin x1, x0^2): J e_i is column i of the Jacobian."""

    def f(rows):
        return torch.stack([rows[:, 0] * rows[:, 1], torch.sin(rows[:, 1]), rows[:, 0] ** 2], 1)

    x = torch.tensor([2.0, 0.5], dtype=torch.float64)
    expected = torch.tensor(
        [[0.5, 0.0, 4.0], [2.0, np.cos(0.5), 0.0]], dtype=torch.float64
    )  # row i: d f / d x_i
    torch.testing.assert_close(forward_jacobian(f, x), expected)
    torch.testing.assert_close(forward_jacobian(f, x, batch=1), expected)


def test_the_metric_sees_the_logits_only_up_to_a_constant():
    """A head whose rows differ by a constant shift of every logit has one direction less."""
    head = torch.randn((4, 9), generator=GENERATOR, dtype=torch.float64)  # [d, vocab]
    head[3] = 2.5  # moving along direction 3 adds 2.5 to every logit: the prediction is blind to it
    metric = prediction_metric(head)
    centred = head - head.mean(dim=1, keepdim=True)
    torch.testing.assert_close(metric.T @ metric, centred @ centred.T)
    assert int(torch.linalg.matrix_rank(metric)) == 3


def test_a_known_rank_gives_the_set_its_dimension_and_the_bound_beside_it():
    """d = 5 hidden numbers depend on n = 20 coordinates through a rank-3 map."""
    state_rows = torch.randn((5, 3), generator=GENERATOR, dtype=torch.float64) @ torch.randn(
        (3, 20), generator=GENERATOR, dtype=torch.float64
    )
    found, values = local_dimension(state_rows, torch.eye(5, dtype=torch.float64), noise=0.0)
    assert (found.rank, found.set_dimension, found.bound, found.dimensions) == (3, 17, 15, 20)
    assert found.gap > 1e8 and len(values) == 5 and found.head_rank == 5


def test_a_head_that_passes_on_fewer_directions_lowers_the_rank():
    """Full-rank body, but a head blind to two of the five hidden directions: rank 3."""
    state_rows = torch.randn((5, 20), generator=GENERATOR, dtype=torch.float64)
    metric = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    found, _ = local_dimension(state_rows, metric, noise=0.0)
    assert (found.rank, found.head_rank, found.set_dimension) == (3, 3, 17)


def test_the_cutoff_is_the_measured_rounding_where_that_is_larger():
    """Singular values 10, 1, 1e-3: a rounding of 1e-2 leaves two."""
    u, _ = torch.linalg.qr(torch.randn((3, 3), generator=GENERATOR, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn((8, 3), generator=GENERATOR, dtype=torch.float64))
    state_rows = u @ torch.diag(torch.tensor([10.0, 1.0, 1e-3], dtype=torch.float64)) @ v.T
    found, _ = local_dimension(state_rows, torch.eye(3, dtype=torch.float64), noise=1e-2)
    assert found.rank == 2 and found.gap == pytest.approx(1000)
    assert found.cutoff == pytest.approx(1e-3)


def test_rounding_scales_the_measured_rows_error_to_all_rows():
    exact = torch.zeros((4, 6), dtype=torch.float64)
    computed = exact.clone()
    computed[0, 0] = 1e-3  # the first row's error, measured on k = 1 of d = 4 rows
    noise = rounding(computed, exact[:1], torch.eye(4, dtype=torch.float64))
    assert noise == pytest.approx(1e-3 * 2)  # sqrt(4 / 1)


@pytest.mark.parametrize("name", ["llama", "modernbert"])
def test_on_a_tiny_model_the_rank_stays_below_d_by_what_its_final_norm_removes(tiny_folders, name):
    """Llama's final RMSNorm removes the hidden state's scale (one direction): rank d - 1.
    ModernBERT's head ends in a LayerNorm, which removes the mean and the scale: d - 2."""
    lm = models.load(tiny_folders[name], attention="eager")
    point = point_of(lm)
    found, values = landscape.local_dimension_at(lm, point, 32, name)
    d = lm.model.config.hidden_size
    expected = {"llama": d - 1, "modernbert": d - 2}[name]
    assert found.hidden == d and found.dimensions == point.size
    assert found.rank == expected and found.gap > 1e3
    assert found.set_dimension == point.size - expected and found.bound == point.size - d
    assert np.all(np.diff(values) <= 0)


def test_a_model_whose_head_ignores_hidden_directions_reads_a_lower_rank(tiny_folders):
    """The constructed counter-case: zero 5 columns of a tiny Llama's output matrix, so its
    prediction depends on only d - 5 directions of the final state: the measured rank is
    d - 5 (the direction the final norm removes now lies, generically, partly inside the
    head's blind space), and the zero-loss set is 5 dimensions larger than the bound."""
    lm = models.load(tiny_folders["llama"], attention="eager")
    point = point_of(lm)
    before, _ = landscape.local_dimension_at(lm, point, 32, "before")
    head = lm.model.get_output_embeddings()
    if head.weight is lm.model.get_input_embeddings().weight:  # tied: untie first
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
    with torch.no_grad():
        head.weight[:, :5] = 0
    after, _ = landscape.local_dimension_at(lm, point, 32, "after")
    d = lm.model.config.hidden_size
    assert before.rank == d - 1 and after.rank == d - 5 and after.head_rank == d - 5
    assert after.set_dimension == after.bound + 5
