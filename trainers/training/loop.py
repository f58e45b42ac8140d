"""``fit``: one SimCLR run, top to bottom - data, model, optimiser, schedule, the loop, evaluation.

Epochs count from 1. After each epoch rank 0 calls ``on_epoch(epoch, metrics, save)``; ``save(path)``
writes the whole state so that ``fit(cfg, resume_from=path)`` continues bit-exactly (on the CPU).
The order of the data and the augmentations of epoch e come from generators seeded by
(seed, e, rank), so a resumed epoch draws exactly what the uninterrupted one would have.

The step (``make_step``: two views, forward, loss, backward, optimiser step) never waits for the
device: the epoch's loss is summed on the device and read back, to detect a diverged run, only
every ``CHECK_EVERY`` steps and at the epoch's end.
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from trainers.augmentation.pipeline import build_pipeline
from trainers.config import ConfigError, TrainConfig
from trainers.data.datasets import DataSplits, load_configured
from trainers.data.feeder import DeviceFeeder
from trainers.evaluation.monitors import evaluate
from trainers.losses import contrastive_loss
from trainers.model.networks import build_model
from trainers.model.optim import LR_SCALINGS, build_optimizer, lr_at, set_lr
from trainers.training import distributed
from trainers.training.device import AMP_DTYPES, resolve_device
from trainers.training.state import check_same_run, load_checkpoint, rng_state, save_checkpoint, set_rng_state

EpochHook = Callable[[int, dict[str, float], Callable[[Path], None]], None]
# on_step(epoch, step, steps_per_epoch, loss): step counts from 1; loss is the epoch's mean loss at
# the last check (None before this epoch's first), so the hook never makes the device synchronise.
StepHook = Callable[[int, int, int, "float | None"], None]

# Steps between two reads of the loss (a device -> host synchronisation, plus an all_reduce under
# DDP). A diverged run stops at the first check after its loss stops being finite: at most
# CHECK_EVERY - 1 wasted steps, and never later than the end of that epoch.
CHECK_EVERY = 16


def fit(cfg: TrainConfig, on_epoch: EpochHook | None = None,
        resume_from: str | Path | None = None, *, on_step: StepHook | None = None) -> dict[str, Any]:
    """Train SimCLR as ``cfg`` says; returns ``{"status", "epochs_run", "metrics"}``.

    ``status`` is ``completed``, or ``diverged`` when the loss became NaN/inf (the run stops in that
    epoch, within ``CHECK_EVERY`` steps; its hook call has ``loss = nan``). ``on_step`` (a progress
    bar) is called after every step. Under an initialised process group the model is wrapped in DDP,
    ``batch_size`` is the global batch (split evenly over ranks) and only rank 0 calls the hooks.
    """
    device = resolve_device(cfg.device)
    rank, world = distributed.rank_and_world()
    if cfg.batch_size % world:
        raise ConfigError("batch_size", f"must be divisible by the {world} processes (got {cfg.batch_size})")
    local_batch = cfg.batch_size // world

    # Data: uint8 on the device, shuffled and augmented there in batches.
    data = _load_data(cfg)
    if cfg.objective == "supervised":
        if data.task != "classification":
            raise ConfigError("objective", f"supervised needs a classification data set ({cfg.dataset} is "
                                           f"{data.task}); use simclr")
        labelled = LabelledBatches(data.train_x, data.train_y, device)
        batches, steps_per_epoch = labelled.batches, len(data.train_x) // cfg.batch_size
        images_name = "labelled training"
    else:
        feeder = DeviceFeeder(data.pretrain, device)
        batches, steps_per_epoch = _as_tuples(feeder.batches), feeder.steps_per_epoch(cfg.batch_size)
        images_name = "pre-training"
    if steps_per_epoch == 0:
        count = len(data.train_x) if cfg.objective == "supervised" else len(data.pretrain)
        raise ConfigError("batch_size", f"must be <= the {count} {images_name} images of "
                                        f"{cfg.dataset} (got {cfg.batch_size})")
    augment = build_pipeline(cfg.augmentations, image_size=data.image_size, params=cfg.augmentation_params,
                             compile=compiles_augmentation(cfg, device))

    # Model: f and g; DDP (with global BN if asked) under a process group; compiled if asked.
    torch.manual_seed(cfg.seed)
    supervised = cfg.objective == "supervised"
    model = (build_model(cfg, num_classes=data.num_classes) if supervised else build_model(cfg)).to(device)
    model = model.to(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    if world > 1 and cfg.global_bn:
        model = distributed.convert_global_bn(model, device)
    net = _wrap(model, cfg, device, world)

    # Optimiser, schedule, precision, the step.
    peak_lr = LR_SCALINGS[cfg.lr_scaling](cfg.lr, cfg.batch_size)
    optimizer = build_optimizer(model, name=cfg.optimizer, lr=peak_lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    schedule = partial(lr_at, peak_lr=peak_lr, warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
                       total_steps=cfg.epochs * steps_per_epoch, schedule=cfg.schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    make = make_supervised_step if cfg.objective == "supervised" else make_step
    step = make(cfg, net, optimizer, scaler, augment, device)

    start_epoch, metrics = 0, {}
    if resume_from is not None:
        start_epoch, metrics = _restore(resume_from, cfg, model, optimizer, scaler, device)

    def save(path: Path, epoch: int, metrics: dict[str, float]) -> None:
        save_checkpoint(path, {"config": cfg.to_dict(), "epoch": epoch, "metrics": dict(metrics),
                               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scaler": scaler.state_dict(), "rng": rng_state(device)})

    status = "completed"
    epoch = start_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        order_gen = _generator(cfg.seed, epoch, stream=0, device=device)
        augment_gen = _generator(cfg.seed, epoch, stream=1 + rank, device=device)
        model.train()
        t0 = time.perf_counter()
        loss_sum, mean_loss, steps, lr = torch.zeros((), device=device), None, 0, 0.0
        for i, batch in enumerate(batches(cfg.batch_size, order_gen)):
            lr = schedule((epoch - 1) * steps_per_epoch + i)
            set_lr(optimizer, lr)
            mine = [part[rank * local_batch:(rank + 1) * local_batch] for part in batch]
            loss_sum += step(*mine, augment_gen).float()
            steps += 1
            if steps % CHECK_EVERY == 0 or steps == steps_per_epoch:
                mean_loss = _global_sum(loss_sum, world) / (world * steps)
                if not math.isfinite(mean_loss):
                    status = "diverged"
            if rank == 0 and on_step is not None:
                on_step(epoch, steps, steps_per_epoch, mean_loss if status == "completed" else math.nan)
            if status != "completed":
                break
        train_time = time.perf_counter() - t0

        metrics = {"epoch": float(epoch), "loss": mean_loss if status == "completed" else math.nan,
                   "lr": float(lr), "images_per_s": steps * cfg.batch_size / train_time}
        if rank == 0 and status == "completed" and _evaluates(cfg, epoch):
            metrics.update(evaluate(model, data, cfg, device, last=epoch == cfg.epochs))
        metrics["epoch_time_s"] = time.perf_counter() - t0
        metrics["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else 0.0
        if rank == 0 and on_epoch is not None:
            on_epoch(epoch, dict(metrics), partial(save, epoch=epoch, metrics=metrics))
        if status != "completed":
            break
    return {"status": status, "epochs_run": epoch, "metrics": metrics}


def make_step(cfg: TrainConfig, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler, augment: Callable[[Tensor, torch.Generator], Tensor],
              device: torch.device) -> Callable[[Tensor, torch.Generator], Tensor]:
    """``fit``'s training step: ``step(images, generator) -> loss`` (detached, still on the device).

    ``images`` is this rank's uint8 batch; ``augment`` draws two views of it from ``generator``; the
    model runs under autocast at ``cfg.precision``; backward and the optimiser step go through
    ``scaler`` (a no-op unless fp16). Nothing here waits for the device. The learning rate is the
    caller's (``set_lr``).
    """
    update = make_update(cfg, net, optimizer, scaler, device)

    def step(images: Tensor, generator: torch.Generator) -> Tensor:
        return update(torch.cat([augment(images, generator), augment(images, generator)]))

    return step


def make_update(cfg: TrainConfig, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, device: torch.device) -> Callable[[Tensor], Tensor]:
    """The part of ``make_step`` after the augmentation: ``update(views) -> loss`` on the 2B views
    (first view of every image, then the second): forward, contrastive loss, backward, step."""
    loss_fn = partial(contrastive_loss, loss=cfg.loss, temperature=cfg.temperature, similarity=cfg.similarity,
                      hidden_norm=cfg.hidden_norm, margin=cfg.margin, semi_hard=cfg.semi_hard,
                      reduction=cfg.loss_reduction)
    amp_dtype = AMP_DTYPES[cfg.precision]
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    def update(views: Tensor) -> Tensor:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            _, z = net(views.contiguous(memory_format=memory_format))
        loss = loss_fn(*z.chunk(2))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return update


def make_supervised_step(cfg: TrainConfig, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                         scaler: torch.amp.GradScaler, augment: Callable[[Tensor, torch.Generator], Tensor],
                         device: torch.device) -> Callable[[Tensor, Tensor, torch.Generator], Tensor]:
    """``objective: supervised``'s step: ``step(images, labels, generator) -> loss``, the mean
    cross-entropy of the classifier's logits on one view of each image drawn by ``augment``."""
    amp_dtype = AMP_DTYPES[cfg.precision]
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    def step(images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        view = augment(images, generator)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            _, logits = net(view.contiguous(memory_format=memory_format))
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return step


class LabelledBatches:
    """The labelled training split, held whole on the device (a CIFAR-scale split), in shuffled
    batches of (images, labels) for ``objective: supervised``."""

    def __init__(self, images: Tensor, labels: Tensor, device: torch.device) -> None:
        self.images, self.labels = images.to(device), labels.to(device)

    def batches(self, batch_size: int, generator: torch.Generator):
        order = torch.randperm(len(self.images), generator=generator, device=generator.device).to(self.images.device)
        for step in range(len(self.images) // batch_size):
            idx = order[step * batch_size:(step + 1) * batch_size]
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)


def _as_tuples(batches: Callable[[int, torch.Generator], Any]) -> Callable[[int, torch.Generator], Any]:
    # The contrastive step takes images alone: each batch as a one-tuple, as the supervised one's pair.
    return lambda batch_size, generator: ((images,) for images in batches(batch_size, generator))


def compiles_augmentation(cfg: TrainConfig, device: torch.device) -> bool:
    """``cfg.compile`` compiles the augmentation's deterministic half too, but on CUDA only: on the CPU
    inductor runs it slower than eager (``benchmarks/trainer_throughput.py`` measures both)."""
    return cfg.compile and device.type == "cuda"


def _load_data(cfg: TrainConfig) -> DataSplits:
    try:
        return load_configured(cfg)
    except ValueError as err:  # missing files, a size the set cannot give: the user's to fix
        raise ConfigError("dataset", str(err).removeprefix("dataset ")) from None


def _wrap(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, world: int) -> torch.nn.Module:
    """What the step calls: the model, in DDP under a process group, compiled if asked."""
    net = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(net) if cfg.compile else net


def _evaluates(cfg: TrainConfig, epoch: int) -> bool:
    return epoch == cfg.epochs or (cfg.eval_every > 0 and epoch % cfg.eval_every == 0)


def _generator(seed: int, epoch: int, *, stream: int, device: torch.device) -> torch.Generator:
    # One independent stream per (seed, epoch, purpose/rank): a resumed epoch needs no saved state.
    return torch.Generator(device=device).manual_seed(((seed * 1_000_003 + epoch) * 1_000_033 + stream) % 2**63)


def _global_sum(value: Tensor, world: int) -> float:
    # All ranks read the same sum, so they stop together when it stops being finite.
    if world > 1:
        value = value.clone()
        torch.distributed.all_reduce(value)
    return float(value)


def _restore(path: str | Path, cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler, device: torch.device) -> tuple[int, dict[str, float]]:
    state = load_checkpoint(path)
    check_same_run(state["config"], cfg.to_dict(), path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], device)
    return int(state["epoch"]), dict(state["metrics"])
