"""embed and knn_top1 against direct float64 computations."""
import math

import pytest
import torch

from trainers.data.datasets import DataSplits
from trainers.evaluation.monitors import embed, encoder_metrics, feature_metrics, knn_top1, pca_features, pca_metrics
from trainers.evaluation.probes import linear_r2, linear_top1


def _knn_reference(bank, bank_labels, query, query_labels, num_classes, k, temperature):
    """Brute force, one query at a time, in float64."""
    bank = bank.double()
    bank = bank / bank.norm(dim=1, keepdim=True)
    correct = 0
    for q, y in zip(query.double(), query_labels):
        q = q / q.norm()
        sims = [(float(b @ q), i) for i, b in enumerate(bank)]
        sims.sort(key=lambda t: -t[0])
        votes = [0.0] * num_classes
        for s, i in sims[:k]:
            votes[int(bank_labels[i])] += math.exp(s / temperature)
        correct += int(max(range(num_classes), key=lambda c: (votes[c], -c)) == int(y))
    return correct / len(query)


@pytest.mark.parametrize("k, temperature, batch_size", [(200, 0.1, 1024), (5, 0.5, 7), (1, 0.07, 3)])
def test_knn_top1_matches_brute_force_float64(k, temperature, batch_size):
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=gen)
    bank_labels = torch.randint(0, 4, (150,), generator=gen)
    query_labels = torch.randint(0, 4, (40,), generator=gen)
    bank = centres[bank_labels] + 1.2 * torch.randn(150, 8, generator=gen)
    query = centres[query_labels] + 1.2 * torch.randn(40, 8, generator=gen)
    got = knn_top1(bank, bank_labels, query, query_labels, num_classes=4, k=k,
                   temperature=temperature, batch_size=batch_size)
    want = _knn_reference(bank, bank_labels, query, query_labels, 4, min(k, 150), temperature)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.3 < got < 1.0  # a task with a non-trivial answer


def test_knn_top1_is_scale_invariant_and_perfect_on_separated_clusters():
    labels = torch.arange(30) % 3
    feats = torch.eye(3)[labels] * torch.linspace(0.5, 5, 30)[:, None]
    assert knn_top1(feats, labels, feats * 7, labels, num_classes=3, k=10) == 1.0


def test_knn_top1_weighted_vote_beats_majority():
    # Two near neighbours of class 1 outweigh three far ones of class 0 at a low temperature.
    bank = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.1, 1.0], [0.05, 1.0]])
    bank_labels = torch.tensor([1, 1, 0, 0, 0])
    query = torch.tensor([[1.0, 0.005]])
    assert knn_top1(bank, bank_labels, query, torch.tensor([1]), num_classes=2, k=5, temperature=0.1) == 1.0
    assert knn_top1(bank, bank_labels, query, torch.tensor([1]), num_classes=2, k=5, temperature=100.0) == 0.0


def test_knn_top1_refuses_bad_arguments():
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^knn_top1: temperature must be > 0 \(got 0\)$"):
        knn_top1(x, y, x, y, num_classes=2, temperature=0)
    with pytest.raises(ValueError, match=r"^knn_top1: num_classes must be > 0 \(got 0\)$"):
        knn_top1(x, y, x, y, num_classes=0)


def test_embed_batches_scale_to_unit_range_and_flatten():
    images = torch.randint(0, 256, (23, 3, 4, 4), dtype=torch.uint8)
    seen = []

    def model_fn(x):
        seen.append(x.shape[0])
        return x * 2

    feats = embed(model_fn, images, batch_size=10)
    assert seen == [10, 10, 3]
    assert feats.dtype == torch.float32 and feats.shape == (23, 48)
    torch.testing.assert_close(feats, images.reshape(23, -1).double().div(255).mul(2).float())


def test_embed_uses_eval_mode_and_restores_training_mode():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(12))
    net.train()
    before = net[1].running_mean.clone()
    embed(net, torch.randint(0, 256, (8, 3, 2, 2), dtype=torch.uint8), batch_size=4)
    assert net.training
    torch.testing.assert_close(net[1].running_mean, before)  # eval mode: running stats untouched


# 100 training rows: 6x6 images (108 pixels) take the Gram-matrix path, 5x5 (75) the covariance's.
@pytest.mark.parametrize("side", [6, 5])
def test_pca_features_match_scikit_learn_pca_up_to_sign(side):
    from sklearn.decomposition import PCA

    gen = torch.Generator().manual_seed(0)
    pixels = 3 * side * side
    # Low-rank images plus noise: the top components are well separated.
    basis = torch.rand(5, pixels, generator=gen)
    coeffs = torch.rand(120, 5, generator=gen) * torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    flat = (coeffs @ basis) / 15 * 255 + torch.rand(120, pixels, generator=gen) * 10
    images = flat.clamp(0, 255).round().to(torch.uint8).reshape(120, 3, side, side)
    train, test = images[:100], images[100:]
    got_train, got_test = pca_features(train, test, dim=4)
    ref = PCA(n_components=4).fit(train.reshape(100, -1).double().numpy() / 255)
    want_test = ref.transform(test.reshape(20, -1).double().numpy() / 255)
    want_train = ref.transform(train.reshape(100, -1).double().numpy() / 255)
    signs = torch.sign((got_train.double() * torch.from_numpy(want_train)).sum(0))
    torch.testing.assert_close(got_test.double() * signs, torch.from_numpy(want_test), atol=1e-4, rtol=0)
    assert got_train.dtype == torch.float32 and got_train.shape == (100, 4)


def test_pca_features_fit_on_a_seeded_sample_and_refuse_bad_dim():
    images = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)
    a = pca_features(images, images[:5], dim=3, max_fit_rows=20, seed=1)
    b = pca_features(images, images[:5], dim=3, max_fit_rows=20, seed=1)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"^pca_features: dim must be in \[1, 16\] \(got 17\)$"):
        pca_features(images, images, dim=17)


def _splits(task):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (90, 3, 4, 4), dtype=torch.uint8, generator=gen)
    if task == "classification":
        # Class = which channel is brightest on average: linearly readable from the pixels.
        labels = images.float().mean(dim=(2, 3)).argmax(1)
        return DataSplits(pretrain=images[:60], train_x=images[:60], train_y=labels[:60], test_x=images[60:],
                          test_y=labels[60:], num_classes=3, task="classification", target_names=["r", "g", "b"])
    targets = torch.stack([images.float().mean(dim=(1, 2, 3)), images[:, 0, 0, 0].float()], dim=1)
    return DataSplits(pretrain=images[:60], train_x=images[:60], train_y=targets[:60], test_x=images[60:],
                      test_y=targets[60:], num_classes=0, task="regression", target_names=["brightness", "corner"])


def test_encoder_metrics_are_the_probes_on_the_embedded_features():
    data = _splits("classification")
    flat = torch.nn.Flatten()
    got = encoder_metrics(flat, data, knn_k=5)
    train_f, test_f = data.train_x.reshape(60, -1).float() / 255, data.test_x.reshape(30, -1).float() / 255
    assert got == {"knn_top1": knn_top1(train_f, data.train_y, test_f, data.test_y, num_classes=3, k=5),
                   "linear_top1": linear_top1(train_f, data.train_y, test_f, data.test_y, num_classes=3)}
    assert got["linear_top1"] > 0.6  # chance is 1/3
    assert encoder_metrics(flat, data, linear=False).keys() == {"knn_top1"}


def test_regression_metrics_report_the_mean_r2():
    data = _splits("regression")
    got = encoder_metrics(torch.nn.Flatten(), data)
    train_f, test_f = data.train_x.reshape(60, -1).float() / 255, data.test_x.reshape(30, -1).float() / 255
    per_target = linear_r2(train_f, data.train_y, test_f, data.test_y, target_names=["brightness", "corner"])
    assert got == {"linear_r2": per_target["mean"]}
    assert per_target["mean"] == pytest.approx((per_target["brightness"] + per_target["corner"]) / 2)
    assert per_target["corner"] > 0.99  # a pixel is a feature: exactly linear
    assert encoder_metrics(torch.nn.Flatten(), data, linear=False) == {}


def test_pca_metrics_probe_the_pca_features():
    data = _splits("classification")
    got = pca_metrics(data, dim=8, knn_k=5)
    train_f, test_f = pca_features(data.train_x, data.test_x, dim=8)
    assert got == feature_metrics(train_f, test_f, data, knn_k=5)
