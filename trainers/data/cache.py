"""The decoded data set as one memory-mapped uint8 file per node, shared by every trial process.

A cache is two files: ``<stem>.pt`` (the index: key, shape, labels, the data file's name) and
``<stem>.<key>.u8`` (the images, raw uint8 [N, C, S, S]). Each is written aside and renamed into
place (``study_files.atomic``), data first, so a killed build leaves the old cache or none; the key
(a hash of the sources) decides whether a cache is current; a data file shorter than its index says
is rebuilt. Every process maps the data file copy-on-write (MAP_PRIVATE): unmodified pages live once
in the page cache however many trials map them, and a set larger than memory streams from disk.
Builders on one node take a file lock, so N trials starting together decode once.
"""
from __future__ import annotations

import errno
import fcntl
import multiprocessing
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from study_files.atomic import replacing
from trainers.data import decode

Tensor = torch.Tensor

# Below this many images a build decodes in this process: forking workers costs more than it saves.
PARALLEL_FROM = 256
# Images per task handed to a decoding worker (one progress-bar tick each).
_CHUNK = 64

# numpy's name for a private copy-on-write map: writable for torch, shared while nobody writes.
MAP_MODE = "c"
# Data pointers of the storages this process maps from cache files (the feeder asks `is_mapped`).
_MAPPED: set[int] = set()
# One map per data file per process: loading a set twice maps it once.
_MAPS: dict[str, Tensor] = {}


def default_cache_dir() -> Path:
    """The node-local cache directory: $SIMCLR_SWEEP_DATA_CACHE, else <tmp>/simclr-sweep-data-<uid>."""
    declared = os.environ.get("SIMCLR_SWEEP_DATA_CACHE")
    if declared:
        return Path(declared).expanduser()
    return Path(tempfile.gettempdir()) / f"simclr-sweep-data-{os.getuid()}"


def is_mapped(images: Tensor) -> bool:
    """Whether ``images`` (or the tensor it is a view of) lives in a memory-mapped cache file."""
    return images.untyped_storage().data_ptr() in _MAPPED


def mapped_tensor(array: np.ndarray) -> Tensor:
    """``array`` (a memory map of a cache file) as a tensor the feeder serves from the map."""
    tensor = torch.from_numpy(array)
    _MAPPED.add(tensor.untyped_storage().data_ptr())
    return tensor


class MappedRows:
    """Rows ``index`` of a mapped uint8 [N, C, H, W] tensor: a seeded split or a capped set that keeps
    serving from the map instead of copying its rows into memory.

    It answers ``shape``, ``len``, ``dtype``, ``dim()`` and ``untyped_storage()`` (the map's) as the
    copied tensor would. Indexing rows (an int, a slice, an index tensor) and ``index_select`` on dim 0
    gather just those rows from the map; ``rows[..., a:b, c:d]`` (a centre crop) is a view of the map
    under the same index. Any other torch function (and ``to``) sees the rows gathered, a copy.
    """

    def __init__(self, source: Tensor, index: Tensor) -> None:
        self.source, self.index = source, index

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.index.shape[0], *self.source.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.source.dtype

    @property
    def device(self) -> torch.device:
        return self.source.device

    def dim(self) -> int:
        return self.source.dim()

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return self.shape.numel()

    def __len__(self) -> int:
        return self.index.shape[0]

    def untyped_storage(self):
        return self.source.untyped_storage()

    def take(self, rows: Tensor) -> "MappedRows":
        """The rows ``rows`` of these rows, still served from the map."""
        return MappedRows(self.source, self.index[rows])

    def gathered(self) -> Tensor:
        """These rows as one in-memory tensor (a copy)."""
        return self.source.index_select(0, self.index)

    def index_select(self, dim: int, rows: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
        if dim != 0:
            return torch.index_select(self.gathered(), dim, rows, out=out)
        return torch.index_select(self.source, 0, self.index[rows.to(self.index.device)], out=out)

    def __getitem__(self, key):
        if isinstance(key, tuple) and key and key[0] is Ellipsis:
            return MappedRows(self.source[key], self.index)  # a crop of every row: a view of the map
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        picked = self.index[first]
        rows = self.source[picked] if picked.dim() == 0 else self.source.index_select(0, picked)
        return rows[((slice(None),) if picked.dim() else ()) + rest] if rest else rows

    def to(self, *args, **kwargs) -> Tensor:
        return self.gathered().to(*args, **kwargs)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.index_select, Tensor.index_select) and isinstance(args[0], MappedRows):
            return args[0].index_select(*args[1:], **kwargs)
        return func(*_gathered_in(args), **_gathered_in(kwargs))

    def __repr__(self) -> str:
        return f"MappedRows({tuple(self.shape)} of a map {tuple(self.source.shape)})"


def _gathered_in(value):
    """``value`` (an argument, or a list, tuple or dict of them) with every MappedRows gathered."""
    if isinstance(value, MappedRows):
        return value.gathered()
    if isinstance(value, (list, tuple)):
        return type(value)(_gathered_in(v) for v in value)
    if isinstance(value, dict):
        return {k: _gathered_in(v) for k, v in value.items()}
    return value


def take_rows(images: "Tensor | MappedRows", rows: Tensor) -> "Tensor | MappedRows":
    """``images[rows]``: served from the map (no copy) when ``images`` is mapped, else a copy as before."""
    if isinstance(images, MappedRows):
        return images.take(rows)
    if is_mapped(images):
        return MappedRows(images, rows)
    return images[rows]


def map_images(path: Path, shape: tuple[int, ...]) -> Tensor:
    """This process's one map of the data file at ``path`` as uint8 ``shape``."""
    key = f"{path}:{path.stat().st_ino}"  # a file rebuilt under the same name is mapped afresh
    if key not in _MAPS:
        _MAPS[key] = mapped_tensor(np.memmap(path, dtype=np.uint8, mode=MAP_MODE, shape=shape))
    return _MAPS[key]


def _writable_dir(folder: Path, dataset: str, declared: bool) -> bool:
    """Create ``folder``; False (beside the data) or a one-line error (a declared cache) when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-")
        probe.close()
        return True
    except OSError as err:
        if not declared:
            return False  # a read-only data folder still loads, just uncached
        raise ValueError(f"dataset {dataset}: cache directory {folder} is not writable ({err.strerror}); "
                         "set data_cache to a writable node-local directory") from None


@contextmanager
def _locked(folder: Path, stem: str) -> Iterator[None]:
    with open(folder / f".{stem}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_index(index: Path) -> Optional[dict]:
    try:
        return torch.load(index, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None


def _current(index: Path, key: str, shape: tuple[int, ...]) -> tuple[Optional[dict], str]:
    """(the index, "") when the cache at ``index`` holds ``key`` whole, else (None, why it is rebuilt)."""
    if not index.is_file():
        return None, ""
    meta = _read_index(index)
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None, "its sources changed" if isinstance(meta, dict) else "its index is unreadable"
    data = index.with_name(meta["data"])
    need = int(np.prod(shape))
    have = data.stat().st_size if data.is_file() else -1
    if have != need:
        return None, f"{data} holds {max(have, 0)} of its {need} bytes (truncated)"
    return meta, ""


def _no_space(folder: Path, dataset: str, need: int) -> ValueError:
    free = shutil.disk_usage(folder).free
    return ValueError(f"dataset {dataset}: cache directory {folder} has {free} bytes free but the cache "
                      f"needs {need} bytes; free space there or set data_cache to a larger disk")


def _build(target: Path, paths: Sequence[Path], size: int, dataset: str, read: Callable,
           workers: int) -> None:
    shape = (len(paths), 3, size, size)
    need = int(np.prod(shape))
    with open(target, "wb") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, need)  # a full disk fails here, not halfway through
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise _no_space(target.parent, dataset, need) from None
            handle.truncate(need)  # file systems without fallocate
    tasks = [(str(target), shape, s, [str(p) for p in paths[s:s + _CHUNK]], size, dataset)
             for s in range(0, len(paths), _CHUNK)]
    bar = tqdm(total=len(paths), desc=f"decoding {dataset} at {size}px", unit="img", file=sys.stderr,
               disable=len(paths) < PARALLEL_FROM, mininterval=1.0)
    try:
        if workers <= 1 or len(paths) < PARALLEL_FROM:
            out = np.memmap(target, dtype=np.uint8, mode="r+", shape=shape)
            for i, path in enumerate(paths):
                out[i] = read(path, size, dataset=dataset).numpy()
                bar.update(1)
            out.flush()
            del out
        else:
            # The workers run numpy and PIL only: a forked child that ran torch could hang on a lock
            # (OpenMP's) it inherited held.
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for done in pool.imap_unordered(decode.decode_rows, tasks):
                    bar.update(done)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise _no_space(target.parent, dataset, need) from None
        raise
    finally:
        bar.close()


def cached_images(paths: Sequence[Path], labels: Sequence[int], size: int, *, key: str, folder: Path,
                  stem: str, dataset: str, declared: bool, read: Callable,
                  workers: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """Images of ``paths`` decoded by ``read(path, size, dataset=...)`` as a mapped uint8 [N, 3, S, S],
    and ``labels`` as int64; from ``folder/<stem>.pt`` when it holds ``key``, else built there first.

    ``declared``: the folder is the user's cache directory (not writable is an error), rather than
    the data's own folder (not writable decodes into memory instead).
    """
    shape = (len(paths), 3, size, size)
    label_tensor = torch.tensor(list(labels), dtype=torch.int64)
    index = folder / f"{stem}.pt"
    meta, _ = _current(index, key, shape) if index.is_file() else (None, "")
    if meta is None:
        if not _writable_dir(folder, dataset, declared):
            images = torch.empty(shape, dtype=torch.uint8)
            for i, path in enumerate(paths):
                images[i] = read(path, size, dataset=dataset)
            return images, label_tensor
        with _locked(folder, stem):  # one builder per node; the others find its cache current
            meta, why = _current(index, key, shape)
            if meta is None:
                if why:
                    print(f"dataset {dataset}: rebuilding the cache {index}: {why}", file=sys.stderr)
                meta = _write(index, key, shape, paths, label_tensor, size, dataset, read,
                              workers or len(os.sched_getaffinity(0)))
    return map_images(index.with_name(meta["data"]), shape), meta["labels"]


def _write(index: Path, key: str, shape: tuple[int, ...], paths: Sequence[Path], labels: Tensor,
           size: int, dataset: str, read: Callable, workers: int) -> dict:
    old = _read_index(index) if index.is_file() else None
    data = index.with_name(f"{index.stem}.{key[:16]}.u8")
    need = int(np.prod(shape))
    if shutil.disk_usage(index.parent).free < need:
        raise _no_space(index.parent, dataset, need)
    with replacing(data) as tmp:
        _build(tmp, paths, size, dataset, read, workers)
    meta = {"key": key, "shape": list(shape), "labels": labels, "data": data.name}
    try:
        with replacing(index) as tmp:
            torch.save(meta, tmp)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise _no_space(index.parent, dataset, need) from None
        raise
    if isinstance(old, dict) and old.get("data") not in (None, data.name):
        # Processes still mapping the old file keep its pages until they unmap it.
        index.with_name(old["data"]).unlink(missing_ok=True)
    return meta
