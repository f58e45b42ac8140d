"""One prepared GPU check: every GPU claim of the project measured by one command, in one short run.

    python benchmarks/gpu_check.py                        # on a CUDA machine: under 8 minutes
    python benchmarks/gpu_check.py --cpu --out DIR        # the same parts at toy sizes on the CPU

Five parts run one after the other, each in processes of its own, each stopped at its own time limit
(``Mode.limits``), so that a crash, a hang or a CUDA error in one costs that part only:

1. ``throughput``: trainer_throughput's measurements at the paper's CIFAR setting (ResNet-18, CIFAR
   stem, 512-2048-128 BN head, batch 512, bf16, channels_last): the model alone, our step (the
   ``make_step`` that ``fit`` runs), the torchvision DataLoader reference (one worker per core) and
   the augmentation alone, eager and compiled. Targets: ours >= 3x the reference and >= 90% of the
   model alone; compiled >= 40k images/s (an H100's; one image = one pair of views).
2. ``packing``: 1, 2 and 4 trial processes of batch 256 training on one GPU at once; target: 4
   trials >= 1.7x the images/s of one.
3. ``study``: ``simclr-sweep run`` of 8 trials of 2 epochs on the generated 32 px shapes set at
   ``resources: {gpu: 0.25}``: all 8 completed, 4 at a time (from the tables' started_at and
   ended_at), GPU-hours and wall time.
4. ``train``: ``simclr-sweep train`` for one epoch with ``compile: true`` and with ``precision: fp16``,
   on a terminal (a pseudo-terminal) so that its live bar shows the epoch's running mean loss: the
   loss falls when the epoch's mean at its end is below the mean of its first steps.
5. ``data_feed``: ``benchmarks/data_feed.py`` at 224 px where that file exists (skipped, and said,
   where not). Its interface is its command line: ``--image-sizes 224 --out FILE.json``; ``--cpu``
   mode runs ``--image-sizes 32 --processes 1 --smoke`` (each process start imports torch); its
   JSON's ``targets`` (rows as trainer_throughput's) are copied.

``--cpu`` runs the same five at toy sizes in a few minutes on two cores: a convnet, packing of
1 and 2 processes, a 2-trial study at ``resources: {cpu: 1}``, one fp32 epoch without compile for
part 4 (inductor's C++ build alone would take the minute), one thread per process. Speed targets are
judged on CUDA only; the checks (trials completed, at a time, the loss falls) in both modes.

Writes ``gpu_check_<device>_<date>.json`` and ``.md`` to ``--out`` (default benchmarks/results/),
rewritten after every part so that a run cut short keeps what it measured. Each part records its
figures, its targets and a status: ``passed`` (every judged target met), ``missed`` (it ran, a
target was missed), ``failed`` (it crashed or hit its time limit: the one-line error, and the
figures measured before), ``skipped`` (why). Exit status 0 unless a part failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import pyarrow.parquet as pq
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Every import from trainers and from the throughput benchmark, in one place.
from benchmarks import trainer_throughput as throughput  # noqa: E402
from study_files.atomic import write_text  # noqa: E402

PARTS = ("throughput", "packing", "study", "train", "data_feed")
TITLES = {"throughput": "1. trainer throughput", "packing": "2. packing", "study": "3. study (simclr-sweep run)",
          "train": "4. simclr-sweep train", "data_feed": "5. data feed at 224 px"}
# The paper's CIFAR head: 512 -> 2048 -> 128 with BatchNorm (trainer_throughput's Setup has no head field).
PAPER_HEAD = {"head": "nonlinear", "head_layers": 2, "projection_hidden_dim": 2048, "projection_dim": 128}
DATA_FEED = ROOT / "benchmarks" / "data_feed.py"
CPU_MODE_NOTE = "CPU mode: toy sizes; speed targets are not judged on the CPU"


@dataclass(frozen=True)
class Mode:
    """Every size and time limit of one run of the check."""
    name: str  # "cuda" or "cpu"
    throughput: dict[str, Any]  # trainer_throughput.Setup fields of part 1
    packing: dict[str, Any]  # trainer_throughput.Setup fields of part 2
    study: dict[str, Any]  # the declaration of part 3
    train: dict[str, Any]  # the TrainConfig of part 4's runs
    train_runs: tuple[tuple[str, dict[str, Any], int], ...]  # (label, overrides, seconds) of part 4
    data_feed_flags: tuple[str, ...]
    limits: dict[str, int] = field(default_factory=dict)  # seconds per part; part 4's is its runs' sum
    env: dict[str, str] = field(default_factory=dict)  # for every child process


_STUDY = {"metric": {"name": "knn_top1", "goal": "maximize"}, "method": "random", "sampler_seed": 0,
          "early_stopping": {"type": "none"}, "parameters": {"temperature": {"distribution": "log_uniform",
                                                                             "min": 0.1, "max": 1.0}}}

CUDA = Mode(
    name="cuda",
    throughput={"workers": throughput._cores()},  # Setup's defaults are the paper's CIFAR setting
    packing={"pack": (1, 2, 4), "pack_batch_size": 256, "pack_seconds": 5.0},
    study=dict(_STUDY, name="gpu-check", trials=8, max_concurrent=8, resources={"gpu": 0.25},
               fixed={"dataset": "shapes", "dataset_size": 10_000, "backbone": "resnet18", "stem": "cifar",
                      **PAPER_HEAD, "epochs": 2, "batch_size": 256, "precision": "bf16", "optimizer": "adam",
                      "lr": 0.002, "crop.min_scale": 0.3}),
    train={"dataset": "shapes", "dataset_size": 20_000, "backbone": "resnet18", "stem": "cifar", **PAPER_HEAD,
           "epochs": 1, "batch_size": 512, "optimizer": "adam", "lr": 0.002, "eval_every": 0,
           "crop.min_scale": 0.3, "device": "cuda"},
    train_runs=(("compile", {"compile": True, "precision": "bf16"}, 75),
                ("fp16", {"precision": "fp16"}, 35)),
    data_feed_flags=("--image-sizes", "224"),
    limits={"throughput": 140, "packing": 60, "study": 110, "data_feed": 40},  # 460 s with part 4's
)

CPU = Mode(
    name="cpu",
    throughput=dict(throughput.SMOKE),
    packing=dict(throughput.SMOKE, pack=(1, 2)),  # two cores: two trials at a time, as the study
    study=dict(_STUDY, name="gpu-check-cpu", trials=2, max_concurrent=2, resources={"cpu": 1},
               fixed={"dataset": "shapes", "dataset_size": 256, "backbone": "convnet", "epochs": 1,
                      "batch_size": 64, "optimizer": "adam", "lr": 0.002, "crop.min_scale": 0.3}),
    # 64 steps: the bar's running mean changes every 16 steps (trainers.loop.CHECK_EVERY)
    train={"dataset": "shapes", "dataset_size": 1024, "backbone": "convnet", "epochs": 1, "batch_size": 16,
           "optimizer": "adam", "lr": 0.002, "eval_every": 0, "crop.min_scale": 0.3, "device": "cpu"},
    train_runs=(("fp32", {"precision": "fp32"}, 90),),
    data_feed_flags=("--image-sizes", "32", "--processes", "1", "--smoke"),
    limits={"throughput": 90, "packing": 90, "study": 120, "data_feed": 60},
    # One thread per process: on a small shared CPU, OpenMP threads spinning while descheduled stall each other.
    env={"OMP_NUM_THREADS": "1"},
)


class PartFailed(Exception):
    """A part that crashed or ran out of time; ``partial`` holds what it measured before."""

    def __init__(self, error: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.partial = partial or {}


# ---------------------------------------------------------------------------------------------
# the run: each part, then the JSON and the table
# ---------------------------------------------------------------------------------------------

def run_check(mode: Mode, out_dir: Path) -> int:
    started = time.monotonic()
    device = throughput._device_name(torch.device(mode.name))
    result = {"check": "gpu_check", "mode": mode.name, "device": device,
              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "command": "python benchmarks/gpu_check.py" + (" --cpu" if mode.name == "cpu" else ""),
              "counting": "images per second, one image = one pair of views", "parts": []}
    stem = f"gpu_check_{_slug(device)}_{result['date']}"
    paths = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    runners: dict[str, Callable[[Mode, Path, int], dict]] = {
        "throughput": _throughput_part, "packing": _packing_part, "study": _study_part,
        "train": _train_part, "data_feed": _data_feed_part}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name in PARTS:
            limit = _limit(mode, name)
            print(f"{TITLES[name]}: running (limit {limit} s)", flush=True)
            t0 = time.monotonic()
            work = Path(tmp) / name
            work.mkdir()
            try:
                part = runners[name](mode, work, limit)
                part.setdefault("status", _judged(part["targets"]))
            except PartFailed as err:
                part = {**_empty_part(), **err.partial, "status": "failed", "error": str(err)}
            except Exception as err:  # any crash: recorded, and the next part still runs
                part = {**_empty_part(), "status": "failed", "error": _one_line(err)}
            part = {"part": name, "title": TITLES[name], **part, "seconds": time.monotonic() - t0, "limit_s": limit}
            if mode.name == "cpu":
                part["notes"] = [CPU_MODE_NOTE, *part.get("notes", [])]
            result["parts"].append(part)
            result["wall_s"] = time.monotonic() - started
            result["exit_status"] = 1 if any(p["status"] == "failed" for p in result["parts"]) else 0
            write_text(paths[0], json.dumps(result, indent=2, default=str) + "\n")
            write_text(paths[1], markdown(result))
            print(f"{TITLES[name]}: {part['status']} in {part['seconds']:.0f} s"
                  + (f" ({part['error']})" if part.get("error") else ""), flush=True)
    print(markdown(result))
    print(f"wrote {paths[0]} and {paths[1]}")
    return result["exit_status"]


def _limit(mode: Mode, name: str) -> int:
    return sum(seconds for _, _, seconds in mode.train_runs) if name == "train" else mode.limits[name]


def _empty_part() -> dict[str, Any]:
    return {"figures": {}, "targets": [], "notes": [], "details": {}}


def _judged(targets: list[dict]) -> str:
    return "missed" if any(t["met"] is False for t in targets) else "passed"


COMPARE = {">=": lambda value, threshold: value >= threshold, "<": lambda value, threshold: value < threshold,
           "==": lambda value, threshold: value == threshold}


def _target(name: str, value: float | None, threshold: float, *, judged: bool, compare: str = ">=") -> dict:
    """One target row; ``met`` is None where it is not judged (speed on the CPU) or not measured."""
    met = bool(COMPARE[compare](value, threshold)) if judged and value is not None else None
    return {"target": name, "value": value, "threshold": threshold, "compare": compare, "met": met}


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------------------------------------
# parts 1 and 2: trainer_throughput's functions, in a process of their own
# ---------------------------------------------------------------------------------------------

def _in_own_process(name: str, mode: Mode, work: Path, limit: int) -> dict[str, Any]:
    """Run ``--part name`` as a child (a CUDA error or a hang there cannot touch the next part) and
    return the rows it recorded; rows recorded before a crash or the time limit are kept."""
    rows_file = work / "rows.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--rows", str(rows_file)]
    if mode.name == "cpu":
        cmd.append("--cpu")
    rc, _, stderr, seconds = _run(cmd, limit, mode=mode, cwd=work)
    recorded = json.loads(rows_file.read_text()) if rows_file.exists() else {"rows": {}, "errors": {}}
    if rc is None:
        recorded["errors"]["time limit"] = f"timed out after {limit} s"
    elif rc != 0 and not recorded["errors"]:
        recorded["errors"]["process"] = f"exit status {rc}: {_last_line(stderr)}"
    return recorded


def _throughput_part(mode: Mode, work: Path, limit: int) -> dict[str, Any]:
    recorded = _in_own_process("throughput", mode, work, limit)
    rows, judged = recorded["rows"], mode.name == "cuda"

    def rate(row: str) -> float | None:
        return rows[row]["images_per_s"] if row in rows else None

    def ratio(a: str, b: str) -> float | None:
        return rate(a) / rate(b) if rate(a) and rate(b) else None

    figures = {f"{row}_images_per_s": rate(row) for row in rows}
    ratios = {"ours_over_reference_eager": ratio("ours_eager", "reference_dataloader"),
              "ours_over_model_eager": ratio("ours_eager", "model_alone_eager"),
              "ours_over_model_compiled": ratio("ours_compiled", "model_alone_compiled")}
    figures.update({name: value for name, value in ratios.items() if value is not None})
    targets = [_target("ours eager / DataLoader reference >= 3x", ratios["ours_over_reference_eager"], 3.0, judged=judged),
               _target("ours eager / model alone eager >= 90%", ratios["ours_over_model_eager"], 0.9, judged=judged),
               _target("ours compiled / model alone compiled >= 90%", ratios["ours_over_model_compiled"], 0.9,
                       judged=judged),
               _target("ours compiled >= 40k images/s (H100)", rate("ours_compiled"), 40_000.0, judged=judged)]
    part = {"figures": figures, "targets": targets, "details": recorded,
            "notes": [f"DataLoader reference: {rows['reference_dataloader']['workers']} workers, "
                      f"{throughput._cores()} cores here"]
            if "reference_dataloader" in rows else []}
    _raise_recorded_errors(recorded, part)
    return part


def _packing_part(mode: Mode, work: Path, limit: int) -> dict[str, Any]:
    recorded = _in_own_process("packing", mode, work, limit)
    results = recorded["rows"].get("packing", {}).get("results", [])
    figures = {f"k{r['k']}_aggregate_images_per_s": r["aggregate_images_per_s"] for r in results}
    figures.update({f"k{r['k']}_speedup_vs_one": r["speedup_vs_one"] for r in results if r["k"] > 1})
    most = max(mode.packing["pack"])
    speedup = figures.get(f"k{most}_speedup_vs_one")
    targets = [_target(f"{most} trials >= 1.7x one", speedup, 1.7, judged=mode.name == "cuda")]
    part = {"figures": figures, "targets": targets, "details": recorded,
            "notes": ["packed trials: trainer_throughput's worker processes (its default head, 512-512-128)"]}
    _raise_recorded_errors(recorded, part)
    return part


def _raise_recorded_errors(recorded: dict[str, Any], part: dict[str, Any]) -> None:
    if recorded["errors"]:
        raise PartFailed("; ".join(f"{row}: {error}" for row, error in recorded["errors"].items()), part)


def _measure_rows(name: str, mode: Mode, rows_file: Path) -> int:
    """The child of ``_in_own_process``: measure each row, writing every one as soon as it is known;
    a row that raises is written as an error and the next row still runs."""
    recorded: dict[str, Any] = {"rows": {}, "errors": {}}

    def measure(row: str, how: Callable[[], dict]) -> None:
        try:
            recorded["rows"][row] = how()
        except Exception as err:  # recorded; the other rows still measure
            traceback.print_exc()
            recorded["errors"][row] = _one_line(err)
        write_text(rows_file, json.dumps(recorded, indent=2))

    if name == "packing":
        setup = throughput.Setup(device=mode.name, **mode.packing)
        measure("packing", lambda: throughput._packing(setup))
    else:
        _throughput_rows(throughput.Setup(device=mode.name, **mode.throughput), measure)
    return 1 if recorded["errors"] else 0


def _throughput_rows(setup: throughput.Setup, measure: Callable[[str, Callable[[], dict]], None]) -> None:
    """Part 1's rows, the quick eager ones first: should compilation eat the time limit, they are kept."""
    if setup.threads:
        torch.set_num_threads(setup.threads)
    device = torch.device(setup.device)
    base = throughput._config
    with mock.patch.object(throughput, "_config", lambda s: dataclasses.replace(base(s), **PAPER_HEAD)):
        trainer = throughput._trainer(setup, device)  # its trainer, with the paper's head
    compiled = torch.compile(trainer.model, backend=setup.compile_backend)
    views = torch.rand(2 * setup.batch_size, 3, setup.image_size, setup.image_size,
                       generator=torch.Generator().manual_seed(0)).to(device)
    eager_update = throughput._update(trainer, trainer.model, device)
    measure("model_alone_eager", lambda: throughput._time(lambda: eager_update(views), setup, device))

    def ours_eager() -> dict:
        ours = throughput._our_step(setup, device, trainer, trainer.model)
        return dict(throughput._time(ours, setup, device), step_function=throughput._step_function(ours))

    measure("ours_eager", ours_eager)
    measure("reference_dataloader", lambda: throughput._reference(setup, device, trainer))
    measure("augment_only_eager", lambda: throughput._augment_only(setup, device, compiled=False))
    compiled_update = throughput._update(trainer, compiled, device)
    measure("model_alone_compiled", lambda: throughput._time(lambda: compiled_update(views), setup, device))
    measure("ours_compiled", lambda: throughput._with_compiled_augmentation(
        lambda aug: throughput._time(throughput._our_step(setup, device, trainer, compiled, compiled=aug),
                                     setup, device)))
    measure("augment_only_compiled", lambda: throughput._with_compiled_augmentation(
        lambda aug: throughput._augment_only(setup, device, aug)))


# ---------------------------------------------------------------------------------------------
# part 3: a real study through the console script
# ---------------------------------------------------------------------------------------------

def _study_part(mode: Mode, work: Path, limit: int) -> dict[str, Any]:
    spec = mode.study
    space = work / "study.yaml"
    space.write_text(yaml.safe_dump(spec, sort_keys=False))
    rc, stdout, stderr, seconds = _run([_console_script(), "run", str(space), "--storage", str(work / "studies")],
                                       limit, mode=mode, cwd=work, env={"RAY_ADDRESS": ""})
    table = work / "studies" / spec["name"] / "tables" / "trials.parquet"
    rows = pq.read_table(table).to_pylist() if table.exists() else []
    completed = sum(r["status"] == "completed" for r in rows)
    at_once = _most_at_once([(r["started_at"], r["ended_at"]) for r in rows if r["started_at"] and r["ended_at"]])
    running = [int(n) for n in re.findall(r"\| (\d+) running", stdout)]
    expected = min(spec["trials"], spec["max_concurrent"], _slots(spec["resources"]))
    starts, ends = [r["started_at"] for r in rows], [r["ended_at"] for r in rows if r["ended_at"]]
    figures = {"wall_s": seconds, "trials_completed": completed, "most_at_once": at_once,
               "trials_span_s": (max(ends) - min(starts)).total_seconds() if starts and ends else None,
               "trial_hours": sum(r["wall_s"] or 0.0 for r in rows) / 3600}
    if "gpu" in spec["resources"]:
        figures["gpu_hours"] = sum(r["gpu_s"] or 0.0 for r in rows) / 3600
    else:  # the tables count GPU seconds only; the CPU-mode figure is the trials' cores x wall time
        figures["cpu_hours"] = figures["trial_hours"] * spec["resources"]["cpu"]
    targets = [_target(f"all {spec['trials']} trials completed", completed, spec["trials"], judged=True, compare="=="),
               _target(f"{expected} at a time (tables' started_at/ended_at)", at_once, expected, judged=True,
                       compare="==")]
    part = {"figures": figures, "targets": targets,
            "details": {"declaration": spec, "progress_most_running": max(running, default=0),
                        "statuses": sorted({r["status"] for r in rows}),
                        "errors": [r["error"] for r in rows if r.get("error")]},
            "notes": [f"trials: {spec['trials']}, epochs: {spec['fixed']['epochs']}, {spec['fixed']['backbone']} on "
                      f"shapes (32 px), resources: {json.dumps(spec['resources'])}"]}
    if rc is None:
        raise PartFailed(f"timed out after {limit} s", part)
    if rc != 0:
        raise PartFailed(f"simclr-sweep run exited {rc}: {_last_line(stderr)}", part)
    return part


def _slots(resources: dict[str, float]) -> int:
    """How many trials of ``resources`` this machine runs at once (Ray counts every core and GPU)."""
    slots = int((os.cpu_count() or 1) / resources.get("cpu", 1) + 1e-9)
    if resources.get("gpu"):
        slots = min(slots, int(torch.cuda.device_count() / resources["gpu"] + 1e-9))
    return slots


def _most_at_once(spans: list[tuple[datetime.datetime, datetime.datetime]]) -> int:
    """The most intervals open at one instant (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, change in events:
        now += change
        most = max(most, now)
    return most


# ---------------------------------------------------------------------------------------------
# part 4: simclr-sweep train, on a terminal so that its bar shows the running loss
# ---------------------------------------------------------------------------------------------

def _train_part(mode: Mode, work: Path, limit: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    targets, errors, details = [], [], {}
    for label, overrides, seconds in mode.train_runs:
        config = dict(mode.train, **overrides)
        config_file, out = work / f"{label}.yaml", work / label
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        try:
            rc, text, wall = _run_on_terminal([_console_script(), "train", str(config_file), "--out", str(out)],
                                              seconds, mode=mode, cwd=work)
        except PartFailed as err:
            errors.append(f"{label}: {err}")
            continue
        losses = [float(x) for x in re.findall(r"loss (\d[\d.e+-]*)", text)]
        metrics_file = out / "metrics.json"
        summary = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        figures[f"{label}_wall_s"] = wall
        if summary.get("metrics", {}).get("images_per_s"):
            figures[f"{label}_images_per_s"] = summary["metrics"]["images_per_s"]
        if losses:
            figures[f"{label}_first_loss"], figures[f"{label}_epoch_loss"] = losses[0], losses[-1]
        fell = losses[-1] / losses[0] if len(losses) >= 2 else None
        targets.append(_target(f"{label}: the epoch's mean loss at its end < at its first reading", fell, 1.0,
                               judged=True, compare="<"))
        details[label] = {"config": config, "exit_status": rc, "loss_readings": losses,
                          "status": summary.get("status"), "output_tail": text[-1500:]}
        if rc != 0:
            errors.append(f"{label}: simclr-sweep train exited {rc}: {_last_line(text)}")
        elif len(losses) < 2:
            errors.append(f"{label}: the bar showed {len(losses)} loss reading(s), two needed")
    notes = ["one epoch each; the bar's loss is the epoch's running mean, read back every 16 steps"]
    if mode.name == "cpu":
        notes.append("CPU mode runs one fp32 epoch without compile: compile and fp16 are the CUDA run's "
                     "(inductor's C++ build alone would take the CPU budget; bf16 ran 4x slower than fp32 "
                     "on a CPU without AMX)")
    part = {"figures": figures, "targets": targets, "details": details, "notes": notes}
    if errors:
        raise PartFailed("; ".join(errors), part)
    return part


# ---------------------------------------------------------------------------------------------
# part 5: the data-feed benchmark, where it exists
# ---------------------------------------------------------------------------------------------

def _data_feed_part(mode: Mode, work: Path, limit: int) -> dict[str, Any]:
    if not DATA_FEED.exists():
        return {**_empty_part(), "status": "skipped",
                "notes": [f"skipped: {DATA_FEED.relative_to(ROOT)} not present"]}
    out = work / "data_feed.json"
    rc, stdout, stderr, seconds = _run([sys.executable, str(DATA_FEED), *mode.data_feed_flags, "--out", str(out)],
                                       limit, mode=mode, cwd=ROOT)
    result = json.loads(out.read_text()) if out.exists() else {}
    figures = {"wall_s": seconds, **{key: value for key, value in _numbers(result)
                                     if key.endswith("images_per_s")}}
    targets = [_target(t["target"], t.get("value"), t.get("threshold"), judged=mode.name == "cuda")
               for t in result.get("targets", []) if isinstance(t, dict) and "target" in t]
    part = {"figures": figures, "targets": targets, "details": result, "notes": [" ".join(mode.data_feed_flags)]}
    if rc is None:
        raise PartFailed(f"timed out after {limit} s", part)
    if rc != 0:
        raise PartFailed(f"benchmarks/data_feed.py exited {rc}: {_last_line(stderr)}", part)
    return part


def _numbers(value: Any, path: str = "") -> list[tuple[str, float]]:
    """Every numeric leaf of a JSON value, keyed by its dotted path."""
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _numbers(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _numbers(item, f"{path}.{i}")]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(path, float(value))]
    return []


# ---------------------------------------------------------------------------------------------
# child processes under a time limit, and everything they started ended with them
# ---------------------------------------------------------------------------------------------

def _env(mode: Mode, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout's packages first on the path: the check measures this tree, not an install."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **mode.env, "PYTHONPATH": path, **(extra or {})}


def _run(cmd: list[str], limit: float, *, mode: Mode, cwd: Path, env: dict[str, str] | None = None
         ) -> tuple[int | None, str, str, float]:
    """(exit status or None on the time limit, stdout, stderr, seconds). The child leads a process
    group of its own, which is ended afterwards: Ray's processes or packed trials do not outlive it."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=_env(mode, env), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _end_group(proc)
        stdout, stderr = proc.communicate()
        rc = None
    finally:
        _end_group(proc)
    if rc != 0:
        sys.stderr.write(stderr[-2000:])
    return rc, stdout, stderr, time.monotonic() - t0


def _run_on_terminal(cmd: list[str], limit: float, *, mode: Mode, cwd: Path) -> tuple[int, str, float]:
    """Run with stdout and stderr on a pseudo-terminal (so ``train`` draws its live bar); (exit
    status, everything it wrote, seconds). PartFailed at the time limit."""
    t0 = time.monotonic()
    deadline = t0 + limit
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, cwd=cwd,
                            env=_env(mode), start_new_session=True)
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PartFailed(f"timed out after {limit} s")
            ready, _, _ = select.select([leader], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise PartFailed(f"timed out after {limit} s") from None
    finally:
        os.close(leader)
        _end_group(proc)
    return rc, b"".join(chunks).decode(errors="replace"), time.monotonic() - t0


def _end_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group has already ended
        pass
    proc.wait()


def _console_script() -> str:
    script = Path(sys.executable).with_name("simclr-sweep")
    found = str(script) if script.exists() else shutil.which("simclr-sweep")
    if not found:
        raise RuntimeError("the simclr-sweep console script is not installed (pip install -e .)")
    return found


def _last_line(text: str) -> str:
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------

def markdown(result: dict[str, Any]) -> str:
    """One row per part: status, figures, targets, seconds against the part's limit."""
    lines = [f"# GPU check: {result['device']}, {result['date']}", "",
             f"`{result['command']}` (torch {result['torch']}, {result['mode']} mode): "
             f"{result.get('wall_s', 0):.0f} s in all, exit status {result.get('exit_status', 0)}. "
             f"{result['counting'].capitalize()}.", "",
             "Status: passed (every judged target met), missed (it ran; a target was missed: reported, "
             "not a crash), failed (crashed or hit its time limit: the error), skipped (why).", "",
             "| part | status | figures | targets | s (limit) |", "| --- | --- | --- | --- | --- |"]
    for part in result["parts"]:
        figures = "; ".join(f"{name} {_shown(value)}" for name, value in part["figures"].items()) or "-"
        targets = "; ".join(f"{t['target']}: {_shown(t['value'])} "
                            f"({ {True: 'met', False: 'MISSED', None: 'not judged'}[t['met']] })"
                            for t in part["targets"]) or "-"
        status = part["status"] + (f": {part['error']}" if part.get("error") else "")
        notes = " ".join(f"<br>{note}" for note in part.get("notes", []))
        lines.append(f"| {part['title']} | {status} | {figures}{notes} | {targets} | "
                     f"{part['seconds']:.0f} ({part['limit_s']}) |".replace("\n", " "))
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 100:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the same parts at toy sizes on the CPU (a few minutes)")
    parser.add_argument("--out", type=Path, help="folder for the JSON and the table (default benchmarks/results/)")
    parser.add_argument("--part", choices=("throughput", "packing"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = CPU if args.cpu else CUDA
    if args.part:
        return _measure_rows(args.part, mode, args.rows)
    if args.cpu and args.out is None:
        parser.error("--cpu needs --out (toy figures do not belong in benchmarks/results/)")
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA device here: --cpu runs the toy check on the CPU")
    # Children lead process groups of their own: a SIGTERM unwinds through _run's finally to end them.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return run_check(mode, args.out or ROOT / "benchmarks" / "results")


if __name__ == "__main__":
    sys.exit(main())
