"""The Hessian machinery on losses whose Hessian is known by hand."""

import numpy as np
import pytest
import torch

from inputspace.analysis import spectrum


def quadratic(matrix: torch.Tensor) -> spectrum.Surface:
    """0.5 x^T A x + sin(x_0) per row: Hessian A + diag(-sin(x_0), 0, ...)."""

    def losses(flats: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.einsum("kn,nm,km->k", flats, matrix, flats) + torch.sin(flats[:, 0])

    return spectrum.Surface(losses, torch.device("cpu"))


def symmetric(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    return (a + a.T) / 2


def test_products_and_the_whole_hessian_are_the_hand_computed_one():
    matrix, x = symmetric(7), torch.linspace(-1, 1, 7, dtype=torch.float64)
    expected = matrix.clone()
    expected[0, 0] -= torch.sin(x[0])
    probes = torch.eye(7, dtype=torch.float64)[:3] + 0.5
    products = spectrum.hessian_vector_products(quadratic(matrix), x, probes)
    torch.testing.assert_close(products, probes @ expected)
    whole, asymmetry = spectrum.hessian(quadratic(matrix), x, batch=3)  # 3 + 3 + 1 columns
    torch.testing.assert_close(whole, expected)
    assert asymmetry < 1e-12


def test_the_exact_spectrum_is_the_eigenvalues_largest_first():
    matrix = torch.diag(torch.tensor([3.0, -1.0, 2.0, 0.5], dtype=torch.float64))
    x = torch.zeros(4, dtype=torch.float64)  # sin'' is 0 at 0: the Hessian is the matrix
    found = spectrum.exact_spectrum(quadratic(matrix), x, batch=2)
    np.testing.assert_allclose(found.eigenvalues, [3.0, 2.0, 0.5, -1.0])
    assert found.method == "exact" and found.weights.tolist() == [0.25] * 4


def test_slq_on_few_coordinates_is_the_exact_spectrum():
    """With as many Lanczos steps as coordinates, quadrature resolves every eigenvalue."""
    matrix, x = symmetric(5, seed=1), torch.zeros(5, dtype=torch.float64)
    estimate = spectrum.slq_spectrum(quadratic(matrix), x, probes=2, steps=5)
    exact = torch.linalg.eigvalsh(matrix).numpy()
    for value in exact:
        assert np.min(np.abs(estimate.eigenvalues - value)) < 1e-8
    assert estimate.weights.sum() == pytest.approx(1.0)


def test_lanczos_quadrature_reproduces_the_moments_exactly():
    """Gauss quadrature from m Lanczos steps is exact for v^T A^k v, k < 2m."""
    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(50, 50, generator=generator, dtype=torch.float64))
    matrix = q @ torch.diag(torch.linspace(-1, 3, 50, dtype=torch.float64)) @ q.T
    starts = torch.randn(3, 50, generator=generator, dtype=torch.float64)
    nodes, weights = spectrum.lanczos_quadrature(lambda v: v @ matrix, starts, steps=6)
    unit = starts / starts.norm(dim=1, keepdim=True)
    for k in range(12):
        exact = float(
            torch.einsum("pn,nm,pm->p", unit, torch.linalg.matrix_power(matrix, k), unit).mean()
        )
        assert float(np.sum(weights * nodes**k)) == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_flatness_by_hand():
    values = np.array([10.0, 1.0, 0.05, 0.001, 1e-9, -1e-9])
    found = spectrum.Spectrum(values, np.full(6, 1 / 6), "exact", noise=1e-7)
    flat = spectrum.flatness(
        found, dimensions=6, hidden=2, flat_threshold=1e-2, relative_rank_tolerance=1e-5
    )
    # 1e-5 x 10 beats the noise
    assert flat.largest == 10.0 and flat.rank_cutoff == pytest.approx(1e-4)
    assert flat.numerical_rank == 4 and isinstance(
        flat.numerical_rank, int
    )  # 10, 1, 0.05 and 0.001 exceed 1e-4
    assert flat.flat_fraction == pytest.approx(4 / 6)  # 0.05, 0.001 and the two zeros are <= 0.1
    assert flat.bound_flat_fraction == pytest.approx(1 - 2 / 6)
    assert (flat.eigenvalue_d, flat.eigenvalue_after_d) == (1.0, 0.05)
    # either side of the cutoff: 0.001 counted, 1e-9 not; the tolerance set the cutoff
    assert (flat.eigenvalue_at_rank, flat.eigenvalue_after_rank) == (0.001, 1e-9)
    assert flat.rank_gap == pytest.approx(1e6) and flat.cutoff_origin == "tolerance"
    assert flat.rank_low == flat.rank_high == 4 and flat.flat_low == flat.flat_high == 4 / 6
    noisy = spectrum.flatness(
        spectrum.Spectrum(values, np.full(6, 1 / 6), "exact", noise=0.01), 6, 2, 1e-2, 1e-5
    )
    assert noisy.numerical_rank == 3  # the measured rounding sets the tolerance
    assert noisy.cutoff_origin == "rounding" and noisy.rank_gap == pytest.approx(50)


def test_a_rank_with_nothing_below_its_cutoff_has_no_gap():
    found = spectrum.Spectrum(np.array([2.0, 1.0]), np.full(2, 0.5), "exact", noise=0.0)
    flat = spectrum.flatness(found, 2, 1, 1e-3, 1e-6)
    assert flat.numerical_rank == 2 and np.isnan(flat.rank_gap)
    zero = spectrum.Spectrum(np.array([2.0, 0.0]), np.full(2, 0.5), "exact", noise=0.0)
    assert spectrum.flatness(zero, 2, 1, 1e-3, 1e-6).rank_gap == np.inf


def test_a_radau_bracket_by_hand():
    """diag(0, 1) seen from (1, 1) / sqrt(2): one Lanczos step, alpha 1/2 and residual 1/2.
    With a node prescribed at 1/4 the Gauss-Radau rule is {1/4: 0.8, 3/2: 0.2} (solve
    (1/2 - 1/4) delta = 1/4: the last diagonal is 1/4 + 1 = 5/4), so the measure below 1/4
    is between 0 and 0.8 (it is 0.5); at 0 the rule is the measure itself, {0, 1} halved."""
    recurrence = spectrum.Recurrence(np.array([[0.5]]), np.array([[0.5]]))
    assert recurrence._below(0, 0.25) == (pytest.approx(0.0), pytest.approx(0.8))
    assert recurrence._below(0, 0.0) == (pytest.approx(0.0), pytest.approx(0.5))
    assert recurrence.share(-0.1, 0.25) == (pytest.approx(0.0), pytest.approx(0.8))
    # (-inf, 2) holds at least 0.9 (a node at 2 takes at most 0.1), (-inf, -0.1] at most
    # 25/61 (the Radau rule at -0.1 is {-0.1: 25/61, 11/12: 36/61})
    assert recurrence.share(-0.1, 2.0) == (pytest.approx(0.9 - 25 / 61), pytest.approx(1.0))


def test_the_quadrature_bracket_holds_the_probes_own_measure():
    """For every threshold the share of each probe's measure (sum of (q_i . v)^2 over the
    eigenvalues within it) lies inside the bracket; more Lanczos steps narrow it."""
    generator = torch.Generator().manual_seed(2)
    n = 160
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    # a Hessian near a solution: 90% of the directions within 1e-3 of zero, the rest
    # spread over four decades up to 100, a few slightly negative
    values = torch.cat(
        [
            torch.linspace(-1e-3, 1e-3, 144, dtype=torch.float64),
            torch.logspace(-2, 2, 12, dtype=torch.float64),
            torch.tensor([-0.3, -0.2, -0.1, -0.05], dtype=torch.float64),
        ]
    )
    matrix = q @ torch.diag(values) @ q.T
    starts = torch.randn(3, n, generator=generator, dtype=torch.float64)
    unit = starts / starts.norm(dim=1, keepdim=True)
    seen = ((unit @ q) ** 2).numpy() / 3  # each probe's measure on the eigenvalues
    widths = {}
    for steps in (6, 12):
        recurrence = spectrum.lanczos(lambda v: v @ matrix, starts, steps)
        widths[steps] = []
        for t in np.logspace(-2.5, 2.2, 40):
            true = seen[:, (values.abs() <= t).numpy()].sum()
            low, high = recurrence.share(-t, t)
            assert low - 1e-9 <= true <= high + 1e-9
            widths[steps].append(high - low)
    assert np.median(widths[12]) < np.median(widths[6]) / 2
    assert np.median(widths[12]) < 0.05


def test_an_estimate_reports_its_bracket_and_node_weight():
    """Uniform over 400 directions: 360 at zero, 40 spread over [1, 10]. Four Lanczos
    steps from one probe cannot tell where the 360 lie (below the flat threshold or at
    it); eight nearly can, twelve can."""
    values = np.concatenate([np.zeros(360), np.linspace(1, 10, 40)])
    start = torch.ones(1, 400, dtype=torch.float64)
    diagonal = torch.tensor(values)
    brackets = {}
    for steps in (4, 8, 12):
        recurrence = spectrum.lanczos(lambda v: v * diagonal, start, steps)
        flat = spectrum.flatness(spectrum.estimated(recurrence, "float64"), 400, 10, 1e-2, 1e-6)
        assert flat.node_share == 1 / steps and flat.cutoff_origin == "flat threshold"
        assert flat.flat_low <= 0.9 <= flat.flat_high  # the true share, inside its bracket
        assert flat.rank_low == pytest.approx((1 - flat.flat_high) * 400)
        assert flat.numerical_rank == pytest.approx((1 - flat.flat_fraction) * 400)
        brackets[steps] = flat.flat_high - flat.flat_low
    assert brackets[4] > 0.5 and 0.001 < brackets[8] < 0.05 and brackets[12] < 1e-4
