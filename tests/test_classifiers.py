"""Tests for course_lib.classifiers: naive Bayes against the Gaussian log-likelihoods written out by hand
and scikit-learn's variance smoothing, sampling from the fitted classes, logistic regression at its
hand-derived optimum, learning curves that cross as Ng & Jordan 2002 describe, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.classifiers import (
    GaussianNaiveBayes,
    LearningCurve,
    LogisticRegression,
    asymptotic_errors,
    correlated_gaussians,
    learning_curve,
)

# scikit-learn's GaussianNB docstring example: two classes of three points.
X_TOY = [[-1, -1], [-2, -1], [-3, -2], [1, 1], [2, 1], [3, 2]]
Y_TOY = [1, 1, 1, 2, 2, 2]


def gaussian_log_density(x: float, mean: float, var: float) -> float:
    return -0.5 * math.log(2 * math.pi * var) - (x - mean) ** 2 / (2 * var)


def three_classes(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(3, (n,), generator=g)
    X = torch.randn(n, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + y[:, None]
    return X, y


def test_naive_bayes_equals_the_gaussian_log_likelihoods_written_out():
    model = GaussianNaiveBayes(var_smoothing=0.5).fit(X_TOY, Y_TOY)
    # Feature variances over all rows (ddof 0): 28/6 and 12/6, so epsilon = 0.5 * 14/3 = 7/3.
    # Class 1: means (-2, -4/3), variances (2/3, 2/9); class 2: (2, 4/3), the same variances.
    epsilon = 0.5 * 14 / 3
    assert model.epsilon_ == pytest.approx(epsilon, abs=1e-15)
    means = [(-2, -4 / 3), (2, 4 / 3)]
    variances = [2 / 3 + epsilon, 2 / 9 + epsilon]
    assert model.theta_.flatten().tolist() == pytest.approx([-2, -4 / 3, 2, 4 / 3], abs=1e-15)
    assert model.var_.flatten().tolist() == pytest.approx(variances * 2, abs=1e-15)
    assert model.classes_.tolist() == [1, 2] and model.class_prior_.tolist() == [0.5, 0.5]
    x = (-0.8, 0.3)
    joint = [math.log(0.5) + sum(gaussian_log_density(x[j], m[j], variances[j]) for j in range(2)) for m in means]
    assert model.joint_log_likelihood([x])[0].tolist() == pytest.approx(joint, abs=1e-12)
    posterior = [math.exp(j) / sum(math.exp(k) for k in joint) for j in joint]
    assert model.predict_proba([x])[0].tolist() == pytest.approx(posterior, abs=1e-12)


def test_naive_bayes_reproduces_scikit_learn_s_documented_example():
    model = GaussianNaiveBayes().fit(np.array(X_TOY), np.array(Y_TOY))
    assert model.predict(np.array([[-0.8, -1]])).tolist() == [1]
    assert model.predict(X_TOY).tolist() == Y_TOY


def test_var_smoothing_adds_a_share_of_the_largest_feature_variance_to_every_variance():
    X, y = three_classes()
    plain = GaussianNaiveBayes(var_smoothing=0.0).fit(X, y)
    smoothed = GaussianNaiveBayes(var_smoothing=0.1).fit(X, y)
    largest = np.var(X.numpy(), axis=0).max()
    assert smoothed.epsilon_ == pytest.approx(0.1 * largest, rel=1e-12) and plain.epsilon_ == 0.0
    for k in range(3):
        rows = X.numpy()[y.numpy() == k]
        assert plain.var_[k].numpy() == pytest.approx(np.var(rows, axis=0), rel=1e-12)
        assert smoothed.var_[k].numpy() == pytest.approx(np.var(rows, axis=0) + 0.1 * largest, rel=1e-12)


@pytest.mark.parametrize("model", [GaussianNaiveBayes(), LogisticRegression()])
def test_posteriors_sum_to_1_and_predictions_are_their_argmax(model):
    X, y = three_classes()
    model.fit(X, y + 5)
    proba = model.predict_proba(X)
    assert proba.shape == (300, 3) and proba.dtype == torch.float64
    assert torch.allclose(proba.sum(dim=1), torch.ones(300, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.equal(model.predict(X), model.classes_[proba.argmax(dim=1)])
    assert model.classes_.tolist() == [5, 6, 7] and model.predict(X).dtype == torch.int64
    assert (model.predict(X) == y + 5).double().mean() > 0.6


def test_samples_have_the_fitted_means_and_variances():
    model = GaussianNaiveBayes().fit(*three_classes())
    n = 20_000
    for k, label in enumerate(model.classes_.tolist()):
        samples = model.sample(n, label, generator=torch.Generator().manual_seed(k))
        assert samples.shape == (n, 4) and samples.dtype == torch.float64
        mean, var = model.theta_[k], model.var_[k]
        assert ((samples.mean(dim=0) - mean).abs() < 5 * (var / n).sqrt()).all()  # 5 standard errors
        assert ((samples.var(dim=0) - var).abs() < 5 * var * math.sqrt(2 / n)).all()
    again = model.sample(3, 1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, model.sample(3, 1, generator=torch.Generator().manual_seed(1)))


def test_numpy_and_torch_input_give_the_same_model():
    X, y = three_classes()
    for cls in (GaussianNaiveBayes, LogisticRegression):
        a = cls().fit(X, y).predict_proba(X)
        b = cls().fit(X.numpy(), y.numpy()).predict_proba(X.numpy().tolist())
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    assert LogisticRegression().fit(X.float(), y.int()).predict_proba(X).dtype == torch.float64


def test_logistic_regression_reaches_the_optimum_derived_by_hand():
    # x = +1 is labelled 1 three times in four, x = -1 once in four. By symmetry b = 0, and the
    # gradient of sum CE + (l2 / 2) w^2 in w is 4 (s(w) - 3/4) - 4 (s(-w) - 1/4) + l2 w = 8 s(w) - 6 + l2 w.
    X = [[1.0]] * 4 + [[-1.0]] * 4
    y = [1, 1, 1, 0, 1, 0, 0, 0]
    for l2 in (1.0, 1e-6):
        model = LogisticRegression(l2=l2).fit(X, y)
        low, high = 0.0, 2.0
        for _ in range(200):  # bisection on the gradient, increasing in w
            mid = (low + high) / 2
            low, high = (mid, high) if 8 / (1 + math.exp(-mid)) - 6 + l2 * mid < 0 else (low, mid)
        assert float(model.coef_[1, 0]) == pytest.approx(low, abs=1e-9)
        assert abs(float(model.intercept_[1])) < 1e-9
        assert model.coef_[0].tolist() == [0.0] and float(model.intercept_[0]) == 0.0
    assert float(model.coef_[1, 0]) == pytest.approx(math.log(3), abs=1e-5)  # l2 -> 0: s(w) = 3/4


def test_logistic_regression_solves_the_optimality_conditions_on_three_classes():
    X, y = three_classes()
    model = LogisticRegression(l2=2.0).fit(X, y)
    residual = model.predict_proba(X) - torch.nn.functional.one_hot(y).double()  # (N, K)
    # for every class but the reference: X^T (P - Y) + l2 W = 0 and sum (P - Y) = 0
    assert torch.allclose(residual[:, 1:].T @ X + 2.0 * model.coef_[1:], torch.zeros(2, 4, dtype=torch.float64),
                          atol=1e-8, rtol=0)
    assert torch.allclose(residual[:, 1:].sum(dim=0), torch.zeros(2, dtype=torch.float64), atol=1e-8, rtol=0)
    assert model.steps_taken_ < model.steps


def test_two_class_logistic_regression_is_the_sigmoid_of_a_linear_score():
    X, y = correlated_gaussians(200, torch.Generator().manual_seed(0))
    model = LogisticRegression().fit(X, y)
    score = X @ model.coef_[1] + model.intercept_[1]  # (N,)
    assert torch.allclose(model.predict_proba(X)[:, 1], torch.sigmoid(score), atol=1e-14, rtol=0)


def test_a_training_set_with_one_class_predicts_that_class():
    X = [[0.0, 1.0], [1.0, 0.5]]
    for model in (GaussianNaiveBayes(), LogisticRegression()):
        model.fit(X, [3, 3])
        assert model.predict([[5.0, 5.0]]).tolist() == [3]
        assert model.predict_proba([[5.0, 5.0]]).tolist() == [[1.0]]


def test_asymptotic_errors_match_models_trained_on_many_rows():
    limits = asymptotic_errors()
    assert limits.logistic_regression < limits.naive_bayes - 0.05
    X, y = correlated_gaussians(80_000, torch.Generator().manual_seed(3))
    train, test = slice(0, 40_000), slice(40_000, None)
    for model, limit in ((GaussianNaiveBayes(), limits.naive_bayes), (LogisticRegression(), limits.logistic_regression)):
        error = (model.fit(X[train], y[train]).predict(X[test]) != y[test]).double().mean()
        assert abs(float(error) - limit) < 0.01  # the standard error of the measured error is under 0.002
    independent = asymptotic_errors(correlation=0.0)
    assert independent.naive_bayes == pytest.approx(independent.logistic_regression, abs=1e-15)


def test_naive_bayes_learns_faster_and_logistic_regression_ends_lower():
    X, y = correlated_gaussians(3000, torch.Generator().manual_seed(0))
    sizes, repeats = [16, 24, 1000], 20
    # the same generator seed gives both models the same training sets: the differences are paired
    nb = learning_curve(GaussianNaiveBayes, X, y, sizes, repeats, generator=torch.Generator().manual_seed(1))
    lr = learning_curve(LogisticRegression, X, y, sizes, repeats, generator=torch.Generator().manual_seed(1))
    gap = lr.errors - nb.errors  # (3, repeats) positive where naive Bayes is better
    mean, standard_error = gap.mean(dim=1), gap.std(dim=1) / math.sqrt(repeats)
    assert (mean[:2] > 0.1).all() and mean[2] < -0.06, (nb.mean, lr.mean)
    assert (mean.abs() > 5 * standard_error).all(), (mean, standard_error)  # measured: 7 to 40 standard errors


def test_learning_curve_shapes_spread_and_reproducibility():
    X, y = three_classes(200)
    curve = learning_curve(GaussianNaiveBayes, X, y, np.array([10, 50]), repeats=3,
                           generator=torch.Generator().manual_seed(0))
    assert isinstance(curve, LearningCurve) and curve.train_sizes.tolist() == [10, 50]
    assert curve.errors.shape == (2, 3) and ((curve.errors >= 0) & (curve.errors <= 1)).all()
    assert torch.equal(curve.mean, curve.errors.mean(dim=1))
    assert torch.allclose(curve.std, torch.tensor(np.std(curve.errors.numpy(), axis=1)), atol=1e-15, rtol=0)
    again = learning_curve(GaussianNaiveBayes, X, y, [10, 50], repeats=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(curve.errors, again.errors)


@pytest.mark.parametrize("make, error, match", [
    (lambda: GaussianNaiveBayes(var_smoothing=-1e-9), ValueError, r"var_smoothing must be in \[0, inf\), got -1e-09"),
    (lambda: GaussianNaiveBayes(var_smoothing="0"), TypeError, "var_smoothing must be a real number, got str"),
    (lambda: LogisticRegression(l2=0), ValueError, "l2 must be positive, got 0"),
    (lambda: LogisticRegression(steps=0), ValueError, "steps must be a positive integer, got 0"),
    (lambda: LogisticRegression(steps=2.5), TypeError, "steps must be an integer, got float 2.5"),
    (lambda: LogisticRegression(lr=0), ValueError, r"lr must be in \(0, 1\], got 0"),
    (lambda: LogisticRegression(lr=1.5), ValueError, r"lr must be in \(0, 1\], got 1.5"),
    (lambda: LogisticRegression(tol=-1), ValueError, "tol must be positive, got -1"),
    (lambda: correlated_gaussians(0), ValueError, "n must be a positive integer, got 0"),
    (lambda: correlated_gaussians(5, correlation=1.0), ValueError, r"correlation must be in \[0, 1\), got 1"),
    (lambda: correlated_gaussians(5, noise_scale=0), ValueError, "noise_scale must be positive, got 0"),
    (lambda: asymptotic_errors(-0.1), ValueError, r"correlation must be in \[0, 1\), got -0.1"),
])
def test_bad_settings(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_data():
    model = GaussianNaiveBayes()
    with pytest.raises(ValueError, match="the GaussianNaiveBayes is not fitted yet"):
        model.predict([[1.0]])
    with pytest.raises(ValueError, match=r"X must be a non-empty \(N, d\) matrix, got shape \(3,\)"):
        model.fit([1.0, 2.0, 3.0], [0, 1, 0])
    with pytest.raises(TypeError, match="y must hold integer class labels, got dtype torch.float32"):
        model.fit([[1.0], [2.0]], torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\) to match X's rows, got \(3,\)"):
        model.fit([[1.0], [2.0]], [0, 1, 1])
    with pytest.raises(ValueError, match="X must hold finite numbers, got NaN or inf"):
        model.fit([[1.0], [math.nan]], [0, 1])
    with pytest.raises(TypeError, match="X must be a tensor, an array or nested lists of numbers, got str"):
        model.fit("data", [0])
    with pytest.raises(ValueError, match="X must be a rectangular array of numbers, got ragged nested lists"):
        model.fit([[1.0, 2.0], [3.0]], [0, 1])
    with pytest.raises(ValueError, match="use var_smoothing > 0"):
        GaussianNaiveBayes(var_smoothing=0).fit([[1.0], [1.0], [2.0]], [0, 0, 1])
    model.fit(X_TOY, Y_TOY)
    with pytest.raises(ValueError, match=r"X must have 2 features \(columns\) as in fit, got 3"):
        model.predict([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"label must be one of the classes \[1, 2\], got 0"):
        model.sample(2, 0)
    with pytest.raises(TypeError, match="label must be an integer, got float 1.0"):
        model.sample(2, 1.0)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        model.sample(0, 1)
    assert model.sample(np.int64(2), np.int64(1)).shape == (2, 2)


def test_bad_learning_curve_arguments():
    X, y = three_classes(50)
    with pytest.raises(TypeError, match="model_factory must be a function returning an unfitted model, got int"):
        learning_curve(3, X, y, [10])
    with pytest.raises(ValueError, match="each must be below the 50 rows of X, got 50"):
        learning_curve(GaussianNaiveBayes, X, y, [10, 50])
    with pytest.raises(ValueError, match="each train size must be a positive integer, got 0"):
        learning_curve(GaussianNaiveBayes, X, y, [0, 10])
    with pytest.raises(ValueError, match="train_sizes must not be empty"):
        learning_curve(GaussianNaiveBayes, X, y, [])
    with pytest.raises(TypeError, match="train_sizes must be a sequence of integers, got int"):
        learning_curve(GaussianNaiveBayes, X, y, 10)
    with pytest.raises(ValueError, match="repeats must be a positive integer, got 0"):
        learning_curve(GaussianNaiveBayes, X, y, [10], repeats=0)
