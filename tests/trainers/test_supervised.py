"""objective: supervised: the same backbone, augmentations and probes, trained on the labels."""

import pytest
import torch
import torch.nn.functional as F

from trainers import ConfigError, TrainConfig, fit
from trainers.model.networks import build_model
from trainers.training import loop

TINY = dict(dataset="shapes", dataset_size=64, backbone="convnet", epochs=2, batch_size=32, lr=1e-3,
            eval_every=1, knn_k=5, augmentations="crop,flip", objective="supervised")


def test_supervised_run_reports_the_same_metrics_as_simclr():
    calls = []
    summary = fit(TrainConfig.from_dict(TINY), on_epoch=lambda epoch, metrics, save: calls.append(metrics))
    assert summary["status"] == "completed" and [m["epoch"] for m in calls] == [1.0, 2.0]
    for metrics in calls:
        assert set(metrics) == {"epoch", "loss", "knn_top1", "lr", "images_per_s", "epoch_time_s", "gpu_mem_gb"}
        assert 0.0 <= metrics["knn_top1"] <= 1.0 and metrics["loss"] > 0


def test_supervised_head_is_a_linear_classifier_of_h():
    cfg = TrainConfig.from_dict({**TINY, "head_init": "tf"})
    model = build_model(cfg, num_classes=5)
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 5
    assert model.head.in_features == model.rep_dim
    with pytest.raises(ValueError, match=r"^objective: supervised needs a classification data set"):
        build_model(cfg)


def test_supervised_step_is_cross_entropy_of_one_view():
    torch.manual_seed(0)
    cfg = TrainConfig.from_dict(TINY)
    model = build_model(cfg, num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 3, (8,))
    augment = lambda x, g: x.float() / 255  # noqa: E731 - the identity view
    step = loop.make_supervised_step(cfg, model, opt, torch.amp.GradScaler("cpu", enabled=False), augment,
                                     torch.device("cpu"))
    loss = step(images, labels, torch.Generator())
    model.train()
    with torch.no_grad():
        expected = F.cross_entropy(model(images.float() / 255)[1], labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_supervised_on_a_regression_data_set_is_refused():
    with pytest.raises(ConfigError, match=r"^objective: supervised needs a classification data set"):
        fit(TrainConfig.from_dict({**TINY, "dataset": "spirograph", "dataset_size": 64}))


def test_a_supervised_checkpoint_exports_its_embeddings(tmp_path):
    import numpy as np

    from trainers.evaluation.baselines import baseline_metrics, checkpoint_embeddings

    cfg = TrainConfig.from_dict({**TINY, "epochs": 1})
    saved = tmp_path / "state.pt"
    fit(cfg, on_epoch=lambda epoch, metrics, save: save(saved))
    out = checkpoint_embeddings(saved, tmp_path / "emb.npz", sample=20)
    assert len(np.load(out)["labels"]) == 20
    assert 0.0 <= baseline_metrics(cfg, ["random_init"])["random_init"]["knn_top1"] <= 1.0
