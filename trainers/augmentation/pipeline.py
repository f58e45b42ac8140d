"""``build_pipeline``: the chosen augmentations as one ``fn(batch, generator) -> views`` in ``PAPER_ORDER``."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch

from trainers.augmentation.kernels import AUGMENTATIONS, PAPER_ORDER, resize_full, to_unit_float

Tensor = torch.Tensor
Pipeline = Callable[[Tensor, torch.Generator], Tensor]


def build_pipeline(names: Iterable[str] | str, *, image_size: int, params: Mapping[str, Any] | None = None,
                   compile: bool | str = False) -> Pipeline:
    """Build ``fn(batch, generator) -> float32 NCHW in [0, 1]`` (standardize excepted) applying the
    chosen augmentations in PAPER_ORDER to a uint8 (or float in [0, 1]) NCHW batch, with per-sample
    randomness drawn from ``generator`` (on the batch's device). The output is always
    image_size x image_size. For the same generator state it equals calling the chosen
    augmentations one after the other.

    ``names``: an iterable of augmentation names (order does not matter) or a comma-joined string.
    ``params``: ``<augmentation>.<parameter>`` values (a ``TrainConfig``'s ``augmentation_params``),
    each checked by its declared rule; the others take their declared defaults.
    ``compile``: run the deterministic half (everything but the random draws, which come first)
    through ``torch.compile``, where a GPU fuses its many small elementwise kernels; True uses
    inductor, a string names the backend.
    """
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    chosen = set(names)
    unknown = sorted(chosen - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(PAPER_ORDER)}")
    given: dict[str, dict[str, Any]] = {name: {} for name in AUGMENTATIONS}
    for key, value in (params or {}).items():
        name, _, param = key.partition(".")
        if param not in getattr(AUGMENTATIONS.get(name), "params", {}):
            valid = [f"{n}.{p}" for n in PAPER_ORDER for p in AUGMENTATIONS[n].params]
            raise ValueError(f"unknown augmentation parameter {key!r}; valid: {', '.join(valid)}")
        given[name][param] = value
    given["crop"]["image_size"] = image_size
    # Every given value is checked, the chosen augmentations' and the others' alike.
    settings = {name: AUGMENTATIONS[name].settings(given[name]) for name in PAPER_ORDER}
    steps = [(AUGMENTATIONS[name], *settings[name]) for name in PAPER_ORDER if name in chosen]

    def transform(batch: Tensor, drawn: list[dict[str, Tensor]]) -> Tensor:
        x = to_unit_float(batch)
        if "crop" not in chosen and x.shape[-2:] != (image_size, image_size):
            x = resize_full(x, image_size)
        for (augmentation, _, apply_kw), values in zip(steps, drawn):
            x = augmentation.apply_fn(x, **values, **apply_kw)
        return x

    if compile:
        backend = "inductor" if compile is True else compile
        run = torch.compile(transform, dynamic=False, backend=backend)
    else:
        run = transform

    def pipeline(batch: Tensor, generator: torch.Generator) -> Tensor:
        n, c = batch.shape[:2]
        # The draws need the shape each augmentation will see: image_size from the crop (or the
        # resize that replaces it) on.
        shape = (n, c, *batch.shape[-2:]) if "crop" in chosen else (n, c, image_size, image_size)
        drawn = []
        for augmentation, draw_kw, _ in steps:
            drawn.append(augmentation.draw_fn(shape, generator, batch.device, **draw_kw))
            if augmentation.name == "crop":
                shape = (n, c, image_size, image_size)
        return run(batch, drawn)

    return pipeline
