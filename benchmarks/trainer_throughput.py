"""Trainer throughput: does on-device augmentation keep the accelerator busy?

Measures, in one run, on the same model, batch and precision:
  (a) the model alone on synthetic tensors (forward + loss + backward + step: trainers.training.loop's
      ``make_update``), eager and compiled;
  (b) the reference pipeline: torchvision v2 transforms (the same SimCLR augmentations) in
      DataLoader workers over a uint8 in-memory data set, feeding the same ``make_update``;
  (c) our full step, the one ``fit`` runs (trainers.training.loop's ``make_step``, built from a TrainConfig):
      DeviceFeeder + build_pipeline (two views) + model + nt_xent + LARS, eager and compiled, plus
      eager with a ``loss.item()`` per step (what a loop that reads the loss every step would pay
      for the synchronisation; ``fit`` reads it every ``CHECK_EVERY`` steps) and eager with both
      views drawn in one pipeline call;
  (d) packing: k separate processes sharing the device (as Ray fractional GPUs run trials),
      aggregate images/s and each one's peak device memory.
Images are counted once per pair of views (a step of batch B is B images, 2B forward passes).

    python benchmarks/trainer_throughput.py                 # full: ResNet-18 CIFAR stem, batch 512, bf16
    python benchmarks/trainer_throughput.py --smoke --out /tmp/smoke.json   # tiny, CPU, < 60 s

Prints a table and writes JSON to benchmarks/results/<device>-<date>.json (``--out`` to choose):
``model_alone.{eager,compiled}``, ``reference_dataloader``,
``ours.{eager,eager_item_per_step,eager_one_call,compiled}`` (each with ``images_per_s``,
``step_ms``, ``peak_mem_gb``), ``ours.step_function`` (the function (c) ran),
``augment_only.{eager,compiled}``, ``packing.results`` (k = 1, 2, 4), ``ratios``, ``targets``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.utils.data


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from study_files.vocabulary import SIMCLR_AUGMENTATIONS  # noqa: E402
from trainers.augmentation.kernels import blur_kernel_size_for  # noqa: E402
from trainers.augmentation.pipeline import build_pipeline  # noqa: E402
from trainers.config import TrainConfig  # noqa: E402
from trainers.data.feeder import DeviceFeeder  # noqa: E402
from trainers.model.networks import build_model  # noqa: E402
from trainers.model.optim import build_optimizer  # noqa: E402
from trainers.training import loop  # noqa: E402
from trainers.training.device import AMP_DTYPES  # noqa: E402

TEMPERATURE = 0.5
COLOR_JITTER_STRENGTH = 0.5  # SimCLR's CIFAR-10 setting


@dataclass(frozen=True)
class Setup:
    """Everything that decides what is measured; stored in the JSON."""
    device: str
    backbone: str = "resnet18"
    stem: str = "cifar"
    width: int = 1
    image_size: int = 32
    batch_size: int = 512
    precision: str = "bf16"
    channels_last: bool = True
    dataset_size: int = 50_000
    warmup_steps: int = 15
    steps: int = 50
    compile_backend: str = "inductor"
    workers: int = 0  # 0: as many as cores allow
    threads: int = 0  # intra-op threads of this process (0: torch's default); packed trials split them
    pack: tuple[int, ...] = (1, 2, 4)
    pack_batch_size: int = 256
    pack_seconds: float = 10.0


# One thread: on a small shared CPU, OpenMP threads that spin at barriers while descheduled made
# tiny steps 10-50x slower, and packed trials meaningless.
SMOKE = dict(backbone="convnet", image_size=16, batch_size=16, precision="fp32", channels_last=False,
             dataset_size=96, warmup_steps=1, steps=2, compile_backend="aot_eager", workers=1, threads=1,
             pack_batch_size=8, pack_seconds=0.5)


# ---------------------------------------------------------------------------------------------
# the pieces every section shares
# ---------------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else 0.0


def _peak_reserved_gb(device: torch.device) -> float:
    # What the caching allocator held: closer than "allocated" to what a co-located trial can't use.
    return torch.cuda.max_memory_reserved(device) / 1e9 if device.type == "cuda" else 0.0


def _config(setup: Setup) -> TrainConfig:
    """The trial configuration the benchmark's setup stands for (LARS, lr 1.0, SimCLR's augmentations)."""
    return TrainConfig.from_dict({"backbone": setup.backbone, "stem": setup.stem, "width": setup.width,
                                  "batch_size": setup.batch_size, "optimizer": "lars", "lr": 1.0,
                                  "precision": setup.precision, "channels_last": setup.channels_last,
                                  "temperature": TEMPERATURE, "augmentations": list(SIMCLR_AUGMENTATIONS),
                                  "color_jitter.strength": COLOR_JITTER_STRENGTH})


@dataclass
class _Trainer:
    """The model and what steps it, as ``fit`` builds them (no schedule: the lr stays at 1.0)."""
    cfg: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


def _trainer(setup: Setup, device: torch.device) -> _Trainer:
    cfg = _config(setup)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, name=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    return _Trainer(cfg, model, optimizer, scaler)


def _update(trainer: _Trainer, net: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """trainers.training.loop's forward (autocast) + loss + backward + step on a (2B, C, H, W) batch of views."""
    return loop.make_update(trainer.cfg, net, trainer.optimizer, trainer.scaler, device)


def _images(setup: Setup, n: int) -> torch.Tensor:
    """A uint8 in-memory data set of the benchmark's size (content does not change the speed)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, setup.image_size, setup.image_size), dtype=torch.uint8, generator=g)


def _time(run_step: Callable[[], object], setup: Setup, device: torch.device,
          steps: int | None = None) -> dict[str, float]:
    """Warm up, then time ``steps`` calls between two device synchronisations."""
    steps = setup.steps if steps is None else steps
    for _ in range(setup.warmup_steps):
        run_step()
    _sync(device)
    _reset_peak(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        run_step()
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * setup.batch_size / seconds, "step_ms": 1e3 * seconds / steps,
            "peak_mem_gb": _peak_gb(device)}


def _forever(feeder: DeviceFeeder, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield from feeder.batches(batch_size, generator)


@functools.lru_cache(maxsize=None)  # one compilation serves (c) and the augmentation-only row
def _pipeline(setup: Setup, compiled: bool):
    cfg = _config(setup)
    return build_pipeline(cfg.augmentations, image_size=setup.image_size,
                          params=cfg.augmentation_params, compile=setup.compile_backend if compiled else False)


def _our_step(setup: Setup, device: torch.device, trainer: _Trainer, net: torch.nn.Module, *,
              item_per_step: bool = False, batch_size: int | None = None, compiled: bool = False,
              one_call: bool = False) -> Callable[[], object]:
    """(c): one step of ``fit`` (trainers.training.loop's ``make_step``), data already resident on the
    device; ``net`` is compiled or not by the caller, ``compiled`` compiles the augmentation;
    ``one_call`` instead augments the batch repeated twice in one pipeline call (half the kernel
    launches) and hands the views to the same ``make_update``."""
    batch_size = setup.batch_size if batch_size is None else batch_size
    feeder = DeviceFeeder(_images(setup, max(setup.dataset_size, 2 * batch_size)), device)
    augment = _pipeline(setup, compiled)
    batches = _forever(feeder, batch_size, torch.Generator(device=device).manual_seed(1))
    augment_gen = torch.Generator(device=device).manual_seed(2)
    if one_call:
        update = _update(trainer, net, device)

        def step(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return update(augment(images.repeat(2, 1, 1, 1), generator))
    else:
        step = loop.make_step(trainer.cfg, net, trainer.optimizer, trainer.scaler, augment, device)

    def run() -> object:
        loss = step(next(batches), augment_gen)
        return loss.item() if item_per_step else loss

    run.step = step  # type: ignore[attr-defined]  # what ran, for the JSON's step_function
    return run


def _step_function(run: Callable[[], object]) -> str:
    step = run.step  # type: ignore[attr-defined]
    return f"{step.__module__}.{step.__qualname__}"


# ---------------------------------------------------------------------------------------------
# (b) the reference: torchvision v2 in DataLoader workers
# ---------------------------------------------------------------------------------------------

class _TwoViews(torch.utils.data.Dataset):
    """Each item: two independently augmented views of one uint8 image (per-image transforms)."""

    def __init__(self, images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[i]
        return self.transform(image), self.transform(image)


def reference_transform(image_size: int, strength: float = COLOR_JITTER_STRENGTH) -> Callable:
    """The SimCLR augmentations as torchvision v2 transforms (what build_pipeline reproduces)."""
    from torchvision.transforms import v2  # only the reference needs it, not the packed trials
    k = blur_kernel_size_for(image_size)
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(0.08, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.RandomApply([v2.GaussianBlur(k, sigma=(0.1, 2.0))], p=0.5),
        v2.ToDtype(torch.float32, scale=True),
    ])


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _reference(setup: Setup, device: torch.device, trainer: _Trainer) -> dict[str, float]:
    workers = setup.workers or max(1, _cores() - 1)
    data = _TwoViews(_images(setup, max(setup.dataset_size, 2 * setup.batch_size)), reference_transform(setup.image_size))
    loader = torch.utils.data.DataLoader(data, batch_size=setup.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=True, prefetch_factor=4)
    train = _update(trainer, trainer.model, device)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from loader

    it = batches()

    def run() -> object:
        v1, v2_ = next(it)
        return train(torch.cat([v1, v2_]).to(device, non_blocking=True))

    try:
        return dict(_time(run, setup, device), workers=workers)
    finally:
        del it
        del loader  # stops the persistent workers


# ---------------------------------------------------------------------------------------------
# (d) packing: k trials as separate processes on one device
# ---------------------------------------------------------------------------------------------

def _worker(setup: Setup) -> None:
    """One packed trial process. Builds its model once, then serves rounds from the parent:
    ``run THREADS`` (warm up, answer ``warm``), ``go`` (run pack_seconds, answer one JSON line),
    ``quit``. Idle between rounds, blocked on stdin, so it takes nothing from the others."""
    device = torch.device(setup.device)
    trainer = _trainer(setup, device)
    run = _our_step(setup, device, trainer, trainer.model, batch_size=setup.pack_batch_size)
    for _ in range(setup.warmup_steps + 2):  # first-call costs (allocator, kernels) while all start up
        run()
    _sync(device)
    print("ready", flush=True)
    for command in sys.stdin:
        words = command.split()
        if words[0] == "quit":
            return
        torch.set_num_threads(int(words[1]))
        for _ in range(setup.warmup_steps):
            run()
        _sync(device)
        _reset_peak(device)
        print("warm", flush=True)
        sys.stdin.readline()  # go: every trial of the round starts together
        steps, t0 = 0, time.perf_counter()
        while steps == 0 or time.perf_counter() - t0 < setup.pack_seconds:
            run()
            steps += 1
        _sync(device)
        seconds = time.perf_counter() - t0
        print(json.dumps({"images_per_s": steps * setup.pack_batch_size / seconds, "steps": steps,
                          "seconds": seconds, "peak_mem_gb": _peak_gb(device),
                          "peak_reserved_gb": _peak_reserved_gb(device)}), flush=True)


def _expect(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline()
    if line.strip() != word:
        raise RuntimeError(f"packed trial process said {line.strip()!r} instead of {word!r} (exit {proc.poll()})")


def _send(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _packing(setup: Setup) -> dict:
    """Round k uses the first k of max(pack) trial processes, started once (start-up is not timed)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(dataclasses.asdict(setup))]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(max(setup.pack))]
    results = []
    try:
        for p in procs:
            _expect(p, "ready")
        for k in setup.pack:
            threads = max(1, (setup.threads or _cores()) // k)
            for p in procs[:k]:
                _send(p, f"run {threads}")
            for p in procs[:k]:
                _expect(p, "warm")
            for p in procs[:k]:
                _send(p, "go")
            trials = [json.loads(p.stdout.readline()) for p in procs[:k]]
            results.append({"k": k, "threads_per_trial": threads,
                            "aggregate_images_per_s": sum(t["images_per_s"] for t in trials), "trials": trials})
    finally:
        for p in procs:
            if p.poll() is None:
                _send(p, "quit")
            p.stdin.close()
            p.wait()
    alone = results[0]["aggregate_images_per_s"] if results[0]["k"] == 1 else None
    for r in results:
        r["speedup_vs_one"] = r["aggregate_images_per_s"] / alone if alone else None
    return {"batch_size": setup.pack_batch_size, "seconds": setup.pack_seconds, "results": results}


# ---------------------------------------------------------------------------------------------
# the run, the table, the JSON
# ---------------------------------------------------------------------------------------------

def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {_cores()} cores)"


def measure(setup: Setup) -> dict:
    """Run every section and return the JSON-ready result."""
    started = time.perf_counter()
    if setup.threads:
        torch.set_num_threads(setup.threads)
    device = torch.device(setup.device)
    trainer = _trainer(setup, device)
    model = trainer.model
    compiled = torch.compile(model, backend=setup.compile_backend)
    views = torch.rand(2 * setup.batch_size, 3, setup.image_size, setup.image_size,
                       generator=torch.Generator().manual_seed(0)).to(device)
    result: dict = {"device": _device_name(device), "date": datetime.date.today().isoformat(),
                    "torch": torch.__version__, "setup": dataclasses.asdict(setup),
                    "counting": "images per second, one image = one pair of views"}

    eager_step = _update(trainer, model, device)
    compiled_step = _update(trainer, compiled, device)
    result["model_alone"] = {"eager": _time(lambda: eager_step(views), setup, device),
                             "compiled": _time(lambda: compiled_step(views), setup, device)}
    result["reference_dataloader"] = _reference(setup, device, trainer)
    ours = _our_step(setup, device, trainer, model)
    result["ours"] = {
        "eager": _time(ours, setup, device),
        "eager_item_per_step": _time(_our_step(setup, device, trainer, model, item_per_step=True), setup, device),
        "eager_one_call": _time(_our_step(setup, device, trainer, model, one_call=True), setup, device),
        "compiled": _with_compiled_augmentation(
            lambda aug: _time(_our_step(setup, device, trainer, compiled, compiled=aug), setup, device)),
        "step_function": _step_function(ours),
    }
    result["augment_only"] = {"eager": _augment_only(setup, device, compiled=False),
                              "compiled": _with_compiled_augmentation(lambda aug: _augment_only(setup, device, aug))}
    in_process = time.perf_counter()
    result["packing"] = _packing(setup)
    result["wall_s"] = {"in_process_sections": in_process - started, "packing": time.perf_counter() - in_process}

    a, b, c = result["model_alone"], result["reference_dataloader"], result["ours"]
    result["ratios"] = {
        "ours_over_reference_eager": c["eager"]["images_per_s"] / b["images_per_s"],
        "ours_over_model_eager": c["eager"]["images_per_s"] / a["eager"]["images_per_s"],
        "ours_over_model_compiled": c["compiled"]["images_per_s"] / a["compiled"]["images_per_s"],
    }
    result["targets"] = _targets(result)
    return result


def _targets(result: dict) -> list[dict]:
    """Issue 6's targets, set for an H100 with ResNet-18 (CIFAR stem), batch 512, bf16."""
    ratios = result["ratios"]
    k4 = [r for r in result["packing"]["results"] if r["k"] == 4 and r["speedup_vs_one"] is not None]
    rows = [("(c)/(b) eager >= 3x", ratios["ours_over_reference_eager"], 3.0),
            ("(c)/(a) eager >= 90%", ratios["ours_over_model_eager"], 0.9),
            ("(c)/(a) compiled >= 90%", ratios["ours_over_model_compiled"], 0.9),
            ("(c) compiled >= 32k images/s", result["ours"]["compiled"]["images_per_s"], 32_000.0)]
    if k4:
        rows.append(("packing k=4 >= 1.7x one trial", k4[0]["speedup_vs_one"], 1.7))
    return [{"target": name, "value": value, "threshold": threshold, "met": value >= threshold}
            for name, value, threshold in rows]


def _with_compiled_augmentation(measure_with: Callable[[bool], dict]) -> dict:
    """Measure with the augmentation compiled; should the backend fail to compile it, measure with
    it eager instead and say so, rather than lose the rest of a run on a lent GPU."""
    try:
        return dict(measure_with(True), augmentation_compiled=True)
    except Exception as err:  # any backend failure: the fallback row records it
        return dict(measure_with(False), augmentation_compiled=False, augmentation_compile_error=repr(err)[:500])


def _augment_only(setup: Setup, device: torch.device, compiled: bool) -> dict[str, float]:
    """build_pipeline's two views alone: what the augmentation costs per step."""
    feeder = DeviceFeeder(_images(setup, max(setup.dataset_size, 2 * setup.batch_size)), device)
    augment = _pipeline(setup, compiled)
    batches = _forever(feeder, setup.batch_size, torch.Generator(device=device).manual_seed(1))
    g = torch.Generator(device=device).manual_seed(2)
    return _time(lambda: (augment(next(batches), g), augment(next(batches), g)), setup, device)


def table(result: dict) -> str:
    """The human-readable summary of ``measure``'s result."""
    rows = [("(a) model alone, eager", result["model_alone"]["eager"]),
            ("(a) model alone, compiled", result["model_alone"]["compiled"]),
            (f"(b) torchvision v2 + DataLoader ({result['reference_dataloader']['workers']} workers)",
             result["reference_dataloader"]),
            ("(c) ours, eager", result["ours"]["eager"]),
            ("(c) ours, eager + loss.item() each step", result["ours"]["eager_item_per_step"]),
            ("(c) ours, eager, both views in one pipeline call", result["ours"]["eager_one_call"]),
            ("(c) ours, compiled (model and augmentation)", result["ours"]["compiled"]),
            ("    augmentation alone (two views), eager", result["augment_only"]["eager"]),
            ("    augmentation alone (two views), compiled", result["augment_only"]["compiled"])]
    s = result["setup"]
    lines = [f"{result['device']}, torch {result['torch']}: {s['backbone']} ({s['stem']} stem), batch {s['batch_size']}, "
             f"{s['image_size']}px, {s['precision']}{', channels_last' if s['channels_last'] else ''}, "
             f"compile backend {s['compile_backend']}",
             f"{'section':<56}{'images/s':>12}{'ms/step':>10}{'peak GB':>9}"]
    lines += [f"{name:<56}{r['images_per_s']:>12,.0f}{r['step_ms']:>10.1f}{r['peak_mem_gb']:>9.2f}" for name, r in rows]
    pack = result["packing"]
    for r in pack["results"]:
        peaks = ", ".join(f"{t['peak_mem_gb']:.2f} ({t['peak_reserved_gb']:.2f} reserved)" for t in r["trials"])
        speed = f"{r['speedup_vs_one']:.2f}x of k=1" if r["speedup_vs_one"] else ""
        lines.append(f"{'(d) packing k=' + str(r['k']) + ', batch ' + str(pack['batch_size']) + ' (aggregate)':<56}"
                     f"{r['aggregate_images_per_s']:>12,.0f}{'':>10}{'':>9}  {speed}; peak GB per trial: {peaks}")
    ratios = result["ratios"]
    lines.append(f"ratios: (c)/(b) eager {ratios['ours_over_reference_eager']:.2f}x, "
                 f"(c)/(a) eager {ratios['ours_over_model_eager']:.0%}, "
                 f"(c)/(a) compiled {ratios['ours_over_model_compiled']:.0%}")
    if result["setup"]["device"].startswith("cuda"):
        for t in result["targets"]:
            lines.append(f"target {t['target']:<32} {t['value']:>10.2f}  {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def _default_out(result: dict) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", result["device"].lower()).strip("-")
    return ROOT / "benchmarks" / "results" / f"{slug}-{result['date']}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (< 60 s), for the test suite")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/<device>-<date>.json)")
    parser.add_argument("--device", default=None, help="default: cuda when there is one, else cpu")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--precision", choices=sorted(AMP_DTYPES))
    parser.add_argument("--backbone", help="a trainers.model.networks backbone (default resnet18; smoke: convnet)")
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; smoke: aot_eager)")
    parser.add_argument("--workers", type=int, help="DataLoader workers for (b) (default: cores - 1)")
    parser.add_argument("--pack", help="comma-separated trial counts for (d), e.g. 1,2,4")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        fields = json.loads(args.worker)
        _worker(Setup(**dict(fields, pack=tuple(fields["pack"]))))
        return 0

    if args.smoke and args.out is None:
        parser.error("--smoke needs --out (smoke figures do not belong in benchmarks/results/)")
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    overrides = dict(SMOKE) if args.smoke else {}
    for name, value in (("batch_size", args.batch_size), ("steps", args.steps), ("precision", args.precision),
                        ("workers", args.workers), ("backbone", args.backbone),
                        ("compile_backend", args.compile_backend)):
        if value is not None:
            overrides[name] = value
    if args.pack:
        overrides["pack"] = tuple(int(k) for k in args.pack.split(","))
    setup = Setup(device=device, **overrides)

    result = measure(setup)
    print(table(result))
    out = args.out or _default_out(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
