"""t-SNE and the embedding export."""
import numpy as np
import pytest
import torch
from torch import nn

from trainers.evaluation.embeddings import _conditional_p, export_embeddings, tsne


def kl_divergence(x: torch.Tensor, y: torch.Tensor, *, perplexity: float = 30.0) -> float:
    """KL(P || Q) of a 2-D embedding `y` of `x`: the quantity t-SNE minimises (the test's yardstick)."""
    n = x.shape[0]
    x = x.detach().double().cpu()
    p = _conditional_p(torch.cdist(x, x) ** 2, perplexity)
    p = ((p + p.T) / (2 * n)).clamp_min(1e-12)
    num = (1.0 / (1.0 + torch.cdist(y.double(), y.double()) ** 2)).masked_fill(torch.eye(n, dtype=torch.bool), 0.0)
    q = (num / num.sum()).clamp_min(1e-12)
    off = ~torch.eye(n, dtype=torch.bool)
    return float((p[off] * torch.log(p[off] / q[off])).sum())


def _clusters(n=120, d=20, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    return torch.randn(k, d, generator=gen)[y] * 6 + torch.randn(n, d, generator=gen), y


def test_conditional_p_rows_have_the_requested_perplexity():
    x, _ = _clusters()
    p = _conditional_p(torch.cdist(x.double(), x.double()) ** 2, 15.0)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(1)
    torch.testing.assert_close(torch.exp(entropy), torch.full((120,), 15.0, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(p.sum(1), torch.ones(120, dtype=torch.float64))
    assert (p.diagonal() == 0).all()


def test_tsne_keeps_clusters_apart_and_reaches_scikit_learns_objective():
    from sklearn.manifold import TSNE

    x, y = _clusters()
    emb = tsne(x, perplexity=15, iterations=500, seed=0)
    assert emb.shape == (120, 2) and emb.dtype == torch.float32
    # Every point is nearer (Euclidean) to its own cluster's centre in the map than to another's.
    centres = torch.stack([emb[y == c].mean(0) for c in range(3)])
    assert torch.equal(torch.cdist(emb, centres).argmin(1), y)
    ours = kl_divergence(x, emb, perplexity=15)
    ref = TSNE(perplexity=15, method="exact", init="random", random_state=0, max_iter=500).fit(x.double().numpy())
    theirs = kl_divergence(x, torch.from_numpy(ref.embedding_), perplexity=15)
    assert ours <= theirs * 1.1 + 0.02, (ours, theirs)


def test_tsne_is_deterministic_and_refuses_bad_perplexity():
    x, _ = _clusters(n=30)
    torch.testing.assert_close(tsne(x, perplexity=5, iterations=50), tsne(x, perplexity=5, iterations=50))
    with pytest.raises(ValueError, match=r"^tsne: perplexity must be in \(0, 29\) for 30 points \(got 40\)$"):
        tsne(x, perplexity=40)


class _TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Flatten(), nn.Linear(48, 6), nn.BatchNorm1d(6))
        self.g = nn.Linear(6, 3)

    def forward(self, x):
        h = self.f(x)
        return h, self.g(h)


def test_export_writes_h_z_labels_and_both_projections(tmp_path):
    torch.manual_seed(0)
    model = _TwoOutputs().train()
    images = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    labels = torch.arange(50) % 5
    path = export_embeddings(model, images, labels, tmp_path / "emb" / "test_embeddings.npz", sample=20, seed=1)
    assert path == tmp_path / "emb" / "test_embeddings.npz" and path.is_file()
    assert model.training  # given back in the mode it came in
    with np.load(path) as out:
        index = torch.from_numpy(out["index"])
        assert len(index) == 20 and out["h"].shape == (20, 6) and out["z"].shape == (20, 3)
        assert out["tsne_h"].shape == (20, 2) and out["tsne_z"].shape == (20, 2)
        np.testing.assert_array_equal(out["labels"], labels[index].numpy())
        model.eval()
        with torch.no_grad():
            h, z = model(images[index].float() / 255)
        np.testing.assert_allclose(out["h"], h.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["z"], z.numpy(), rtol=1e-5, atol=1e-6)
