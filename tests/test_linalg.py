"""Tests for course_lib.linalg: PCA against the covariance eigendecomposition, Eckart-Young."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.linalg import (
    PCAResult,
    gaussian_with_spread,
    low_rank_approx,
    matrix_with_singular_values,
    pca,
    random_projection_errors,
)


def correlated_data(n: int, f: int, seed: int = 0) -> torch.Tensor:
    """n samples of f correlated features with distinct variances, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, f, generator=g, dtype=torch.float64)
    A = torch.randn(f, f, generator=g, dtype=torch.float64)
    return Z @ A + 3.0 * torch.randn(f, generator=g, dtype=torch.float64)


def test_pca_matches_covariance_eigendecomposition():
    X = correlated_data(200, 6)
    result = pca(X, 6)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(X.T))  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    torch.testing.assert_close(result.explained_variance, eigenvalues)
    # Same directions up to sign: |<v_i, e_i>| = 1.
    cosines = (result.components * eigenvectors.T).sum(dim=1).abs()
    torch.testing.assert_close(cosines, torch.ones(6, dtype=torch.float64))


def test_lambda_is_sigma_squared_over_n_minus_one_and_sum_is_trace():
    X = correlated_data(50, 4, seed=1)
    result = pca(X, 4)
    sigma = torch.linalg.svdvals(X - X.mean(dim=0))
    torch.testing.assert_close(result.singular_values, sigma)
    torch.testing.assert_close(result.explained_variance, sigma**2 / 49)
    torch.testing.assert_close(result.explained_variance.sum(), torch.trace(torch.cov(X.T)))
    torch.testing.assert_close(result.explained_variance_ratio.sum(), torch.tensor(1.0, dtype=torch.float64))
    # A truncated PCA keeps the ratios of the full one: each is a share of the total variance.
    two = pca(X, 2)
    torch.testing.assert_close(two.explained_variance_ratio, result.explained_variance_ratio[:2])
    assert two.explained_variance_ratio.sum() < 1


def test_components_orthonormal_sorted_and_mean():
    X = correlated_data(80, 5, seed=2)
    result = pca(X, 3)
    assert result.components.shape == (3, 5)
    torch.testing.assert_close(result.components @ result.components.T, torch.eye(3, dtype=torch.float64))
    assert torch.all(result.explained_variance[:-1] >= result.explained_variance[1:])
    torch.testing.assert_close(result.mean, X.mean(dim=0))


def test_sign_convention_largest_entry_positive_and_stable_under_row_order():
    X = correlated_data(60, 4, seed=3)
    result = pca(X, 4)
    largest = result.components.abs().argmax(dim=1)
    assert torch.all(result.components[torch.arange(4), largest] > 0)
    shuffled = pca(X[torch.randperm(60, generator=torch.Generator().manual_seed(0))], 4)
    torch.testing.assert_close(shuffled.components, result.components)
    flipped = pca(-X, 4)  # the directions are the same lines; the convention picks the same signs
    torch.testing.assert_close(flipped.components, result.components)


def test_transform_and_inverse_transform():
    X = correlated_data(40, 5, seed=4)
    full = pca(X, 5)
    Z = full.transform(X)
    assert Z.shape == (40, 5)
    torch.testing.assert_close(Z.mean(dim=0), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(Z.var(dim=0), full.explained_variance)
    torch.testing.assert_close(full.inverse_transform(Z), X)
    two = pca(X, 2)
    torch.testing.assert_close(two.transform(X), Z[:, :2])


def test_pca_recovers_planted_direction():
    g = torch.Generator().manual_seed(5)
    direction = torch.tensor([3.0, 4.0, 0.0]) / 5
    X = 10 * torch.randn(500, 1, generator=g) * direction + 0.1 * torch.randn(500, 3, generator=g)
    result = pca(X, 1)
    assert torch.allclose(result.components[0], direction, atol=1e-2)
    assert result.explained_variance_ratio[0] > 0.99


def test_pca_float32_and_n_components_equal_to_n_samples():
    X = correlated_data(3, 8, seed=6).float()
    result = pca(X, 3)  # 3 = min(n_samples, n_features); the last has zero variance after centring
    assert result.components.dtype == torch.float32
    assert isinstance(result, PCAResult)
    assert result.explained_variance[2] < 1e-4 * result.explained_variance[0]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(m=st.integers(1, 8), n=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_eckart_young_error(m, n, seed):
    W = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sigma = torch.linalg.svdvals(W)
    for r in range(1, min(m, n) + 1):
        W_r = low_rank_approx(W, r)
        assert W_r.shape == (m, n)
        assert torch.linalg.matrix_rank(W_r) <= r
        error = torch.linalg.matrix_norm(W - W_r) ** 2
        torch.testing.assert_close(error, (sigma[r:] ** 2).sum(), atol=1e-10, rtol=1e-8)


def test_low_rank_beats_other_rank_r_matrices():
    g = torch.Generator().manual_seed(7)
    W = torch.randn(6, 5, generator=g, dtype=torch.float64)
    best = torch.linalg.matrix_norm(W - low_rank_approx(W, 2))
    for _ in range(20):
        A, B = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(2, 5, generator=g, dtype=torch.float64)
        other = A @ B  # a random rank-2 matrix
        assert torch.linalg.matrix_norm(W - other) >= best


def test_full_rank_reconstructs_exactly():
    W = correlated_data(4, 4, seed=8)
    torch.testing.assert_close(low_rank_approx(W, 4), W)


@pytest.mark.parametrize(
    ("X", "k", "message"),
    [
        (torch.zeros(5), 1, r"X must have 2 dimensions, got shape \(5,\)"),
        (torch.randn(1, 3), 1, "at least 2 samples"),
        (torch.randn(5, 3), 4, r"n_components must be an integer in \[1, 3\], got 4"),
        (torch.randn(2, 6), 3, r"n_components must be an integer in \[1, 2\], got 3"),
        (torch.randn(5, 3), 0, "got 0"),
        (torch.ones(4, 3), 1, "zero variance"),
    ],
)
def test_pca_bad_input(X, k, message):
    with pytest.raises(ValueError, match=message):
        pca(X, k)


@pytest.mark.parametrize(
    ("X", "k", "message"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], 1, "X must be a torch.Tensor, got list"),
        (torch.ones(5, 3, dtype=torch.int64), 1, "X must be a floating-point tensor, got dtype torch.int64"),
        (np.ones((5, 3), dtype=np.int64), 1, "X must be a floating-point tensor, got dtype torch.int64"),
        (torch.randn(5, 3), 2.0, "n_components must be an integer, got float 2.0"),
        (torch.randn(5, 3), True, "n_components must be an integer, got True"),
    ],
)
def test_pca_wrong_types(X, k, message):
    with pytest.raises(TypeError, match=message):
        pca(X, k)


def test_pca_rejects_wrong_width():
    result = pca(torch.randn(10, 3), 2)
    with pytest.raises(ValueError, match=r"X must have 3 columns, got shape \(10, 4\)"):
        result.transform(torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"Z must have 2 columns"):
        result.inverse_transform(torch.randn(10, 3))


def test_pca_and_low_rank_accept_numpy_arrays_and_numpy_integer_sizes():
    X = correlated_data(20, 4)
    expected = pca(X, 2)
    result = pca(X.numpy(), np.int64(2))
    for name in ("components", "explained_variance", "explained_variance_ratio", "mean", "singular_values"):
        torch.testing.assert_close(getattr(result, name), getattr(expected, name))
    torch.testing.assert_close(result.transform(X.numpy()), expected.transform(X))
    Z = expected.transform(X).numpy()
    torch.testing.assert_close(result.inverse_transform(Z), expected.inverse_transform(torch.as_tensor(Z)))
    torch.testing.assert_close(low_rank_approx(X.numpy(), np.int32(3)), low_rank_approx(X, 3))


@pytest.mark.parametrize(("W", "r", "message"), [
    (torch.randn(3, 4), 4, r"r must be an integer in \[1, 3\], got 4"),
    (torch.randn(3, 4), 0, "got 0"),
    (torch.randn(2, 3, 4), 1, r"W must have 2 dimensions, got shape \(2, 3, 4\)"),
])
def test_low_rank_bad_input(W, r, message):
    with pytest.raises(ValueError, match=message):
        low_rank_approx(W, r)


def test_matrix_with_singular_values_has_exactly_those_singular_values():
    s = torch.tensor([3.0, 2.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    W = matrix_with_singular_values(s, rows=7, generator=torch.Generator().manual_seed(0))  # (7, 5)
    assert W.shape == (7, 5) and W.dtype == torch.float64
    torch.testing.assert_close(torch.linalg.svdvals(W), s)
    again = matrix_with_singular_values(s, rows=7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(W, again)  # the generator decides everything


def test_random_projection_errors_match_a_direct_computation_and_eckart_young():
    W = correlated_data(30, 8)  # (30, 8)
    errors = random_projection_errors(W, 3, draws=5, generator=torch.Generator().manual_seed(1))  # (5,)
    reference = torch.Generator().manual_seed(1)
    for error in errors:  # the same draws, by hand: Q of a Gaussian (8, 3), then the projection residual
        Q = np.linalg.qr(torch.randn(8, 3, generator=reference, dtype=torch.float64).numpy())[0]
        assert error.item() == pytest.approx(np.linalg.norm(W.numpy() - W.numpy() @ Q @ Q.T) ** 2, rel=1e-10)
    s = torch.linalg.svdvals(W)
    assert (errors >= (s[3:] ** 2).sum() - 1e-9).all()  # no subspace beats the top right singular vectors
    assert random_projection_errors(W, 8, 2, torch.Generator().manual_seed(0)).abs().max() < 1e-9  # full space


def test_gaussian_with_spread_has_the_chosen_covariance():
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    spread = torch.tensor([2.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    X = gaussian_with_spread(40_000, spread, basis, generator)  # (40000, 4)
    expected = basis @ torch.diag(spread**2) @ basis.T
    torch.testing.assert_close(X.T @ X / len(X), expected, atol=0.05, rtol=0.05)
    along = X @ basis  # (40000, 4) coordinates along each direction
    torch.testing.assert_close(along.std(dim=0), spread, rtol=0.02, atol=0.0)


@pytest.mark.parametrize("call, error, message", [
    (lambda: matrix_with_singular_values(torch.tensor([1.0, -1.0]), 3, torch.Generator()), ValueError,
     "singular_values must be >= 0"),
    (lambda: matrix_with_singular_values(torch.ones(4), 3, torch.Generator()), ValueError, "rows must be"),
    (lambda: random_projection_errors(torch.ones(3, 2), 3, 1, torch.Generator()), ValueError, "r must be"),
    (lambda: random_projection_errors(torch.ones(3, 2), 1, 0, torch.Generator()), ValueError,
     "draws must be a positive integer, got 0"),
    (lambda: gaussian_with_spread(5, torch.ones(3), torch.eye(2), torch.Generator()), ValueError,
     r"basis must be \(3, 3\) to match spread"),
    (lambda: gaussian_with_spread(5, torch.ones(2), 2 * torch.eye(2), torch.Generator()), ValueError,
     "basis must have orthonormal columns"),
    (lambda: gaussian_with_spread(5.0, torch.ones(2), torch.eye(2), torch.Generator()), TypeError,
     "n must be an integer, got float 5.0"),
])
def test_synthetic_helpers_reject_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
