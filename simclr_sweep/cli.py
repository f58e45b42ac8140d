"""`simclr-sweep`: run, resume, inspect and report SimCLR studies; train one configuration."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from simclr_sweep.study import NAME_PATTERN, load_study, load_study_in_child
from study_files.errors import EnvironmentFault, StudyFilesError, os_problem
from study_files.vocabulary import PROTOCOLS
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
    if args.name is not None and not NAME_PATTERN.fullmatch(args.name):  # refused before anything loads
        raise ConfigError("--name", f"must be letters, digits, '.', '_' or '-' (got {args.name!r})")
    # Ray, Optuna and the storage layer load only for the commands that run a study: validate stays light.
    from simclr_sweep.runner import run_study, study_dir_for
    from study_files import locations

    storage = locations.parse_location(args.storage, "--storage")
    locations.check_reachable(storage, "--storage")  # a bad bucket or endpoint fails before the study loads
    study = load_study_in_child(args.space)  # the driver never imports torch
    if args.name is not None:
        study = replace(study, name=args.name)
    args.study_location = study_dir_for(study, storage)  # what a Ctrl-C names for `resume`
    print(f"study {study.name}: {study.num_trials} trials, {study.max_concurrent} at a time, "
          f"storage {args.study_location}", flush=True)
    return _finished(run_study(study, storage, address=args.address, dashboard=args.dashboard))


def _study_dir(args: argparse.Namespace):
    """STUDY_DIR as a folder or a remote study's URI, checked reachable."""
    from study_files import locations  # pyarrow's filesystems: not for validate

    study_dir = locations.parse_location(args.study_dir, "STUDY_DIR")
    locations.check_reachable(study_dir, "STUDY_DIR")
    return study_dir


def cmd_resume(args: argparse.Namespace) -> int:
    from simclr_sweep.runner import resume_study  # Ray and Optuna: not for validate, report or status

    return _finished(resume_study(_study_dir(args), address=args.address, dashboard=args.dashboard))


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


def cmd_export(args: argparse.Namespace) -> int:
    from simclr_sweep.encoders import export  # torch, Ray's resume helpers: not for validate, report or status
    from trainers.evaluation.export import EncoderFileError
    from trainers.training.state import CheckpointError

    try:
        print(export(args.source, args.out, trial=args.trial, config=args.config))
    except (EncoderFileError, CheckpointError) as err:
        return _fail(str(err))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simclr_sweep.encoders import Evaluation, evaluate, labels_list  # torch: not for validate, report or status
    from trainers.evaluation.export import EncoderFileError
    from trainers.training.state import CheckpointError

    request = Evaluation(protocol=args.protocol, dataset=args.dataset, data_root=args.data_root,
                         download=args.download, dataset_size=args.dataset_size,
                         labels=labels_list(args.labels) if args.labels else Evaluation.labels,
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         file_list=args.file_list, test_list=args.test_list, num_classes=args.num_classes,
                         image_size=args.image_size, device=args.device)
    try:
        for line in evaluate(args.source, request, trial=args.trial, config=args.config, out=args.out):
            print(line, flush=True)
    except (EncoderFileError, CheckpointError) as err:
        return _fail(str(err))
    return 0


def _trial_choice(parser: argparse.ArgumentParser) -> None:
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--trial", help="best (default: the best configuration's best seed) or a trial id")
    choice.add_argument("--config", help="a config_id: that configuration's best-scoring trial")


def version() -> str:
    """The installed distribution's version (its metadata), as `--version` prints it."""
    try:
        return importlib.metadata.version("simclr-sweep")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _dashboard_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                         help="start a local Ray without its dashboard, and print no dashboard address")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simclr-sweep", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a study declared in a YAML file")
    run.add_argument("space", metavar="SPACE.yaml")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    run.add_argument("--storage", default="studies", help="folder (or s3:// URI) for study directories (default: ./studies)")
    run.add_argument("--name", help="study name (default: the file's name:)")
    _dashboard_flag(run)
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser("resume", help="continue an interrupted study")
    resume.add_argument("study_dir", metavar="STUDY_DIR", help="the study's folder, or its URI (s3://bucket/prefix/NAME)")
    resume.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    _dashboard_flag(resume)
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

    export = sub.add_parser("export", help="write a study's (or a train run's) encoder as a weights-only state dict")
    export.add_argument("source", metavar="STUDY_DIR|RUN_DIR", help="a study (folder or URI) or a `train` --out folder")
    _trial_choice(export)
    export.add_argument("--out", default="encoder.pt", help="the file to write (default: ./encoder.pt)")
    export.set_defaults(func=cmd_export)

    evaluate = sub.add_parser("evaluate", help="score an encoder by kNN, linear probe, fine-tuning or segmentation")
    evaluate.add_argument("source", metavar="ENCODER|STUDY_DIR|RUN_DIR",
                          help="an exported encoder file, a study (its best trial unless told), or a train run")
    _trial_choice(evaluate)
    evaluate.add_argument("--protocol", required=True, choices=PROTOCOLS)
    evaluate.add_argument("--dataset", help="data set to score on (default: the one the encoder trained on)")
    evaluate.add_argument("--data-root", help="where the data set's files are (default: the encoder's data_root)")
    evaluate.add_argument("--download", action="store_true", help="let torchvision download a missing data set")
    evaluate.add_argument("--dataset-size", type=int, help="training images to use (default: the encoder's)")
    evaluate.add_argument("--labels", nargs="+", help="finetune: fractions of the labels, e.g. 0.01 0.1 1.0 (default)")
    evaluate.add_argument("--epochs", type=int, help="finetune/segmentation: epochs (default 30)")
    evaluate.add_argument("--lr", type=float, help="finetune/segmentation: SGD learning rate (default 0.05)")
    evaluate.add_argument("--batch-size", type=int, help="finetune/segmentation: batch size (default 256)")
    evaluate.add_argument("--seed", type=int, help="seed of the label subset and training (default: the encoder's)")
    evaluate.add_argument("--file-list", help="segmentation: `image,labelmap` lines (paths relative to the list)")
    evaluate.add_argument("--test-list", help="segmentation: pairs to score on (default: a seeded 20%% of --file-list)")
    evaluate.add_argument("--num-classes", type=int, help="segmentation: classes (default: largest id in the maps + 1)")
    evaluate.add_argument("--image-size", type=int, help="segmentation: pairs resized to this square size (default 64)")
    evaluate.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: the encoder's device setting)")
    evaluate.add_argument("--out", help="also write the results to this JSON file")
    evaluate.set_defaults(func=cmd_evaluate)
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
