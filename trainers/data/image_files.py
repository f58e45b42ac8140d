"""Image folders (a sub-folder per class) and file lists (`path,label` lines) as uint8 tensors.

Images are decoded once, resized to a declared square size, and kept as one memory-mapped uint8
file (`trainers.data.cache`): in the declared cache directory, or next to the data when none is
declared. The cache is keyed by a hash of the list of (path, label, mtime, size) and the image size,
so editing the list or touching an image rebuilds it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from trainers.data import cache, decode

Tensor = torch.Tensor

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
LIST_SUFFIXES = (".csv", ".txt")
TEST_FRACTION = 0.2
_CACHE_VERSION = 2
# Held-out trees of an ImageNet-style folder, in the order they are looked for.
HELD_OUT = ("val", "test")


@dataclass
class Labelled:
    """Decoded images uint8 [N, 3, S, S] with int64 labels, and the class names."""

    images: Tensor
    labels: Tensor
    class_names: list[str]


_fail = decode.fail


def read_image(path: Path, image_size: int, *, dataset: str, mode: str = "RGB") -> Tensor:
    """One image file as uint8 [C, S, S] (bilinear resize; nearest for label maps, mode "L")."""
    return torch.from_numpy(decode.decode_image(path, image_size, dataset=dataset, mode=mode))


def _cache_key(items: list[tuple[Path, int]], image_size: int) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION} size={image_size}\n".encode())
    for path, label in items:
        try:
            stat = path.stat()
            stamp = f"{stat.st_mtime_ns} {stat.st_size}"
        except OSError:
            stamp = "missing"
        digest.update(f"{path}\t{label}\t{stamp}\n".encode())
    return digest.hexdigest()


def decode_cached(items: list[tuple[Path, int]], image_size: int, cache_file: Path, *,
                  dataset: str, cache_dir: Optional[Path] = None) -> tuple[Tensor, Tensor]:
    """Images (memory-mapped) and labels of `items`, from their cache when its key matches, else
    decoded (in parallel) and cached first. The cache's index is `cache_file` next to the data, or a
    file named after it in `cache_dir` when one is declared."""
    key = _cache_key(items, image_size)
    if cache_dir is None:
        folder, stem = cache_file.parent, cache_file.stem
    else:
        # One name per source location, so a changed source replaces its own cache (said as stale).
        where = hashlib.sha256(f"{cache_file}".encode()).hexdigest()[:12]
        folder, stem = Path(cache_dir).expanduser(), f"{cache_file.parent.name}{cache_file.stem}-{where}"
    return cache.cached_images([path for path, _ in items], [label for _, label in items], image_size,
                               key=key, folder=folder, stem=stem, dataset=dataset,
                               declared=cache_dir is not None, read=read_image_for_cache)


def read_image_for_cache(path: Path, image_size: int, *, dataset: str) -> Tensor:
    """`read_image` looked up at call time (a test may replace it)."""
    return read_image(path, image_size, dataset=dataset)


def _scan_classes(folder: Path, dataset: str) -> list[tuple[Path, str]]:
    """(image path, class folder name) for every image one level below `folder`, sorted."""
    if not folder.is_dir():
        raise _fail(dataset, f"no folder {folder} (point data_root at a folder with one sub-folder per class)")
    found = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append((path, class_dir.name))
    if not found:
        raise _fail(dataset, f"no images in class sub-folders of {folder} "
                             f"(expected {folder}/<class>/<image>{IMAGE_EXTENSIONS[0]})")
    return found


def load_image_folder(root: Path, image_size: int, *, dataset: str = "image_folder",
                      cache_dir: Optional[Path] = None) -> tuple[Labelled, Optional[Labelled]]:
    """A class-per-sub-folder tree at `root`, or an ImageNet-style `root/train` with `root/val` (or
    `root/test`) trees.

    Returns (train, test); test is None when `root` is one tree (the caller splits it).
    Classes are the sorted sub-folder names of the training tree; a held-out tree must have the same.
    """
    held_out = next((root / name for name in HELD_OUT if (root / name).is_dir()), None)
    has_splits = (root / "train").is_dir() and held_out is not None
    trees = {"train": root / "train", "test": held_out} if has_splits else {"train": root}
    scanned = {split: _scan_classes(folder, dataset) for split, folder in trees.items()}
    class_names = sorted({name for _, name in scanned["train"]})
    index = {name: i for i, name in enumerate(class_names)}
    out = {}
    for split, found in scanned.items():
        unknown = sorted({name for _, name in found} - set(class_names))
        if unknown:
            raise _fail(dataset, f"class folder {trees[split] / unknown[0]} has no counterpart in {trees['train']}")
        missing = sorted(set(class_names) - {name for _, name in found})
        if missing:
            raise _fail(dataset, f"{trees[split]} has no class folder {missing[0]} (every class of "
                                 f"{trees['train']} needs held-out images)")
        items = [(path, index[name]) for path, name in found]
        cache_file = trees[split] / f".simclr_sweep_cache_{image_size}px.pt"
        images, labels = decode_cached(items, image_size, cache_file, dataset=dataset, cache_dir=cache_dir)
        out[split] = Labelled(images, labels, class_names)
    return out["train"], out.get("test")


def parse_file_list(list_file: Path, *, dataset: str = "file_list",
                    num_classes: Optional[int] = None) -> list[tuple[Path, int]]:
    """`path,label` lines (paths relative to the list's folder); blank and `#` lines are skipped.

    Labels must lie in 0..num_classes-1; by default num_classes is the number of distinct labels
    (every class present), so a 1-based list is caught.
    """
    if not list_file.is_file():
        raise _fail(dataset, f"no file list {list_file} (expected `path,label` lines)")
    items: list[tuple[Path, int, int]] = []
    for lineno, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path_text, sep, label_text = line.rpartition(",")
        if not sep or not path_text.strip():
            raise _fail(dataset, f"{list_file}:{lineno}: expected `path,label` (got {line!r})")
        try:
            label = int(label_text)
        except ValueError:
            raise _fail(dataset, f"{list_file}:{lineno}: label must be an integer (got {label_text.strip()!r})") from None
        path = Path(path_text.strip())
        items.append((path if path.is_absolute() else list_file.parent / path, label, lineno))
    if not items:
        raise _fail(dataset, f"{list_file} holds no `path,label` lines")
    if num_classes is None:
        num_classes = len({label for _, label, _ in items})
    for path, label, lineno in items:
        if not 0 <= label < num_classes:
            raise _fail(dataset, f"{list_file}:{lineno}: label {label} out of range for {path.name} "
                                 f"(labels must be 0..{num_classes - 1}, one per class present)")
    return [(path, label) for path, label, _ in items]


def load_file_list(root: Path, image_size: int, *, dataset: str = "file_list",
                   cache_dir: Optional[Path] = None) -> tuple[Labelled, Optional[Labelled]]:
    """A `path,label` list file at `root`, or `train` and `test` lists (.csv or .txt) in the folder `root`.

    Returns (train, test); test is None for a single list (the caller splits it).
    """
    if root.is_dir():
        lists = {}
        for split in ("train", "test"):
            candidates = [root / f"{split}{suffix}" for suffix in LIST_SUFFIXES if (root / f"{split}{suffix}").is_file()]
            if not candidates:
                raise _fail(dataset, f"no {split}.csv or {split}.txt in {root} "
                                     "(point data_root at a `path,label` list, or a folder holding train.csv and test.csv)")
            lists[split] = candidates[0]
    else:
        lists = {"train": root}
    out: dict[str, Labelled] = {}
    num_classes = None
    for split, list_file in lists.items():  # train first: it fixes the number of classes
        items = parse_file_list(list_file, dataset=dataset, num_classes=num_classes)
        cache_file = list_file.with_name(f".{list_file.name}.{image_size}px.cache.pt")
        images, labels = decode_cached(items, image_size, cache_file, dataset=dataset, cache_dir=cache_dir)
        if num_classes is None:
            num_classes = int(labels.max()) + 1
        out[split] = Labelled(images, labels, [str(i) for i in range(num_classes)])
    return out["train"], out.get("test")


def stratified_split(labels: Tensor, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded (train, test) indices holding out `test_fraction` of each class (at least one per
    class with two or more images)."""
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for cls in labels.unique(sorted=True):
        idx = (labels == cls).nonzero(as_tuple=True)[0]
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = min(max(1, round(len(idx) * test_fraction)), len(idx) - 1)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
