"""Decoding image files to uint8 arrays, with PIL and numpy alone.

Torch-free on purpose: the cache build decodes in forked worker processes, where a torch call could
hang on a lock its parent held at the fork.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError


def fail(dataset: str, message: str) -> ValueError:
    """The one-line error of data set ``dataset``."""
    return ValueError(f"dataset {dataset}: {message}")


def decode_image(path: Path, image_size: int, *, dataset: str, mode: str = "RGB") -> np.ndarray:
    """One image file as uint8 [C, S, S] (bilinear resize; nearest for label maps, mode "L")."""
    if not path.is_file():
        raise fail(dataset, f"missing file {path}")
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            resample = Image.Resampling.NEAREST if mode == "L" else Image.Resampling.BILINEAR
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), resample)
            data = np.frombuffer(img.tobytes(), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise fail(dataset, f"cannot read image {path} ({type(err).__name__}: {err})") from None
    channels = 1 if mode == "L" else 3
    return np.ascontiguousarray(data.reshape(image_size, image_size, channels).transpose(2, 0, 1))


def decode_rows(task: tuple[str, tuple[int, ...], int, Sequence[Path], int, str]) -> int:
    """Worker of a parallel cache build: decode ``paths`` into rows start.. of the data file ``target``."""
    target, shape, start, paths, size, dataset = task
    out = np.memmap(target, dtype=np.uint8, mode="r+", shape=shape)
    for i, path in enumerate(paths):
        out[start + i] = decode_image(Path(path), size, dataset=dataset)
    out.flush()
    del out
    return len(paths)
