"""Linear probes against scikit-learn and closed forms on synthetic features."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score

from trainers.evaluation import probes
from trainers.evaluation.probes import fit_logistic_lbfgs, fit_logistic_sgd, linear_r2, linear_top1


def _blobs(n, d, k, spread, seed):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=gen) * 2
    y = torch.arange(n) % k
    x = centres[y] + spread * torch.randn(n, d, generator=gen)
    # Features on very different scales: standardisation has to matter.
    return x * torch.logspace(-2, 2, d), y


def test_logistic_lbfgs_reaches_scikit_learn_optimum():
    x, y = _blobs(300, 6, 4, 2.0, seed=0)
    x = probes.Standardizer.fit(x)(x.double())
    l2 = 1e-2
    ours = fit_logistic_lbfgs(x, y, num_classes=4, l2=l2)
    ref = LogisticRegression(C=1 / (300 * l2), tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(ours.weight.T.numpy(), ref.coef_, atol=2e-5)
    np.testing.assert_allclose(ours.bias.numpy(), ref.intercept_, atol=2e-5)


def test_logistic_sgd_approaches_the_lbfgs_optimum():
    x, y = _blobs(400, 5, 3, 1.5, seed=1)
    x = probes.Standardizer.fit(x)(x.double())
    exact = fit_logistic_lbfgs(x, y, num_classes=3, l2=1e-2)
    sgd = fit_logistic_sgd(x, y, num_classes=3, l2=1e-2, epochs=60, batch_size=50, lr=0.05)
    agree = (exact.predict(x) == sgd.predict(x)).float().mean()
    assert agree > 0.97
    torch.testing.assert_close(sgd.weight, exact.weight, atol=0.1, rtol=0.1)


def test_linear_top1_equals_scikit_learn_with_the_same_validation_choice():
    x, y = _blobs(800, 20, 5, 3.5, seed=2)
    x, y, xt, yt = x[:500], y[:500], x[500:], y[500:]
    grid = (1e-4, 1e-2, 1.0)
    got = linear_top1(x, y, xt, yt, num_classes=5, l2_grid=grid, seed=4)

    xd, xtd = x.double(), xt.double()
    fit_idx, val_idx = probes._split(500, 0.2, 4, torch.device("cpu"))
    mean, std = xd[fit_idx].mean(0), xd[fit_idx].std(0, unbiased=False)
    xf, xv = ((xd[fit_idx] - mean) / std).numpy(), ((xd[val_idx] - mean) / std).numpy()
    val = {l2: LogisticRegression(C=1 / (len(fit_idx) * l2), tol=1e-10, max_iter=10_000)
           .fit(xf, y[fit_idx].numpy()).score(xv, y[val_idx].numpy()) for l2 in grid}
    best = max(sorted(grid, reverse=True), key=lambda l2: val[l2])
    mean, std = xd.mean(0), xd.std(0, unbiased=False)
    ref = LogisticRegression(C=1 / (500 * best), tol=1e-10, max_iter=10_000).fit(((xd - mean) / std).numpy(), y.numpy())
    want = ref.score(((xtd - mean) / std).numpy(), yt.numpy())
    assert got == pytest.approx(want, abs=1 / 300 + 1e-12)  # at most one boundary case may flip
    assert 0.5 < got < 1.0


def test_linear_top1_is_perfect_on_separable_classes_and_chance_on_noise():
    x, y = _blobs(300, 8, 3, 0.05, seed=5)
    assert linear_top1(x, y, x, y, num_classes=3) == 1.0
    gen = torch.Generator().manual_seed(6)
    noise, noise_test = torch.randn(600, 8, generator=gen), torch.randn(2000, 8, generator=gen)
    labels, labels_test = torch.randint(0, 4, (600,), generator=gen), torch.randint(0, 4, (2000,), generator=gen)
    assert abs(linear_top1(noise, labels, noise_test, labels_test, num_classes=4) - 0.25) < 0.05


def test_linear_top1_sgd_method_matches_lbfgs_accuracy():
    x, y = _blobs(600, 10, 4, 3.0, seed=7)
    xt, yt = _blobs(400, 10, 4, 3.0, seed=8)
    exact = linear_top1(x, y, xt, yt, num_classes=4, method="lbfgs")
    sgd = linear_top1(x, y, xt, yt, num_classes=4, method="sgd")
    assert abs(exact - sgd) < 0.03


def test_linear_top1_refuses_bad_arguments():
    x, y = torch.randn(10, 2), torch.arange(10) % 2
    with pytest.raises(ValueError, match=r"^linear_top1: method must be one of auto, lbfgs, sgd \(got 'adam'\)$"):
        linear_top1(x, y, x, y, num_classes=2, method="adam")
    with pytest.raises(ValueError, match=r"^linear_top1: labels must lie in \[0, 2\) \(got 0\.\.4\)$"):
        linear_top1(x, torch.arange(10) % 5, x, y, num_classes=2)


def _regression(n, d, seed, r2):
    """x [n, d] and three targets whose best linear fit has the given R^2 each."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, 3, generator=gen)
    x = torch.randn(n, d, generator=gen)
    r2 = torch.tensor(r2, dtype=torch.float32)
    # var(x @ w_t) = ||w_t||^2, so this noise level makes var(signal) / var(target) = r2.
    noise = w.norm(dim=0) * torch.sqrt(1 / r2 - 1)
    y = x @ w + noise * torch.randn(n, 3, generator=gen)
    return x * torch.logspace(-1, 1, d), y


def test_ridge_path_equals_scikit_learn_ridge():
    x, y = _regression(200, 7, seed=0, r2=[0.9, 0.6, 0.3])
    x, y = x.double(), y.double()
    for l2 in (1e-3, 1e-1, 1.0):
        (w, b), = probes._ridge_path(x, y, [l2])
        ref = Ridge(alpha=200 * l2, solver="cholesky").fit(x.numpy(), y.numpy())
        np.testing.assert_allclose(w.T.numpy(), ref.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b.numpy(), ref.intercept_, rtol=1e-8, atol=1e-10)


def test_linear_r2_recovers_the_known_r2_per_target():
    x, y = _regression(8000, 10, seed=1, r2=[1.0, 0.5, 0.1])
    x, y, xt, yt = x[:4000], y[:4000], x[4000:], y[4000:]
    scores = linear_r2(x, y, xt, yt, target_names=["clean", "half", "tenth"])
    assert scores["clean"] == pytest.approx(1.0, abs=1e-4)
    assert scores["half"] == pytest.approx(0.5, abs=0.04)
    assert scores["tenth"] == pytest.approx(0.1, abs=0.04)
    assert scores["mean"] == pytest.approx((scores["clean"] + scores["half"] + scores["tenth"]) / 3)


def test_linear_r2_scores_like_scikit_learn_r2_score():
    x, y = _regression(300, 5, seed=2, r2=[0.9, 0.5, 0.2])
    xt, yt = x[200:], y[200:]
    x, y = x[:200], y[:200]
    scores = linear_r2(x, y, xt, yt, l2_grid=(1e-2,))
    xd = x.double()
    mean, std = xd.mean(0), xd.std(0, unbiased=False)
    ref = Ridge(alpha=200 * 1e-2).fit(((xd - mean) / std).numpy(), y.double().numpy())
    pred = ref.predict(((xt.double() - mean) / std).numpy())
    for t in range(3):
        assert scores[f"target{t}"] == pytest.approx(r2_score(yt[:, t].numpy(), pred[:, t]), abs=1e-9)


def test_linear_r2_names_must_match_targets():
    x, y = torch.randn(20, 3), torch.randn(20, 2)
    with pytest.raises(ValueError, match=r"^linear_r2: target_names has 3 names for 2 targets$"):
        linear_r2(x, y, x, y, target_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^linear_r2: a target cannot be named 'mean' \(the key of the average\)$"):
        linear_r2(x, y, x, y, target_names=["mean", "b"])
