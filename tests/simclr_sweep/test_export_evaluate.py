"""`simclr-sweep export` and `simclr-sweep evaluate` on a train run's folder: each protocol on the
generated shapes set, segmentation on a generated file list, and one-line refusals."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_sweep.cli import main
from trainers import TrainConfig
from trainers.evaluation.export import load_encoder, read_encoder
from trainers.model.networks import build_model
from trainers.training.state import save_checkpoint

FAST = ["--epochs", "1", "--batch-size", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A `simclr-sweep train` output folder: its checkpoint.pt (a convnet on 100 shapes)."""
    folder = tmp_path_factory.mktemp("run")
    cfg = TrainConfig.from_dict({"dataset": "shapes", "dataset_size": 100, "backbone": "convnet", "device": "cpu"})
    torch.manual_seed(0)
    save_checkpoint(folder / "checkpoint.pt", {"config": cfg.to_dict(), "epoch": 2, "model": build_model(cfg).state_dict(),
                                               "metrics": {"knn_top1": 0.3, "loss": 5.2}})
    return folder


@pytest.fixture(scope="module")
def encoder(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "encoder.pt"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    return out


def test_export_of_a_run_writes_its_encoder(encoder, run_dir, capsys):
    _, meta = read_encoder(encoder)
    assert meta["source"] == {"run": str(run_dir.resolve()), "epoch": 2}
    assert meta["scores"] == {"last.knn_top1": 0.3, "last.loss": 5.2}
    assert isinstance(load_encoder(encoder), torch.nn.Sequential)


@pytest.mark.parametrize("protocol, metric", [("knn", "knn_top1"), ("linear", "linear_top1")])
def test_evaluate_scores_frozen_features(encoder, protocol, metric, capsys):
    assert main(["evaluate", str(encoder), "--protocol", protocol, "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{protocol} of {encoder} on shapes (100 train / 33 test images):"
    name, value = out[1].split()[:2]
    assert name == metric and 0 <= float(value) <= 1


def test_evaluate_finetunes_on_each_label_fraction_and_writes_json(run_dir, tmp_path, capsys):
    results = tmp_path / "results.json"
    assert main(["evaluate", str(run_dir), "--protocol", "finetune", "--labels", "0.1", "1.0", *FAST,
                 "--out", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("  finetune_top1 ") and "(labels 0.1: 10 train images, 1 epochs, 33 test images)" in out[1]
    assert "(labels 1: 100 train images" in out[2]
    payload = json.loads(results.read_text())
    assert [r["labels"] for r in payload["results"]] == [0.1, 1.0]
    assert payload["run"] == str(run_dir.resolve())


def _pairs(folder, n=6, size=16):
    """Images with a bright square (class 1) on a dark ground (class 0), and their label maps."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        label = np.zeros((size, size), dtype=np.uint8)
        top, left = rng.integers(0, size // 2, 2)
        image[top:top + 6, left:left + 6] += 180
        label[top:top + 6, left:left + 6] = 1
        label[0, 0] = 255  # ignored
        Image.fromarray(image).save(folder / f"img{i}.png")
        Image.fromarray(label).save(folder / f"map{i}.png")
        lines.append(f"img{i}.png,map{i}.png")
    (folder / "pairs.txt").write_text("\n".join(lines) + "\n")
    return folder / "pairs.txt"


def test_evaluate_segmentation_on_a_file_list(encoder, tmp_path, capsys):
    pairs = _pairs(tmp_path)
    assert main(["evaluate", str(encoder), "--protocol", "segmentation", "--file-list", str(pairs),
                 "--image-size", "16", *FAST]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"segmentation of {encoder} on {pairs}:"
    name, value = out[1].split()[:2]
    assert name == "mean_iou" and 0 <= float(value) <= 1
    assert "(5 train images, 1 epochs, 1 test images)" in out[1]  # a seeded fifth held out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "{enc}", "--protocol", "finetune", "--labels", "2"],
     "error: --labels: each fraction must be in (0, 1], e.g. 0.01 0.1 1.0 (got 2)"),
    (["evaluate", "{enc}", "--protocol", "segmentation"],
     "error: --file-list: segmentation needs a list of `image,labelmap` lines"),
    (["evaluate", "{enc}", "--protocol", "knn", "--dataset", "shapez"],
     "error: --dataset: unknown data set; did you mean 'shapes'?"),
    (["evaluate", "{enc}", "--protocol", "knn", "--trial", "3"],
     "error: --trial: chooses a trial of a study, but {enc} is an encoder file"),
    (["export", "{run}", "--trial", "3", "--out", "{tmp}/e.pt"],
     "error: --trial: chooses a trial of a study, but {run} is a train run's folder"),
    (["export", "{tmp}/nothing", "--out", "{tmp}/e.pt"], "error: SOURCE: no such file or folder: {tmp}/nothing"),
    (["export", "{run}", "--out", "{tmp}/no/e.pt"], "error: --out: no folder {tmp}/no to write e.pt in"),
    (["export", "{tmp}", "--out", "{tmp}/e.pt"],
     "error: SOURCE: {tmp} is neither a study folder (no tables/trials.parquet), a train run's folder "
     "(no checkpoint.pt) nor an encoder file"),
    (["evaluate", "{run}/checkpoint.pt", "--protocol", "knn"],
     "error: encoder: {run}/checkpoint.pt is not a simclr-sweep encoder file (no 'simclr-sweep-encoder' metadata; "
     "write one with `simclr-sweep export`)"),
])
def test_a_bad_argument_is_one_line_and_exit_2_and_writes_nothing(encoder, run_dir, tmp_path, capsys, argv, message):
    fill = {"enc": str(encoder), "run": str(run_dir), "tmp": str(tmp_path)}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err == message.format(**fill) + "\n"
    assert list(tmp_path.iterdir()) == []
