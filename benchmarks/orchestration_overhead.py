"""What simclr_sweep costs per trial on top of a bare Ray Tune + OptunaSearch loop.

Both arms run the same trivial trainable (a few reported epochs, no training) with the same trial
count, concurrency and Optuna journal storage, in one process and one Ray runtime. Ours adds the
YAML study, the table recorder (Parquet rows at every event), the progress view and the report.
The driver's resident memory is sampled throughout, to show it stays flat as trials accumulate.

    python benchmarks/orchestration_overhead.py                 # 200 trials, writes benchmarks/results/
    python benchmarks/orchestration_overhead.py --trials 8 --out /tmp/o.json   # smoke
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

EPOCHS = 3


def trivial_trial(config: dict, setup=None) -> None:
    """Reports a few epochs at once, like a trial whose training costs nothing."""
    from ray import tune

    for epoch in range(1, EPOCHS + 1):
        tune.report({"epoch": float(epoch), "loss": 1.0 / epoch,
                     "knn_top1": config["temperature"] * epoch / EPOCHS})


def bare_space(trial) -> None:
    """The bare arm's define-by-run space (module level: Tune pickles the searcher)."""
    trial.suggest_float("temperature", 0.05, 1.0, log=True)


class MemorySampler:
    """Samples this process's resident memory every `period` seconds in a thread."""

    def __init__(self, period: float = 0.5):
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc, start = psutil.Process(), time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - start, proc.memory_info().rss / 2**20))
            self._stop.wait(self.period)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def quartiles(self) -> list[float]:
        """RSS (MiB) at 25%, 50%, 75% and 100% of the run."""
        if not self.samples:
            return []
        end = self.samples[-1][0]
        out = []
        for q in (0.25, 0.5, 0.75, 1.0):
            out.append(next(rss for t, rss in self.samples if t >= q * end))
        return out


def run_bare(trials: int, concurrent: int, workdir: Path) -> float:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(space=bare_space, metric="knn_top1", mode="max", study_name="bare",
                          storage=JournalStorage(JournalFileBackend(str(workdir / "bare.journal"))))
    tuner = tune.Tuner(
        tune.with_resources(trivial_trial, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=search, num_samples=trials, max_concurrent_trials=concurrent,
                                    metric="knn_top1", mode="max"),
        run_config=tune.RunConfig(name="bare", storage_path=str(workdir), verbose=0),
    )
    start = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - start


def run_ours(trials: int, concurrent: int, workdir: Path) -> tuple[float, float]:
    """`runner.run_study`'s steps, with the trivial trial in place of SimCLR's `run_trial`."""
    from simclr_sweep import runner
    from simclr_sweep.study import parse_study_in_child

    study = parse_study_in_child({  # validated as `simclr-sweep run` does: torch stays out of the driver
        "name": "ours", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "tpe",
        "trials": trials, "max_concurrent": concurrent, "resources": {"cpu": 1},
        "fixed": {"epochs": EPOCHS},
        "parameters": {"temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0}},
    })
    start = time.perf_counter()
    study_dir = runner.prepare_study_dir(study, workdir)
    runner.run_trials(study, study_dir, runner.study_trainable(study, study_dir, trivial_trial), io.StringIO())
    trials_s = time.perf_counter() - start
    # A study ends by building the report, once per study, not per trial: timed apart.
    start = time.perf_counter()
    runner.finish(study_dir, None)
    return trials_s, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/orchestration_overhead.json)")
    args = parser.parse_args()

    import ray

    from simclr_sweep.runner import RAY_ENVIRONMENT

    os.environ.update(RAY_ENVIRONMENT)  # both arms under the settings simclr_sweep runs Ray with
    ray.init(num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
            with MemorySampler() as bare_mem:
                bare_s = run_bare(args.trials, args.concurrent, Path(tmp))
            with MemorySampler() as ours_mem:
                ours_s, report_s = run_ours(args.trials, args.concurrent, Path(tmp))
    finally:
        ray.shutdown()

    per_bare, per_ours = bare_s / args.trials, ours_s / args.trials
    overhead = per_ours / per_bare - 1
    rows = [
        ("bare Tuner + OptunaSearch", bare_s, per_bare, bare_mem.quartiles()),
        ("simclr_sweep (tables, progress)", ours_s, per_ours, ours_mem.quartiles()),
    ]
    print(f"{args.trials} trials x {EPOCHS} epochs, {args.concurrent} at a time, {os.cpu_count()} CPUs")
    print(f"{'arm':34} {'wall s':>8} {'s/trial':>8}   driver RSS MiB at 25/50/75/100%")
    for name, wall, per, mem in rows:
        print(f"{name:34} {wall:8.1f} {per:8.3f}   " + " / ".join(f"{m:.0f}" for m in mem))
    print(f"overhead per trial: {overhead:+.1%} (target within +10%); report built once in {report_s:.1f} s")

    result = {
        "benchmark": "orchestration_overhead",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "trials": args.trials, "epochs": EPOCHS, "concurrent": args.concurrent,
        "bare": {"wall_s": bare_s, "per_trial_s": per_bare, "rss_mib_quartiles": bare_mem.quartiles()},
        "ours": {"wall_s": ours_s, "per_trial_s": per_ours, "rss_mib_quartiles": ours_mem.quartiles(),
                 "report_s": report_s},
        "overhead": overhead,
        "within_target": overhead <= 0.10,
    }
    out = args.out or Path(__file__).parent / "results" / "orchestration_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
