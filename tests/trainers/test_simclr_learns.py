"""A few epochs of SimCLR on the generated shapes set beat the same encoder with random weights,
on the held-out split, by both monitors: weighted kNN and the linear probe."""
import pytest
import torch

from trainers import TrainConfig, fit
from trainers.datasets import load_dataset
from trainers.loop import evaluate, resolve_device
from trainers.models import build_model

OPTIONS = {"dataset": "shapes", "dataset_size": 1000, "backbone": "convnet", "epochs": 6, "batch_size": 128,
           "optimizer": "adam", "lr": 0.002, "temperature": 0.4, "augmentations": "color_jitter,flip",
           "eval_every": 0, "linear_eval": True, "seed": 0}


@pytest.fixture(scope="module")
def trained_and_random():
    cfg = TrainConfig.from_dict(OPTIONS)
    trained = fit(cfg)["metrics"]
    data = load_dataset("shapes", root=None, download=False, size=OPTIONS["dataset_size"], seed=0)
    torch.manual_seed(cfg.seed)  # the encoder fit starts from, before any step
    random_init = evaluate(build_model(cfg).eval(), data, cfg, resolve_device("cpu"), last=True)
    return trained, random_init


def test_trained_beats_random_init_in_knn(trained_and_random):
    trained, random_init = trained_and_random
    assert trained["knn_top1"] > random_init["knn_top1"] + 0.05, (trained, random_init)


def test_trained_beats_random_init_in_linear_probe(trained_and_random):
    trained, random_init = trained_and_random
    assert trained["linear_top1"] > random_init["linear_top1"] + 0.03, (trained, random_init)
