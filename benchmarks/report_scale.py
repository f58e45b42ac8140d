"""How the report scales: synthetic tables of 1,000 trials x 100 epochs, built on one core.

Prints a table and writes benchmarks/results/report_scale.json. Targets: build < 5 s, page < 10 MB.
The build time is the median of the repeats; the first build is reported too, as it also pays for
importing optuna and scikit-learn (parameter importance by fANOVA, on a seeded sample of 300 trials).
Baselines measured in the same run: reading the tables alone, and plotly's plain route for the
learning curves (one trace per trial with every epoch, ``to_html`` with plotly.js inlined).

    .venv/bin/python benchmarks/report_scale.py [--trials 1000] [--epochs 100] [--repeats 3]
"""
from __future__ import annotations

import os

# One core, one thread: the target is for a laptop core, not for a BLAS thread pool.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "reports")]

import plotly.graph_objects as go  # noqa: E402

from reports.report import build_report  # noqa: E402
from study_files.tables import StudyTables  # noqa: E402
from synthetic_study import make_study  # noqa: E402

TARGET_S = 5.0
TARGET_MB = 10.0


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median wall time of ``repeats`` calls, the first call's time, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times[0], result


def plain_plotly_curves(study_dir: Path, out: Path) -> Path:
    """The straightforward route: one go.Scatter per trial, all epochs, plotly.js inlined."""
    epochs = StudyTables(study_dir).read_epochs()
    fig = go.Figure([go.Scatter(x=g["epoch"], y=g["knn_top1"], mode="lines", name=t)
                     for t, g in epochs.groupby("trial_id")])
    out.write_text(fig.to_html(include_plotlyjs=True, full_html=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report_scale.json")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
        study = Path(tmp) / "study"
        start = time.perf_counter()
        # every trial runs all epochs (the heaviest case) but one diverged and one failed
        statuses = ["completed"] * (args.trials - 2) + ["diverged", "failed"]
        make_study(study, configs=args.trials // 2, seeds=2, epochs=args.epochs, trials_per_part=50,
                   name="report-scale", statuses=statuses)
        generate_s = time.perf_counter() - start
        tables = StudyTables(study)
        read_s, _, _ = timed(lambda: (tables.read_trials(), tables.read_epochs()), args.repeats)
        build_s, first_build_s, page = timed(lambda: build_report(study), args.repeats)
        plain_s, _, plain = timed(lambda: plain_plotly_curves(study, Path(tmp) / "plain.html"), args.repeats)
        importance = re.search(r"Estimated by (.*?); ", page.read_text()).group(1)
        rows = len(tables.read_epochs())
        result = {
            "trials": args.trials, "epochs": args.epochs, "epoch_rows": rows, "repeats": args.repeats,
            "generate_tables_s": round(generate_s, 3),
            "baseline_read_tables_s": round(read_s, 3),
            "baseline_plain_plotly_curves_s": round(plain_s, 3),
            "baseline_plain_plotly_curves_mb": round(plain.stat().st_size / 1e6, 2),
            "build_report_s": round(build_s, 3),
            "first_build_report_s": round(first_build_s, 3),
            "importance_method": importance,
            "report_mb": round(page.stat().st_size / 1e6, 2),
            "target_build_s": TARGET_S, "target_mb": TARGET_MB,
            "meets_targets": max(build_s, first_build_s) < TARGET_S and page.stat().st_size / 1e6 < TARGET_MB,
            "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                        "cores_used": 1},
        }
    _print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _print_table(r: dict) -> None:
    print(f"report scale: {r['trials']} trials x {r['epochs']} epochs ({r['epoch_rows']:,} epoch rows), "
          f"median of {r['repeats']}, one core")
    print(f"{'what':<46}{'seconds':>10}{'MB':>8}")
    print(f"{'baseline: read trials + epochs tables':<46}{r['baseline_read_tables_s']:>10.3f}{'':>8}")
    print(f"{'baseline: plain plotly curves (1 trace/trial)':<46}{r['baseline_plain_plotly_curves_s']:>10.3f}"
          f"{r['baseline_plain_plotly_curves_mb']:>8.2f}")
    print(f"{'build_report (whole page)':<46}{r['build_report_s']:>10.3f}{r['report_mb']:>8.2f}")
    print(f"{'build_report, first call (imports optuna)':<46}{r['first_build_report_s']:>10.3f}{'':>8}")
    print(f"parameter importance: {r['importance_method']}")
    print(f"targets: < {r['target_build_s']} s, < {r['target_mb']} MB -> "
          f"{'met' if r['meets_targets'] else 'NOT met'}")


if __name__ == "__main__":
    main()
