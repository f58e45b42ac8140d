"""The baselines a study adds with one line, and a checkpoint's embeddings."""
import numpy as np
import pytest
import torch

from study_files.vocabulary import BASELINES
from trainers import TrainConfig, fit
from trainers.data.datasets import load_dataset
from trainers.evaluation.baselines import SCORERS, baseline_metrics, checkpoint_embeddings
from trainers.evaluation.monitors import embed, pca_features
from trainers.evaluation.probes import linear_top1
from trainers.model.networks import build_model

SMALL = {"dataset": "shapes", "dataset_size": 400, "backbone": "convnet", "epochs": 1, "batch_size": 100,
         "device": "cpu", "knn_k": 20, "seed": 3}


def test_baselines_are_the_initial_encoder_and_pixel_pca_under_the_trials_probes():
    cfg = TrainConfig.from_dict(SMALL)
    got = baseline_metrics(cfg)
    data = load_dataset("shapes", root="data", download=False, size=400, seed=3)
    torch.manual_seed(3)
    encoder = build_model(cfg).backbone  # the weights a trial with this config starts from
    train, test = embed(encoder, data.train_x), embed(encoder, data.test_x)
    assert got["random_init"]["linear_top1"] == linear_top1(train, data.train_y, test, data.test_y,
                                                            num_classes=10, seed=3)
    pca_train, pca_test = pca_features(data.train_x, data.test_x, dim=128, seed=3)
    assert got["pca"]["linear_top1"] == linear_top1(pca_train, data.train_y, pca_test, data.test_y,
                                                    num_classes=10, seed=3)
    assert set(got["pca"]) == set(got["random_init"]) == {"knn_top1", "linear_top1"}


def test_a_regression_set_gets_linear_r2():
    cfg = TrainConfig.from_dict({**SMALL, "dataset": "spirograph"})
    got = baseline_metrics(cfg, ["pca"])
    assert set(got) == {"pca"} and set(got["pca"]) == {"linear_r2"}


def test_every_baseline_the_study_language_names_has_one_scorer():
    assert tuple(SCORERS) == BASELINES


def test_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match=r"^unknown baseline 'imagenet'; valid: random_init, pca$"):
        baseline_metrics(TrainConfig.from_dict(SMALL), ["imagenet"])


def test_checkpoint_embeddings_are_the_trained_models(tmp_path):
    cfg = TrainConfig.from_dict(SMALL)
    saved = {}
    def keep(epoch, metrics, save):
        save(tmp_path / "last.pt")
        saved["model"] = True
    fit(cfg, on_epoch=keep)
    out = checkpoint_embeddings(tmp_path / "last.pt", tmp_path / "emb.npz", sample=40)
    arrays = np.load(out)
    assert arrays["h"].shape[0] == arrays["z"].shape[0] == arrays["tsne_h"].shape[0] == 40
    assert arrays["tsne_h"].shape == arrays["tsne_z"].shape == (40, 2)
    assert arrays["z"].shape[1] == cfg.projection_dim
    # h is the trained encoder's: recompute it from the checkpoint's weights.
    from trainers.training.state import load_checkpoint
    model = build_model(cfg)
    model.load_state_dict(load_checkpoint(tmp_path / "last.pt")["model"])
    data = load_dataset("shapes", root="data", download=False, size=400, seed=3)
    images = data.test_x[torch.from_numpy(arrays["index"])]
    np.testing.assert_allclose(arrays["h"], embed(model.backbone, images).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(arrays["labels"], data.test_y[torch.from_numpy(arrays["index"])].numpy())
