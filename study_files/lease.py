"""One driver per study: `run` and `resume` hold the study's lease while they drive it.

A local or shared folder holds ``.driver.lock`` under ``flock``: the kernel releases it when the
holder dies, however it dies, so a killed driver never blocks its own resume. On S3 the lease is the
object ``.driver.lock`` taken with a conditional write (``If-None-Match: *``), renewed by a heartbeat
(``If-Match`` its own version) and taken over once its holder stopped renewing it for
`LEASE_SECONDS`. The text names the holder (host, pid, since when) for the refusal a second driver
prints. `status` and `report` only read, and take no lease.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from study_files.errors import EnvironmentFault, StudyFilesError, storage_problem
from study_files.locations import Location, as_location

LEASE_SECONDS = 60.0  # an S3 lease not renewed for this long is its dead holder's; a heartbeat renews it 4 times as often

LEASE_FILE = ".driver.lock"


def holder_text(since: str | None = None, expires: float | None = None) -> str:
    """Who this process is, as the lease records it (``expires``: an S3 lease's end, in Unix seconds)."""
    since = since or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": since}
    return json.dumps(holder if expires is None else {**holder, "expires": expires})


@contextmanager
def study_lease(study_dir: Location) -> Iterator[None]:
    """Hold the study's lease for the block (a folder's lock, or an S3 lease object); refuse when another holds it."""
    study_dir = as_location(study_dir)
    if isinstance(study_dir, Path):
        with folder_lease(study_dir):
            yield
    else:
        with object_lease(study_dir):
            yield


def describe_holder(text: str) -> str:
    """``host H, pid P, since T`` from a lease's text (what is known of a holder that wrote nothing yet)."""
    try:
        holder = json.loads(text)
        return f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "a driver that has not written its name yet"


def _dead_here(text: str) -> bool:
    """Whether a lease's holder ran on this host and its process is gone (a killed driver's lease need not lapse)."""
    try:
        holder = json.loads(text)
        if holder["host"] != socket.gethostname():
            return False
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, KeyError, TypeError, PermissionError, OverflowError):
        return False
    return False


def refusal(study_dir: object, holder: str) -> EnvironmentFault:
    return EnvironmentFault(str(study_dir), f"another driver runs this study ({holder}); wait for it to end, "
                                           "or stop it (its Ctrl-C leaves the study resumable)")


@contextmanager
def folder_lease(study_dir: Path) -> Iterator[None]:
    """Hold ``study_dir``'s lease for the block; refuse at once when another process holds it."""
    path = Path(study_dir) / LEASE_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise refusal(study_dir, describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))) from None
        text = holder_text().encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays, naming the last holder


@contextmanager
def object_lease(uri: str) -> Iterator[None]:
    """Hold the lease object ``<uri>/.driver.lock`` on S3 for the block, renewed by a heartbeat thread."""
    try:
        import boto3  # the `s3` extra: only a study on S3 needs it
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise StudyFilesError(uri, "an S3 study needs boto3 for its lease; pip install 'simclr-sweep[s3]'") from None
    scheme, _, rest = uri.partition("://")
    if scheme.lower() != "s3":
        raise StudyFilesError(uri, "a study outside a folder must be on S3 (s3://bucket/prefix): its lease needs "
                                   "S3's conditional writes")
    bucket, _, prefix = rest.strip("/").partition("/")
    key = f"{prefix}/{LEASE_FILE}" if prefix else LEASE_FILE
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = boto3.client("s3", region_name=region)
    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    def put(**condition) -> str:
        body = holder_text(since, time.time() + LEASE_SECONDS).encode("utf-8")
        return client.put_object(Bucket=bucket, Key=key, Body=body, **condition)["ETag"]

    def refused(err: ClientError) -> bool:
        return err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict", "412")

    try:
        try:
            etag = put(IfNoneMatch="*")
        except ClientError as err:
            if not refused(err):
                raise
            found = client.get_object(Bucket=bucket, Key=key)
            text = found["Body"].read().decode("utf-8", "replace")
            try:
                expires = float(json.loads(text)["expires"])
            except (ValueError, KeyError, TypeError):
                expires = 0.0
            if expires > time.time() and not _dead_here(text):
                raise refusal(uri, describe_holder(text)) from None
            try:  # its holder stopped renewing it: take it over, unless another driver just did
                etag = put(IfMatch=found["ETag"])
            except ClientError as err2:
                if refused(err2):
                    raise refusal(uri, "a driver that took it over just now") from None
                raise
    except (BotoCoreError, ClientError) as err:
        raise StudyFilesError(uri, storage_problem(uri, err)) from None

    stop = threading.Event()
    held = {"etag": etag}

    def heartbeat() -> None:
        while not stop.wait(LEASE_SECONDS / 4):
            try:
                held["etag"] = put(IfMatch=held["etag"])
            except (BotoCoreError, ClientError):
                pass  # a missed renewal is retried; the lease only lapses after LEASE_SECONDS without one

    thread = threading.Thread(target=heartbeat, name="study-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError):
            pass  # it lapses on its own
