"""The one atomic write for local files: write aside under a ``.tmp`` name, then rename over the target.

A crash mid-write leaves the old file (or none), never half of the new one; readers that glob
``*.parquet`` or ``*.pt`` never see the temporary. Standard library only, so ``trainers`` uses it
for checkpoints as ``study_files`` does for tables. (An object store needs none of this: one PUT of
complete bytes is atomic there.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block succeeds, rename it over ``target``.

    The parent folder is created if missing. If the block raises, the temporary is removed and
    ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # unique: concurrent writers never collide
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())  # the bytes reach the disk before the name does: a power cut leaves old or new
        os.replace(tmp, target)
    except OSError as err:
        if err.errno is not None and (err.filename is None or str(err.filename) == str(tmp)):
            err.filename = str(target)  # a full disk names the file the user knows, not its temporary
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only disk refuses even this: the write's own error says more
            pass


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``target`` with ``data`` whole."""
    with replacing(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Replace ``target`` with ``text`` (UTF-8) whole."""
    return write_bytes(target, text.encode("utf-8"))
