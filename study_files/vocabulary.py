"""The words every package shares: metric names, trial statuses, file names, baselines, augmentation order.

Standard library only: ``trainers``, ``simclr_sweep`` and ``reports`` all import it, each without
pulling in the others' dependencies.
"""

METRICS: tuple[str, ...] = (
    "epoch",
    "loss",
    "knn_top1",
    "linear_top1",
    "linear_r2",
    "lr",
    "images_per_s",
    "epoch_time_s",
    "gpu_mem_gb",
)

# Which direction is "better" for each metric; `best.<m>` in trials.parquet follows it.
# `epoch` and `lr` are not optimised: their "best" is the largest seen (the peak learning rate
# under warm-up, the last epoch reached).
METRIC_GOALS: dict[str, str] = {
    "epoch": "max",
    "loss": "min",
    "knn_top1": "max",
    "linear_top1": "max",
    "linear_r2": "max",
    "lr": "max",
    "images_per_s": "max",
    "epoch_time_s": "min",
    "gpu_mem_gb": "min",
}

STATUSES: tuple[str, ...] = ("running", "completed", "early_stopped", "diverged", "failed")

# The study folder's own files (see README, "What a study folder holds").
STUDY_FILE = "study.yaml"
JOURNAL_FILE = "optuna.journal"
TUNE_DIR = "tune"
CHECKPOINT_FILE = "trainer.pt"  # one file per checkpoint: the whole trainer state

# Scored once after the trials with the trials' own probes (trainers.evaluation.baselines computes them).
BASELINES: tuple[str, ...] = ("random_init", "pca")

# The paper's five augmentations, in the order they are applied (and listed in the report).
SIMCLR_AUGMENTATIONS: tuple[str, ...] = ("crop", "flip", "color_jitter", "grayscale", "blur")

# How an exported encoder is scored (simclr-sweep evaluate; a study's finetune key; tables/finetune.parquet).
PROTOCOLS: tuple[str, ...] = ("knn", "linear", "finetune", "segmentation")
