"""`simclr-sweep export` and `simclr-sweep evaluate`: a study's (or a train run's) encoder as a file, and
its score by a protocol of `trainers.evaluation.protocols`.

A study's encoder is a trial's newest whole checkpoint (the one `resume` would continue from); which
trial is `study_files.best`'s unless ``--trial`` or ``--config`` says otherwise. A train run's is its
``checkpoint.pt``. Everything here reports a bad argument as one `ConfigError` naming it.
"""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from study_files.atomic import write_text
from study_files.best import best, scored_trials
from study_files.checkpoints import read_file
from study_files.declaration import Declaration, read_declaration
from study_files.locations import Location, StudyFiles, parse_location, storage_errors
from study_files.schema import PARAM_PREFIX
from study_files.tables import StudyTables
from study_files.vocabulary import STUDY_FILE
from trainers.checks import ConfigError, closest, hint

RUN_CHECKPOINT = "checkpoint.pt"  # trainers.training.standalone.CHECKPOINT, which imports torch
_TRIALS = "tables/trials.parquet"
SCORE_METRICS = ("loss", "knn_top1", "linear_top1", "linear_r2")  # the scores `export` prints


@dataclass
class Encoder:
    """Where an encoder comes from: a trainer checkpoint (a local file), or an encoder file."""

    checkpoint: Path | None = None  # a trainer checkpoint to read the encoder from
    encoder_file: Path | None = None  # an encoder file written by `export`
    scores: dict[str, float] | None = None  # the trial's scores (None: the checkpoint's last metrics)
    source: dict[str, Any] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = None  # holds a remote checkpoint's local copy

    def describe(self) -> str:
        if self.encoder_file is not None:
            return str(self.encoder_file)
        if "trial_id" in self.source:
            return f"trial {self.source['trial_id']} of {self.source['study']}"
        return f"the run in {self.source.get('run')}"


def find_encoder(source: str, *, trial: str | None = None, config: str | None = None, what: str = "SOURCE") -> Encoder:
    """The encoder `source` names: an encoder file, a train run's folder, or a study (folder or URI)."""
    path = Path(source)
    if "://" not in source and path.is_file():
        if trial is not None or config is not None:
            raise ConfigError("--trial" if trial is not None else "--config",
                              f"chooses a trial of a study, but {source} is an encoder file")
        return Encoder(encoder_file=path)
    if "://" not in source and (path / RUN_CHECKPOINT).is_file():
        if trial is not None or config is not None:
            raise ConfigError("--trial" if trial is not None else "--config",
                              f"chooses a trial of a study, but {source} is a train run's folder")
        return Encoder(checkpoint=path / RUN_CHECKPOINT, source={"run": str(path.resolve())})
    location = parse_location(source, what)
    if "://" not in source and not path.is_dir():
        raise ConfigError(what, f"no such file or folder: {source}")
    return _study_encoder(location, trial=trial, config=config, what=what)


def _study_encoder(study_dir: Location, *, trial: str | None, config: str | None, what: str) -> Encoder:
    # lazy: resume's module brings Ray Tune and Optuna, which only a study's checkpoint search needs
    from simclr_sweep.resume import resume_point

    files = StudyFiles(study_dir)
    with storage_errors(study_dir, what):
        if not files.is_file(_TRIALS):
            if files.is_file(STUDY_FILE):
                raise ConfigError(what, f"{study_dir}: no {_TRIALS} yet; the study has recorded no trial")
            raise ConfigError(what, f"{study_dir} is neither a study folder (no {_TRIALS}), a train run's "
                                    f"folder (no {RUN_CHECKPOINT}) nor an encoder file")
        declaration = read_declaration(study_dir, what) if files.is_file(STUDY_FILE) else Declaration()
        trials = StudyTables(study_dir).read_trials()
    row, chosen = _choose_trial(trials, declaration, trial=trial, config=config, study_dir=study_dir, what=what)
    trial_id = str(row["trial_id"])
    checkpoint = resume_point(study_dir, trial_id)[0]
    if checkpoint is None:
        raise ConfigError("--trial" if trial not in (None, "best") else what,
                          f"trial {trial_id} of {study_dir} left no whole checkpoint (tune*/trial-{trial_id}/)")
    source = {"study": str(study_dir), "trial_id": trial_id, "config_id": _plain(row.get("config_id")),
              "seed": _plain(row.get("seed")), "status": _plain(row.get("status")), "metric": declaration.metric,
              "chosen": chosen, "checkpoint": str(checkpoint)}
    encoder = Encoder(scores=_scores(row), source=source)
    if isinstance(checkpoint, Path):
        encoder.checkpoint = checkpoint
    else:  # a remote study's checkpoint: a local copy for torch to read
        encoder._tmp = tempfile.TemporaryDirectory(prefix="simclr-export-")
        encoder.checkpoint = Path(encoder._tmp.name) / "trainer.pt"
        encoder.checkpoint.write_bytes(read_file(checkpoint))
    return encoder


def _choose_trial(trials, declaration: Declaration, *, trial: str | None, config: str | None, study_dir: Location,
                  what: str) -> tuple[dict[str, Any], str]:
    if trial is not None and config is not None:
        raise ConfigError("--config", "choose a trial by --trial or by --config, not both")
    if config is not None:
        scored = scored_trials(trials, declaration.metric, declaration.maximize)
        rows = scored[scored["config_id"].astype(str) == config] if "config_id" in scored else scored.iloc[:0]
        if rows.empty:
            ids = sorted({str(c) for c in trials.get("config_id", []) if c is not None})
            raise ConfigError("--config", f"no scored trial of configuration {config!r} in {study_dir}{_near(config, ids)}")
        return rows.iloc[0].to_dict(), f"configuration {config}'s best-scoring trial"
    if trial in (None, "best"):
        top = best(trials, declaration.metric, declaration.maximize)
        if top is None:
            raise ConfigError(what, f"{study_dir}: no trial has a score of {declaration.metric} yet")
        return top.trial, f"best (configuration {top.name}, mean {declaration.metric} {top.mean:.4f} over {top.seeds} seed(s))"
    rows = trials[trials["trial_id"].astype(str) == trial]
    if rows.empty:
        raise ConfigError("--trial", f"no trial {trial!r} in {study_dir}{_near(trial, map(str, trials['trial_id']))}")
    return rows.iloc[0].to_dict(), f"trial {trial}"


def _near(key: str, ids) -> str:
    """A near miss among a study's ids, else where to see them all (a study may hold thousands)."""
    near = closest(key, ids)
    return f"; did you mean {near!r}?" if near else "; `simclr-sweep status` and the report name its trials"


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _scores(row: dict[str, Any]) -> dict[str, float]:
    """A trials row's best.<metric> and last.<metric> values that are numbers."""
    out = {}
    for column, value in row.items():
        if column.startswith(("best.", "last.")) and not column.startswith(PARAM_PREFIX):
            value = _plain(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[column] = float(value)
    return out


def check_out(out: str, example: str) -> Path:
    """``--out`` names a file to write in a folder that exists."""
    target = Path(out)
    if target.is_dir():
        raise ConfigError("--out", f"{out} is a folder; name the file to write (e.g. {target / example})")
    if not target.parent.is_dir():
        raise ConfigError("--out", f"no folder {target.parent} to write {target.name} in")
    return target


def export(source: str, out: str, *, trial: str | None = None, config: str | None = None) -> str:
    """Write the encoder `source` names to `out`; one line saying what was written."""
    # lazy: torch loads only for the commands that read weights
    from trainers.evaluation.export import export_checkpoint, read_encoder

    encoder = find_encoder(source, trial=trial, config=config, what="SOURCE")
    if encoder.encoder_file is not None:
        raise ConfigError("SOURCE", f"{source} is already an encoder file; export takes a study or a train run's folder")
    target = check_out(out, "encoder.pt")
    export_checkpoint(encoder.checkpoint, target, scores=encoder.scores, source=encoder.source)
    _, meta = read_encoder(target)
    kind = "best." if any(k.startswith("best.") for k in meta["scores"]) else "last."
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(meta["scores"].items())
                      if k.startswith(kind) and k[len(kind):] in SCORE_METRICS)
    return (f"wrote {target}: {meta['backbone']} ({meta['stem']} stem, width {meta['width']}, "
            f"{meta['key_names']} key names) of {encoder.describe()}, epoch {meta['source'].get('epoch')}"
            + (f"; {shown}" if shown else ""))


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` was asked to do (the CLI's flags; None: the encoder's own configuration's value)."""

    protocol: str
    dataset: str | None = None
    data_root: str | None = None
    download: bool = False
    dataset_size: int | None = None
    labels: tuple[float, ...] = (0.01, 0.1, 1.0)
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    seed: int | None = None
    file_list: str | None = None
    test_list: str | None = None
    num_classes: int | None = None
    image_size: int | None = None
    device: str | None = None


def evaluate(source: str, request: Evaluation, *, trial: str | None = None, config: str | None = None,
             out: str | None = None) -> list[str]:
    """Score the encoder `source` names by `request.protocol`; lines to print (and `out`, a JSON file)."""
    _check_request(request)
    if out is not None:
        check_out(out, "results.json")
    # lazy: torch loads only for the commands that read weights
    from trainers.data.datasets import DATASETS, load_dataset
    from trainers.evaluation.export import checkpoint_encoder, encoder_config, load_encoder
    from trainers.evaluation.protocols import SEGMENTATION_IMAGE_SIZE, finetune_config, score
    from trainers.training.device import resolve_device

    if request.dataset is not None and request.dataset not in DATASETS:
        raise ConfigError("--dataset", f"unknown data set{hint(request.dataset, DATASETS)}")
    encoder = find_encoder(source, trial=trial, config=config, what="SOURCE")
    if encoder.encoder_file is not None:
        module, cfg = load_encoder(encoder.encoder_file), encoder_config(encoder.encoder_file)
    else:
        module, cfg, _ = checkpoint_encoder(encoder.checkpoint)
    device = resolve_device(request.device or cfg.device)
    seed = cfg.seed if request.seed is None else request.seed
    tuning = finetune_config(epochs=request.epochs, lr=request.lr, batch_size=request.batch_size, seed=seed)
    data, where = None, request.file_list
    if request.protocol != "segmentation":
        name = request.dataset or cfg.dataset
        try:
            data = load_dataset(name, root=request.data_root or cfg.data_root, download=request.download or cfg.download,
                                size=request.dataset_size or cfg.dataset_size or None, seed=seed)
        except (ValueError, OSError) as err:
            raise ConfigError("--dataset", str(err)) from None
        where = f"{name} ({len(data.train_x)} train / {len(data.test_x)} test images)"
    try:
        rows = score(module, request.protocol, data=data, labels=request.labels, cfg=tuning, knn_k=cfg.knn_k,
                     knn_temperature=cfg.knn_temperature, file_list=request.file_list, test_list=request.test_list,
                     image_size=request.image_size or SEGMENTATION_IMAGE_SIZE, num_classes=request.num_classes,
                     device=device)
    except ValueError as err:
        raise ConfigError("--file-list" if request.protocol == "segmentation" else "--protocol", str(err)) from None
    lines = [f"{request.protocol} of {encoder.describe()} on {where}:"]
    for row in rows:
        used = (f"labels {row['labels']:g}: {row['train_images']} train images" if row["protocol"] == "finetune"
                else f"{row['train_images']} train images")
        epochs = f", {row['epochs']} epochs" if row["epochs"] else ""
        lines.append(f"  {row['metric']} {row['value']:.4f}  ({used}{epochs}, {row['test_images']} test images)")
    if out is not None:
        payload = {"source": source, **encoder.source, "protocol": request.protocol, "data": where, "results": rows}
        write_text(out, json.dumps(payload, indent=2, default=str) + "\n")
        lines.append(f"wrote {out}")
    return lines


def _check_request(request: Evaluation) -> None:
    """The flags' own checks, before any weights are read."""
    for fraction in request.labels:
        if not 0 < fraction <= 1:
            raise ConfigError("--labels", f"each fraction must be in (0, 1], e.g. 0.01 0.1 1.0 (got {fraction:g})")
    for name in ("epochs", "batch_size", "num_classes", "dataset_size"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}", f"must be >= 1 (got {value})")
    if request.lr is not None and not (request.lr > 0 and math.isfinite(request.lr)):
        raise ConfigError("--lr", f"must be a number > 0 (got {request.lr})")
    if request.image_size is not None and request.image_size < 8:
        raise ConfigError("--image-size", f"must be >= 8 pixels (got {request.image_size})")
    if request.protocol == "segmentation":
        if request.file_list is None:
            raise ConfigError("--file-list", "segmentation needs a list of `image,labelmap` lines")
        for flag, path in (("--file-list", request.file_list), ("--test-list", request.test_list)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(flag, f"no such file: {path}")
    elif request.file_list is not None or request.test_list is not None:
        raise ConfigError("--file-list", f"is for --protocol segmentation, not {request.protocol}")


def labels_list(values: Sequence[str]) -> tuple[float, ...]:
    """`--labels 0.01 0.1` or `--labels 0.01,0.1` as fractions."""
    out = []
    for value in (v for item in values for v in str(item).split(",") if v.strip()):
        try:
            out.append(float(value))
        except ValueError:
            raise ConfigError("--labels", f"must be fractions such as 0.01 0.1 1.0 (got {value!r})") from None
    if not out:
        raise ConfigError("--labels", "give at least one fraction, e.g. 0.1")
    return tuple(out)
