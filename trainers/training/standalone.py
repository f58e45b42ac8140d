"""One trainer run without Ray: ``simclr-sweep train CONFIG [--out DIR] [--resume]``, torchrun-able.

Under torchrun (RANK/WORLD_SIZE set) each process joins the group itself (gloo on the CPU, nccl on
CUDA) and ``fit`` runs DDP. Rank 0 prints a line per epoch (on a terminal, after a live bar of the
epoch's steps that the line replaces), keeps ``DIR/checkpoint.pt`` (the last
epoch's whole state) and writes ``DIR/metrics.json`` (status, epochs run, final metrics, config).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from study_files.atomic import write_text
from trainers.checks import read_yaml
from trainers.config import ConfigError, TrainConfig
from trainers.training import distributed
from trainers.training.loop import fit
from trainers.training.state import CheckpointError

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
BAR_WIDTH = 30
BAR_REDRAW_S = 0.1  # at most ten redraws a second: a fast epoch's thousands of steps stay cheap
CLEAR_LINE = "\r\x1b[K"


def train_main(config_path: Path, out_dir: Path, resume: bool) -> int:
    """Train as the YAML/JSON mapping at ``config_path`` says; 0 completed, 1 diverged, 2 refused.

    Refusals (a missing or malformed file, a bad field, an unusable checkpoint) print one line
    ``error: ...`` on stderr. With ``resume``, training continues from ``out_dir/checkpoint.pt``
    (or starts afresh when there is none yet).
    """
    try:
        cfg = TrainConfig.from_dict(read_config(Path(config_path)))
    except ConfigError as err:
        return _refuse(str(err))
    out_dir = Path(out_dir)
    checkpoint = out_dir / CHECKPOINT
    resume_from = checkpoint if resume and checkpoint.is_file() else None
    joined = distributed.init_from_env(_device_type(cfg.device))
    rank, world = distributed.rank_and_world()
    try:
        if rank == 0:
            if resume and resume_from is None:
                print(f"no checkpoint in {out_dir}; starting from epoch 1", file=sys.stderr)
            where = f" on {world} processes" if world > 1 else ""
            print(f"training {cfg.backbone} on {cfg.dataset} for {cfg.epochs} epochs{where} -> {out_dir}", flush=True)

        live = rank == 0 and sys.stdout.isatty()
        drawn_at = [-math.inf]
        pace = Pace(cfg.epochs, cfg.batch_size)

        def on_step(epoch: int, step: int, steps: int, loss: float | None) -> None:
            now = time.monotonic()
            images_per_s, seconds_left = pace.step(epoch, step, steps, now)
            if step in (1, steps) or now - drawn_at[0] >= BAR_REDRAW_S:
                drawn_at[0] = now
                print(CLEAR_LINE + progress_bar(epoch, cfg.epochs, step, steps, loss, images_per_s, seconds_left),
                      end="", flush=True)

        def on_epoch(epoch: int, metrics: dict[str, float], save) -> None:
            save(checkpoint)
            print((CLEAR_LINE if live else "") + progress_line(epoch, cfg.epochs, metrics), flush=True)

        summary = fit(cfg, on_epoch=on_epoch, resume_from=resume_from, on_step=on_step if live else None)
        if joined:  # rank 0 may still be writing its checkpoint: tear gloo/nccl down together
            torch.distributed.barrier()
    except (ConfigError, CheckpointError) as err:
        return _refuse(str(err))
    finally:
        if joined:
            torch.distributed.destroy_process_group()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / METRICS, {**summary, "config": cfg.to_dict()})
        if summary["status"] == "diverged":
            print(f"diverged at epoch {summary['epochs_run']}: the loss is not finite", file=sys.stderr)
    return 0 if summary["status"] == "completed" else 1


def read_config(path: Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) file, read by ``trainers.checks.read_yaml``; a missing,
    unreadable or non-mapping file is a ConfigError naming ``config``, as the train command words it."""
    if not path.is_file():
        raise ConfigError("config", f"no such file: {path}")
    try:
        values = read_yaml(path)
    except ConfigError as err:
        raise ConfigError("config", f"{path} is not valid YAML or JSON ({err.message})") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError("config", f"{path} must hold a mapping of TrainConfig fields (got {type(values).__name__})")
    return values


def progress_line(epoch: int, epochs: int, metrics: dict[str, float]) -> str:
    """One line per epoch: ``epoch 3/8  loss 5.2710  knn_top1 0.2110  lr 0.0015  1234 img/s  2.1 s``."""
    parts = [f"epoch {epoch}/{epochs}", f"loss {metrics['loss']:.4f}"]
    for name in ("knn_top1", "linear_top1", "linear_r2"):
        if name in metrics:
            parts.append(f"{name} {metrics[name]:.4f}")
    parts += [f"lr {metrics['lr']:.4g}", f"{metrics['images_per_s']:.0f} img/s", f"{metrics['epoch_time_s']:.1f} s"]
    return "  ".join(parts)


def progress_bar(epoch: int, epochs: int, step: int, steps: int, loss: float | None,
                 images_per_s: float | None = None, seconds_left: float | None = None) -> str:
    """The live line on a terminal: ``epoch 3/8 [#########.....] 120/195  loss 5.2710  1234 img/s  3:42 left``;
    the loss is the last one the trainer read back (``-`` before the epoch's first check); the rate
    and the time left (to the last epoch's end) are shown once `Pace` has timed a step."""
    done = BAR_WIDTH * step // steps
    shown = "-" if loss is None else f"{loss:.4f}"
    line = f"epoch {epoch}/{epochs} [{'#' * done}{'.' * (BAR_WIDTH - done)}] {step:>{len(str(steps))}}/{steps}  loss {shown}"
    if images_per_s is not None:
        line += f"  {images_per_s:.0f} img/s"
    if seconds_left is not None:
        line += f"  {clock(seconds_left)} left"
    return line


def clock(seconds: float) -> str:
    """``3:42``, or ``1:03:42`` past an hour."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Pace:
    """Images a second and seconds left, from rank 0's clock at each step (the batch is the global one)."""

    def __init__(self, epochs: int, batch_size: int):
        self.epochs, self.batch_size = epochs, batch_size
        self.began: float | None = None  # when the current epoch's first step ended
        self.epoch_s: float | None = None  # the last whole epoch, its evaluation included

    def step(self, epoch: int, step: int, steps: int, now: float) -> tuple[float | None, float | None]:
        """``(images_per_s, seconds_left)`` after `step` of `steps` in `epoch`; None until a step is timed."""
        if step == 1:  # the first step (warm-up, compilation) is not timed
            if self.began is not None:
                self.epoch_s = now - self.began
            self.began = now
            return None, None
        steps_per_s = (step - 1) / max(now - self.began, 1e-9)
        later_epochs = (self.epochs - epoch) * (self.epoch_s or steps / steps_per_s)
        return steps_per_s * self.batch_size, (steps - step) / steps_per_s + later_epochs


def _device_type(device: str) -> str:
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def _refuse(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    # NaN (a diverged loss) is written as null: metrics.json stays strict JSON.
    clean = json.loads(json.dumps(payload, default=str), parse_constant=lambda _: None)
    write_text(path, json.dumps(clean, indent=2, sort_keys=True) + "\n")
