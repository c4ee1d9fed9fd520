"""Principal component analysis and low-rank approximation, both through the SVD.

PCA here is what libraries do in practice: centre the data, take the thin SVD of the centred matrix
``Xc = U S V^T``; the rows of ``V^T`` are the principal directions and the variances along them are
``lambda_i = s_i^2 / (n - 1)``, the eigenvalues of the sample covariance, without ever forming the
covariance matrix. Truncating the same SVD gives the best rank-r approximation of a matrix in the
Frobenius and spectral norms (Eckart & Young 1936), with squared Frobenius error
``sum_{i > r} s_i^2``.

To see those facts on known ground, `matrix_with_singular_values` builds a matrix whose singular
values are chosen, `random_projection_errors` measures how far random rank-r subspaces are from the
truncated SVD, and `gaussian_with_spread` draws data whose variance along each of a set of directions
is chosen.

Left out: whitening, randomised and incremental SVD, kernel PCA and batched inputs (every function
takes one 2-D matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib.validation import as_float_tensor, float_tensor, int_in_range, positive_int

__all__ = ["PCAResult", "pca", "low_rank_approx", "matrix_with_singular_values", "random_projection_errors",
           "gaussian_with_spread"]


@dataclass(frozen=True)
class PCAResult:
    """A fitted PCA: the top principal directions of some data and the variance along each.

    components: (n_components, n_features), orthonormal rows, in order of decreasing variance.
    explained_variance: (n_components,), ``s_i^2 / (n_samples - 1)``.
    explained_variance_ratio: (n_components,), each variance over the total variance (the trace of
    the sample covariance); sums to 1 when every component is kept.
    mean: (n_features,), the mean subtracted before the SVD.
    singular_values: (n_components,), the singular values ``s_i`` of the centred data.
    """

    components: torch.Tensor
    explained_variance: torch.Tensor
    explained_variance_ratio: torch.Tensor
    mean: torch.Tensor
    singular_values: torch.Tensor

    def transform(self, X: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Coordinates of the rows of X (n, n_features) along the components: (n, n_components)."""
        X = _check_features(X, self.mean.shape[0], "X")
        return (X - self.mean) @ self.components.T  # (n, k)

    def inverse_transform(self, Z: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Points in feature space from coordinates Z (n, n_components): (n, n_features)."""
        Z = _check_features(Z, self.components.shape[0], "Z")
        return Z @ self.components + self.mean  # (n, F)


def pca(X: torch.Tensor | np.ndarray, n_components: int) -> PCAResult:
    """Principal component analysis of the rows of X (n_samples, n_features) via the SVD.

    X is a floating-point tensor or NumPy array (converted with ``torch.as_tensor``); the result
    holds tensors.

    Sign convention: an SVD fixes each singular vector only up to sign, so each component is
    flipped to make its entry of largest absolute value positive (the first such entry on a tie).
    The result is deterministic for a given input and does not depend on the SVD backend.
    Components beyond the rank of the centred data (zero variance) are valid unit vectors but
    otherwise arbitrary.
    """
    X = as_float_tensor(X, "X", ndim=2)  # (n, F)
    n_samples, n_features = X.shape
    if n_samples < 2:
        raise ValueError(f"X needs at least 2 samples (rows) for a sample variance, got {n_samples}")
    n_components = int_in_range(n_components, "n_components", 1, min(n_samples, n_features))
    mean = X.mean(dim=0)  # (F,)
    _, S, Vh = torch.linalg.svd(X - mean, full_matrices=False)  # S: (min(n, F),), Vh: (min(n, F), F)
    total = (S**2).sum()
    if total == 0:
        raise ValueError("X has zero variance (all rows are equal); its principal directions are undefined")
    components = _flip_signs(Vh[:n_components])  # (k, F)
    S = S[:n_components]  # (k,)
    return PCAResult(
        components=components,
        explained_variance=S**2 / (n_samples - 1),
        explained_variance_ratio=S**2 / total,
        mean=mean,
        singular_values=S,
    )


def low_rank_approx(W: torch.Tensor | np.ndarray, r: int) -> torch.Tensor:
    """The best rank-r approximation of W (m, n) by truncated SVD: ``U_r diag(s_r) V_r^T``, (m, n).

    By the Eckart-Young theorem no matrix of rank <= r is closer to W in the Frobenius norm, and
    ``||W - W_r||_F^2 = sum_{i > r} s_i^2``.
    """
    W = as_float_tensor(W, "W", ndim=2)  # (m, n)
    r = int_in_range(r, "r", 1, min(W.shape))
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)  # (m, q), (q,), (q, n) with q = min(m, n)
    return (U[:, :r] * S[:r]) @ Vh[:r]  # (m, n)


def matrix_with_singular_values(singular_values: torch.Tensor, rows: int, generator: torch.Generator) -> torch.Tensor:
    """A random (rows, n) matrix ``U diag(s) V^T`` whose singular values are ``singular_values`` (n,).

    U (rows, n) and V (n, n) have orthonormal columns, from the QR factorisations of a (rows, n) and
    then an (n, n) standard normal matrix drawn from ``generator`` in the dtype of ``singular_values``.
    Left out: complex matrices, and more columns than rows.
    """
    s = float_tensor(singular_values, "singular_values", ndim=1)  # (n,)
    if (s < 0).any():
        raise ValueError(f"singular_values must be >= 0, got min {s.min().item():g}")
    n = len(s)
    rows = int_in_range(rows, "rows", n)
    U, _ = torch.linalg.qr(torch.randn(rows, n, generator=generator, dtype=s.dtype))  # (rows, n)
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=s.dtype))  # (n, n)
    return U @ torch.diag(s) @ V.T  # (rows, n)


def random_projection_errors(W: torch.Tensor, r: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    """Squared Frobenius errors ``||W - W P P^T||_F^2`` for ``draws`` random orthonormal P (n, r), (draws,).

    ``W P P^T`` is the best approximation of W (m, n) whose rows lie in the span of P's columns, a
    random r-dimensional subspace (QR of a standard normal (n, r) matrix from ``generator``); by
    Eckart-Young no subspace beats the top r right singular vectors. Left out: other random
    sketches (Gaussian projections without orthonormalisation, sparse or structured ones).
    """
    W = float_tensor(W, "W", ndim=2)  # (m, n)
    r = int_in_range(r, "r", 1, W.shape[1])
    draws = positive_int(draws, "draws")
    errors = []
    for _ in range(draws):
        P, _ = torch.linalg.qr(torch.randn(W.shape[1], r, generator=generator, dtype=W.dtype))  # (n, r)
        errors.append(((W - W @ P @ P.T) ** 2).sum())
    return torch.stack(errors)  # (draws,)


def gaussian_with_spread(n: int, spread: torch.Tensor, basis: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of a zero-mean Gaussian with standard deviation ``spread[j]`` along ``basis[:, j]``, (n, d).

    ``basis`` (d, d) has orthonormal columns; each row is ``basis @ (spread * z)`` with z standard
    normal from ``generator`` (one (n, d) draw), so the covariance is ``basis diag(spread^2) basis^T``.
    Left out: a nonzero mean and non-Gaussian data.
    """
    n = positive_int(n, "n")
    spread = float_tensor(spread, "spread", ndim=1)  # (d,)
    basis = float_tensor(basis, "basis", ndim=2)  # (d, d)
    d = len(spread)
    if basis.shape != (d, d):
        raise ValueError(f"basis must be ({d}, {d}) to match spread, got shape {tuple(basis.shape)}")
    eye = torch.eye(d, dtype=basis.dtype)
    if not torch.allclose(basis.T @ basis, eye, atol=1e-4 if basis.dtype != torch.float64 else 1e-10):
        raise ValueError("basis must have orthonormal columns (basis.T @ basis = I)")
    return (torch.randn(n, d, generator=generator, dtype=spread.dtype) * spread) @ basis.T  # (n, d)


def _flip_signs(V: torch.Tensor) -> torch.Tensor:
    """Flip each row of V (k, F) so that its entry of largest absolute value is positive."""
    largest = V.abs().argmax(dim=1, keepdim=True)  # (k, 1), first index on ties
    signs = torch.sign(V.gather(1, largest))  # (k, 1)
    return V * signs


def _check_features(X: torch.Tensor | np.ndarray, width: int, name: str) -> torch.Tensor:
    X = as_float_tensor(X, name, ndim=2)
    if X.shape[1] != width:
        raise ValueError(f"{name} must have {width} columns, got shape {tuple(X.shape)}")
    return X
