"""Generative and discriminative classifiers: Gaussian naive Bayes against logistic regression.

A *generative* classifier models how each class produces its inputs, p(x | y), and how often each
class occurs, p(y); it classifies by Bayes' rule, p(y | x) = p(x | y) p(y) / sum over y' of
p(x | y') p(y'), and because it has a model of x it can also draw new inputs of a class
(`GaussianNaiveBayes.sample`). A *discriminative* classifier models p(y | x) and nothing else
(`LogisticRegression`). Ng & Jordan 2002 compared this pair: logistic regression's asymptotic error
is never higher (Proposition 1) and is lower where naive Bayes's independence assumption is wrong,
but it needs a number of examples that grows linearly with the number of features n to approach it
(Proposition 2), while naive Bayes approaches its own after O(log n) examples (Corollary 6, under
conditions on the features), so with few examples naive Bayes can be the better of the two.
`learning_curve` measures test error against the training-set size, `correlated_gaussians` makes
data where both effects show, and `asymptotic_errors` gives both limits on that data exactly.

`GaussianNaiveBayes`: the prior of each class is its frequency; given the class, each feature is an
independent Gaussian with the class's mean and (ddof 0) variance of that feature. Variance smoothing
is scikit-learn's (``GaussianNB``): epsilon = var_smoothing * the largest variance of any feature
over all rows (ddof 0), added to every class's every variance.

`LogisticRegression`: p(y = k | x) = softmax(W x + b)_k over the classes, with the first class as
reference (its row of W and its b stay 0), so with two classes it is the textbook
sigmoid(w . x + b). The weights minimise the summed cross-entropy plus (l2 / 2) ||W||^2 (b is not
penalised): the MAP estimate under a Gaussian prior of precision l2, whose influence fades as the
data grow. Newton's method finds it in float64, deterministically: each step solves the Hessian
system for the full step, scaled by ``lr`` and halved until the objective goes down, and training
stops when every gradient entry of the mean objective is below ``tol`` or after ``steps`` steps.

Input: X is an (N, d) array of real numbers and y an (N,) array of integer labels, as torch tensors,
numpy arrays or nested lists. Results are torch tensors on the CPU whatever the input: probabilities
and samples in float64, labels as int64 with the values y used.

Left out: priors given by hand, online updates (scikit-learn's partial_fit), sample weights, other
naive Bayes families (multinomial, Bernoulli), L1 and elastic-net penalties, other solvers (L-BFGS,
SGD), feature scaling, and cross-validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from course_lib.softmax import log_softmax, softmax
from course_lib.validation import (
    callable_arg,
    integer,
    number_in_range,
    positive_int,
    positive_number,
    type_name,
)

__all__ = [
    "AsymptoticErrors",
    "Classifier",
    "GaussianNaiveBayes",
    "LearningCurve",
    "LogisticRegression",
    "asymptotic_errors",
    "correlated_gaussians",
    "learning_curve",
]


class GaussianNaiveBayes:
    """Gaussian naive Bayes; after `fit`: ``classes_`` (K,), ``class_prior_`` (K,), ``theta_`` and
    ``var_`` (K, d) (means and smoothed variances), ``epsilon_`` (the variance added)."""

    def __init__(self, var_smoothing: float = 1e-9) -> None:
        self.var_smoothing = number_in_range(var_smoothing, "var_smoothing", 0, math.inf, high_open=True)

    def fit(self, X: Any, y: Any) -> GaussianNaiveBayes:
        """Estimate the class priors and each class's per-feature means and variances; returns self."""
        X, y = _data(X, y)
        self.classes_, index = torch.unique(y, return_inverse=True)  # (K,), (N,)
        onehot = torch.nn.functional.one_hot(index).to(torch.float64)  # (N, K)
        counts = onehot.sum(dim=0)  # (K,)
        self.class_prior_ = counts / len(y)  # (K,)
        self.theta_ = onehot.T @ X / counts[:, None]  # (K, d)
        self.epsilon_ = self.var_smoothing * float(X.var(dim=0, correction=0).max())
        self.var_ = onehot.T @ (X - self.theta_[index]) ** 2 / counts[:, None] + self.epsilon_  # (K, d)
        if not bool((self.var_ > 0).all()):
            raise ValueError("a feature has zero variance within a class and epsilon_ is 0: "
                             f"use var_smoothing > 0 (got {self.var_smoothing:g}) or features that vary")
        return self

    def joint_log_likelihood(self, X: Any) -> torch.Tensor:
        """ln p(x, y = k) = ln p(y = k) + sum_j ln N(x_j; theta_kj, var_kj) for every row and class: (N, K)."""
        X = self._inputs(X)
        squared = (X[:, None, :] - self.theta_) ** 2 / self.var_  # (N, K, d)
        log_density = -0.5 * (torch.log(2 * math.pi * self.var_) + squared).sum(dim=-1)  # (N, K)
        return torch.log(self.class_prior_) + log_density  # (N, K)

    def predict_proba(self, X: Any) -> torch.Tensor:
        """p(y = k | x) by Bayes' rule, columns in the order of ``classes_``: (N, K), rows sum to 1."""
        return softmax(self.joint_log_likelihood(X), dim=-1)  # (N, K)

    def predict(self, X: Any) -> torch.Tensor:
        """The most probable class of each row: (N,) int64."""
        best = self.joint_log_likelihood(X).argmax(dim=-1)  # (N,)
        return self.classes_[best]  # (N,)

    def sample(self, n: int, label: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n inputs drawn from the fitted p(x | y = label): (n, d) float64."""
        n = positive_int(n, "n")
        k = self._class_index(label)
        noise = torch.randn(n, self.theta_.shape[1], generator=generator, dtype=torch.float64)  # (n, d)
        return self.theta_[k] + noise * self.var_[k].sqrt()  # (n, d)

    def _class_index(self, label: int) -> int:
        _check_fitted(self)
        label = integer(label, "label")
        matches = (self.classes_ == label).nonzero()
        if len(matches) == 0:
            raise ValueError(f"label must be one of the classes {self.classes_.tolist()}, got {label}")
        return int(matches[0, 0])

    def _inputs(self, X: Any) -> torch.Tensor:
        _check_fitted(self)
        return _features(X, "X", self.theta_.shape[1])


class LogisticRegression:
    """Multinomial logistic regression (the first class as reference) with an L2 penalty, fitted by Newton's method.

    After `fit`: ``classes_`` (K,), ``coef_`` (K, d) and ``intercept_`` (K,) (the reference class's
    row and entry are 0), ``steps_taken_``.
    """

    def __init__(self, l2: float = 1.0, steps: int = 100, lr: float = 1.0, tol: float = 1e-10) -> None:
        self.l2 = positive_number(l2, "l2")
        self.steps = positive_int(steps, "steps")
        self.lr = number_in_range(lr, "lr", 0, 1, low_open=True)
        self.tol = positive_number(tol, "tol")

    def fit(self, X: Any, y: Any) -> LogisticRegression:
        """Minimise the penalised cross-entropy by Newton steps; returns self."""
        X, y = _data(X, y)
        self.classes_, index = torch.unique(y, return_inverse=True)  # (K,), (N,)
        Y = torch.nn.functional.one_hot(index, len(self.classes_))[:, 1:].to(torch.float64)  # (N, K - 1)
        Xb = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], dim=1)  # (N, d + 1)
        penalised = torch.ones(Xb.shape[1], dtype=torch.float64)  # (d + 1,)
        penalised[-1] = 0  # the bias is not penalised
        theta = torch.zeros(Y.shape[1], Xb.shape[1], dtype=torch.float64)  # (K - 1, d + 1)
        self.steps_taken_ = 0
        while Y.shape[1] > 0 and self.steps_taken_ < self.steps:
            grad, hessian = _gradient_and_hessian(theta, Xb, Y, self.l2 * penalised)
            if float(grad.abs().max()) < self.tol:
                break
            direction = torch.linalg.solve(hessian, grad.flatten()).reshape(theta.shape)  # (K - 1, d + 1)
            better = _halve_until_better(theta, direction, self.lr, Xb, Y, self.l2 * penalised)
            if better is theta:  # no step lowers the objective any more: at the optimum to rounding
                break
            theta = better
            self.steps_taken_ += 1
        self.coef_ = torch.cat([torch.zeros(1, X.shape[1], dtype=torch.float64), theta[:, :-1]])  # (K, d)
        self.intercept_ = torch.cat([torch.zeros(1, dtype=torch.float64), theta[:, -1]])  # (K,)
        return self

    def decision_function(self, X: Any) -> torch.Tensor:
        """The scores W x + b of every row and class: (N, K)."""
        _check_fitted(self)
        return _features(X, "X", self.coef_.shape[1]) @ self.coef_.T + self.intercept_  # (N, K)

    def predict_proba(self, X: Any) -> torch.Tensor:
        """p(y = k | x), columns in the order of ``classes_``: (N, K), rows sum to 1."""
        return softmax(self.decision_function(X), dim=-1)  # (N, K)

    def predict(self, X: Any) -> torch.Tensor:
        """The most probable class of each row: (N,) int64."""
        best = self.decision_function(X).argmax(dim=-1)  # (N,)
        return self.classes_[best]  # (N,)


def _objective(theta: torch.Tensor, Xb: torch.Tensor, Y: torch.Tensor, l2: torch.Tensor) -> float:
    """Mean cross-entropy + (l2 / 2N) ||W||^2: the summed objective divided by N (the same minimiser)."""
    scores = torch.cat([torch.zeros(len(Xb), 1, dtype=Xb.dtype), Xb @ theta.T], dim=1)  # (N, K)
    picked = torch.cat([1 - Y.sum(dim=1, keepdim=True), Y], dim=1)  # (N, K) one-hot targets
    cross_entropy = -(log_softmax(scores, dim=-1) * picked).sum() / len(Xb)
    return float(cross_entropy + 0.5 * (l2 * theta**2).sum() / len(Xb))


def _gradient_and_hessian(theta: torch.Tensor, Xb: torch.Tensor, Y: torch.Tensor,
                          l2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient (K - 1, d + 1) and Hessian (M, M), M = (K - 1)(d + 1), of `_objective`."""
    N = len(Xb)
    scores = torch.cat([torch.zeros(N, 1, dtype=Xb.dtype), Xb @ theta.T], dim=1)  # (N, K)
    P = softmax(scores, dim=-1)[:, 1:]  # (N, K - 1)
    grad = ((P - Y).T @ Xb + l2 * theta) / N  # (K - 1, d + 1)
    C = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]  # (N, K - 1, K - 1) softmax covariance
    weighted = C[..., None] * Xb[:, None, None, :]  # (N, K - 1, K - 1, d + 1)
    hessian = torch.tensordot(weighted, Xb, dims=([0], [0])).permute(0, 2, 1, 3)  # (K - 1, d + 1, K - 1, d + 1)
    hessian = hessian.reshape(grad.numel(), grad.numel())  # (M, M)
    hessian = (hessian + torch.diag(l2.repeat(theta.shape[0]))) / N  # (M, M)
    return grad, hessian


def _halve_until_better(theta: torch.Tensor, direction: torch.Tensor, lr: float, Xb: torch.Tensor,
                        Y: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
    """theta - t * direction for the largest t in lr, lr / 2, ... (down to 2^-30 lr) that lowers the objective."""
    before = _objective(theta, Xb, Y, l2)
    t = lr
    for _ in range(30):
        candidate = theta - t * direction  # (K - 1, d + 1)
        if _objective(candidate, Xb, Y, l2) <= before:
            return candidate
        t /= 2
    return theta


class Classifier(Protocol):
    """What `learning_curve` needs of a model: fit(X, y) and predict(X)."""

    def fit(self, X: Any, y: Any) -> Any: ...

    def predict(self, X: Any) -> torch.Tensor: ...


class LearningCurve(NamedTuple):
    """Test error against training-set size: ``errors`` (S, repeats), their ``mean`` and ``std`` (S,)."""

    train_sizes: torch.Tensor  # (S,) int64
    errors: torch.Tensor  # (S, repeats) float64, fraction of test rows misclassified
    mean: torch.Tensor  # (S,)
    std: torch.Tensor  # (S,) over repeats (ddof 0)


def learning_curve(model_factory: Callable[[], Classifier], X: Any, y: Any, train_sizes: Sequence[int],
                   repeats: int = 10, generator: torch.Generator | None = None) -> LearningCurve:
    """Test error of fresh models (``model_factory()``) trained on random subsets of each size.

    Each repeat draws one random order of the rows: the rows after the largest training size are
    the test set, and each training set is the first m rows, so the sets of one repeat are nested and
    every size is tested on the same rows.
    """
    callable_arg(model_factory, "model_factory", "a function returning an unfitted model")
    X, y = _data(X, y)
    repeats = positive_int(repeats, "repeats")
    sizes = [positive_int(m, "each train size") for m in _sizes(train_sizes)]
    if max(sizes) >= len(y):
        raise ValueError(f"train_sizes must leave test rows: each must be below the {len(y)} rows of X, "
                         f"got {max(sizes)}")
    errors = torch.zeros(len(sizes), repeats, dtype=torch.float64)  # (S, R)
    for r in range(repeats):
        order = torch.randperm(len(y), generator=generator)  # (N,)
        test = order[max(sizes):]  # (N - max size,)
        for s, m in enumerate(sizes):
            model = model_factory()
            model.fit(X[order[:m]], y[order[:m]])
            errors[s, r] = (model.predict(X[test]) != y[test]).double().mean()
    return LearningCurve(torch.tensor(sizes), errors, errors.mean(dim=1), errors.std(dim=1, correction=0))


N_CORRELATED, N_INDEPENDENT, N_IRRELEVANT = 10, 10, 20  # the three groups of `correlated_gaussians`


def correlated_gaussians(n: int, generator: torch.Generator | None = None, correlation: float = 0.8,
                         noise_scale: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows of two equally likely classes on which naive Bayes learns fast but stays wrong: X (n, 40), y (n,).

    Given the class, x is Gaussian with a covariance both classes share, in three groups of
    features: 10 informative ones that are correlated with each other (every pair ``correlation``,
    unit variance), 10 informative independent ones (unit variance), and 20 irrelevant ones (the
    same mean in both classes, standard deviation ``noise_scale``). Class 1's mean is +1/2 on every
    informative feature, class 0's -1/2. Naive Bayes counts the correlated group's shared evidence
    once per feature, so its limit is worse than the Bayes-optimal rule, which is linear (two
    Gaussians with one covariance) and so is logistic regression's limit (`asymptotic_errors`);
    but it learns which features matter, and how much each varies, from few rows, while logistic
    regression has 41 parameters to fit jointly and is thrown off by the large irrelevant features.
    """
    n = positive_int(n, "n")
    rho = number_in_range(correlation, "correlation", 0, 1, high_open=True)
    noise_scale = positive_number(noise_scale, "noise_scale")
    y = torch.randint(2, (n,), generator=generator)  # (n,)
    shared = torch.randn(n, 1, generator=generator, dtype=torch.float64)  # (n, 1)
    noise = torch.randn(n, N_CORRELATED + N_INDEPENDENT + N_IRRELEVANT, generator=generator,
                        dtype=torch.float64)  # (n, d)
    noise[:, :N_CORRELATED] = math.sqrt(rho) * shared + math.sqrt(1 - rho) * noise[:, :N_CORRELATED]
    noise[:, N_CORRELATED + N_INDEPENDENT:] *= noise_scale
    return (y[:, None] - 0.5) * _informative() + noise, y  # (n, d), (n,)


class AsymptoticErrors(NamedTuple):
    """Test errors of the two classifiers' limits on `correlated_gaussians` data, with infinite training data."""

    naive_bayes: float
    logistic_regression: float  # the Bayes error: no classifier does better


def asymptotic_errors(correlation: float = 0.8) -> AsymptoticErrors:
    """The exact errors of naive Bayes's and logistic regression's limits on `correlated_gaussians`.

    Both limits are linear rules sign(w . x) with the threshold halfway between the class means
    (the classes are equally likely and symmetric about 0), whose error is
    Phi(-(w . delta / 2) / sqrt(w^T S w)) for the mean difference delta and covariance S. Naive Bayes
    uses the true means and variances with the correlations dropped, w = diag(S)^-1 delta; logistic
    regression converges to the Bayes-optimal w = S^-1 delta. The irrelevant features have w = 0 in
    both, so ``noise_scale`` does not matter here.
    """
    rho = number_in_range(correlation, "correlation", 0, 1, high_open=True)
    d = N_CORRELATED + N_INDEPENDENT
    S = torch.eye(d, dtype=torch.float64)  # (d, d) covariance of the informative features
    S[:N_CORRELATED, :N_CORRELATED] = rho
    S.fill_diagonal_(1.0)
    delta = _informative()[:d]  # (d,)

    def error(w: torch.Tensor) -> float:
        return float(torch.special.ndtr(-(w @ delta / 2) / torch.sqrt(w @ S @ w)))

    return AsymptoticErrors(error(delta / S.diagonal()), error(torch.linalg.solve(S, delta)))


def _informative() -> torch.Tensor:
    """The mean difference between class 1 and class 0: 1 on the informative features, 0 on the rest: (d,)."""
    return torch.cat([torch.ones(N_CORRELATED + N_INDEPENDENT, dtype=torch.float64),
                      torch.zeros(N_IRRELEVANT, dtype=torch.float64)])


# --- input --------------------------------------------------------------------------------------


def _data(X: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """X as (N, d) float64 and y as (N,) int64 CPU tensors, with the same N."""
    X = _features(X, "X")
    y = _as_tensor(y, "y")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},) to match X's rows, got {tuple(y.shape)}")
    return X, y.to(torch.int64)


def _features(X: Any, name: str, n_features: int | None = None) -> torch.Tensor:
    """X as an (N, d) float64 CPU tensor of finite numbers, N >= 1 (and d = n_features if given)."""
    X = _as_tensor(X, name)
    if X.dtype == torch.bool or X.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) matrix, got shape {tuple(X.shape)}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns) as in fit, got {X.shape[1]}")
    X = X.to(torch.float64)
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} must hold finite numbers, got NaN or inf")
    return X


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    """A torch tensor (moved to the CPU), or a numpy array or nested lists read as numpy reads them."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of numbers, got ragged nested lists") from None
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be a tensor, an array or nested lists of numbers, got {type_name(value)} "
                        f"of dtype {array.dtype}")
    return torch.tensor(array)


def _sizes(train_sizes: Any) -> list[Any]:
    if isinstance(train_sizes, (str, bytes)) or not hasattr(train_sizes, "__len__"):
        raise TypeError(f"train_sizes must be a sequence of integers, got {type_name(train_sizes)}")
    if len(train_sizes) == 0:
        raise ValueError("train_sizes must not be empty")
    return list(train_sizes)


def _check_fitted(model: GaussianNaiveBayes | LogisticRegression) -> None:
    if not hasattr(model, "classes_"):
        raise ValueError(f"the {type(model).__name__} is not fitted yet: call fit(X, y) first")

