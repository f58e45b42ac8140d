"""Data feed: does serving batches from a memory-mapped cache cost the trainer anything, and do packed
trials share it?

Measures, in one run, for each image size and for 1 and 4 concurrent trial processes on one data set:
  - images/s of the feeder alone (``DeviceFeeder.batches``, synchronised) and of the trainer's step
    (``trainers.training.loop.make_step``: two views, model, loss, backward, step) for each source:
    ``resident`` (the set on the device; on the CPU an in-memory tensor), ``host`` (an in-memory host
    tensor staged per batch: pinned on CUDA), ``mapped_warm`` (the cache file's map, pages in the page
    cache) and ``mapped_cold`` (the file's pages dropped from the page cache before each measurement);
  - host memory per process (USS and PSS, psutil) and in total, and the data set's share of it (the
    process's PSS with the source held minus before it);
  - the cache build (JPEG decoding into the mapped file) with one worker and with every core.
Processes are spawned (fresh interpreters, as trials are) and meet at barriers so that the N
processes measure each source at the same time. Images are counted once per pair of views.

    python benchmarks/data_feed.py                               # 32, 96 and 224 px; 1 and 4 processes
    python benchmarks/data_feed.py --image-sizes 224 --out f.json
    python benchmarks/data_feed.py --smoke                       # seconds, on the CPU

Prints a table and writes JSON (``--out``, default benchmarks/results/data_feed-<device>-<date>.json):
``rows`` (one per size x processes x source), ``cache_build``, ``targets`` (rows of ``target``,
``value``, ``threshold``, ``compare`` and ``met``; every target reads ``value >= threshold``).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import mmap
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainers.augmentation.pipeline import build_pipeline  # noqa: E402
from trainers.config import TrainConfig  # noqa: E402
from trainers.data import cache, image_files  # noqa: E402
from trainers.data.feeder import DeviceFeeder  # noqa: E402
from trainers.model.networks import build_model  # noqa: E402
from trainers.model.optim import build_optimizer  # noqa: E402
from trainers.training import loop  # noqa: E402

SOURCES = ("resident", "host", "mapped_warm", "mapped_cold")
STEMS = {32: "cifar", 96: "stl"}  # larger images: the imagenet stem
MB = 1024 ** 2
WITHIN = 0.9  # mapped (warm) images/s >= 90% of the host tensor's
MEMORY_RATIO = 1.3  # 4 processes' data memory < 1.3x one's
BUILD_EFFICIENCY = 0.5  # cache build with W workers >= W / 2 times one worker's rate

# The feeder is timed at ``batch``; the step at ``step_batch`` (per size), smaller on the CPU: a step of 64
# images at 224 px takes over a minute there with 4 processes on 2 cores, and every figure needs two.
FULL = dict(images={32: 20_000, 96: 6_000, 224: 1_500}, batch={"cuda": 256, "cpu": 64},
            step_batch={"cuda": {}, "cpu": {32: 32, 96: 16, 224: 8}}, seconds=1.5,
            backbone={"cuda": "resnet18", "cpu": "convnet"}, build_images=1_024, build_side=128)
SMOKE = dict(images={32: 512, 96: 256, 224: 96}, batch={"cuda": 8, "cpu": 8}, step_batch={"cuda": {}, "cpu": {}},
             seconds=0.15,
             backbone={"cuda": "convnet", "cpu": "convnet"}, build_images=cache.PARALLEL_FROM, build_side=48)


def _images_for(sizes: dict[int, int], size: int) -> int:
    return sizes.get(size, min(sizes.values()))


# ---------------------------------------------------------------------------------------------
# one trial process: every source in turn, in step with the others
# ---------------------------------------------------------------------------------------------

def _memory() -> dict[str, float]:
    info = psutil.Process().memory_full_info()
    return {"uss_mb": info.uss / MB, "pss_mb": info.pss / MB}


def _map_private(path: Path, shape: tuple[int, ...]) -> tuple[mmap.mmap, np.ndarray]:
    """The cache file mapped as ``trainers.data.cache`` maps it (private, copy-on-write), with the
    mmap kept so that its pages can be dropped for a cold measurement."""
    with open(path, "rb") as handle:
        mm = mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return mm, np.frombuffer(mm, dtype=np.uint8).reshape(shape)


def _rate(batches: Callable[[], Any], run: Callable[[torch.Tensor], None], seconds: float,
          sync: Callable[[], None]) -> float:
    """Images/s of ``run`` over batches drawn from ``batches()`` (a fresh epoch whenever one ends)
    for about ``seconds``, after one warm-up batch."""
    def stream():
        while True:
            yield from batches()

    source = stream()
    run(next(source))
    sync()
    done, t0 = 0, time.perf_counter()
    while True:
        images = next(source)
        run(images)
        done += images.shape[0]
        sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            source.close()  # ends the feeder's gathering thread
            return done / elapsed


def _worker(rank: int, spec: dict, barrier: Any, results: Any) -> None:
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    size, n, batch, step_batch = spec["size"], spec["images"], spec["batch"], spec["step_batch"]
    shape = (n, 3, size, size)
    cfg = TrainConfig.from_dict({"backbone": spec["backbone"], "stem": STEMS.get(size, "imagenet"),
                                 "image_size": size, "batch_size": step_batch, "optimizer": "lars", "lr": 0.3,
                                 "precision": "bf16" if device.type == "cuda" else "fp32",
                                 "channels_last": device.type == "cuda"})
    torch.manual_seed(rank)
    model = build_model(cfg).to(device).to(memory_format=torch.channels_last if cfg.channels_last
                                           else torch.contiguous_format)
    optimizer = build_optimizer(model, name=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    augment = build_pipeline(cfg.augmentations, image_size=size, params=cfg.augmentation_params)
    step = loop.make_step(cfg, model, optimizer, scaler, augment, device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    gen_order = torch.Generator().manual_seed(rank)
    gen_aug = torch.Generator(device=device).manual_seed(rank)

    out = {}
    for source in SOURCES:
        gc.collect()
        barrier.wait()
        before = _memory()
        mm = None
        if source in ("resident", "host"):
            images = torch.from_numpy(np.fromfile(spec["file"], dtype=np.uint8).reshape(shape))
        else:
            mm, array = _map_private(Path(spec["file"]), shape)
            images = cache.mapped_tensor(array)
        feeder = DeviceFeeder(images, device, max_device_bytes=None if source == "resident" else 0)
        if source == "mapped_warm":
            int(images.sum(dtype=torch.int64))  # every page in the page cache and in this map

        def cold() -> None:
            if source != "mapped_cold":
                return
            mm.madvise(mmap.MADV_DONTNEED)  # this process's pages go back to the file
            barrier.wait()
            if rank == 0:
                with open(spec["file"], "rb") as handle:  # then the node's page cache forgets them
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            barrier.wait()

        held = _memory()
        epoch = lambda: feeder.batches(batch, gen_order)  # noqa: E731
        step_epoch = lambda: feeder.batches(step_batch, gen_order)  # noqa: E731
        cold()
        feeder_rate = _rate(epoch, lambda images: None, spec["seconds"], sync)
        cold()
        step_rate = _rate(step_epoch, lambda images: step(images, gen_aug), spec["seconds"], sync)
        out[source] = {"feeder_images_per_s": feeder_rate, "step_images_per_s": step_rate,
                       "uss_mb": held["uss_mb"], "pss_mb": held["pss_mb"],
                       "data_pss_mb": held["pss_mb"] - before["pss_mb"]}
        barrier.wait()  # every process measured the data memory before any lets go of its source
        del feeder, images
        if mm is not None:
            del array
            mm.close()
    results.put((rank, out))


def _measure(size: int, processes: int, file: Path, n: int, preset: dict, device: torch.device) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, as trials are (a forked torch can hang)
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    batch = preset["batch"][device.type]
    spec = {"size": size, "images": n, "batch": batch, "file": str(file),
            "step_batch": preset["step_batch"][device.type].get(size, batch),
            "seconds": preset["seconds"], "backbone": preset["backbone"][device.type], "device": str(device),
            "threads": max(1, len(os.sched_getaffinity(0)) // processes)}
    workers = [ctx.Process(target=_worker, args=(rank, spec, barrier, results), daemon=True)
               for rank in range(processes)]
    for worker in workers:
        worker.start()
    try:
        per_rank = dict(results.get(timeout=600) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    rows = []
    for source in SOURCES:
        each = [per_rank[rank][source] for rank in range(processes)]
        rows.append({"image_size": size, "processes": processes, "source": source, "images": n,
                     "batch": spec["batch"], "step_batch": spec["step_batch"],
                     "feeder_images_per_s": sum(e["feeder_images_per_s"] for e in each),
                     "step_images_per_s": sum(e["step_images_per_s"] for e in each),
                     "total_uss_mb": sum(e["uss_mb"] for e in each), "total_pss_mb": sum(e["pss_mb"] for e in each),
                     "total_data_pss_mb": sum(e["data_pss_mb"] for e in each), "per_process": each})
    return rows


# ---------------------------------------------------------------------------------------------
# the cache build: JPEG decoding into the mapped file, one worker and every core
# ---------------------------------------------------------------------------------------------

def _jpegs(folder: Path, count: int, side: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.jpg"
        pixels = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def _cache_build(work: Path, preset: dict, size: int) -> dict:
    paths = _jpegs(work / "jpegs", preset["build_images"], preset["build_side"])
    cores = len(os.sched_getaffinity(0))
    out = {"images": len(paths), "source_side": preset["build_side"], "image_size": size, "cores": cores}
    for label, workers in (("one_worker", 1), ("all_cores", cores)):
        folder = work / f"cache-{label}"
        t0 = time.perf_counter()
        cache.cached_images(paths, [0] * len(paths), size, key=label, folder=folder, stem="bench",
                            dataset="benchmark", declared=True, read=image_files.read_image_for_cache,
                            workers=workers)
        out[f"{label}_images_per_s"] = len(paths) / (time.perf_counter() - t0)
    out["speedup"] = out["all_cores_images_per_s"] / out["one_worker_images_per_s"]
    return out


# ---------------------------------------------------------------------------------------------
# targets, table, main
# ---------------------------------------------------------------------------------------------

def _target(name: str, value: float, threshold: float) -> dict:
    return {"target": name, "value": value, "threshold": threshold, "compare": ">=", "met": value >= threshold}


def targets(rows: list[dict], build: dict) -> list[dict]:
    at = {(r["image_size"], r["processes"], r["source"]): r for r in rows}
    out = []
    for size, processes, _ in sorted({k for k in at if k[2] == "host"}):
        host, warm = at[(size, processes, "host")], at[(size, processes, "mapped_warm")]
        for what in ("feeder", "step"):
            out.append(_target(f"{size}px x{processes}: mapped (warm) {what} images/s / host tensor's >= {WITHIN}",
                               warm[f"{what}_images_per_s"] / host[f"{what}_images_per_s"], WITHIN))
        if (size, 1, "mapped_warm") in at and processes > 1:
            one = at[(size, 1, "mapped_warm")]["total_data_pss_mb"]
            many = warm["total_data_pss_mb"]
            out.append(_target(f"{size}px: {processes} processes' mapped data memory < {MEMORY_RATIO}x one's "
                               f"(given as one's / theirs >= {1 / MEMORY_RATIO:.3f})",
                               one / max(many, 1e-9), 1 / MEMORY_RATIO))
    if build["cores"] > 1:
        out.append(_target(f"cache build on {build['cores']} cores / one worker >= {BUILD_EFFICIENCY} x cores "
                           f"(given per core)", build["speedup"] / build["cores"], BUILD_EFFICIENCY))
    return out


def table(result: dict) -> str:
    lines = [f"data feed on {result['device']} ({result['mode']}; {result['backbone']}; feeder batch "
             f"{result['batch']}, step batch per row; about {result['seconds_per_figure']} s per figure, at least "
             "one batch after a warm-up one)", "",
             "| px | images | procs | source | feeder img/s | step batch | step img/s | data PSS MB (total) | "
             "PSS MB (total) | USS MB (total) |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['image_size']} | {r['images']} | {r['processes']} | {r['source']} | "
                     f"{r['feeder_images_per_s']:.0f} | {r['step_batch']} | {r['step_images_per_s']:.1f} | "
                     f"{r['total_data_pss_mb']:.1f} | {r['total_pss_mb']:.0f} | {r['total_uss_mb']:.0f} |")
    b = result["cache_build"]
    lines += ["", f"the whole run: {result['wall_s']:.0f} s", "", f"cache build ({b['images']} JPEGs of {b['source_side']} px to {b['image_size']} px): "
                  f"{b['one_worker_images_per_s']:.0f} img/s on one worker, {b['all_cores_images_per_s']:.0f} "
                  f"on {b['cores']} cores ({b['speedup']:.2f}x)", "",
              "| target | value | threshold | met |", "|---|---:|---:|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['value']:.3f} | {t['threshold']:.3f} | {t['met']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32, 96, 224])
    parser.add_argument("--processes", type=int, nargs="+", default=None,
                        help="concurrent trial processes (default 1 and 4; 1 and 2 with --smoke)")
    parser.add_argument("--images", type=int, default=0, help="images per data set (0: the preset's per size)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU, seconds in all")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    preset = SMOKE if args.smoke else FULL
    args.processes = args.processes or ([1, 2] if args.smoke else [1, 4])
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="data-feed-") as tmp:  # node-local, as the cache's default
        work = Path(tmp)
        build = _cache_build(work, preset, min(args.image_sizes))
        for size in args.image_sizes:
            n = args.images or _images_for(preset["images"], size)
            file = work / f"set-{size}px.u8"
            data = np.random.default_rng(size).integers(0, 256, (n, 3, size, size), dtype=np.uint8)
            data.tofile(file)
            del data
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())  # clean pages: a cold measurement can drop them
            for processes in args.processes:
                rows += _measure(size, processes, file, n, preset, device)
    result = {"device": f"{device.type}: {name}", "mode": "smoke" if args.smoke else "full",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "backbone": preset["backbone"][device.type], "batch": preset["batch"][device.type],
              "seconds_per_figure": preset["seconds"], "rows": rows, "cache_build": build,
              "wall_s": time.perf_counter() - t0}
    result["targets"] = targets(rows, build)
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"data_feed-{device.type}-{datetime.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
