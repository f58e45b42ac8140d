"""The objectives against float64 references written here from their definitions, element by element."""

import math

import pytest
import torch

from trainers.losses import LOSSES, SIMILARITIES, contrastive_loss, margin_triplet, nt_logistic, nt_xent

N, D = 5, 4


def _views(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g, dtype=torch.float64), torch.randn(N, D, generator=g, dtype=torch.float64)


def _ref_similarity_matrix(z: list[torch.Tensor], similarity: str, hidden_norm: bool) -> list[list]:
    """sim[a][b] for the 2N rows in z, from the definitions in trainers.losses' docstring, one pair at a time."""
    rows = len(z)
    u = [r / torch.sqrt((r * r).sum()) if hidden_norm else r for r in z]
    if similarity == "mahalanobis":
        with torch.no_grad():
            mean = sum(x.detach() for x in u) / rows
            cov = torch.zeros(D, D, dtype=torch.float64)
            for x in u:
                d = (x.detach() - mean)[:, None]
                cov += d @ d.T
            cov /= rows
            precision = torch.linalg.inv(cov + 1e-3 * torch.eye(D, dtype=torch.float64))
    if similarity == "mahalanobis_inverse":
        # The batch's covariance with gradients: of view 1's rows, of view 2's, of all rows.
        precisions = {view: torch.linalg.inv(_ref_covariance(members))
                      for view, members in (("first", u[:N]), ("second", u[N:]), ("both", u))}
    sim = [[None] * rows for _ in range(rows)]
    for a in range(rows):
        for b in range(rows):
            if similarity == "cosine":
                sim[a][b] = (z[a] * z[b]).sum() / (torch.sqrt((z[a] ** 2).sum()) * torch.sqrt((z[b] ** 2).sum()))
            elif similarity == "dot":
                sim[a][b] = (u[a] * u[b]).sum()
            elif similarity == "euclidean":
                sim[a][b] = -((u[a] - u[b]) ** 2).sum()
            elif similarity == "euclidean_inverse":
                sim[a][b] = 1.0 / (1.0 + ((u[a] - u[b]) ** 2).sum())
            elif similarity == "mahalanobis_inverse":
                view = ("first" if a < N else "second") if (a < N) == (b < N) else "both"
                d = u[a] - u[b]
                sim[a][b] = 1.0 / (1.0 + d @ precisions[view] @ d)
            else:
                d = u[a] - u[b]
                sim[a][b] = -(d @ precision @ d)
    return sim


def _ref_covariance(rows: list[torch.Tensor]) -> torch.Tensor:
    mean = sum(rows) / len(rows)
    return sum((x - mean)[:, None] @ (x - mean)[None, :] for x in rows) / len(rows)


def _rows(z1, z2):
    return [z1[i] for i in range(N)] + [z2[i] for i in range(N)]


def _positive(a: int) -> int:
    return a + N if a < N else a - N


def _ref_nt_xent(z1, z2, temperature, similarity, hidden_norm):
    sim = _ref_similarity_matrix(_rows(z1, z2), similarity, hidden_norm)
    total = 0.0
    for a in range(2 * N):
        denom = sum(torch.exp(sim[a][b] / temperature) for b in range(2 * N) if b != a)
        total = total - torch.log(torch.exp(sim[a][_positive(a)] / temperature) / denom)
    return total / (2 * N)


def _ref_nt_logistic(z1, z2, temperature, similarity, hidden_norm):
    sim = _ref_similarity_matrix(_rows(z1, z2), similarity, hidden_norm)
    sig = lambda x: 1.0 / (1.0 + torch.exp(-x))  # noqa: E731
    total = 0.0
    for a in range(2 * N):
        negs = [b for b in range(2 * N) if b not in (a, _positive(a))]
        total = total - torch.log(sig(sim[a][_positive(a)] / temperature))
        total = total - sum(torch.log(sig(-sim[a][b] / temperature)) for b in negs) / len(negs)
    return total / (2 * N)


def _ref_nt_logistic_semi_hard(z1, z2, temperature, similarity, hidden_norm, fallbacks=None):
    """NT-Logi. (sh): per anchor -log sig(s+/t) - log sig(-s/t) of one negative: the most similar of
    those less similar than the positive, else (none) the least similar negative of all."""
    sim = _ref_similarity_matrix(_rows(z1, z2), similarity, hidden_norm)
    sig = lambda x: 1.0 / (1.0 + torch.exp(-x))  # noqa: E731
    total = 0.0
    for a in range(2 * N):
        pos = sim[a][_positive(a)]
        candidates = sorted((sim[a][b].item(), b) for b in range(2 * N) if b not in (a, _positive(a)))
        easier = [b for value, b in candidates if value < pos.item()]
        chosen = easier[-1] if easier else candidates[0][1]
        if fallbacks is not None:
            fallbacks.append(not easier)
        total = total - torch.log(sig(pos / temperature)) - torch.log(sig(-sim[a][chosen] / temperature))
    return total / (2 * N)


def _ref_margin_triplet(z1, z2, margin, semi_hard, similarity, hidden_norm):
    sim = _ref_similarity_matrix(_rows(z1, z2), similarity, hidden_norm)
    total = 0.0
    for a in range(2 * N):
        pos = sim[a][_positive(a)]
        negs = [b for b in range(2 * N) if b not in (a, _positive(a))]
        if not semi_hard:
            total = total + sum(torch.clamp(sim[a][b] - pos + margin, min=0) for b in negs) / len(negs)
            continue
        semi = [b for b in negs if sim[a][b].item() < pos.item()]
        if semi:
            chosen = max(semi, key=lambda b: sim[a][b].item())
        else:
            chosen = min(negs, key=lambda b: sim[a][b].item())
        total = total + torch.clamp(sim[a][chosen] - pos + margin, min=0)
    return total / (2 * N)


def _check(ours_fn, ref_fn, seed=0):
    z1, z2 = _views(seed)
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    b1, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    ours = ours_fn(a1, a2)
    ref = ref_fn(b1, b2)
    ours.backward()
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(a1.grad, b1.grad, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(a2.grad, b2.grad, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("similarity", sorted(SIMILARITIES))
@pytest.mark.parametrize("hidden_norm", [True, False])
def test_nt_xent_matches_float64_reference_values_and_gradients(similarity, hidden_norm):
    temperature = 0.5 if similarity in ("cosine", "dot") or hidden_norm else 5.0
    _check(lambda a, b: nt_xent(a, b, temperature=temperature, similarity=similarity, hidden_norm=hidden_norm),
           lambda a, b: _ref_nt_xent(a, b, temperature, similarity, hidden_norm))


@pytest.mark.parametrize("similarity", sorted(SIMILARITIES))
@pytest.mark.parametrize("hidden_norm", [True, False])
def test_nt_logistic_matches_float64_reference(similarity, hidden_norm):
    temperature = 0.3 if hidden_norm else 4.0
    _check(lambda a, b: nt_logistic(a, b, temperature=temperature, similarity=similarity, hidden_norm=hidden_norm),
           lambda a, b: _ref_nt_logistic(a, b, temperature, similarity, hidden_norm))


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("hidden_norm", [True, False])
def test_nt_logistic_semi_hard_matches_float64_reference(similarity, hidden_norm):
    temperature = 0.3 if hidden_norm else 4.0
    fallbacks = []
    for seed in range(6):
        _check(lambda a, b: nt_logistic(a, b, temperature=temperature, semi_hard=True, similarity=similarity,
                                        hidden_norm=hidden_norm),
               lambda a, b: _ref_nt_logistic_semi_hard(a, b, temperature, similarity, hidden_norm, fallbacks),
               seed=seed)
    # Both branches were taken: anchors with a semi-hard negative and anchors without one.
    assert 0 < sum(fallbacks) < len(fallbacks)


def test_semi_hard_changes_nt_logistic_through_contrastive_loss():
    z1, z2 = _views()
    plain = contrastive_loss(z1, z2, loss="nt_logistic", temperature=0.5)
    mined = contrastive_loss(z1, z2, loss="nt_logistic", temperature=0.5, semi_hard=True)
    assert mined.item() == pytest.approx(_ref_nt_logistic_semi_hard(z1, z2, 0.5, "cosine", True).item(), rel=1e-9)
    assert abs(mined.item() - plain.item()) > 1e-3


@pytest.mark.parametrize("semi_hard", [False, True])
@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_margin_triplet_matches_float64_reference(semi_hard, similarity):
    for seed in range(3):
        _check(lambda a, b: margin_triplet(a, b, margin=0.5, semi_hard=semi_hard, similarity=similarity),
               lambda a, b: _ref_margin_triplet(a, b, 0.5, semi_hard, similarity, True), seed=seed)


def test_nt_xent_of_identical_orthogonal_views_is_known_closed_form():
    # Two identical one-hot views of N orthogonal rows: positive logit 1/t, 2N-2 negatives at 0.
    z = torch.eye(N, D + N, dtype=torch.float64)
    t = 0.2
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * N - 2))
    assert nt_xent(z, z.clone(), temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_loss_is_computed_in_float32_for_low_precision_inputs():
    z1, z2 = _views()
    full = nt_xent(z1.float(), z2.float(), temperature=0.5)
    half = nt_xent(z1.bfloat16(), z2.bfloat16(), temperature=0.5)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), rel=2e-2)


def test_unknown_similarity_and_loss_are_refused_with_the_field_named():
    z1, z2 = _views()
    with pytest.raises(ValueError, match=r"^similarity: must be one of cosine, dot, euclidean, mahalanobis, "
                       r"euclidean_inverse, mahalanobis_inverse \(got 'cosin'\)$"):
        nt_xent(z1, z2, temperature=0.5, similarity="cosin")
    with pytest.raises(ValueError, match=r"^loss: must be one of nt_xent, nt_logistic, margin_triplet \(got 'xent'\)$"):
        contrastive_loss(z1, z2, loss="xent")
    assert sorted(LOSSES) == ["margin_triplet", "nt_logistic", "nt_xent"]
