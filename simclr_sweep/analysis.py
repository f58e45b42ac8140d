"""After a study's trials: the baselines it declared and the embeddings of its best trial.

`finetune: {labels: [...], segmentation: {...}}` fine-tunes the best trial's last checkpoint (and the
random-init encoder, when that baseline is declared) into `tables/finetune.parquet`.
`baselines: [random_init, pca]` scores a randomly initialised encoder and PCA of the raw pixels with
the trials' probes, on the best trial's data and encoder configuration; `embeddings: N` exports h
and g(h) of the best trial's last checkpoint for N test images, with a t-SNE of each. The best trial
is `study_files.best`'s: the best configuration's (by mean over seeds) best-scoring seed, the one the
report names. Both run as one Ray task holding a trial's resources (on a GPU cluster, a GPU), and
land in `tables/baselines.parquet` and `tables/embeddings.npz`, which the report shows.
"""
from __future__ import annotations

import dataclasses
import io
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import ray

from simclr_sweep.recording import params_from_row
from simclr_sweep.resume import resume_point
from simclr_sweep.study import Study
from study_files.best import best
from study_files.checkpoints import read_file
from study_files.tables import StudyTables
from study_files.vocabulary import CHECKPOINT_FILE


def analyse_study(study: Study, study_dir, stream: TextIO | None = None) -> None:
    """Compute what the study asked for beyond its trials; a failure is reported, never raised."""
    if not study.baselines and not study.embeddings and study.finetune is None:
        return
    out = stream or sys.stdout
    tables = StudyTables(study_dir)
    trial = best_trial_row(tables, study)
    options = dict(study.fixed)
    if trial is not None:
        options = {**params_from_row(trial), "seed": int(trial["seed"])}
    checkpoint = None
    if (study.embeddings or study.finetune) and trial is not None:
        checkpoint = _checkpoint_bytes(study_dir, trial["trial_id"])
        if checkpoint is None:
            print(f"embeddings and finetune: trial {trial['trial_id']} left no checkpoint; none exported",
                  file=out, flush=True)
    resources = {"num_cpus": study.cpu, "num_gpus": min(study.gpu, 1.0)}
    if study.finetune is not None and checkpoint is not None:
        _finetune(study, tables, trial["trial_id"], checkpoint, resources, out)
    if not study.baselines and not study.embeddings:
        return
    t0 = time.monotonic()
    try:
        task = ray.remote(_analysis_task).options(**resources)
        result = ray.get(task.remote(options, list(study.baselines), study.embeddings, checkpoint))
    except Exception as err:  # a baseline must not cost the study its report
        line = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"baselines and embeddings failed: {line}", file=out, flush=True)
        return
    seconds = time.monotonic() - t0
    if result.get("baselines"):
        tables.write_baselines([{"baseline": name, **metrics} for name, metrics in result["baselines"].items()])
        shown = ", ".join(f"{name} {' '.join(f'{k} {v:.3f}' for k, v in m.items() if math.isfinite(v))}"
                          for name, m in result["baselines"].items())
        print(f"baselines: {shown}", file=out, flush=True)
    if result.get("embeddings"):
        tables.write_embeddings(_with_trial(result["embeddings"], trial["trial_id"]))
        print(f"embeddings: {study.embeddings} test images of trial {trial['trial_id']}", file=out, flush=True)
    print(f"(baselines and embeddings took {seconds:.0f} s)", file=out, flush=True)


def _finetune(study: Study, tables: StudyTables, trial_id: str, checkpoint: bytes, resources: dict[str, float],
              out: TextIO) -> None:
    """The declared fine-tuning of the best trial's encoder (and of random_init's, when that baseline is
    declared), as its own Ray task: its failure costs neither the baselines nor the report."""
    t0 = time.monotonic()
    spec = dataclasses.asdict(study.finetune)
    try:
        task = ray.remote(_finetune_task).options(**resources)
        rows = ray.get(task.remote(checkpoint, spec, "random_init" in study.baselines))
    except Exception as err:  # a fine-tune must not cost the study its report
        line = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"finetune failed: {line}", file=out, flush=True)
        return
    rows = [{**row, "trial_id": trial_id if row["encoder"] == "trial" else None} for row in rows]
    tables.write_finetune(rows)
    shown = "; ".join(f"{row['encoder']} {row['metric']} {row['value']:.3f}"
                      + (f" at labels {row['labels']:g}" if row["protocol"] == "finetune" else "") for row in rows)
    print(f"finetune of trial {trial_id}: {shown} (took {time.monotonic() - t0:.0f} s)", file=out, flush=True)


def best_trial_row(tables: StudyTables, study: Study) -> dict[str, Any] | None:
    """The best configuration's best trial (`study_files.best`), as a row dict; None while none has a score."""
    top = best(tables.read_trials(), study.metric, study.mode == "max")
    return None if top is None else top.trial


def _checkpoint_bytes(study_dir, trial_id: str) -> bytes | None:
    path = resume_point(study_dir, trial_id)[0]  # its newest whole checkpoint
    return None if path is None else read_file(path)


def _with_trial(npz: bytes, trial_id: str) -> bytes:
    arrays = dict(np.load(io.BytesIO(npz)))
    arrays["trial_id"] = np.array(trial_id)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _finetune_task(checkpoint: bytes, spec: dict[str, Any], random_init: bool) -> list[dict[str, Any]]:
    """Runs in a Ray worker: `trainers.evaluation.protocols.checkpoint_finetune` of the checkpoint's bytes."""
    from trainers.evaluation.protocols import checkpoint_finetune  # lazy: torch loads in the worker only

    with tempfile.TemporaryDirectory(prefix="simclr-finetune-") as tmp:
        ckpt = Path(tmp) / CHECKPOINT_FILE
        ckpt.write_bytes(checkpoint)
        return checkpoint_finetune(ckpt, **spec, random_init=random_init)


def _analysis_task(options: dict[str, Any], baselines: list[str], sample: int,
                   checkpoint: bytes | None) -> dict[str, Any]:
    """Runs in a Ray worker: the baselines' metrics and the embeddings file's bytes."""
    # lazy: torch loads in the worker that trains, never on the driver
    from trainers import TrainConfig
    from trainers.evaluation.baselines import baseline_metrics, checkpoint_embeddings

    out: dict[str, Any] = {}
    if baselines:
        out["baselines"] = baseline_metrics(TrainConfig.from_dict(options), baselines)
    if sample and checkpoint is not None:
        with tempfile.TemporaryDirectory(prefix="simclr-embeddings-") as tmp:
            ckpt = Path(tmp) / CHECKPOINT_FILE
            ckpt.write_bytes(checkpoint)
            out["embeddings"] = checkpoint_embeddings(ckpt, Path(tmp) / "embeddings.npz", sample=sample).read_bytes()
    return out
