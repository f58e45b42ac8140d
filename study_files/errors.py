"""The one error of a study's files: a study file missing or damaged, a location that cannot be used.

``str(err)`` is the one line a user sees: ``<where>: <what is wrong and what would be right>``.
A ``ValueError``, so that code catching bad values (``simclr_sweep``'s CLI) catches it too.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class StudyFilesError(ValueError):
    """A study location or file that cannot be used; ``where`` names the folder, URI or argument."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message

    def __reduce__(self):
        # Pickled across processes (a Ray worker's error reaching the driver): rebuild from both parts.
        return StudyFilesError, (self.where, self.message)


class EnvironmentFault(StudyFilesError):
    """What the machine refused, not what the user wrote (storage read-only or full, a cluster that
    cannot be started): the CLI exits 1 for it, 2 for the user's input."""

    def __reduce__(self):
        return EnvironmentFault, (self.where, self.message)


def os_problem(path: object, err: OSError) -> StudyFilesError:
    """One line for a local filesystem's refusal (read-only, full, not a folder), naming what would help."""
    hint = {
        errno.EROFS: "is on a read-only filesystem; give a writable --storage, or copy the study somewhere writable and use that copy",
        errno.EACCES: "may not be written by this user; give a writable location",
        errno.EPERM: "may not be written by this user; give a writable location",
        errno.ENOSPC: "no space left on its disk; free some and `simclr-sweep resume` the study (nothing written is lost)",
        errno.EDQUOT: "disk quota exceeded; free some and `simclr-sweep resume` the study (nothing written is lost)",
        errno.ENOTDIR: "a file stands where a folder must be; give a folder",
        errno.EEXIST: "a file stands where a folder must be; give a folder",
    }.get(err.errno, f"cannot be used ({err.strerror or err})")
    where = err.filename if getattr(err, "filename", None) else path
    if err.errno in (errno.ENOTDIR, errno.EEXIST):  # the user named a file for a folder
        return StudyFilesError(str(where), hint)
    return EnvironmentFault(str(where), hint)


def damaged_table(err: BaseException) -> str:
    """What to say of a table file that cannot be read (truncated, emptied, not Parquet)."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return (f"damaged, not a readable Parquet file ({first}); restore it from a copy, or move it aside "
            "(the study then lacks its rows)")


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


def _bucket(uri: str) -> str:
    return uri.partition("://")[2].split("/", 1)[0]


def _credentials_visible() -> bool:
    """Whether AWS credentials appear anywhere the SDK looks first (an instance role is not seen)."""
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True
    home = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")
    return home.exists() or Path(os.environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config").exists()
