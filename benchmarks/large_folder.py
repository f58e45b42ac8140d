"""One measured run at the seeds' scale: a generated class-per-folder set of JPEGs (default 50k at
96 px), decoded into the memory-mapped cache, then one epoch of the convnet through the trainer.

A trial process (spawned, as a trial is) builds the cache (its decoding workers are its children),
then runs ``trainers.training.loop.fit`` for one epoch: pre-training on the seeded split's training
rows, served from the map, then the epoch's kNN evaluation. This process samples every process's
memory (RSS, USS, PSS; psutil) twice a second and keeps each one's peak.

    python benchmarks/large_folder.py                       # 50k images at 96 px, one epoch
    python benchmarks/large_folder.py --images 2000         # a quick look

The images are generated under a temporary folder (``--work``, default the system's) and deleted
afterwards. Prints a table and writes JSON (``--out``, default benchmarks/results/large_folder.json).
"""
from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MB = 1024 ** 2
CLASSES = 10
SAMPLE_EVERY = 0.5  # seconds between memory samples


def _write_class(task: tuple[str, int, int, int, int]) -> int:
    """One class folder of JPEGs: the class's colour plus noise (numpy and PIL only: a forked worker)."""
    folder, cls, start, count, side = task
    rng = np.random.default_rng([cls, start])
    out = Path(folder) / f"class{cls:02d}"
    out.mkdir(parents=True, exist_ok=True)
    base = np.zeros((side, side, 3), np.int16)
    base[..., cls % 3] = 120 + 12 * cls
    for i in range(start, start + count):
        noisy = np.clip(base + rng.integers(-50, 50, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(out / f"{i:06d}.jpg", quality=90)
    return count


def generate(folder: Path, images: int, side: int) -> float:
    """``images`` JPEGs in ``CLASSES`` class folders under ``folder``; returns the seconds it took."""
    t0 = time.perf_counter()
    per_class, chunk = images // CLASSES, 1000
    tasks = [(str(folder), c, s, min(chunk, per_class - s), side) for c in range(CLASSES)
             for s in range(0, per_class, chunk)]
    with multiprocessing.get_context("fork").Pool(len(os.sched_getaffinity(0))) as pool:
        sum(pool.imap_unordered(_write_class, tasks))
    return time.perf_counter() - t0


def _trial(spec: dict, results) -> None:
    """The trial process: build the cache, then one epoch through the trainer."""
    import torch  # here: the parent stays light and its forked generators never ran torch

    from trainers.config import TrainConfig
    from trainers.data.datasets import load_configured
    from trainers.training.loop import fit

    torch.set_num_threads(spec["threads"])
    cfg = TrainConfig.from_dict(spec["config"])
    t0 = time.perf_counter()
    data = load_configured(cfg)  # decodes into the cache: every later load maps it
    out = {"build_s": time.perf_counter() - t0, "pretrain_images": len(data.pretrain),
           "train_images": len(data.train_x), "test_images": len(data.test_x),
           "split_served_from_map": type(data.pretrain).__name__ == "MappedRows"}
    del data
    steps: list[float] = []
    t1 = time.perf_counter()
    result = fit(cfg, on_step=lambda epoch, step, per_epoch, loss: steps.append(time.perf_counter()))
    t2 = time.perf_counter()
    out.update(fit_s=t2 - t1, first_step_s=steps[0] - t1, steps=len(steps),
               steady_s=steps[-1] - steps[0], evaluation_s=t2 - steps[-1],
               metrics={k: float(v) for k, v in result["metrics"].items()})
    results.put(out)


def _sample(pids: dict[int, dict], stop: threading.Event, root: int) -> None:
    """Peak RSS, USS and PSS of ``root`` and its descendants, by pid, until ``stop``."""
    while not stop.is_set():
        try:
            procs = [psutil.Process(root)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                info = proc.memory_full_info()
                role = "trial" if proc.pid == root else "child of the trial (cache build worker)"
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            peak = pids.setdefault(proc.pid, {"role": role, "rss_mb": 0.0, "uss_mb": 0.0, "pss_mb": 0.0})
            for key, value in (("rss_mb", info.rss), ("uss_mb", info.uss), ("pss_mb", info.pss)):
                peak[key] = max(peak[key], value / MB)
        stop.wait(SAMPLE_EVERY)


def table(result: dict) -> str:
    r, run = result, result["run"]
    lines = [f"large folder on {r['device']}: {r['images']} JPEGs of {r['side']} px in {CLASSES} class folders, "
             f"image_size {r['image_size']}, {r['backbone']}, batch {r['batch_size']}, {r['threads']} threads, "
             "one epoch", "",
             "| phase | seconds | images | images/s |", "|---|---:|---:|---:|",
             f"| generate the JPEGs (not the trainer's) | {r['generate_s']:.1f} | {r['images']} | "
             f"{r['images'] / r['generate_s']:.0f} |",
             f"| cache build (decode into the map, {r['cores']} cores) | {run['build_s']:.1f} | {r['images']} | "
             f"{r['images'] / run['build_s']:.0f} |",
             f"| epoch: {run['steps']} steps (first step, with its warm-up) | {run['first_step_s']:.1f} | "
             f"{r['batch_size']} | |",
             f"| epoch: steps 2..{run['steps']} | {run['steady_s']:.1f} | {(run['steps'] - 1) * r['batch_size']} | "
             f"{(run['steps'] - 1) * r['batch_size'] / run['steady_s']:.1f} |",
             f"| kNN evaluation ({run['train_images']} bank + {run['test_images']} query) | "
             f"{run['evaluation_s']:.1f} | {run['train_images'] + run['test_images']} | "
             f"{(run['train_images'] + run['test_images']) / run['evaluation_s']:.0f} |",
             f"| trial wall time (build + fit) | {r['trial_wall_s']:.1f} | | |", "",
             f"pre-training images {run['pretrain_images']} (the seeded split's training rows, served from "
             f"the map: {run['split_served_from_map']}); data set {r['data_mb']:.0f} MB as uint8", "",
             "| process | peak RSS MB | peak USS MB | peak PSS MB |", "|---|---:|---:|---:|"]
    for pid, peak in sorted(r["processes"].items(), key=lambda kv: kv[1]["role"] != "trial"):
        lines.append(f"| {peak['role']} (pid {pid}) | {peak['rss_mb']:.0f} | {peak['uss_mb']:.0f} | "
                     f"{peak['pss_mb']:.0f} |")
    lines.append(f"| trial, kernel's ru_maxrss | {r['trial_maxrss_mb']:.0f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--side", type=int, default=96, help="side of the generated JPEGs")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--work", type=Path, default=None, help="where the images and the cache go (deleted after)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "large_folder.json")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="large-folder-", dir=args.work))
    try:
        folder = work / "images"
        generate_s = generate(folder, args.images, args.side)
        config = {"dataset": "image_folder", "data_root": str(folder), "image_size": args.image_size,
                  "data_cache": str(work / "cache"), "backbone": "convnet", "epochs": 1,
                  "batch_size": args.batch_size, "seed": 0}
        spec = {"config": config, "threads": cores}
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, as a trial is
        results = ctx.Queue()
        trial = ctx.Process(target=_trial, args=(spec, results))
        t0 = time.perf_counter()
        trial.start()
        peaks: dict[int, dict] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(peaks, stop, trial.pid), daemon=True)
        sampler.start()
        try:
            run = results.get(timeout=6 * 3600)
        finally:
            stop.set()
            sampler.join()
            trial.join(timeout=60)
            if trial.is_alive():
                trial.kill()
        trial_wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the images are big: never left behind
    import resource  # the kernel's peak RSS of the (now reaped) trial and its workers
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"device": f"cpu ({platform.machine()}, {cores} cores)", "cores": cores, "threads": cores,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "images": args.images, "side": args.side, "image_size": args.image_size, "backbone": "convnet",
              "batch_size": args.batch_size, "data_mb": args.images * 3 * args.image_size ** 2 / MB,
              "generate_s": generate_s, "trial_wall_s": trial_wall, "trial_maxrss_mb": maxrss,
              "run": run, "processes": {str(pid): peak for pid, peak in peaks.items()},
              "images_per_s": (run["steps"] - 1) * args.batch_size / run["steady_s"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
