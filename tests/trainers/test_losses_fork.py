"""The ablation fork's similarities and google-research's reduction against a float64 port of their code.

The port follows jaeeun-n/simclr-ablations (objective.py, objective_util.py), itself google-research's
add_contrastive_loss with two more measures: distances by the expanded square, turned into similarities
as 1 / (d + 1); Mahalanobis by whitening with the Cholesky factor of the inverse of
tfp.stats.covariance (biased) of one view's rows (aa, bb) or of both views' (ab, ba), with gradients;
self-pairs masked by subtracting 1e9; the loss the sum of the two views' mean cross-entropies.
"""

import pytest
import torch
import torch.nn.functional as F

from trainers.losses import contrastive_loss, nt_xent

N, D, TAU = 32, 8, 0.5
LARGE_NUM = 1e9


def _fork_euclidean(a, b=None):
    b = a if b is None else b
    p1 = (a * a).sum(1).reshape(-1, 1)
    p2 = (b * b).sum(1).reshape(1, -1)
    return 1 / ((p1 + p2 - 2 * a @ b.T) + 1)


def _tfp_covariance(x):
    c = x - x.mean(0, keepdim=True)
    return c.T @ c / x.shape[0]


def _fork_mahalanobis(a, b=None):
    s = _tfp_covariance(a) if b is None else _tfp_covariance(torch.cat([a, b]))
    b = a if b is None else b
    s_half = torch.linalg.cholesky(torch.linalg.inv(s))
    return _fork_euclidean(a @ s_half, b @ s_half)


def _fork_cosine(a, b=None):
    return a @ (a if b is None else b).T


def _fork_add_contrastive_loss(hidden, hidden_norm, temperature, measure):
    if hidden_norm:
        hidden = hidden / hidden.norm(dim=-1, keepdim=True)
    h1, h2 = hidden.chunk(2)
    f = {"cosine": _fork_cosine, "euclidean": _fork_euclidean, "mahalanobis": _fork_mahalanobis}[measure]
    masks = torch.eye(h1.shape[0], dtype=hidden.dtype)
    aa = f(h1) / temperature - masks * LARGE_NUM
    bb = f(h2) / temperature - masks * LARGE_NUM
    ab, ba = f(h1, h2) / temperature, f(h2, h1) / temperature
    labels = torch.arange(h1.shape[0])
    return F.cross_entropy(torch.cat([ab, aa], 1), labels) + F.cross_entropy(torch.cat([ba, bb], 1), labels)


def _views(seed=0):
    # Two correlated views, as an encoder's would be.
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(N, D, generator=g, dtype=torch.float64)
    return z1, z1 + 0.5 * torch.randn(N, D, generator=g, dtype=torch.float64)


# The fork's "cosine" is u.u, our dot (ours normalises z whatever hidden_norm says).
OURS = {"cosine": "dot", "euclidean": "euclidean_inverse", "mahalanobis": "mahalanobis_inverse"}


@pytest.mark.parametrize("measure", sorted(OURS))
@pytest.mark.parametrize("hidden_norm", [True, False])
def test_fork_similarities_match_the_port_in_value_and_gradient(measure, hidden_norm):
    for seed in range(2):
        z1, z2 = _views(seed)
        a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        b = torch.cat([z1, z2]).requires_grad_()
        ours = contrastive_loss(a1, a2, temperature=TAU, similarity=OURS[measure], hidden_norm=hidden_norm,
                                reduction="sum_of_views")
        fork = _fork_add_contrastive_loss(b, hidden_norm, TAU, measure)
        ours.backward()
        fork.backward()
        assert ours.item() == pytest.approx(fork.item(), rel=1e-9)
        torch.testing.assert_close(torch.cat([a1.grad, a2.grad]), b.grad, rtol=1e-7, atol=1e-10)


def test_fork_values_at_the_issue_scale_differ_from_ours():
    # N 32, D 8, tau 0.5, hidden_norm: the port's per-row means (half its loss) next to ours.
    z1, z2 = _views()
    fork = {m: _fork_add_contrastive_loss(torch.cat([z1, z2]), True, TAU, m).item() / 2
            for m in ("euclidean", "mahalanobis")}
    assert nt_xent(z1, z2, temperature=TAU, similarity="euclidean_inverse").item() == pytest.approx(
        fork["euclidean"], rel=1e-12)
    assert nt_xent(z1, z2, temperature=TAU, similarity="mahalanobis_inverse").item() == pytest.approx(
        fork["mahalanobis"], rel=1e-12)
    assert fork["euclidean"] == pytest.approx(3.2603, abs=1e-4)
    assert fork["mahalanobis"] == pytest.approx(3.5960, abs=1e-4)
    assert nt_xent(z1, z2, temperature=TAU, similarity="euclidean").item() == pytest.approx(1.6893, abs=1e-4)
    assert nt_xent(z1, z2, temperature=TAU, similarity="mahalanobis").item() == pytest.approx(0.3058, abs=1e-4)


def test_sum_of_views_is_twice_the_mean_for_every_loss():
    z1, z2 = _views()
    for loss in ("nt_xent", "nt_logistic", "margin_triplet"):
        mean = contrastive_loss(z1, z2, loss=loss)
        total = contrastive_loss(z1, z2, loss=loss, reduction="sum_of_views")
        assert total.item() == pytest.approx(2 * mean.item(), rel=1e-12)


def test_unknown_reduction_is_refused_with_the_field_named():
    z1, z2 = _views()
    with pytest.raises(ValueError, match=r"^loss_reduction: must be one of mean, sum_of_views \(got 'sum'\)$"):
        contrastive_loss(z1, z2, reduction="sum")
