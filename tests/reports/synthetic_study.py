"""A plausible synthetic SimCLR ablation study written through StudyTables, for report tests and
the scale benchmark. Scores follow a known model (crop and color_jitter help, and most together;
temperature has an optimum near 0.2; bigger batches help a little; cosine beats dot), plus noise."""
from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

import numpy as np
import yaml

from study_files.summary import summarize_metrics
from study_files.tables import StudyTables

AUGMENTATIONS = ("crop", "flip", "color_jitter", "grayscale", "blur")
SINGLES_AND_PAIRS = [(a,) for a in AUGMENTATIONS] + list(itertools.combinations(AUGMENTATIONS, 2))
XSS = "<script>alert(1)</script>"
START = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


def declaration(name: str, trials: int, seeds: int, epochs: int) -> dict:
    """The study.yaml of the synthetic study."""
    return {
        "name": name, "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "tpe",
        "trials": trials, "seeds": seeds, "max_concurrent": 8,
        "early_stopping": {"type": "asha", "grace_period": 3, "reduction_factor": 3},
        "fixed": {"dataset": "cifar10", "backbone": "resnet18", "epochs": epochs, "optimizer": "lars"},
        "parameters": {
            "temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0},
            "batch_size": {"values": [128, 256, 512, 1024]},
            "similarity": {"values": ["cosine", "dot", "euclidean"]},
            "hidden_norm": {"values": [True, False]},
            "augmentations": {"subset_of": list(AUGMENTATIONS), "min_size": 1},
        },
    }


def make_study(study_dir: Path, *, configs: int = 20, seeds: int = 2, epochs: int = 12, rng_seed: int = 0,
               statuses: list[str] | None = None, trials_per_part: int = 1, name: str = "cifar10-ablation",
               vary: bool = True) -> Path:
    """Write study.yaml and the tables of a synthetic study into ``study_dir``; return it.

    ``statuses`` overrides the status of the first trials, in order (the rest complete);
    by default the study has early-stopped trials, one diverged, one failed (its error holds
    ``<script>``) and one still running. ``vary=False`` gives every configuration the same params.
    """
    rng = np.random.default_rng(rng_seed)
    n_trials = configs * seeds
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "study.yaml").write_text(yaml.safe_dump(declaration(name, n_trials, seeds, epochs)))
    plan = statuses if statuses is not None else _default_statuses(n_trials, rng)
    tables = StudyTables(study_dir)
    trial_rows, epoch_rows = [], []
    for c in range(configs):
        params = _params(c, rng) if vary else _params(0, np.random.default_rng(rng_seed))
        for s in range(seeds):
            index = c * seeds + s
            status = plan[index] if index < len(plan) else "completed"
            trial_id = f"trial_{index:05d}"
            epochs_rows = _epochs(trial_id, params, status, epochs, rng)
            trial_rows.append(_trial_row(trial_id, f"cfg{c:04d}", s, status, params, epochs_rows, index))
            epoch_rows.append(epochs_rows)
            if len(epoch_rows) >= trials_per_part:
                tables.append_epochs([r for rows in epoch_rows for r in rows])
                epoch_rows = []
    if epoch_rows:
        tables.append_epochs([r for rows in epoch_rows for r in rows])
    tables.upsert_trials(trial_rows)
    return study_dir


def _default_statuses(n: int, rng: np.random.Generator) -> list[str]:
    statuses = ["completed"] * n
    for i in rng.choice(n, size=max(1, n // 6), replace=False):
        statuses[i] = "early_stopped"
    if n >= 4:
        statuses[n - 1], statuses[n - 2], statuses[n - 3] = "failed", "diverged", "running"
    return statuses


def _params(c: int, rng: np.random.Generator) -> dict:
    # every single augmentation and every pair once (the Figure-5 grid), then random subsets
    if c < len(SINGLES_AND_PAIRS):
        augs = sorted(SINGLES_AND_PAIRS[c])
    else:
        augs = sorted(rng.choice(AUGMENTATIONS, size=int(rng.integers(1, 5)), replace=False).tolist())
    return {"param.augmentations": ",".join(augs),
            "param.temperature": float(np.exp(rng.uniform(math.log(0.05), math.log(1.0)))),
            "param.batch_size": int(rng.choice([128, 256, 512, 1024])),
            "param.similarity": str(rng.choice(["cosine", "dot", "euclidean"])),
            "param.hidden_norm": bool(rng.integers(0, 2)),
            "param.dataset": "cifar10", "param.epochs": 12}


def _true_score(params: dict) -> float:
    augs = set(params["param.augmentations"].split(","))
    score = 0.30 + 0.18 * ("crop" in augs) + 0.12 * ("color_jitter" in augs) + 0.02 * ("flip" in augs)
    score += 0.10 * ({"crop", "color_jitter"} <= augs) - 0.01 * ("blur" in augs)
    score -= 0.08 * abs(math.log(params["param.temperature"] / 0.2))
    score += 0.02 * math.log2(params["param.batch_size"] / 128)
    score += {"cosine": 0.03, "dot": 0.0, "euclidean": 0.01}[params["param.similarity"]]
    score += 0.015 * params["param.hidden_norm"]
    return float(min(0.95, max(0.1, score)))


def _epochs(trial_id: str, params: dict, status: str, epochs: int, rng: np.random.Generator) -> list[dict]:
    if status == "failed":
        return []
    final = _true_score(params) + rng.normal(0, 0.01)
    run = {"early_stopped": max(1, epochs // 3), "running": max(1, epochs // 2)}.get(status, epochs)
    rows = []
    for e in range(1, run + 1):
        progress = 1 - math.exp(-3.0 * e / epochs)
        rows.append({"trial_id": trial_id, "epoch": e, "loss": 6.0 - 3.0 * progress + rng.normal(0, 0.02),
                     "knn_top1": 0.1 + (final - 0.1) * progress + rng.normal(0, 0.004),
                     "lr": 1.0 * min(1.0, e / 3) * 0.5 * (1 + math.cos(math.pi * e / epochs)),
                     "images_per_s": 4000 * params["param.batch_size"] / 512 + rng.normal(0, 50),
                     "epoch_time_s": 12.5 * 512 / params["param.batch_size"], "gpu_mem_gb": 2.0})
    if status == "diverged":
        rows[-1]["loss"] = float("nan")
    return rows


def _trial_row(trial_id: str, config_id: str, seed: int, status: str, params: dict, epochs: list[dict],
               index: int) -> dict:
    wall = sum(r["epoch_time_s"] for r in epochs) + 5.0
    started = START + dt.timedelta(seconds=40 * index)
    return {"trial_id": trial_id, "config_id": config_id, "seed": seed, "status": status, **params,
            **summarize_metrics(epochs), "epochs_run": len(epochs), "wall_s": wall, "gpu_s": wall * 0.25,
            "error": f"RuntimeError: CUDA error {XSS}\n  at step 17" if status == "failed" else None,
            "started_at": started,
            "ended_at": None if status == "running" else started + dt.timedelta(seconds=wall)}
