"""A tiny study with `finetune:` end to end through the console script: the best trial's encoder is
fine-tuned after the trials, its rows land in tables/finetune.parquet, the report shows them beside the
baselines, and `export`/`evaluate` take the study's best trial."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from trainers.evaluation.export import read_encoder

STUDY = {
    "name": "e2e-finetune",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "random",
    "trials": 2,
    "sampler_seed": 0,
    "max_concurrent": 2,
    "resources": {"cpu": 1, "gpu": 0},
    "baselines": ["random_init"],
    "fixed": {"dataset": "shapes", "dataset_size": 128, "backbone": "convnet", "epochs": 1, "batch_size": 64,
              "optimizer": "adam", "lr": 0.002, "device": "cpu"},
    "parameters": {"temperature": {"values": [0.2, 0.5]}},
    "finetune": {"labels": [0.1, 1.0], "epochs": 1, "batch_size": 32,
                 "segmentation": {"file_list": "pairs.txt", "image_size": 16}},
}


def _pairs(folder: Path, n: int = 5, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        label = np.zeros((size, size), dtype=np.uint8)
        image[4:10, 4:10] += 180
        label[4:10, 4:10] = 1
        Image.fromarray(image).save(folder / f"img{i}.png")
        Image.fromarray(label).save(folder / f"map{i}.png")
        lines.append(f"img{i}.png,map{i}.png")
    (folder / "pairs.txt").write_text("\n".join(lines) + "\n")


def _cli(*args, cwd):
    script = Path(sys.executable).with_name("simclr-sweep")
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "RAY_ADDRESS": ""}, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finetune")
    _pairs(tmp)
    (tmp / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    proc = _cli("run", "study.yaml", "--storage", "studies", cwd=tmp)
    return proc, tmp, tmp / "studies" / "e2e-finetune"


def test_the_best_trial_and_random_init_are_fine_tuned_into_the_tables(study):
    proc, _, study_dir = study
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "finetune of trial " in proc.stdout, proc.stdout
    rows = pd.read_parquet(study_dir / "tables" / "finetune.parquet")
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    best = trials.sort_values("best.knn_top1", ascending=False, kind="stable").iloc[0]["trial_id"]
    got = sorted(zip(rows["encoder"], rows["protocol"], rows["labels"], rows["metric"]))
    assert got == sorted([(e, "finetune", f, "finetune_top1") for e in ("trial", "random_init") for f in (0.1, 1.0)]
                         + [(e, "segmentation", 1.0, "mean_iou") for e in ("trial", "random_init")])
    assert set(rows.loc[rows["encoder"] == "trial", "trial_id"]) == {best}
    assert rows["value"].between(0, 1).all() and (rows["epochs"] == 1).all()


def test_the_report_sets_fine_tuning_beside_the_baselines(study):
    _, _, study_dir = study
    page = (study_dir / "report" / "index.html").read_text()
    assert 'id="finetune"' in page and "Fine-tuned: the best encoder on few labels" in page
    assert "fine-tuned, 10% of the labels" in page and "segmentation, mean IoU" in page
    assert "random-init encoder" in page and "kNN on frozen h (all labels)" in page


def test_export_and_evaluate_take_the_study_s_best_trial(study):
    _, tmp, study_dir = study
    done = _cli("export", study_dir, "--out", "encoder.pt", cwd=tmp)
    assert done.returncode == 0, done.stderr
    _, meta = read_encoder(tmp / "encoder.pt")
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    best = trials.sort_values("best.knn_top1", ascending=False, kind="stable").iloc[0]
    assert meta["source"]["trial_id"] == best["trial_id"] and meta["source"]["epoch"] == 1
    assert meta["scores"]["best.knn_top1"] == pytest.approx(best["best.knn_top1"])
    assert done.stdout.startswith(f"wrote encoder.pt: convnet (cifar stem, width 1, sequential key names) of trial "
                                  f"{best['trial_id']} of {study_dir}, epoch 1; best.knn_top1 ")
    other = trials[trials["trial_id"] != best["trial_id"]].iloc[0]["trial_id"]
    assert _cli("export", study_dir, "--trial", other, "--out", "other.pt", cwd=tmp).returncode == 0
    assert read_encoder(tmp / "other.pt")[1]["source"]["trial_id"] == other
    bad = _cli("export", study_dir, "--trial", "nope", "--out", "x.pt", cwd=tmp)
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: --trial: no trial 'nope' in {study_dir}")
    assert not (tmp / "x.pt").exists()
    knn = _cli("evaluate", study_dir, "--protocol", "knn", cwd=tmp)
    assert knn.returncode == 0, knn.stderr
    assert knn.stdout.splitlines()[0] == f"knn of trial {best['trial_id']} of {study_dir} on shapes (128 train / 42 test images):"
    assert torch.load(tmp / "encoder.pt", weights_only=True)  # a plain weights-only state dict
