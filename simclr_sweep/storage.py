"""Where a study lives: a local folder, or a URI (``s3://bucket/prefix/<study>``) every node reaches.

A location is a ``Path`` for a local study and a ``str`` URI for a remote one; everything that
takes a study directory takes either. For a remote study:

- ``study.yaml``, ``tables/``, ``report/`` are written through ``reports.tables.StudyFiles``
  (pyarrow filesystems), and Ray Tune writes its experiments (``tune/``, ``tune-resume-<k>/``) and
  checkpoints there itself (``RunConfig(storage_path, storage_filesystem)``);
- Optuna's journal (``JournalFileBackend``) needs a local POSIX file, so the driver keeps it in
  ``<cache>/<bucket>/<prefix>/<study>/optuna.journal`` (``<cache>`` is
  ``$SIMCLR_SWEEP_CACHE``, else ``$XDG_CACHE_HOME/simclr-sweep``, else ``~/.cache/simclr-sweep``)
  and `JournalMirror` copies it to ``<uri>/optuna.journal`` after it changes; `resume` brings the
  copy back first;
- checkpoints a resume continues from are read from the URI (the driver looks at them in its
  cache; a trial downloads its own).

S3 follows the standard AWS environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``, credentials);
see ``reports.tables.remote_filesystem``. A location that cannot be used is a `ConfigError`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from reports.tables import StudyFiles, is_remote, remote_filesystem
from trainers.checks import ConfigError

Location = Path | str
JOURNAL_FILE = "optuna.journal"
STUDY_FILE = "study.yaml"


def parse_location(text: str | os.PathLike[str], what: str = "--storage") -> Location:
    """A command-line folder or URI as a location: a URI stays a string (its form checked here,
    its reachability by `check_reachable`), anything else is a Path. ``what`` names the argument."""
    if isinstance(text, os.PathLike):
        return Path(text)
    text = str(text)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if "://" not in text:
        return Path(text)
    if not is_remote(text):
        raise ConfigError(what, f"{text!r} is neither a folder nor a URI such as s3://bucket/prefix")
    scheme, _, rest = text.partition("://")
    if not rest.strip("/"):
        raise ConfigError(what, f"{text}: names no bucket; give a folder or a URI such as s3://bucket/prefix")
    uri = f"{scheme}://{rest.rstrip('/')}"
    if scheme.lower() == "s3":  # checked here without the network (pyarrow may ask S3 for the bucket's region)
        if rest.startswith("/"):
            raise ConfigError(what, f"{uri}: an s3 URI names a bucket, as in s3://bucket/prefix; "
                                   "give a folder or a URI such as s3://bucket/prefix")
        return uri
    try:
        remote_filesystem(uri)
    except ValueError as err:
        raise ConfigError(what, f"{err}; give a folder or a URI such as s3://bucket/prefix") from None
    except OSError as err:
        raise ConfigError(what, storage_problem(uri, err)) from None
    return uri


def as_location(location: str | os.PathLike[str]) -> Location:
    """A location as the functions here take it: a remote URI as a str, anything else as a Path."""
    return location.rstrip("/") if isinstance(location, str) and is_remote(location) else Path(location)


def child(location: Location, name: str) -> Location:
    """``location/name`` for a folder or a URI."""
    location = as_location(location)
    if isinstance(location, Path):
        return location / name
    return f"{location.rstrip('/')}/{name}"


def name_of(location: Location) -> str:
    location = as_location(location)
    return location.name if isinstance(location, Path) else location.rstrip("/").rsplit("/", 1)[-1]


def _bucket(uri: str) -> str:
    return uri.partition("://")[2].split("/", 1)[0]


def _credentials_visible() -> bool:
    """Whether AWS credentials appear anywhere the SDK looks first (an instance role is not seen)."""
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True
    home = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")
    return home.exists() or Path(os.environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config").exists()


def storage_problem(uri: str, err: BaseException) -> str:
    """One line saying why ``uri`` cannot be used, and what would be right."""
    text = str(err)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    upper = text.upper()
    scheme = uri.partition("://")[0].lower()
    if "NO_SUCH_BUCKET" in upper or "NOSUCHBUCKET" in upper or "BUCKET DOES NOT EXIST" in upper:
        return f"{uri}: bucket {_bucket(uri)!r} does not exist; create it, or give one that does (s3://BUCKET/PREFIX)"
    if any(k in upper for k in ("ACCESS_DENIED", "ACCESSDENIED", "INVALIDACCESSKEYID", "SIGNATUREDOESNOTMATCH",
                                "EXPIREDTOKEN", "FORBIDDEN", "HTTP STATUS 403", "CREDENTIALS")):
        found = "" if _credentials_visible() else " (none found)"
        return (f"{uri}: access denied; set AWS credentials{found} that may read and write it "
                f"(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
    if any(k in upper for k in ("NETWORK_CONNECTION", "COULD NOT CONNECT", "RESOLVE HOST", "TIMED OUT", "TIMEOUT")):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        where = f"the endpoint {endpoint} (AWS_ENDPOINT_URL)" if endpoint else f"the {scheme} service"
        return f"{uri}: cannot reach {where}; check the address and the network ({first})"
    return f"{uri}: cannot be used ({first})"


@contextlib.contextmanager
def storage_errors(location: Location, what: str) -> Iterator[None]:
    """Turn a remote filesystem's failure into a one-line `ConfigError` naming ``what``."""
    location = as_location(location)
    if isinstance(location, Path):
        yield
        return
    try:
        yield
    except (OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(what, storage_problem(location, err)) from None


def check_reachable(location: Location, what: str) -> None:
    """List the location once, so a bad bucket, endpoint or credentials fail before anything starts."""
    location = as_location(location)
    if isinstance(location, Path):
        return
    from pyarrow import fs as pafs

    files = StudyFiles(location)
    with storage_errors(location, what):
        bucket = files.fs_path().split("/", 1)[0]
        if files.filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise OSError("NoSuchBucket: the bucket does not exist")
        files.list("")


def read_declaration(study_dir: Location, what: str = "STUDY_DIR") -> str:
    """The text of a study's frozen ``study.yaml``; a `ConfigError` when it is not a study."""
    files = StudyFiles(study_dir)
    with storage_errors(study_dir, what):
        if files.is_file(STUDY_FILE):
            return files.read_text(STUDY_FILE)
    raise ConfigError(str(study_dir), f"not a study directory (no {STUDY_FILE}); give the folder `simclr-sweep run` created")


def prepare_remote(study_dir: str, declaration: str) -> None:
    """Claim ``<uri>`` for a new study: refuse one already used, write ``study.yaml``, and forget what
    the driver's cache may hold from an earlier study at the same URI."""
    files = StudyFiles(study_dir)
    with storage_errors(study_dir, "--storage"):
        if files.list(""):
            raise ConfigError(study_dir, "already holds a study; continue it with `simclr-sweep resume "
                                        f"{study_dir}` or start a new one with --name")
        files.write_text(STUDY_FILE, declaration)
    shutil.rmtree(cache_dir(study_dir), ignore_errors=True)


def cache_dir(uri: str) -> Path:
    """The driver's local folder for a remote study: ``<cache>/<bucket>/<prefix>/<study>``."""
    base = os.environ.get("SIMCLR_SWEEP_CACHE")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simclr-sweep")
    parts = [p for p in uri.partition("://")[2].split("/") if p not in ("", ".", "..")]
    return Path(base, *parts)


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

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

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
        self.local.parent.mkdir(parents=True, exist_ok=True)
        try:
            local = self.local.read_bytes()
        except FileNotFoundError:
            local = None
        if local is not None and len(local) >= len(remote) and local.startswith(remote):
            return
        tmp = self.local.with_name(f".{self.local.name}.tmp")
        tmp.write_bytes(remote)
        os.replace(tmp, self.local)


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


def list_names(study_dir: Location, rel: str = "") -> list[str]:
    """Names directly under ``study_dir/rel`` ([] when there is no such folder)."""
    return StudyFiles(study_dir).list(rel)


def checkpoint_files(study_dir: Location, trial_id: str, filename: str) -> list[tuple[Location, Path, float]]:
    """Every ``tune*/trial-<id>/checkpoint_*/<filename>`` a trial left: (where it is, a local file to
    read, modification time). A remote study's files are read through copies in the driver's cache."""
    study_dir = as_location(study_dir)
    if isinstance(study_dir, Path):
        local_found: list[tuple[Location, Path, float]] = []
        for path in study_dir.glob(f"tune*/trial-{trial_id}/checkpoint_*/{filename}"):
            try:
                local_found.append((path, path, path.stat().st_mtime))
            except FileNotFoundError:
                continue
        return local_found
    from pyarrow import fs as pafs

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
            local = cache_dir(study_dir) / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(files.read_bytes(rel))
            found.append((files.location(rel), local, (info.mtime_ns or 0) / 1e9))
    return found


def fetch_file(uri: str, target: Path) -> Path:
    """Download one remote file to ``target``; returns ``target``."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(StudyFiles(parent).read_bytes(name))
    return target
