"""Finding the checkpoints a trial left: ``tune*/trial-<id>/checkpoint_*/trainer.pt``, local or remote."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from study_files import atomic
from study_files.locations import Location, StudyFiles, as_location, cache_dir
from study_files.vocabulary import CHECKPOINT_FILE


def checkpoint_files(study_dir: Location, trial_id: str, filename: str = CHECKPOINT_FILE
                     ) -> list[tuple[Location, Path, float]]:
    """Every ``tune*/trial-<id>/checkpoint_*/<filename>`` a trial left: (where it is, a local file to
    read, modification time). A remote study's files are read through copies in `cache_dir`."""
    study_dir = as_location(study_dir)
    if isinstance(study_dir, Path):
        local_found: list[tuple[Location, Path, float]] = []
        for path in study_dir.glob(f"tune*/trial-{trial_id}/checkpoint_*/{filename}"):
            try:
                local_found.append((path, path, path.stat().st_mtime))
            except FileNotFoundError:
                continue
        return local_found
    files = StudyFiles(study_dir)
    found: list[tuple[Location, Path, float]] = []
    for experiment in files.list(""):
        if not experiment.startswith("tune"):
            continue
        trial = f"{experiment}/trial-{trial_id}"
        for checkpoint in files.list(trial):
            if not checkpoint.startswith("checkpoint_"):
                continue
            rel = f"{trial}/{checkpoint}/{filename}"
            info = files.filesystem.get_file_info(files.fs_path(rel))
            if info.type != pafs.FileType.File:
                continue
            local = atomic.write_bytes(cache_dir(study_dir) / rel, files.read_bytes(rel))
            found.append((files.location(rel), local, (info.mtime_ns or 0) / 1e9))
    return found


def fetch_file(uri: str, target: Path) -> Path:
    """Download one remote file to ``target``; returns ``target``."""
    return atomic.write_bytes(target, read_file(uri))


def read_file(location: Location) -> bytes:
    """The bytes of one file named by a local path or a remote URI (a checkpoint `checkpoint_files` found)."""
    location = as_location(location)
    if isinstance(location, Path):
        return location.read_bytes()
    parent, _, name = location.rpartition("/")
    return StudyFiles(parent).read_bytes(name)
