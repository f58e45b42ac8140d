"""The bar a study must clear: knn_top1 of a study's encoder with random weights (no training).

Reads a study declaration, builds its encoder from the fixed options for a few seeds, and scores
it with the trainer's own monitor on the same held-out split the trials use.

    python benchmarks/quickstart_baseline.py search_spaces/quickstart.yaml [--seeds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import yaml

from trainers import TrainConfig
from trainers.data.datasets import load_dataset
from trainers.evaluation.monitors import evaluate
from trainers.model.networks import build_model
from trainers.training.device import resolve_device


def random_init_knn(fixed: dict, seed: int) -> float:
    cfg = TrainConfig.from_dict({**fixed, "seed": seed})
    data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download,
                        size=cfg.dataset_size or None, seed=cfg.seed)
    torch.manual_seed(cfg.seed)  # the same initial weights a trial with this seed starts from
    model = build_model(cfg).eval()
    return evaluate(model, data, cfg, resolve_device("cpu"), last=False)["knn_top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/<study>_baseline.json)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    fixed = (yaml.safe_load(args.study.read_text()) or {}).get("fixed", {})
    scores = [random_init_knn(fixed, seed) for seed in range(args.seeds)]
    print(f"{'seed':>4}  random-init knn_top1")
    for seed, score in enumerate(scores):
        print(f"{seed:>4}  {score:.3f}")
    print(f"mean  {statistics.mean(scores):.3f}")
    out = args.out or Path(__file__).parent / "results" / f"{args.study.stem}_baseline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"study": str(args.study), "random_init_knn_top1": scores,
                               "mean": statistics.mean(scores)}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
