"""Data sets as uint8 NCHW tensors: the `DATASETS` registry and `load_dataset`.

Every loader returns a `DataSplits`: `pretrain` (images for contrastive training), the labelled
`train_x`/`train_y` (kNN bank and probe training) and the held-out `test_x`/`test_y` (the score).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from trainers.data import cache, image_files, shapes, spirograph

Tensor = torch.Tensor
Images = Union[Tensor, cache.MappedRows]  # uint8 [N, C, H, W]

DEFAULT_IMAGE_SIZE = 32  # image folders and file lists, when no image_size is declared


@dataclass
class DataSplits:
    """One data set, split for pre-training, probing and scoring.

    Images are uint8 [N, C, H, W]: a tensor, or for a split or capped part of a memory-mapped cache a
    ``cache.MappedRows`` (the map and the rows; indexing gathers, nothing is copied whole). Targets are int64 [N] class labels (`task == "classification"`,
    `num_classes` > 0) or float32 [N, T] regression targets (`task == "regression"`,
    `num_classes == 0`, one column per entry of `target_names`).
    """

    pretrain: Images
    train_x: Images
    train_y: Tensor
    test_x: Images
    test_y: Tensor
    num_classes: int
    task: str
    target_names: list[str]

    def __post_init__(self) -> None:
        for name in ("pretrain", "train_x", "test_x"):
            images = getattr(self, name)
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(f"DataSplits.{name}: must be uint8 [N, C, H, W] "
                                 f"(got {images.dtype} {tuple(images.shape)})")
        if self.task not in ("classification", "regression"):
            raise ValueError(f"DataSplits.task: must be classification or regression (got {self.task!r})")
        if len(self.train_x) != len(self.train_y) or len(self.test_x) != len(self.test_y):
            raise ValueError("DataSplits: images and targets differ in length "
                             f"(train {len(self.train_x)} vs {len(self.train_y)}, "
                             f"test {len(self.test_x)} vs {len(self.test_y)})")

    @property
    def image_size(self) -> int:
        """Side of the (square) images."""
        return int(self.train_x.shape[-1])


Loader = Callable[..., DataSplits]


def _load_shapes(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                 image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """The quickstart's ten-shape set; `size` is the number of training images (default 3000)."""
    if image_size not in (None, shapes.IMAGE_SIZE):
        raise ValueError(f"dataset shapes: image_size must be {shapes.IMAGE_SIZE} (got {image_size})")
    n_train = shapes.DEFAULT_TRAIN if size is None else size
    if n_train < len(shapes.SHAPES):
        raise ValueError(f"dataset shapes: size must be >= {len(shapes.SHAPES)} (got {n_train})")
    train_x, train_y = shapes.generate(n_train, seed, stream=0)
    # A stream of its own: test images are never copies of training images.
    test_x, test_y = shapes.generate(max(n_train // shapes.TEST_FRACTION, len(shapes.SHAPES)), seed, stream=1)
    return DataSplits(pretrain=train_x, train_x=train_x, train_y=train_y, test_x=test_x,
                      test_y=test_y, num_classes=len(shapes.SHAPES), task="classification",
                      target_names=list(shapes.CLASS_NAMES))


def _load_spirograph(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                     image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """Spirograph regression (targets m, b, h, sigma); `size` training images (default 100k), test size // 5."""
    if image_size not in (None, spirograph.IMAGE_SIZE):
        raise ValueError(f"dataset spirograph: image_size must be {spirograph.IMAGE_SIZE} (got {image_size})")
    n_train = spirograph.DEFAULT_TRAIN if size is None else size
    train_x, train_y = spirograph.generate(n_train, seed, stream=0)
    test_x, test_y = spirograph.generate(max(n_train // spirograph.TEST_FRACTION, 1), seed, stream=1)
    return DataSplits(pretrain=train_x, train_x=train_x, train_y=train_y, test_x=test_x,
                      test_y=test_y, num_classes=0, task="regression",
                      target_names=list(spirograph.TARGET_NAMES))


def resize_images(images: Tensor, image_size: int, chunk: int = 2048) -> Tensor:
    """uint8 [N, C, H, W] to uint8 [N, C, S, S] (bilinear, antialiased), in chunks to bound memory."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    out = torch.empty(images.shape[0], images.shape[1], image_size, image_size, dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk].float()
        part = torch.nn.functional.interpolate(part, size=(image_size, image_size), mode="bilinear",
                                               antialias=True, align_corners=False)
        out[start:start + chunk] = part.round().clamp(0, 255).to(torch.uint8)
    return out


def _subset(n: int, size: Optional[int], seed: int) -> Optional[Tensor]:
    """Seeded indices of `size` of n rows, or None when the cap does not bite."""
    if size is None or size >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


def _cap(images: Images, labels: Optional[Tensor], size: Optional[int], seed: int) -> tuple[Images, Optional[Tensor]]:
    idx = _subset(images.shape[0], size, seed)
    if idx is None:
        return images, labels
    return cache.take_rows(images, idx), None if labels is None else labels[idx]


@dataclass(frozen=True)
class _TorchvisionSet:
    title: str
    folder: str
    classes: int


_TORCHVISION = {
    "cifar10": _TorchvisionSet("CIFAR-10", "cifar-10-batches-py", 10),
    "cifar100": _TorchvisionSet("CIFAR-100", "cifar-100-python", 100),
    "stl10": _TorchvisionSet("STL-10", "stl10_binary", 10),
}


def _torchvision_root(name: str, root: Optional[Path], download: bool) -> Path:
    """The root torchvision reads; a one-line error naming it when the files are not there."""
    spec = _TORCHVISION[name]
    if root is None:
        raise ValueError(f"dataset {name}: data_root is not set (point it at a folder holding {spec.folder})")
    root = root.expanduser().resolve()
    if not download and not (root / spec.folder).is_dir():
        raise ValueError(f"dataset {name}: no {spec.title} files under {root} (set download: true, "
                         f"or point data_root at a folder holding {spec.folder})")
    if download:
        root.mkdir(parents=True, exist_ok=True)
    return root


def _torchvision_call(name: str, root: Path, build: Callable[[], object]) -> object:
    """Run a torchvision constructor, turning its multi-line failures into one line naming the root."""
    try:
        return build()
    except RuntimeError as err:
        spec = _TORCHVISION[name]
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"dataset {name}: {spec.title} files under {root / spec.folder} are incomplete "
                         f"or corrupted ({first}); set download: true to fetch them again") from None


def _load_cifar(name: str, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                image_size: Optional[int]) -> DataSplits:
    # Lazy: torchvision takes seconds to import, and validating a study (TrainConfig) needs none of it.
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    root = _torchvision_root(name, root, download)
    splits = {}
    for train in (True, False):
        ds = _torchvision_call(name, root, lambda: cls(str(root), train=train, download=download))
        # HWC -> CHW once, at load: the trainer only ever sees NCHW uint8.
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        splits[train] = (images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes))
    train_x, train_y = _cap(*splits[True][:2], size, seed)
    test_x, test_y, _ = splits[False]
    if image_size is not None:
        train_x, test_x = resize_images(train_x, image_size), resize_images(test_x, image_size)
    return DataSplits(pretrain=train_x, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                      num_classes=_TORCHVISION[name].classes, task="classification",
                      target_names=splits[True][2])


def _load_cifar10(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                  image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """CIFAR-10 through torchvision: 50k train (pre-training and probe), 10k test."""
    return _load_cifar("cifar10", root, download, size, seed, image_size)


def _load_cifar100(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                   image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """CIFAR-100 (fine labels) through torchvision: 50k train, 10k test."""
    return _load_cifar("cifar100", root, download, size, seed, image_size)


def _load_stl10(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """STL-10 through torchvision: unlabeled + train for pre-training, train for the probe, test
    for the score; 96x96 unless `image_size` says otherwise. `size` caps the pre-training and the
    probe's training images."""
    from torchvision.datasets import STL10  # lazy, as in _load_cifar

    root = _torchvision_root("stl10", root, download)
    loaded = {split: _torchvision_call("stl10", root, lambda: STL10(str(root), split=split, download=download))
              for split in ("train", "unlabeled", "test")}
    as_tensor = {split: torch.from_numpy(ds.data) for split, ds in loaded.items()}
    train_x, train_y = _cap(as_tensor["train"], torch.from_numpy(loaded["train"].labels).long(), size, seed)
    pretrain, _ = _cap(torch.cat([as_tensor["unlabeled"], as_tensor["train"]]), None, size, seed)
    test_x, test_y = as_tensor["test"], torch.from_numpy(loaded["test"].labels).long()
    if image_size is not None:
        pretrain, train_x, test_x = (resize_images(x, image_size) for x in (pretrain, train_x, test_x))
    return DataSplits(pretrain=pretrain.contiguous(), train_x=train_x.contiguous(), train_y=train_y,
                      test_x=test_x.contiguous(), test_y=test_y, num_classes=10, task="classification",
                      target_names=list(loaded["train"].classes))


def _from_labelled(name: str, train: image_files.Labelled, test: Optional[image_files.Labelled],
                   size: Optional[int], seed: int) -> DataSplits:
    """Splits from decoded files: a seeded stratified hold-out when there is no test part."""
    if test is None:
        train_idx, test_idx = image_files.stratified_split(train.labels, image_files.TEST_FRACTION, seed)
        if len(test_idx) == 0:
            raise ValueError(f"dataset {name}: too few images to hold out a test split "
                             "(give each class at least two images, or separate train and test parts)")
        # Mapped images stay in the map: each split is the map and its rows (cache.MappedRows).
        test = image_files.Labelled(cache.take_rows(train.images, test_idx), train.labels[test_idx],
                                    train.class_names)
        train = image_files.Labelled(cache.take_rows(train.images, train_idx), train.labels[train_idx],
                                     train.class_names)
    train_x, train_y = _cap(train.images, train.labels, size, seed)
    return DataSplits(pretrain=train_x, train_x=train_x, train_y=train_y, test_x=test.images,
                      test_y=test.labels, num_classes=len(train.class_names), task="classification",
                      target_names=list(train.class_names))


def _files_root(name: str, root: Optional[Path]) -> Path:
    if root is None:
        raise ValueError(f"dataset {name}: data_root is not set (point it at the "
                         f"{'image folder' if name == 'image_folder' else 'path,label list'})")
    return root.expanduser().resolve()


def _load_image_folder(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                       image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """A folder with a sub-folder per class (or ImageNet-style `train/` and `val/` or `test/` such
    trees), resized and cached as a memory-mapped file."""
    root = _files_root("image_folder", root)
    train, test = image_files.load_image_folder(root, image_size or DEFAULT_IMAGE_SIZE, cache_dir=cache_dir)
    return _from_labelled("image_folder", train, test, size, seed)


def _load_file_list(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                    image_size: Optional[int], cache_dir: Optional[Path] = None) -> DataSplits:
    """A `path,label` list (or a folder with train/test lists), resized and cached."""
    root = _files_root("file_list", root)
    train, test = image_files.load_file_list(root, image_size or DEFAULT_IMAGE_SIZE, cache_dir=cache_dir)
    return _from_labelled("file_list", train, test, size, seed)


DATASETS: dict[str, Loader] = {
    "shapes": _load_shapes,
    "spirograph": _load_spirograph,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "stl10": _load_stl10,
    "image_folder": _load_image_folder,
    "file_list": _load_file_list,
}


def load_dataset(name: str, *, root: Optional[str | Path] = None, download: bool = False,
                 size: Optional[int] = None, seed: int = 0, image_size: Optional[int] = None,
                 stored_size: Optional[int] = None, cache_dir: Optional[str | Path] = None) -> DataSplits:
    """Load the data set registered as `name`.

    `root` is where files live (torchvision sets, image folders, file lists); `download` lets
    torchvision fetch a missing set; `size` caps (real sets) or sets (generated sets) the number of
    training images; `seed` makes generated sets and seeded splits reproducible; `image_size`
    resizes image folders, file lists and torchvision sets (None keeps each set's native size).
    `stored_size` (> image_size) stores the images larger: pre-training crops them to `image_size`
    on the device, and the labelled splits are their centre `image_size` crops (views, no copy).
    `cache_dir` is where image folders and file lists keep their memory-mapped decoded file (None:
    next to the data).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: must be one of {', '.join(DATASETS)} (got {name!r})")
    if size is not None and size <= 0:
        raise ValueError(f"dataset {name}: size must be > 0 (got {size})")
    if stored_size is not None and (image_size is None or stored_size < image_size):
        raise ValueError(f"dataset {name}: stored_size must be >= image_size (got {stored_size} "
                         f"with image_size {image_size})")
    data = DATASETS[name](root=None if root is None else Path(root), download=download, size=size, seed=seed,
                          image_size=stored_size or image_size,
                          cache_dir=None if cache_dir is None else Path(cache_dir))
    if stored_size is None or stored_size == image_size:
        return data
    return dataclasses.replace(data, train_x=centre_crop(data.train_x, image_size),
                               test_x=centre_crop(data.test_x, image_size))


def load_configured(cfg) -> DataSplits:
    """The data set a ``TrainConfig`` declares (its cache in ``data_cache``, else the node-local default)."""
    return load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download, size=cfg.dataset_size or None,
                        seed=cfg.seed, image_size=cfg.image_size or None, stored_size=cfg.stored_size or None,
                        cache_dir=cfg.data_cache or cache.default_cache_dir())


def centre_crop(images: Images, image_size: int) -> Images:
    """The centre image_size x image_size of uint8 [N, C, H, W] images: a view, nothing copied."""
    top, left = (images.shape[-2] - image_size) // 2, (images.shape[-1] - image_size) // 2
    return images[..., top:top + image_size, left:left + image_size]
