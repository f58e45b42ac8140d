"""What only the runner knows of a remote study (``s3://...``): where Tune and Optuna keep their files.

- Ray Tune writes its experiments (``tune/``, ``tune-resume-<k>/``) and checkpoints at the study's
  location itself (`tune_storage` gives ``RunConfig(storage_path, storage_filesystem)``);
- Optuna's journal (``JournalFileBackend``) needs a local POSIX file, so the driver keeps it in
  ``study_files.locations.cache_dir(uri)/optuna.journal`` and `JournalMirror` copies it to
  ``<uri>/optuna.journal`` after it changes; `resume` brings the copy back first.

Everything else of a study's files (locations, the tables, checkpoints, the declaration) is
`study_files`'.
"""

from __future__ import annotations

import sys
from pathlib import Path

from study_files import atomic
from study_files.errors import storage_problem
from study_files.locations import Location, StudyFiles, as_location, cache_dir
from study_files.vocabulary import JOURNAL_FILE


def journal_path(study_dir: Location) -> Path:
    """The local file Optuna's JournalStorage appends to (for a remote study, the driver's copy)."""
    study_dir = as_location(study_dir)
    if isinstance(study_dir, Path):
        return study_dir / JOURNAL_FILE
    return cache_dir(study_dir) / JOURNAL_FILE


class JournalMirror:
    """Keeps ``<uri>/optuna.journal`` a copy of the driver's local journal.

    `sync()` uploads the file when it has changed since the last upload (it is cheap to call at every
    Tune event); `fetch()` brings the remote copy down before a resume. Picklable (Tune pickles the
    callbacks that hold it).
    """

    def __init__(self, study_dir: str):
        self.study_dir = study_dir
        self.local = journal_path(study_dir)
        self._synced: tuple[int, int] | None = None
        self._warned = False

    def sync(self) -> bool:
        """Upload the journal if it changed; a failed upload is retried at the next call. Returns
        whether it uploaded."""
        try:
            stat = self.local.stat()
        except FileNotFoundError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._synced:
            return False
        data = self.local.read_bytes()
        data = data[: data.rfind(b"\n") + 1]  # whole records only
        try:
            StudyFiles(self.study_dir).write_bytes(JOURNAL_FILE, data)
        except OSError as err:
            if not self._warned:
                print(f"warning: {storage_problem(self.study_dir, err)}; the journal upload is retried",
                      file=sys.stderr, flush=True)
                self._warned = True
            return False
        self._synced = stamp
        return True

    def fetch(self) -> None:
        """Bring ``<uri>/optuna.journal`` down into the local file. The journal only grows, so a
        local copy that extends the remote one (an upload the killed driver never made) is kept."""
        files = StudyFiles(self.study_dir)
        try:
            remote = files.read_bytes(JOURNAL_FILE)
        except FileNotFoundError:
            remote = b""
        try:
            local = self.local.read_bytes()
        except FileNotFoundError:
            local = None
        if local is not None and len(local) >= len(remote) and local.startswith(remote):
            return
        atomic.write_bytes(self.local, remote)


def journal_mirror(study_dir: Location) -> JournalMirror | None:
    study_dir = as_location(study_dir)
    return None if isinstance(study_dir, Path) else JournalMirror(study_dir)


def tune_storage(study_dir: Location) -> dict:
    """`RunConfig` arguments that put Tune's experiments in the study's folder."""
    study_dir = as_location(study_dir)
    if isinstance(study_dir, Path):
        return {"storage_path": str(study_dir)}
    files = StudyFiles(study_dir)
    return {"storage_path": files.fs_path(), "storage_filesystem": files.filesystem}
