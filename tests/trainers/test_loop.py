"""fit: the hook contract, the metric names, determinism, divergence."""

import math

import pytest
import torch

from trainers import ConfigError, TrainConfig, fit
from trainers.training import loop


TINY = dict(dataset="shapes", dataset_size=64, backbone="convnet", projection_dim=16, projection_hidden_dim=32,
            epochs=2, batch_size=32, lr=1e-3, eval_every=1, knn_k=5, augmentations="crop,flip")


def _run(on_step=None, **overrides):
    calls = []
    summary = fit(TrainConfig.from_dict({**TINY, **overrides}),
                  on_epoch=lambda epoch, metrics, save: calls.append((epoch, metrics)), on_step=on_step)
    return summary, calls


def test_hook_sees_each_epoch_with_the_design_metric_names():
    summary, calls = _run()
    assert [epoch for epoch, _ in calls] == [1, 2]
    for epoch, metrics in calls:
        assert set(metrics) == {"epoch", "loss", "knn_top1", "lr", "images_per_s", "epoch_time_s", "gpu_mem_gb"}
        assert all(isinstance(v, float) for v in metrics.values())
        assert metrics["epoch"] == epoch
        assert 0.0 <= metrics["knn_top1"] <= 1.0
        assert metrics["loss"] > 0 and metrics["images_per_s"] > 0
    assert summary == {"status": "completed", "epochs_run": 2, "metrics": calls[-1][1]}


def test_eval_every_skips_knn_between_evaluations_but_not_at_the_end():
    _, calls = _run(epochs=3, eval_every=2)
    assert ["knn_top1" in m for _, m in calls] == [False, True, True]


def test_same_seed_same_run_and_another_seed_another():
    (a, _), (b, _), (c, _) = _run(), _run(), _run(seed=1)
    assert a["metrics"]["loss"] == b["metrics"]["loss"]
    assert a["metrics"]["knn_top1"] == b["metrics"]["knn_top1"]
    assert c["metrics"]["loss"] != a["metrics"]["loss"]


def test_absurd_learning_rate_diverges_within_one_epoch():
    summary, calls = _run(epochs=5, optimizer="sgd", lr=1e30, head="none")
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] == 1
    assert len(calls) == 1 and math.isnan(calls[0][1]["loss"])


def _steps_until_stopped(**overrides):
    steps = []
    summary, calls = _run(on_step=lambda epoch, step, per_epoch, loss: steps.append((epoch, step, loss)), **overrides)
    return summary, calls, steps


def test_diverged_run_stops_at_the_first_check_after_the_loss_stops_being_finite(monkeypatch):
    # 128 images / batch 4 = 32 steps per epoch, two checks (CHECK_EVERY = 16).
    absurd = dict(epochs=5, optimizer="sgd", lr=1e30, head="none", dataset_size=128, batch_size=4)
    assert loop.CHECK_EVERY == 16
    monkeypatch.setattr(loop, "CHECK_EVERY", 1)  # reads every step: finds the first non-finite loss
    _, _, every = _steps_until_stopped(**absurd)
    first_bad = len(every)
    assert every[-1][1] == first_bad and math.isnan(every[-1][2])
    monkeypatch.undo()

    summary, calls, steps = _steps_until_stopped(**absurd)
    assert summary["status"] == "diverged" and summary["epochs_run"] == 1
    assert len(calls) == 1 and math.isnan(calls[0][1]["loss"])
    assert first_bad < 16 and len(steps) == 16  # not the 32 of the whole epoch
    assert [s for _, s, _ in steps] == list(range(1, 17)) and math.isnan(steps[-1][2])
    assert all(loss is None for _, _, loss in steps[:-1])  # nothing read back before the check


def test_on_step_is_called_after_every_step_with_the_last_checked_loss():
    steps = []
    # 64 images / batch 4 = 16 steps per epoch: checked at step 16 only.
    summary, calls = _run(on_step=lambda *args: steps.append(args), batch_size=4, epochs=2)
    assert [(e, s, n) for e, s, n, _ in steps] == [(e, s, 16) for e in (1, 2) for s in range(1, 17)]
    losses = [loss for *_, loss in steps]
    assert losses[:15] == [None] * 15 and losses[16:31] == [None] * 15
    assert losses[15] == calls[0][1]["loss"] and losses[31] == calls[1][1]["loss"] == summary["metrics"]["loss"]


def test_the_epoch_loss_is_the_mean_of_the_step_losses(monkeypatch):
    seen = []
    real = loop.make_step

    def recording(*args, **kwargs):
        step = real(*args, **kwargs)
        return lambda images, generator: seen.append(step(images, generator)) or seen[-1]

    monkeypatch.setattr(loop, "make_step", recording)
    _, calls = _run(batch_size=8, epochs=1)  # 8 steps
    assert len(seen) == 8
    assert calls[0][1]["loss"] == pytest.approx(sum(float(x) for x in seen) / 8, rel=1e-6)


def test_compile_compiles_the_augmentation_on_cuda_only():
    assert loop.compiles_augmentation(TrainConfig(compile=True), torch.device("cuda", 0)) is True
    assert loop.compiles_augmentation(TrainConfig(compile=True), torch.device("cpu")) is False
    assert loop.compiles_augmentation(TrainConfig(compile=False), torch.device("cuda", 0)) is False


def test_batch_larger_than_the_data_set_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^batch_size: must be <= the 64 pre-training images of shapes \(got 128\)$"):
        fit(TrainConfig.from_dict({**TINY, "batch_size": 128}))


def test_unavailable_device_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"^device: cuda is not available on this machine \(use auto or cpu\)$"):
        fit(TrainConfig.from_dict({**TINY, "device": "cuda"}))


def test_linear_eval_adds_the_linear_probe_at_the_last_epoch_only():
    _, calls = _run(linear_eval=True)
    assert ["linear_top1" in m for _, m in calls] == [False, True]
    assert 0.0 <= calls[-1][1]["linear_top1"] <= 1.0


def test_regression_data_set_is_monitored_by_the_ridge_probe_instead_of_knn():
    _, calls = _run(dataset="spirograph", dataset_size=48, epochs=1)
    metrics = calls[0][1]
    assert "knn_top1" not in metrics and metrics["linear_r2"] <= 1.0


@pytest.mark.parametrize("overrides", [{"precision": "fp16"}, {"precision": "bf16", "channels_last": True},
                                       {"loss": "nt_logistic", "similarity": "mahalanobis"},
                                       {"loss": "margin_triplet", "semi_hard": True, "head": "linear"},
                                       {"optimizer": "lars", "lr": 0.3, "lr_scaling": "sqrt", "warmup_epochs": 1,
                                        "schedule": "constant", "backbone": "resnet18", "width": 1, "stem": "stl"}])
def test_options_train_to_a_finite_loss(overrides):
    summary, calls = _run(epochs=1, **overrides)
    assert summary["status"] == "completed" and math.isfinite(calls[0][1]["loss"])


def test_lr_reported_is_the_schedule_at_the_epochs_last_step():
    # 64 images / batch 32 = 2 steps per epoch; warmup 1 epoch; linear scaling 32/256.
    _, calls = _run(epochs=2, optimizer="sgd", lr=0.8, lr_scaling="linear", warmup_epochs=1, schedule="cosine")
    peak = 0.8 * 32 / 256
    assert calls[0][1]["lr"] == pytest.approx(peak * 2 / 2)
    assert calls[1][1]["lr"] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 1 / 2)))


def test_compiled_model_trains_like_the_eager_one():
    # torch.compile on the CPU needs a C++ compiler and ~15 s; the fused kernels round differently.
    (compiled, _), (eager, _) = _run(epochs=1, compile=True), _run(epochs=1)
    assert compiled["status"] == "completed"
    assert compiled["metrics"]["loss"] == pytest.approx(eager["metrics"]["loss"], rel=1e-3)
