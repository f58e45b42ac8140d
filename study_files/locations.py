"""Where a study's files live: a local folder, or a URI (``s3://bucket/prefix/<study>``) every node reaches.

A location is a ``Path`` for a local study and a ``str`` URI for a remote one; everything that
takes a study directory takes either. `StudyFiles` reads and writes a study's files by their path
relative to the study folder, the same way for both: a local write goes through `study_files.atomic`
(aside, then renamed), a remote one is one PUT of complete bytes (an object store never shows half
an object). S3 follows the standard AWS environment (see `remote_filesystem`).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study_files import atomic
from study_files.errors import EnvironmentFault, StudyFilesError, damaged_table, storage_problem

_REMOTE_READS = 5  # an object replaced between S3's size lookup and its ranged GET reads torn: read it again

Location = Path | str


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether a study location is a URI of a remote filesystem (``s3://...``), not a local path.

    A ``pathlib.Path`` is always local (``Path("s3://b")`` has already lost the URI); ``file://``
    URIs are local too.
    """
    if isinstance(location, os.PathLike):
        return False
    scheme, sep, _ = str(location).partition("://")
    return bool(sep) and scheme.lower() != "file" and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) is not None


def remote_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The ``pyarrow.fs`` filesystem of a remote URI and the path on it (no scheme, no end slash).

    ``s3://`` follows the standard AWS environment: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``
    (an S3-compatible server such as MinIO or moto), ``AWS_REGION`` or ``AWS_DEFAULT_REGION``;
    credentials come from AWS's own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_PROFILE`` and ``~/.aws``, an instance role). Other schemes go to
    ``pyarrow.fs.FileSystem.from_uri`` as they are. Raises ``ValueError`` for a URI it cannot use.
    """
    scheme, _, rest = uri.partition("://")
    if scheme.lower() == "s3" and "?" not in rest:
        path = rest.strip("/")
        if not path or rest.startswith("/"):
            raise ValueError(f"{uri}: an s3 URI names a bucket, as in s3://bucket/prefix")
        options: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if endpoint:
            options["endpoint_override"] = endpoint
            options["region"] = region or "us-east-1"
        elif region:
            options["region"] = region
        if options:
            return pafs.S3FileSystem(**options), path
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as err:
        raise ValueError(f"{uri}: not a URI pyarrow can open ({str(err).splitlines()[0]})") from None
    return fs, path.rstrip("/")


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
        raise StudyFilesError(what, f"{text!r} is neither a folder nor a URI such as s3://bucket/prefix")
    scheme, _, rest = text.partition("://")
    if not rest.strip("/"):
        raise StudyFilesError(what, f"{text}: names no bucket; give a folder or a URI such as s3://bucket/prefix")
    uri = f"{scheme}://{rest.rstrip('/')}"
    if scheme.lower() == "s3":  # checked here without the network (pyarrow may ask S3 for the bucket's region)
        if rest.startswith("/"):
            raise StudyFilesError(what, f"{uri}: an s3 URI names a bucket, as in s3://bucket/prefix; "
                                        "give a folder or a URI such as s3://bucket/prefix")
        return uri
    try:
        remote_filesystem(uri)
    except ValueError as err:
        raise StudyFilesError(what, f"{err}; give a folder or a URI such as s3://bucket/prefix") from None
    except OSError as err:
        raise StudyFilesError(what, storage_problem(uri, err)) from None
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


def cache_dir(uri: str) -> Path:
    """This machine's folder for local copies of a remote study's files: ``<cache>/<bucket>/<prefix>/<study>``.

    ``<cache>`` is ``$SIMCLR_SWEEP_CACHE``, else ``$XDG_CACHE_HOME/simclr-sweep``, else ``~/.cache/simclr-sweep``.
    """
    base = os.environ.get("SIMCLR_SWEEP_CACHE")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simclr-sweep")
    parts = [p for p in uri.partition("://")[2].split("/") if p not in ("", ".", "..")]
    return Path(base, *parts)


@contextlib.contextmanager
def storage_errors(location: Location, what: str) -> Iterator[None]:
    """Turn a remote filesystem's failure into a one-line `StudyFilesError` naming ``what``."""
    if not is_remote(location):
        yield
        return
    try:
        yield
    except StudyFilesError:
        raise
    except (OSError, ValueError) as err:
        raise StudyFilesError(what, storage_problem(str(location).rstrip("/"), err)) from None


def check_reachable(location: Location, what: str) -> None:
    """List the location once, so a bad bucket, endpoint or credentials fail before anything starts."""
    location = as_location(location)
    if isinstance(location, Path):
        return
    files = StudyFiles(location)
    with storage_errors(location, what):
        bucket = files.fs_path().split("/", 1)[0]
        if files.filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise OSError("NoSuchBucket: the bucket does not exist")
        files.list("")


class StudyFiles:
    """The files of one study folder, by path relative to it: a local folder or a remote URI.

    Local writes go through `study_files.atomic` (aside, then renamed into place); remote writes
    are one PUT of the whole content (an object store never shows half an object).
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.remote = is_remote(location)
        if self.remote:
            self.uri = str(location).rstrip("/")
            self._fs: tuple[pafs.FileSystem, str] | None = None
        else:
            self.root = Path(location)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None}  # a pyarrow filesystem is re-made, not pickled

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._remote()[0]

    def _remote(self) -> tuple[pafs.FileSystem, str]:
        if self._fs is None:
            self._fs = remote_filesystem(self.uri)
        return self._fs

    def fs_path(self, rel: str = "") -> str:
        """The path of ``rel`` on the remote filesystem (``bucket/prefix/study/rel``)."""
        base = self._remote()[1]
        return f"{base}/{rel}" if rel else base

    def location(self, rel: str = "") -> Location:
        """What names ``rel`` for a user: a local Path, or the remote URI."""
        if self.remote:
            return f"{self.uri}/{rel}" if rel else self.uri
        return self.root / rel if rel else self.root

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return (self.root / rel).exists()
        return self.filesystem.get_file_info(self.fs_path(rel)).type != pafs.FileType.NotFound

    def is_file(self, rel: str) -> bool:
        if not self.remote:
            return (self.root / rel).is_file()
        return self.filesystem.get_file_info(self.fs_path(rel)).type == pafs.FileType.File

    def read_bytes(self, rel: str) -> bytes:
        """The whole file, read through one open; FileNotFoundError when it is not there."""
        if not self.remote:
            return (self.root / rel).read_bytes()
        with self.filesystem.open_input_file(self.fs_path(rel)) as handle:
            return handle.readall()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def write_bytes(self, rel: str, data: bytes) -> Location:
        """Replace ``rel`` with ``data`` whole; returns its location."""
        if not self.remote:
            return atomic.write_bytes(self.root / rel, data)
        with self.filesystem.open_output_stream(self.fs_path(rel)) as out:
            out.write(data)
        return self.location(rel)

    def write_text(self, rel: str, text: str) -> Location:
        return self.write_bytes(rel, text.encode("utf-8"))

    def list(self, rel: str = "") -> list[str]:
        """Names directly under folder ``rel`` ([] when there is no such folder)."""
        if not self.remote:
            folder = self.root / rel
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        infos = self.filesystem.get_file_info(pafs.FileSelector(self.fs_path(rel), allow_not_found=True))
        return sorted(info.base_name for info in infos)

    def delete(self, rel: str) -> None:
        """Remove one file; a file already gone is fine."""
        if not self.remote:
            (self.root / rel).unlink(missing_ok=True)
            return
        try:
            self.filesystem.delete_file(self.fs_path(rel))
        except FileNotFoundError:
            pass

    def stamp(self, rel: str) -> tuple[int, int] | None:
        """What identifies one version of a file: its modification time and size (None: absent)."""
        if not self.remote:
            try:
                stat = (self.root / rel).stat()
            except FileNotFoundError:
                return None
            return stat.st_mtime_ns, stat.st_size
        info = self.filesystem.get_file_info(self.fs_path(rel))
        if info.type == pafs.FileType.NotFound:
            return None
        return info.mtime_ns or 0, info.size or 0

    def write_table(self, rel: str, table: pa.Table) -> None:
        """Replace ``rel`` with ``table`` as Parquet, whole."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write_bytes(rel, sink.getvalue().to_pybytes())

    def read_table(self, rel: str, schema: pa.Schema | None = None) -> pa.Table:
        """A Parquet file read through one open: a writer renaming a new version into place meanwhile
        cannot mix the old footer with the new pages (parquet readers may open a path more than once)."""
        for attempt in range(1, _REMOTE_READS + 1):
            data = self.read_bytes(rel)
            try:
                return pq.read_table(pa.BufferReader(data), schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:  # truncated, emptied, or not Parquet
                if not self.remote or attempt == _REMOTE_READS:
                    raise EnvironmentFault(str(self.location(rel)), damaged_table(err)) from None
                time.sleep(0.05 * attempt)
