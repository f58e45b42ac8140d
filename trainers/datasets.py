"""Data sets as uint8 NCHW tensors: the `DATASETS` registry and `load_dataset`.

Every loader returns a `DataSplits`: `pretrain` (images for contrastive training), the labelled
`train_x`/`train_y` (kNN bank and probe training) and the held-out `test_x`/`test_y` (the score).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from trainers import shapes, spirograph

Tensor = torch.Tensor


@dataclass
class DataSplits:
    """One data set, split for pre-training, probing and scoring.

    Images are uint8 [N, C, H, W]. Targets are int64 [N] class labels (`task == "classification"`,
    `num_classes` > 0) or float32 [N, T] regression targets (`task == "regression"`,
    `num_classes == 0`, one column per entry of `target_names`).
    """

    pretrain: Tensor
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
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
                 image_size: Optional[int]) -> DataSplits:
    """The quickstart's ten-shape set; `size` is the number of training images (default 3000)."""
    if image_size not in (None, shapes.IMAGE_SIZE):
        raise ValueError(f"dataset shapes: image_size must be {shapes.IMAGE_SIZE} (got {image_size})")
    n_train = shapes.DEFAULT_TRAIN if size is None else size
    if n_train < len(shapes.SHAPES):
        raise ValueError(f"dataset shapes: size must be >= {len(shapes.SHAPES)} (got {n_train})")
    train_x, train_y = shapes.generate(n_train, seed, stream=0)
    # The test set depends on the seed only through its own stream, so it has a fixed size per seed.
    test_x, test_y = shapes.generate(max(n_train // shapes.TEST_FRACTION, len(shapes.SHAPES)), seed, stream=1)
    return DataSplits(pretrain=train_x, train_x=train_x, train_y=train_y, test_x=test_x,
                      test_y=test_y, num_classes=len(shapes.SHAPES), task="classification",
                      target_names=list(shapes.CLASS_NAMES))


def _load_spirograph(*, root: Optional[Path], download: bool, size: Optional[int], seed: int,
                     image_size: Optional[int]) -> DataSplits:
    """Spirograph regression (targets m, b, h, sigma); `size` training images (default 100k), test size // 5."""
    if image_size not in (None, spirograph.IMAGE_SIZE):
        raise ValueError(f"dataset spirograph: image_size must be {spirograph.IMAGE_SIZE} (got {image_size})")
    n_train = spirograph.DEFAULT_TRAIN if size is None else size
    train_x, train_y = spirograph.generate(n_train, seed, stream=0)
    test_x, test_y = spirograph.generate(max(n_train // spirograph.TEST_FRACTION, 1), seed, stream=1)
    return DataSplits(pretrain=train_x, train_x=train_x, train_y=train_y, test_x=test_x,
                      test_y=test_y, num_classes=0, task="regression",
                      target_names=list(spirograph.TARGET_NAMES))


DATASETS: dict[str, Loader] = {
    "shapes": _load_shapes,
    "spirograph": _load_spirograph,
}


def load_dataset(name: str, *, root: Optional[str | Path] = None, download: bool = False,
                 size: Optional[int] = None, seed: int = 0,
                 image_size: Optional[int] = None) -> DataSplits:
    """Load the data set registered as `name`.

    `root` is where files live (torchvision sets, image folders, file lists); `download` lets
    torchvision fetch a missing set; `size` caps (real sets) or sets (generated sets) the number of
    training images; `seed` makes generated sets and seeded splits reproducible; `image_size`
    resizes image folders and file lists (None keeps each set's native size).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: must be one of {', '.join(DATASETS)} (got {name!r})")
    if size is not None and size <= 0:
        raise ValueError(f"dataset {name}: size must be > 0 (got {size})")
    return DATASETS[name](root=None if root is None else Path(root), download=download,
                          size=size, seed=seed, image_size=image_size)
