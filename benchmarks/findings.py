"""The SimCLR paper's qualitative findings at CPU scale: does each hold on the generated shapes set?

Runs the four miniature studies of search_spaces/ (shapes-crop-colour, shapes-projection-head,
shapes-loss, shapes-colour-strength) with ``simclr-sweep run`` into --storage, or reads study
folders already run, given on the command line (each is matched by its folder's name). For each
comparison a finding makes it prints a row: the paper's result, each arm's mean with its 95%
t-interval over seeds, the difference the finding is about with its 95% t-interval, and the verdict:
holds (the interval lies above 0), does not hold (below 0) or inconclusive (it straddles 0).
Arms are paired by seed: the trials of one seed share their generated data set and initial
weights, so the difference is taken seed by seed. A finding holds when each of its comparisons
does, and does not hold when any is reversed. Writes findings.json and findings.md to --results.

    python benchmarks/findings.py [--storage studies] [STUDY_DIR ...] [--results benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from reports.stats import MeanCI, mean_ci  # noqa: E402
from study_files.best import scored_trials  # noqa: E402
from study_files.schema import PARAM_PREFIX  # noqa: E402
from study_files.tables import StudyTables  # noqa: E402

METRIC = "knn_top1"  # every miniature's metric: kNN top-1 on h


@dataclass(frozen=True)
class Arm:
    """Trials whose parameters are ``params``; with ``minus``, each seed's gain from ``minus`` to ``params``."""

    label: str
    params: Mapping[str, Any]
    minus: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Comparison:
    """The claim mean(a) > mean(b)."""

    a: Arm
    b: Arm


@dataclass(frozen=True)
class Finding:
    key: str
    study: str
    claim: str
    paper: str
    comparisons: tuple[Comparison, ...] = field(default_factory=tuple)


CROP = Arm("crop", {"augmentations": "crop"})
COLOUR = Arm("colour", {"augmentations": "color_jitter,grayscale"})
CROP_COLOUR = Arm("crop + colour", {"augmentations": "color_jitter,crop,grayscale"})
HEADS = {name: Arm(f"{name} head", {"head": name}) for name in ("nonlinear", "linear", "none")}
LOSSES = {name: Arm(label, {"loss": name}) for name, label in
          (("nt_xent", "NT-Xent"), ("nt_logistic", "NT-Logistic (sh)"), ("margin_triplet", "margin triplet (sh)"))}


def _gain(objective: str, label: str) -> Arm:
    return Arm(f"{label}: strength 1 - 1/8", {"objective": objective, "color_jitter.strength": 1.0},
               minus={"objective": objective, "color_jitter.strength": 0.125})


FINDINGS = (
    Finding("a", "shapes-crop-colour", "crop + colour beats crop alone and colour alone",
            "Figure 5: crop composed with colour distortion stands out; neither alone is enough",
            (Comparison(CROP_COLOUR, CROP), Comparison(CROP_COLOUR, COLOUR))),
    Finding("b", "shapes-projection-head", "nonlinear > linear > no head, on h",
            "Figure 8: nonlinear beats linear by about 3%, linear beats none by more than 10%",
            (Comparison(HEADS["nonlinear"], HEADS["linear"]), Comparison(HEADS["linear"], HEADS["none"]))),
    Finding("c", "shapes-loss", "NT-Xent beats NT-Logistic and margin triplet",
            "Table 4: NT-Xent 63.9 vs NT-Logistic (sh) 51.6 and margin triplet (sh) 57.5",
            (Comparison(LOSSES["nt_xent"], LOSSES["nt_logistic"]),
             Comparison(LOSSES["nt_xent"], LOSSES["margin_triplet"]))),
    Finding("d", "shapes-colour-strength", "stronger colour helps SimCLR more than supervised training",
            "Table 1: 1/8 -> 1 takes SimCLR 59.6 -> 63.2 (+3.6), supervised 77.0 -> 76.3 (-0.7)",
            (Comparison(_gain("simclr", "SimCLR"), _gain("supervised", "supervised")),)),
)


def _by_seed(scored: pd.DataFrame, params: Mapping[str, Any]) -> pd.Series:
    """Each seed's score among the trials with these parameters (the mean, should a seed repeat)."""
    mask = pd.Series(True, index=scored.index)
    for name, value in params.items():
        column = PARAM_PREFIX + name
        if column not in scored:
            raise SystemExit(f"error: the study has no {column} column; is it the {name} study?")
        mask &= scored[column] == value
    return scored[mask].groupby("seed")["score"].mean()


def arm_values(scored: pd.DataFrame, arm: Arm) -> pd.Series:
    """The arm's value for each seed: its score, or its gain over ``minus`` on that seed."""
    values = _by_seed(scored, arm.params)
    if arm.minus is not None:
        values = values - _by_seed(scored, arm.minus)
    return values.dropna()


def verdict(ci: MeanCI) -> str:
    if ci.n < 2 or math.isnan(ci.lo):
        return "inconclusive"
    if ci.lo > 0:
        return "holds"
    if ci.hi < 0:
        return "does not hold"
    return "inconclusive"


def _ci(ci: MeanCI) -> dict[str, float]:
    return {"n": ci.n, "mean": ci.mean, "lo": ci.lo, "hi": ci.hi}


def assess(finding: Finding, study_dir: Path) -> dict[str, Any]:
    """The finding's comparisons on one study's tables, with a verdict for each and for the whole."""
    scored = scored_trials(StudyTables(study_dir).read_trials(), METRIC, maximize=True)
    rows = []
    for comparison in finding.comparisons:
        a, b = arm_values(scored, comparison.a), arm_values(scored, comparison.b)
        seeds = a.index.intersection(b.index)
        diff = mean_ci((a[seeds] - b[seeds]).to_numpy(float))
        rows.append({"a": comparison.a.label, "b": comparison.b.label, "seeds": [int(s) for s in seeds],
                     "arm_a": _ci(mean_ci(a.to_numpy(float))), "arm_b": _ci(mean_ci(b.to_numpy(float))),
                     "difference": _ci(diff), "verdict": verdict(diff)})
    verdicts = [row["verdict"] for row in rows]
    overall = ("does not hold" if "does not hold" in verdicts
               else "holds" if all(v == "holds" for v in verdicts) else "inconclusive")
    return {"finding": finding.key, "claim": finding.claim, "paper": finding.paper, "study": finding.study,
            "study_dir": str(study_dir), "comparisons": rows, "verdict": overall,
            "command": f"simclr-sweep run search_spaces/{finding.study}.yaml --storage studies && "
                       f"python benchmarks/findings.py studies/{finding.study}"}


def _interval(ci: Mapping[str, float], scale: float = 100.0) -> str:
    if ci["n"] < 2:
        return f"{ci['mean'] * scale:.1f} (n={ci['n']})"
    return f"{ci['mean'] * scale:.1f} [{ci['lo'] * scale:.1f}, {ci['hi'] * scale:.1f}]"


def markdown(results: list[dict[str, Any]], meta: Mapping[str, Any]) -> str:
    lines = ["# The paper's findings at CPU scale", "",
             f"kNN top-1 on h (%), mean [95% t-interval] over seeds; the difference is taken seed by seed. "
             f"Command: `{meta['command']}`.", "",
             "| finding | paper | ours: a | ours: b | a - b | verdict | reproduce |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        for row in result["comparisons"]:
            lines.append(f"| ({result['finding']}) {row['a']} > {row['b']} | {result['paper']} | "
                         f"{row['a']}: {_interval(row['arm_a'])} | {row['b']}: {_interval(row['arm_b'])} | "
                         f"{_interval(row['difference'])} | {row['verdict']} | `{result['command']}` |")
    lines += ["", "| finding | verdict |", "| --- | --- |"]
    lines += [f"| ({r['finding']}) {r['claim']} | {r['verdict']} |" for r in results]
    return "\n".join(lines) + "\n"


def _print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'finding':<64} {'a':>18} {'b':>18} {'a - b':>20}  verdict")
    for result in results:
        for row in result["comparisons"]:
            name = f"({result['finding']}) {row['a']} > {row['b']}"
            print(f"{name:<64} {_interval(row['arm_a']):>18} {_interval(row['arm_b']):>18} "
                  f"{_interval(row['difference']):>20}  {row['verdict']}")
        print(f"{'':<64} paper: {result['paper']}")
    for result in results:
        print(f"({result['finding']}) {result['claim']}: {result['verdict']}")


def _run(study: str, storage: Path) -> tuple[Path, float | None]:
    """Run one miniature with the CLI (or keep the folder a previous run left) and return it."""
    study_dir = storage / study
    if (study_dir / "tables" / "trials.parquet").exists():
        return study_dir, None
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "run", str(ROOT / "search_spaces" / f"{study}.yaml"),
                           "--storage", str(storage), "--no-dashboard"], cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"error: simclr-sweep run {study} exited {proc.returncode}; see its output above")
    return study_dir, round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dirs", nargs="*", type=Path, help="study folders already run (default: run all four)")
    parser.add_argument("--storage", type=Path, default=Path("studies"), help="where the studies run (default studies)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    by_name = {finding.study: finding for finding in FINDINGS}
    walls: dict[str, float | None] = {}  # None: a folder a previous run left
    if args.study_dirs:
        given = {}
        for study_dir in args.study_dirs:
            if study_dir.name not in by_name:
                print(f"error: {study_dir}: not a miniature study folder; expected one named "
                      f"{', '.join(by_name)}", file=sys.stderr)
                return 2
            if not (study_dir / "tables" / "trials.parquet").exists():
                print(f"error: {study_dir}: no tables/trials.parquet; run the study first", file=sys.stderr)
                return 2
            given[study_dir.name] = study_dir
        dirs = given
    else:
        dirs = {}
        for finding in FINDINGS:
            dirs[finding.study], walls[finding.study] = _run(finding.study, args.storage.resolve())
    results = [assess(by_name[name], dirs[name]) for name in by_name if name in dirs]
    command = "python benchmarks/findings.py " + " ".join(str(d) for d in args.study_dirs) \
        if args.study_dirs else f"python benchmarks/findings.py --storage {args.storage}"
    meta = {"command": command.strip(), "metric": METRIC, "study_wall_s": walls,
            "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                        "python": platform.python_version()}}
    _print_table(results)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "findings.json").write_text(json.dumps({"benchmark": "findings", **meta, "findings": results},
                                                           indent=2, default=_json_default) + "\n")
    (args.results / "findings.md").write_text(markdown(results, meta))
    print(f"wrote {args.results / 'findings.json'} and {args.results / 'findings.md'}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
