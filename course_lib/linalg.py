"""Principal component analysis and low-rank approximation, both through the SVD.

PCA here is what libraries do in practice: centre the data, take the thin SVD of the centred matrix
``Xc = U S V^T``; the rows of ``V^T`` are the principal directions and the variances along them are
``lambda_i = s_i^2 / (n - 1)``, the eigenvalues of the sample covariance, without ever forming the
covariance matrix. Truncating the same SVD gives the best rank-r approximation of a matrix in the
Frobenius and spectral norms (Eckart & Young 1936), with squared Frobenius error
``sum_{i > r} s_i^2``.

Left out: whitening, randomised and incremental SVD, kernel PCA and batched inputs (every function
takes one 2-D matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Coordinates of the rows of X (n, n_features) along the components: (n, n_components)."""
        _check_features(X, self.mean.shape[0], "X")
        return (X - self.mean) @ self.components.T  # (n, k)

    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        """Points in feature space from coordinates Z (n, n_components): (n, n_features)."""
        _check_features(Z, self.components.shape[0], "Z")
        return Z @ self.components + self.mean  # (n, F)


def pca(X: torch.Tensor, n_components: int) -> PCAResult:
    """Principal component analysis of the rows of X (n_samples, n_features) via the SVD.

    Sign convention: an SVD fixes each singular vector only up to sign, so each component is
    flipped to make its entry of largest absolute value positive (the first such entry on a tie).
    The result is deterministic for a given input and does not depend on the SVD backend.
    Components beyond the rank of the centred data (zero variance) are valid unit vectors but
    otherwise arbitrary.
    """
    _check_matrix(X, "X")
    n_samples, n_features = X.shape
    if n_samples < 2:
        raise ValueError(f"X needs at least 2 samples (rows) for a sample variance, got {n_samples}")
    limit = min(n_samples, n_features)
    if not isinstance(n_components, int) or isinstance(n_components, bool) or not 1 <= n_components <= limit:
        raise ValueError(
            f"n_components must be an int in [1, min(n_samples, n_features)] = [1, {limit}], "
            f"got {n_components!r}"
        )
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


def low_rank_approx(W: torch.Tensor, r: int) -> torch.Tensor:
    """The best rank-r approximation of W (m, n) by truncated SVD: ``U_r diag(s_r) V_r^T``, (m, n).

    By the Eckart-Young theorem no matrix of rank <= r is closer to W in the Frobenius norm, and
    ``||W - W_r||_F^2 = sum_{i > r} s_i^2``.
    """
    _check_matrix(W, "W")
    limit = min(W.shape)
    if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= limit:
        raise ValueError(f"r must be an int in [1, min(W.shape)] = [1, {limit}], got {r!r}")
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)  # (m, q), (q,), (q, n) with q = min(m, n)
    return (U[:, :r] * S[:r]) @ Vh[:r]  # (m, n)


def _flip_signs(V: torch.Tensor) -> torch.Tensor:
    """Flip each row of V (k, F) so that its entry of largest absolute value is positive."""
    largest = V.abs().argmax(dim=1, keepdim=True)  # (k, 1), first index on ties
    signs = torch.sign(V.gather(1, largest))  # (k, 1)
    return V * signs


def _check_matrix(X: torch.Tensor, name: str) -> None:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {X.dtype}")


def _check_features(X: torch.Tensor, width: int, name: str) -> None:
    _check_matrix(X, name)
    if X.shape[1] != width:
        raise ValueError(f"{name} must have {width} columns, got shape {tuple(X.shape)}")
