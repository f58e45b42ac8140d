"""Does SimCLR learn anything a probe can use? Trained encoder vs random-init encoder vs PCA of pixels.

For each case and seed: train with `trainers.fit` (CPU), then score three sets of frozen features of
the same labelled train / held-out test split with the same probes (`trainers.evaluation.monitors`):
  trained      h of the encoder after training (the checkpoint of the last epoch);
  random-init  h of the same encoder with the weights `fit` starts from (same seed), eval mode;
  pca          the raw pixels projected on their top 128 principal components.
Metrics: `knn_top1` and `linear_top1` on the generated shapes set; on Spirograph `linear_r2`, the
mean over m, b, h, sigma of the ridge probe's test R^2 (each target in the JSON).

Cases (the configurations of tests/trainers/test_simclr_learns.py, plus one that shows what goes
wrong on Spirograph):
  shapes                 1000 images, 6 epochs, colour jitter + flip (the test's: beats random-init)
  shapes-3000            3000 images, 8 epochs: long enough for kNN to beat PCA of pixels too
  spirograph             2000 images, 6 epochs, colour jitter + greyscale (only the nuisance colours change)
  spirograph-simclr-augs the same with SimCLR's five augmentations (crop, flip, colour, grey, blur)

    python benchmarks/probe_baselines.py                    # 5 seeds, every case, ~7 min on one idle core
    python benchmarks/probe_baselines.py --seeds 1 --cases spirograph --out /tmp/p.json

Prints a table and writes JSON to benchmarks/results/probe_baselines.json (``--out`` to choose).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainers import TrainConfig, fit  # noqa: E402
from trainers.data.datasets import DataSplits, load_dataset  # noqa: E402
from trainers.evaluation.monitors import embed, feature_metrics, pca_features  # noqa: E402
from trainers.evaluation.probes import linear_r2  # noqa: E402
from trainers.model.networks import build_model  # noqa: E402
from trainers.training.state import load_checkpoint  # noqa: E402

PCA_DIM = 128
SHAPES = {"dataset": "shapes", "dataset_size": 1000, "backbone": "convnet", "epochs": 6, "batch_size": 128,
          "optimizer": "adam", "lr": 0.002, "temperature": 0.4, "augmentations": "color_jitter,flip",
          "eval_every": 0, "linear_eval": True}
SPIROGRAPH = {"dataset": "spirograph", "dataset_size": 2000, "backbone": "convnet", "epochs": 6, "batch_size": 128,
              "optimizer": "adam", "lr": 0.002, "temperature": 0.2, "augmentations": "color_jitter,grayscale",
              "eval_every": 0, "linear_eval": True}
CASES = {
    "shapes": SHAPES,
    "shapes-3000": {**SHAPES, "dataset_size": 3000, "epochs": 8},
    "spirograph": SPIROGRAPH,
    "spirograph-simclr-augs": {**SPIROGRAPH, "augmentations": "crop,flip,color_jitter,grayscale,blur"},
}
FEATURES = ("trained", "random-init", "pca")


def metrics(train_feats: torch.Tensor, test_feats: torch.Tensor, data: DataSplits, cfg: TrainConfig) -> dict[str, float]:
    """The trainer's metrics of one set of features (as `encoder_metrics`), and R^2 per target."""
    out = feature_metrics(train_feats, test_feats, data, knn_k=cfg.knn_k, knn_temperature=cfg.knn_temperature,
                          linear=True, seed=cfg.seed)
    if data.task == "regression":
        per_target = linear_r2(train_feats, data.train_y, test_feats, data.test_y,
                               target_names=data.target_names, seed=cfg.seed)
        out.update({f"linear_r2.{name}": per_target[name] for name in data.target_names})
    return out


def encoder_features(backbone: torch.nn.Module, data: DataSplits) -> tuple[torch.Tensor, torch.Tensor]:
    return embed(backbone, data.train_x), embed(backbone, data.test_x)


def run_case(name: str, options: dict, seed: int, baselines: dict) -> dict:
    cfg = TrainConfig.from_dict({**options, "seed": seed, "device": "cpu"})
    data = load_dataset(cfg.dataset, root=None, download=False, size=cfg.dataset_size, seed=cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.pt"

        def keep_last(epoch: int, _metrics: dict, save) -> None:
            if epoch == cfg.epochs:
                save(path)

        start = time.perf_counter()
        summary = fit(cfg, on_epoch=keep_last)
        fit_s = time.perf_counter() - start
        model = build_model(cfg)
        model.load_state_dict(load_checkpoint(path)["model"])
    row = {"case": name, "seed": seed, "fit_s": round(fit_s, 2), "status": summary["status"],
           "loss": summary["metrics"]["loss"],
           "trained": metrics(*encoder_features(model.backbone, data), data, cfg)}
    # The loop's own end-of-run monitor is the same probe on the same features, up to float rounding
    # (the loop embeds with the channels_last model it trained).
    loop_view = {k: summary["metrics"][k] for k in ("knn_top1", "linear_top1", "linear_r2") if k in summary["metrics"]}
    row["fit_metrics"] = loop_view
    row["fit_metrics_max_abs_diff"] = max(abs(v - row["trained"][k]) for k, v in loop_view.items())
    # Baselines depend on the data and the initial weights only: shared by cases that share them.
    key = (cfg.dataset, cfg.dataset_size, cfg.backbone, seed)
    if key not in baselines:
        torch.manual_seed(cfg.seed)  # the weights `fit` started from
        random_init = build_model(cfg)
        pca_train, pca_test = pca_features(data.train_x, data.test_x, dim=PCA_DIM, seed=cfg.seed)
        baselines[key] = {"random-init": metrics(*encoder_features(random_init.backbone, data), data, cfg),
                          "pca": metrics(pca_train, pca_test, data, cfg)}
    row.update(baselines[key])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-joined, of {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the tests use 1)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/probe_baselines.json)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}")

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows, baselines = [], {}
    print(f"{'case':<24}{'seed':>5}  {'metric':<12}{'trained':>9}{'random-init':>13}{'pca':>8}{'fit s':>8}")
    for name in cases:
        for seed in range(args.seeds):
            row = run_case(name, CASES[name], seed, baselines)
            rows.append(row)
            for metric in _headline(row):
                print(f"{name:<24}{seed:>5}  {metric:<12}" + "".join(
                    f"{row[f][metric]:>{w}.3f}" for f, w in zip(FEATURES, (9, 13, 8))) + f"{row['fit_s']:>8.1f}",
                    flush=True)
            if row["fit_metrics_max_abs_diff"] > 1e-4:
                print(f"  note: fit's own end-of-run metrics differ from the re-embedded checkpoint's by "
                      f"{row['fit_metrics_max_abs_diff']:.2g}")

    summary = {}
    print(f"\n{'case':<24}{'metric':<12}" + "".join(f"{f:>18}" for f in FEATURES) + "  trained wins")
    for name in cases:
        case_rows = [r for r in rows if r["case"] == name]
        for metric in _headline(case_rows[0]):
            stats = {}
            for f in FEATURES:
                values = [r[f][metric] for r in case_rows]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                stats[f] = {"mean": statistics.mean(values), "sd": sd, "values": values}
            wins = sum(r["trained"][metric] > r["random-init"][metric] for r in case_rows)
            summary[f"{name}/{metric}"] = {**stats, "trained_beats_random_init": f"{wins}/{len(case_rows)}"}
            print(f"{name:<24}{metric:<12}" + "".join(
                f"{stats[f]['mean']:>11.3f} ± {stats[f]['sd']:.3f}" for f in FEATURES) + f"  {wins}/{len(case_rows)}")

    wall_s = time.perf_counter() - start
    out = args.out or Path(__file__).parent / "results" / "probe_baselines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "probe_baselines",
        "command": "python benchmarks/probe_baselines.py " + " ".join(sys.argv[1:]),
        "cases": {name: CASES[name] for name in cases},
        "seeds": list(range(args.seeds)),
        "pca_dim": PCA_DIM,
        "threads": args.threads,
        "wall_s": round(wall_s, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "summary": summary,
        "runs": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{wall_s:.0f} s; wrote {out}")


def _headline(row: dict) -> list[str]:
    """The metrics a row is compared by: the README's metric names, not the per-target R^2."""
    return [m for m in ("knn_top1", "linear_top1", "linear_r2") if m in row["trained"]]


if __name__ == "__main__":
    main()
