"""save/resume: an interrupted run resumed from its checkpoint ends exactly as an uninterrupted one."""

import pickle
import re

import pytest
import torch

from trainers import TrainConfig, fit
from trainers.training.state import CheckpointError, load_checkpoint


TINY = dict(dataset="shapes", dataset_size=64, projection_dim=16, projection_hidden_dim=32, epochs=3,
            batch_size=32, eval_every=1, knn_k=5, augmentations="crop,flip,color_jitter", warmup_epochs=1,
            optimizer="lars", lr=0.5, lr_scaling="linear")


class _Interrupted(Exception):
    pass


def _save_every_epoch(directory, stop_after=None):
    def hook(epoch, metrics, save):
        save(directory / f"epoch{epoch}.pt")
        if epoch == stop_after:
            raise _Interrupted
    return hook


@pytest.mark.parametrize("overrides", [{}, {"optimizer": "adamw", "lr": 1e-3, "precision": "bf16"}])
def test_resumed_run_is_bit_exact_with_the_uninterrupted_one(tmp_path, overrides):
    cfg = TrainConfig.from_dict({**TINY, **overrides})
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    full = fit(cfg, on_epoch=_save_every_epoch(straight))
    with pytest.raises(_Interrupted):
        fit(cfg, on_epoch=_save_every_epoch(broken, stop_after=1))
    resumed = fit(cfg, on_epoch=_save_every_epoch(broken), resume_from=broken / "epoch1.pt")

    assert resumed["epochs_run"] == full["epochs_run"] == 3
    for key in ("loss", "knn_top1", "lr"):
        assert resumed["metrics"][key] == full["metrics"][key]
    a, b = load_checkpoint(straight / "epoch3.pt"), load_checkpoint(broken / "epoch3.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for pid, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][pid][key]))


def test_checkpoint_holds_the_whole_state(tmp_path):
    fit(TrainConfig.from_dict({**TINY, "epochs": 1, "precision": "fp16"}), on_epoch=_save_every_epoch(tmp_path))
    state = load_checkpoint(tmp_path / "epoch1.pt")
    assert {"config", "epoch", "metrics", "model", "optimizer", "scaler", "rng"} <= set(state)
    assert state["epoch"] == 1 and state["config"]["precision"] == "fp16"
    assert "scale" in state["scaler"] and "cpu" in state["rng"]


def test_resume_after_the_last_epoch_trains_nothing_more(tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "epochs": 1})
    fit(cfg, on_epoch=_save_every_epoch(tmp_path))
    calls = []
    summary = fit(cfg, on_epoch=lambda *a: calls.append(a), resume_from=tmp_path / "epoch1.pt")
    assert calls == [] and summary["status"] == "completed" and summary["epochs_run"] == 1


def test_a_file_that_is_not_a_checkpoint_is_refused_in_one_line(tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    pickled = tmp_path / "pickled.pt"
    with open(pickled, "wb") as f:
        pickle.dump({"format": "simclr-sweep-trainer-checkpoint", "obj": _Interrupted()}, f)
    for path, reason in [(garbage, r"\(.+\)"), (foreign, r"\(no 'simclr-sweep-trainer-checkpoint' tag\)"),
                         (pickled, r"\(.+\)"), (tmp_path / "missing.pt", "")]:
        with pytest.raises(CheckpointError) as info:
            fit(cfg, resume_from=path)
        msg = str(info.value)
        assert msg.startswith("resume_from: ") and "\n" not in msg
        if path.exists():
            assert msg.startswith(f"resume_from: {path} is not a simclr-sweep checkpoint ")
        assert re.search(reason, msg)


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    fit(TrainConfig.from_dict({**TINY, "epochs": 1}), on_epoch=_save_every_epoch(tmp_path))
    with pytest.raises(CheckpointError, match=r"^resume_from: .*epoch1\.pt was written with temperature=0\.5, "
                                              r"this run has temperature=0\.3$"):
        fit(TrainConfig.from_dict({**TINY, "temperature": 0.3}), resume_from=tmp_path / "epoch1.pt")


def test_fp16_resume_restores_the_grad_scalers_scale(tmp_path):
    # On the CPU too, fp16 gradients overflow at GradScaler's initial scale: the scale falls in epoch 1,
    # so a resume that started again from 65536 would skip steps the uninterrupted run took.
    cfg = TrainConfig.from_dict({**TINY, "precision": "fp16"})
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    full = fit(cfg, on_epoch=_save_every_epoch(straight))
    with pytest.raises(_Interrupted):
        fit(cfg, on_epoch=_save_every_epoch(broken, stop_after=1))
    initial = torch.amp.GradScaler("cpu").get_scale()
    assert load_checkpoint(broken / "epoch1.pt")["scaler"]["scale"] < initial == 65536.0
    resumed = fit(cfg, on_epoch=_save_every_epoch(broken), resume_from=broken / "epoch1.pt")

    assert resumed["metrics"]["loss"] == full["metrics"]["loss"]
    a, b = load_checkpoint(straight / "epoch3.pt"), load_checkpoint(broken / "epoch3.pt")
    assert a["scaler"] == b["scaler"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
