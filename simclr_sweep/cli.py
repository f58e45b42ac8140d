"""`simclr-sweep`: run, resume, inspect and report SimCLR studies; train one configuration."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from simclr_sweep.study import NAME_PATTERN, load_study, load_study_in_child
from study_files.errors import EnvironmentFault, StudyFilesError, os_problem
from trainers.checks import ConfigError

EXIT_USAGE = 2
EXIT_ENVIRONMENT = 1  # what the machine refused (storage, Ray), or a damaged study file
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _finished(outcome) -> int:
    """Print how a study ended and where its report is; a study whose every trial failed exits 1."""
    if outcome.interrupted:
        done = sum(n for s, n in outcome.counts.items() if s != "running")
        print(f"interrupted: {done} of {outcome.total} trials done; continue with "
              f"`simclr-sweep resume {outcome.study_dir}`")
        print(f"report (partial): {outcome.report}")
        return EXIT_INTERRUPTED
    counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.counts.items()))
    print(f"finished: {counts}")
    print(f"report: {outcome.report}")
    return 1 if outcome.counts and set(outcome.counts) == {"failed"} else 0


def cmd_validate(args: argparse.Namespace) -> int:
    study = load_study(args.space)
    params = ", ".join(study.parameters)
    repeats = f" x {study.seeds} seeds" if study.seeds > 1 else ""
    print(f"ok: {study.name}: {study.trials} trials{repeats} by {study.method} over {params}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # Ray, Optuna and the storage layer load only for the commands that run a study: validate stays light.
    from simclr_sweep.runner import run_study, study_dir_for
    from study_files import locations

    study = load_study_in_child(args.space)  # the driver never imports torch
    if args.name is not None:
        if not NAME_PATTERN.fullmatch(args.name):
            raise ConfigError("--name", f"must be letters, digits, '.', '_' or '-' (got {args.name!r})")
        study = replace(study, name=args.name)
    storage = locations.parse_location(args.storage, "--storage")
    locations.check_reachable(storage, "--storage")  # a bad bucket or endpoint fails before Ray starts
    args.study_location = study_dir_for(study, storage)  # what a Ctrl-C names for `resume`
    print(f"study {study.name}: {study.num_trials} trials, {study.max_concurrent} at a time, "
          f"storage {study_dir_for(study, storage)}", flush=True)
    return _finished(run_study(study, storage, address=args.address))


def _study_dir(args: argparse.Namespace):
    """STUDY_DIR as a folder or a remote study's URI, checked reachable."""
    from study_files import locations  # pyarrow's filesystems: not for validate

    study_dir = locations.parse_location(args.study_dir, "STUDY_DIR")
    locations.check_reachable(study_dir, "STUDY_DIR")
    return study_dir


def cmd_resume(args: argparse.Namespace) -> int:
    from simclr_sweep.runner import resume_study  # Ray and Optuna: not for validate, report or status

    return _finished(resume_study(_study_dir(args), address=args.address))


def cmd_report(args: argparse.Namespace) -> int:
    from reports.report import build_report  # lazy: plotly and pandas load only for the command that draws
    from study_files.declaration import not_a_study
    from study_files.locations import StudyFiles, storage_errors
    from study_files.vocabulary import STUDY_FILE

    study_dir = _study_dir(args)
    files = StudyFiles(study_dir)
    with storage_errors(study_dir, "STUDY_DIR"):
        # The tables alone are enough (a copy on a laptop); study.yaml only adds the declaration.
        if not files.is_file("tables/trials.parquet"):
            if not files.is_file(STUDY_FILE):
                raise not_a_study(study_dir, STUDY_FILE, "tables/trials.parquet")
            return _fail(f"{study_dir}: no tables/trials.parquet yet; the study has recorded no trial")
        print(build_report(study_dir))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from simclr_sweep.status import study_status  # lazy: pandas and pyarrow load only for the command that reads tables

    print(study_status(_study_dir(args)))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.training.standalone import train_main  # torch: not for validate, report or status

    return train_main(Path(args.config), Path(args.out), resume=args.resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simclr-sweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a study declared in a YAML file")
    run.add_argument("space", metavar="SPACE.yaml")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    run.add_argument("--storage", default="studies", help="folder (or s3:// URI) for study directories (default: ./studies)")
    run.add_argument("--name", help="study name (default: the file's name:)")
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser("resume", help="continue an interrupted study")
    resume.add_argument("study_dir", metavar="STUDY_DIR", help="the study's folder, or its URI (s3://bucket/prefix/NAME)")
    resume.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    resume.set_defaults(func=cmd_resume)

    status = sub.add_parser("status", help="trials by status, best so far, what is running")
    status.add_argument("study_dir", metavar="STUDY_DIR", help="the study's folder, or its URI (s3://bucket/prefix/NAME)")
    status.set_defaults(func=cmd_status)

    report = sub.add_parser("report", help="write report/index.html from the study's tables")
    report.add_argument("study_dir", metavar="STUDY_DIR", help="the study's folder, or its URI (s3://bucket/prefix/NAME)")
    report.set_defaults(func=cmd_report)

    validate = sub.add_parser("validate", help="check a study declaration without running it")
    validate.add_argument("space", metavar="SPACE.yaml")
    validate.set_defaults(func=cmd_validate)

    train = sub.add_parser("train", help="train one configuration without Ray (torchrun-able)")
    train.add_argument("config", metavar="CONFIG.yaml")
    train.add_argument("--out", default="train-out", help="folder for checkpoints and metrics.json")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EnvironmentFault as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except (ConfigError, StudyFilesError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        where = getattr(args, "study_location", None) or (args.study_dir if args.command == "resume" else None)
        resumable = where is not None and (not isinstance(where, Path) or (where / "study.yaml").is_file())
        hint = f"; continue with `simclr-sweep resume {where}`" if resumable else ""
        signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))  # another Ctrl-C during cleanup: at once
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:  # the machine refused a file the layers below did not name
        print(f"error: {os_problem(err.filename or '.', err)}", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
