import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import loss_gradient
from scipy.stats import wasserstein_distance

from inputspace.analysis import geometry, spectrum
from inputspace.model import models
from inputspace.optimisation import engine, experiments, sequences
from inputspace.optimisation.sequences import from_prompts
from inputspace.studies import landscape, summary
from inputspace.workflow.table_names import LANDSCAPE_FILES, SUMMARY_LANDSCAPE_TABLES

KINDS = ["modernbert", "llama"]
SOURCE = "A dog says [MASK]."
TARGET = "The animal that says 'neigh' is a [MASK]."


def point_of(lm, prompt=SOURCE, keep: int | None = None, dtype=torch.float32) -> landscape.Point:
    batch = from_prompts(lm, [prompt])
    trainable = batch.trainable[0].clone()
    if keep is not None:  # optimise only the first `keep` optimisable positions
        trainable[torch.nonzero(trainable)[keep:, 0]] = False
    return landscape.Point(
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
        point = point_of(lm, keep=2)
        lm.model.double()
        point.embeddings = point.embeddings.double()
        point.target_logprobs = point.target_logprobs.double()
        loaded[name] = (lm, point)
    return loaded


@pytest.mark.parametrize("name", KINDS)
def test_hessian_vector_products_equal_finite_differences_of_gradients(double_models, name):
    lm, point = double_models[name]
    x = point.flat()
    v = torch.randn((2, x.numel()), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # ModernBERT keeps some internals (rotary tables) in fp32 even in a float64 model, so
    # compare at a step where that rounding is small, to 1e-3 of the product's norm
    h = 1e-4
    analytic = spectrum.hessian_vector_products(landscape.surface(lm, point), x, v)
    for row in range(2):
        numeric = (
            loss_gradient(lm, point, x + h * v[row]) - loss_gradient(lm, point, x - h * v[row])
        ) / (2 * h)
        assert analytic[row].norm() > 1e-4
        assert (analytic[row] - numeric).norm() <= 1e-3 * analytic[row].norm()


@pytest.mark.parametrize("name", KINDS)
def test_batched_hessian_equals_autograd_hessian(double_models, name):
    """Many copies of the sequence in one double backward, each with its own probe, give
    the same matrix as torch's own Hessian of the loss (2 tokens x 64 dimensions)."""
    lm, point = double_models[name]
    x = point.flat()
    reference = torch.autograd.functional.hessian(lambda flat: landscape.loss(lm, point, flat), x)
    around = landscape.surface(lm, point)
    batched, asymmetry = spectrum.hessian(around, x, batch=48)  # 128 columns in 3 batches
    torch.testing.assert_close(
        batched, (reference + reference.T) / 2, rtol=1e-6, atol=1e-8 * reference.abs().max()
    )
    assert asymmetry <= 1e-6 * torch.linalg.matrix_norm(reference, 2)
    found = spectrum.exact_spectrum(around, x, batch=128)
    exact = torch.linalg.eigvalsh((reference + reference.T) / 2).flip(0).numpy()
    # ModernBERT's fp32 rotary
    np.testing.assert_allclose(found.eigenvalues, exact, atol=1e-7 * exact[0])
    assert found.weights.sum() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def six_token_spectra(tiny_models, tiny_folders):
    """The default size's shape on tiny llama: a 6-token random start, 6 x 64 coordinates;
    its exact spectrum and a stochastic Lanczos estimate."""
    lm = models.load(tiny_folders["llama"], attention="eager")
    matrix = lm.vocab_embeddings()
    ellipse = geometry.fit_ellipse(matrix[200:])
    batch = sequences.sample_random(lm, ellipse, [6], torch.Generator().manual_seed(0))
    target = experiments.target_logprobs(lm, [TARGET])
    point = landscape.points_of(batch, batch.embeddings, target)[0]
    flat = point.flat()
    around = landscape.surface(lm, point)
    exact = spectrum.exact_spectrum(around, flat, batch=96)
    estimate = spectrum.slq_spectrum(around, flat, probes=32, steps=60, seed=1)
    return exact, estimate


def test_slq_density_matches_the_exact_spectrum(six_token_spectra):
    exact, estimate = six_token_spectra
    assert len(exact.eigenvalues) == 384 and estimate.weights.sum() == pytest.approx(1.0)
    # the extremes are Ritz values after 60 steps: found to high accuracy
    assert estimate.eigenvalues[0] == pytest.approx(exact.eigenvalues[0], rel=1e-3)
    assert estimate.eigenvalues[-1] == pytest.approx(
        exact.eigenvalues[-1], rel=1e-2, abs=1e-3 * exact.eigenvalues[0]
    )
    # trace / n and the second moment: exact in expectation, within the probes' noise here
    # (the Hessian at a random start is indefinite: its mean eigenvalue is small next to its spread)
    rms = float(np.sqrt(np.mean(exact.eigenvalues**2)))
    assert float(np.sum(estimate.weights * estimate.eigenvalues)) == pytest.approx(
        np.mean(exact.eigenvalues), abs=0.05 * rms
    )
    assert float(np.sum(estimate.weights * estimate.eigenvalues**2)) == pytest.approx(
        rms**2, rel=0.15
    )
    # the densities agree in Wasserstein-1 distance, the measure SLQ's error bounds are
    # stated in (about the spectral range / steps)
    spread = exact.eigenvalues[0] - exact.eigenvalues[-1]
    distance = wasserstein_distance(
        exact.eigenvalues, estimate.eigenvalues, v_weights=estimate.weights
    )
    assert distance < 0.01 * spread


def test_barrier_by_hand():
    assert landscape.barrier(np.array([0.1, 0.5, 0.2])) == pytest.approx(0.3)
    assert landscape.barrier(np.array([0.3, 0.2, 0.1])) == 0.0


def test_the_jacobian_is_taken_at_the_first_converged_ends_of_every_pair():
    # pairs (0, 1), (2, 3), (4, 5); solution 2 did not converge
    assert landscape.jacobian_ends([0, 1, 3, 4, 5], 1) == [0, 3, 4]
    assert landscape.jacobian_ends([0, 1, 3, 4, 5], 2) == [0, 1, 3, 4, 5]
    assert landscape.jacobian_ends([], 1) == []


def test_loss_along_starts_and_ends_at_the_endpoints(tiny_models):
    lm = tiny_models["llama"]
    point = point_of(lm)
    a = point.flat()
    b = a + 0.3 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))
    m = (a + b) / 2 + 0.1
    values = landscape.loss_along(lm, point, [a, m, b], samples=5)
    assert len(values) == 9  # 5 + 5 - the shared corner
    with torch.no_grad():
        assert values[0] == pytest.approx(float(landscape.loss(lm, point, a)), rel=1e-6)
        assert values[4] == pytest.approx(float(landscape.loss(lm, point, m)), rel=1e-6)
        assert values[-1] == pytest.approx(float(landscape.loss(lm, point, b)), rel=1e-6)


def path_search(**overrides) -> landscape.PathSearch:
    settings = dict(samples=5, above=-1.0, images=4, steps=30, lr=0.05, goal=1e-9, patience=1000)
    return landscape.PathSearch(**{**settings, **overrides})


def test_the_string_method_lowers_the_path_and_keeps_its_points_evenly_spaced(tiny_models):
    lm = tiny_models["modernbert"]
    point = point_of(lm)
    a = point.flat()
    b = a + 1.0 * torch.randn(a.shape, generator=torch.Generator().manual_seed(2))
    straight = landscape.loss_along(lm, point, [a, b], samples=9)
    strung = landscape.string_path(lm, point, a, b, path_search())
    corners = torch.cat([a.unsqueeze(0), strung.images, b.unsqueeze(0)])
    lengths = (corners[1:] - corners[:-1]).norm(dim=1)
    # equal on the polyline before the last step cut its corners: nearly equal after it
    torch.testing.assert_close(lengths, lengths.mean().expand(5), rtol=1e-2, atol=0)
    found = landscape.loss_along(lm, point, list(corners), samples=5)
    assert found.max() < straight.max() and found.mean() < straight.mean()
    # the trace holds every step; the highest loss falls over the optimisation
    assert len(strung.trace) == 31 and not strung.converged
    assert strung.trace.highest.iloc[-1] < strung.trace.highest.iloc[0]


def test_a_path_search_stops_once_its_highest_loss_stops_falling(tiny_models):
    lm = tiny_models["llama"]
    point = point_of(lm)
    a = point.flat()
    b = a + 0.5 * torch.randn(a.shape, generator=torch.Generator().manual_seed(7))
    search = path_search(steps=400, lr=0.05, patience=5, tolerance=0.5)
    strung = landscape.string_path(lm, point, a, b, search)
    assert strung.converged and strung.trace.step.max() < 400


def test_a_path_search_stops_once_the_whole_path_is_at_the_goal(tiny_models):
    """Two nearby points of low loss: the straight path is already below a generous goal,
    so the search stops at its first check; with a goal below the ends it runs on."""
    lm = tiny_models["llama"]
    point = point_of(lm)
    a = point.flat()
    b = a + 1e-3 * torch.randn(a.shape, generator=torch.Generator().manual_seed(7))
    along = landscape.loss_along(lm, point, [a, b], samples=9)
    reached = landscape.string_path(lm, point, a, b, path_search(goal=2 * along.max()))
    assert reached.converged and reached.trace.step.max() == 0
    unreachable = path_search(goal=along.min() / 1e6, steps=3)
    assert not landscape.string_path(lm, point, a, b, unreachable).converged


def test_even_spacing_moves_points_along_the_polyline_to_equal_arc_lengths():
    """An L-shaped polyline of length 4 (0,0) -> (2,0) -> (2,2) with its interior points
    bunched: three points at equal arc length 1, 2, 3 lie at (1,0), (2,0), (2,1)."""
    a, b = torch.zeros(2), torch.tensor([2.0, 2.0])
    bunched = torch.tensor([[0.1, 0.0], [2.0, 0.0], [2.0, 0.2]])
    spaced = landscape.evenly_spaced(a, bunched, b)
    torch.testing.assert_close(spaced, torch.tensor([[1.0, 0.0], [2.0, 0.0], [2.0, 1.0]]))


def test_losses_in_one_batch_equal_one_point_at_a_time(tiny_models):
    lm = tiny_models["llama"]
    point = point_of(lm)
    generator = torch.Generator().manual_seed(3)
    points = torch.stack(
        [point.flat() + 0.3 * torch.randn(point.size, generator=generator) for _ in range(5)]
    )
    batched = points.clone().requires_grad_(True)
    landscape.losses(lm, point, batched).sum().backward()
    singles = points.clone().requires_grad_(True)
    alone = torch.stack([landscape.loss(lm, point, flat) for flat in singles])
    alone.sum().backward()
    torch.testing.assert_close(
        landscape.losses(lm, point, points), alone.detach(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(batched.grad, singles.grad, rtol=1e-4, atol=1e-6)


def test_solve_stops_each_start_at_the_level_and_reports_it(tiny_models):
    lm = tiny_models["modernbert"]
    matrix = lm.vocab_embeddings()
    batch = sequences.sample_random(
        lm, geometry.fit_ellipse(matrix[200:]), [3, 3], torch.Generator().manual_seed(4)
    )
    targets = experiments.target_logprobs(lm, [TARGET]).expand(2, -1).contiguous()
    settings = engine.Settings(steps=300, lr=0.01, stop=engine.StopRule(below=0.02))
    solved = landscape.solve(lm, batch, targets, settings, "tiny")
    assert solved.converged.all() and (solved.final_kl <= 0.02).all() and (solved.steps < 300).all()
    with torch.no_grad():
        for i, point in enumerate(landscape.points_of(batch, solved.end, targets)):
            assert float(landscape.loss(lm, point, point.flat())) == pytest.approx(
                solved.final_kl[i], rel=1e-4
            )
        assert (solved.start_kl > 0.1).all()
    capped = landscape.solve(
        lm, batch, targets, engine.Settings(steps=5, lr=0.01, stop=engine.StopRule(1e-6)), "tiny"
    )
    assert not capped.converged.any() and (capped.steps == 5).all()
    assert "0 of 2 starts solved" in capped.describe(1e-6)


def test_connectivity_leaves_out_pairs_with_an_unconverged_end(tiny_models):
    lm = tiny_models["llama"]
    base = point_of(lm)
    generator = torch.Generator().manual_seed(5)
    points = []
    for _ in range(4):
        moved = base.flat() + 0.2 * torch.randn(base.size, generator=generator)
        embeddings = base.embeddings.clone()
        embeddings[base.trainable] = moved.view(-1, embeddings.shape[1])
        points.append(
            landscape.Point(
                embeddings, base.attention_mask, base.trainable, base.site, base.target_logprobs
            )
        )
    paths, barriers, traces = landscape.connectivity(
        lm,
        points,
        [True, True, True, False],
        [2.0, 2.0, 2.0, 2.0],
        path_search(steps=3, lr=0.01),
    )
    assert list(barriers.both_converged) == [True, False]
    assert set(traces.pair) == {0} and traces.step.max() == 3
    assert set(paths.pair) == {0}
    assert np.isnan(barriers.straight_barrier[1])
    row = barriers.iloc[0]
    assert row.straight_relative == pytest.approx(row.straight_barrier / 2.0)
    bent = paths[paths.path == "bent"]
    assert len(bent) == 5 * 4 + 1  # 4 images: 5 segments of 4 steps each (3 checks inside)
    assert row.bent_barrier == pytest.approx(landscape.barrier(bent.loss.to_numpy()))
    assert row.highest_end == max(row.loss_a, row.loss_b)
    assert row.best_over_ends == pytest.approx(row.bent_barrier / row.highest_end)


def flatness_table(*points, dimensions: int, hidden: int) -> pd.DataFrame:
    """The landscape's flatness rows for (label, kind, kl, eigenvalues, method) points: an
    exact spectrum of these eigenvalues, or (method "slq", with a sixth entry the Lanczos
    steps) the estimate of one probe of equal weight on each of them."""
    rows = []
    for label, kind, kl, values, method, *steps in points:
        if method == "slq":
            diagonal, start = torch.tensor(values), torch.ones(1, len(values), dtype=torch.float64)
            found = spectrum.estimated(
                spectrum.lanczos(lambda v, d=diagonal: v * d, start, steps[0]), "float32"
            )
        else:
            found = spectrum.Spectrum(
                np.asarray(values), np.full(len(values), 1 / len(values)), method, 0.0, "float64"
            )
        flat = spectrum.flatness(found, dimensions, hidden, 1e-3, 1e-14)
        rows.append({"point": label, "kind": kind, "kl": kl, **vars(flat)})
    return pd.DataFrame(rows)


def test_landscape_verdicts_need_converged_solutions():
    solutions = pd.DataFrame(
        {
            "seq": [0, 1],
            "start_kl": [5.0, 5.0],
            "final_kl": [0.5, 0.4],
            "steps": [10, 10],
            "converged": [False, False],
        }
    )
    flat = flatness_table(
        ("random start 0", "random start", 5.0, np.linspace(1.0, 0.4, 12), "exact"),
        dimensions=12,
        hidden=2,
    )
    barriers = pd.DataFrame(
        {
            "pair": [0],
            "both_converged": [False],
            "straight_barrier": [np.nan],
            "bent_barrier": [np.nan],
            "start_loss": [5.0],
        }
    )
    near = pd.DataFrame(
        {
            "seq": [0, 1],
            "pos": [0, 0],
            "converged": [False, False],
            "to_own_solution": [1.0, 1.0],
            "to_nearest_token": [2.0, 2.0],
            "to_other_solution": [3.0, 3.0],
        }
    )
    dims = pd.DataFrame(columns=["rank", "hidden", "head_rank"])
    tables = summary.LandscapeTables(solutions, dims, flat, barriers, near)
    verdicts = {v.claim[:3]: v for v in summary.landscape_verdicts(tables, 3.0, 1e-3)}
    assert verdicts["(2)"].state == "not measured"
    assert verdicts["(ex"].state == "not measured"
    assert verdicts["(1)"].state == "agrees" and verdicts["(1)"].found == "67%"  # 2.0 of 3.0


def barriers_of(highest_on_path: list[float], ends: float = 1e-4) -> pd.DataFrame:
    n = len(highest_on_path)
    best = np.asarray(highest_on_path) - ends
    return pd.DataFrame(
        {
            "pair": range(n),
            "both_converged": True,
            "straight_barrier": best * 10,
            "bent_barrier": best,
            "best_barrier": best,
            "highest_end": ends,
            "best_over_ends": best / ends,
            "bend_converged": True,
        }
    )


def test_connected_only_where_the_best_path_stays_at_the_solved_level():
    """A pair with a real barrier (the path rises to 0.13 nats against ends of 1e-4) is 'not
    demonstrated'; paths that stay under the solve level 1e-3 are 'connected'."""
    assert summary.connectivity_verdict(barriers_of([5e-4, 8e-4, 9e-4]), 1e-3).state == "connected"
    walled = summary.connectivity_verdict(barriers_of([5e-4, 0.13, 9e-4]), 1e-3)
    assert walled.state == "not demonstrated" and (walled.held, walled.judged) == (2, 3)
    assert "separated" not in walled.plain() + walled.found


def test_the_summary_reads_the_landscape_tables_the_rules_name(tmp_path):
    """The tables LandscapeTables holds are the ones the workflow hands the summary, each
    read back from the file name the landscape rule writes it under."""
    names = [field.name for field in dataclasses.fields(summary.LandscapeTables)]
    assert names == list(SUMMARY_LANDSCAPE_TABLES)
    written = {}
    for i, name in enumerate(names):
        frame = pd.DataFrame({"seq": [i, i + 1], "value": [0.5 * i, 1.5]})
        path = tmp_path / LANDSCAPE_FILES[name]
        frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
        written[name] = frame
    tables = summary.LandscapeTables.read(lambda name: str(tmp_path / LANDSCAPE_FILES[name]))
    for name, frame in written.items():
        pd.testing.assert_frame_equal(getattr(tables, name), frame)


def near_zero(flat: int, curved: np.ndarray) -> np.ndarray:
    """`flat` eigenvalues within 1e-5 of zero and the `curved` ones."""
    return np.concatenate([np.linspace(-1e-5, 1e-5, flat), curved])


def test_a_rank_at_a_zero_loss_point_is_a_check_of_the_code_with_its_gap():
    gap = np.array([1.0, 0.5, 1e-3, 1e-15, 1e-16, 1e-16])  # 3 curved, then rounding
    continuum = np.logspace(0, -20, 6 * 8)  # neighbours 2.7 apart, through the cutoff
    dims = pd.DataFrame(columns=["rank", "hidden", "head_rank"])
    for values, dimensions, hidden, said in (
        (gap, 6, 3, "(a gap of at least 10 at the cutoff)"),
        (continuum, 48, 48, "(no clear gap"),
    ):
        flat = flatness_table(
            ("prompt, own prediction", "zero-loss prompt", 0.0, values, "exact"),
            dimensions=dimensions,
            hidden=hidden,
        )
        tables = summary.LandscapeTables(None, dims, flat, None, None)
        (check,) = summary.landscape_checks(tables)
        assert check.startswith("passed") and said in check


def test_the_jacobians_rank_bound_is_listed_as_a_check_not_a_verdict():
    dims = pd.DataFrame({"rank": [575, 575], "hidden": [576, 576], "head_rank": [576, 576]})
    tables = summary.LandscapeTables(None, dims, pd.DataFrame(), None, None)
    (check,) = summary.landscape_checks(tables)
    assert check.startswith("passed") and "no evidence for the study" in check
    dims["rank"] = [575, 577]  # impossible: a broken Jacobian
    assert summary.landscape_checks(tables)[0].startswith("FAILED")


def test_the_solver_is_the_experiments_adam_with_its_own_stop_and_cap():
    optimize = {
        "steps": 400,
        "lr": 0.02,
        "betas": [0.8, 0.99],
        "chunk_size": 3,
        "checkpoint_every": 50,
        "stop": {"below": 0.01, "patience": 20},
        "log_points": 20,
        "top_k": 10,
        "save_logged_embeddings": False,
    }
    solver = landscape.solver_settings({"solve_steps": 900, "solve_below": 1e-3}, optimize, "fp32")
    assert (solver.steps, solver.lr, solver.betas, solver.chunk_size) == (900, 0.02, (0.8, 0.99), 3)
    assert solver.stop == engine.StopRule(below=1e-3, patience=1)


def test_the_control_says_whether_the_dimension_is_special_to_solutions():
    dims = pd.DataFrame(
        {
            "model": ["a"] * 3 + ["b"] * 2,
            "kind": ["solution", "solution", "random start", "solution", "random start"],
            "rank": [63, 63, 63, 60, 63],
        }
    )
    said = summary.control_comparison(dims)
    assert "a: rank 63 at the solutions, 63 at the random start (the same" in said
    assert "b: rank 60 at the solutions, 63 at the random start (they differ)" in said
