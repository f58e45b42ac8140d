"""A trained encoder f as a file of its own: a plain state dict, read with ``torch.load(..., weights_only=True)``.

ResNets are written under torchvision's key names (``conv1.weight``, ``layer1.0.bn1.running_mean``,
...), so ``torchvision.models.resnet50().load_state_dict(sd, strict=False)`` misses only ``fc.*``
for the ImageNet stem at width 1; other stems and widths, and the convnet, come back through
``load_encoder(path)``. What the encoder is (its training configuration, the scores of the run it
came from, where it came from) rides in the state dict's own metadata, ``sd._metadata[METADATA_KEY]``,
which ``load_state_dict`` ignores. The encoder takes RGB floats in [0, 1] (no mean/std normalisation).
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from study_files.atomic import replacing
from trainers.config import TrainConfig
from trainers.model.networks import BACKBONES, build_model
from trainers.training.state import load_checkpoint, load_tensors

FORMAT = "simclr-sweep-encoder"
VERSION = 1
METADATA_KEY = "simclr_sweep"  # not a module prefix, so load_state_dict passes over it
INPUT = "RGB float in [0, 1], NCHW; no mean/std normalisation"


class EncoderFileError(ValueError):
    """A file that is not an encoder written by ``save_encoder``."""


def torchvision_prefixes(backbone: nn.Module) -> dict[str, str]:
    """Our ResNet's child names (its ``nn.Sequential`` indices) -> torchvision's (``conv1``, ``layer2.1``).

    The stage of a residual block is read off its width (stage s has 2**s times the stem's channels), so
    every stem and width maps the same way; the convnet has no torchvision counterpart (empty map)."""
    children = list(backbone.named_children())
    blocks = [(name, m) for name, m in children if hasattr(m, "conv1") and hasattr(m, "bn1")]
    if not blocks:
        return {}
    base = children[0][1].out_channels
    names = {children[0][0]: "conv1", children[1][0]: "bn1"}
    seen: dict[int, int] = {}
    for name, block in blocks:
        stage = int(math.log2(block.conv1.out_channels // base))
        names[name] = f"layer{stage + 1}.{seen.get(stage, 0)}"
        seen[stage] = seen.get(stage, 0) + 1
    return names


def _renamed(mapping: dict[str, Any], prefixes: dict[str, str]) -> OrderedDict:
    out = OrderedDict()
    for key, value in mapping.items():
        head, dot, rest = key.partition(".")
        if head in prefixes:
            key = prefixes[head] + dot + rest
        out[key] = value
    return out


def _metadata_value(value: Any) -> Any:
    # Plain JSON values only: a weights_only load accepts them, and NaN scores are dropped, not carried.
    return json.loads(json.dumps(value, default=str), parse_constant=lambda _: None)


def encoder_state(backbone: nn.Module, cfg: TrainConfig, *, scores: dict[str, float] | None = None,
                  source: dict[str, Any] | None = None) -> OrderedDict:
    """The backbone's weights under the exported names, with the metadata attached."""
    prefixes = torchvision_prefixes(backbone)
    own = backbone.state_dict()
    state = _renamed({k: v.detach().cpu().clone() for k, v in own.items()}, prefixes)
    versions = _renamed(getattr(own, "_metadata", {}) or {}, prefixes)
    versions[METADATA_KEY] = _metadata_value({
        "format": FORMAT, "version": VERSION, "backbone": cfg.backbone, "stem": cfg.stem, "width": cfg.width,
        "key_names": "torchvision" if prefixes else "sequential", "input": INPUT, "config": cfg.to_dict(),
        "scores": {k: float(v) for k, v in (scores or {}).items() if v is not None and math.isfinite(float(v))},
        "source": source or {},
    })
    state._metadata = versions
    return state


def save_encoder(path: str | Path, backbone: nn.Module, cfg: TrainConfig, *, scores: dict[str, float] | None = None,
                 source: dict[str, Any] | None = None) -> Path:
    """Write the encoder file at ``path`` (aside, then renamed: never half a file)."""
    with replacing(path) as tmp:
        torch.save(encoder_state(backbone, cfg, scores=scores, source=source), tmp)
    return Path(path)


def checkpoint_encoder(checkpoint: str | Path) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """(the encoder f, its configuration, the whole checkpoint) of a trainer checkpoint file."""
    state = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.backbone.eval(), cfg, state


def export_checkpoint(checkpoint: str | Path, path: str | Path, *, scores: dict[str, float] | None = None,
                      source: dict[str, Any] | None = None) -> Path:
    """The encoder of a trainer checkpoint (``trainer.pt``, ``checkpoint.pt``) as an encoder file; the
    checkpoint's epoch joins ``source``, and its last metrics stand for ``scores`` when none are given."""
    backbone, cfg, state = checkpoint_encoder(checkpoint)
    if scores is None:
        scores = {f"last.{k}": v for k, v in (state.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return save_encoder(path, backbone, cfg, scores=scores, source={**(source or {}), "epoch": int(state.get("epoch", 0))})


def read_encoder(path: str | Path) -> tuple[OrderedDict, dict[str, Any]]:
    """(the state dict, its metadata) of an encoder file; anything else is refused in one line."""
    path = Path(path)
    if not path.is_file():
        raise EncoderFileError(f"encoder: no file at {path}")
    try:
        state = load_tensors(path)
    except ValueError as reason:
        raise EncoderFileError(f"encoder: {path} is not an encoder file ({reason})") from None
    meta = (getattr(state, "_metadata", None) or {}).get(METADATA_KEY) if isinstance(state, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EncoderFileError(f"encoder: {path} is not a simclr-sweep encoder file (no {FORMAT!r} metadata; "
                               "write one with `simclr-sweep export`)")
    if meta.get("version") != VERSION:
        raise EncoderFileError(f"encoder: {path} is encoder version {meta.get('version')}, this reads version {VERSION}")
    return state, meta


def load_encoder(path: str | Path) -> nn.Module:
    """The encoder f of an encoder file, as the module it was trained as (h = f(x)), in eval mode.

    Its training configuration is ``encoder_config(path)``; ``read_encoder`` gives the metadata."""
    state, meta = read_encoder(path)
    cfg = TrainConfig.from_dict(meta["config"])
    backbone, _ = BACKBONES[cfg.backbone](stem=cfg.stem, width=cfg.width)
    ours = {tv: own for own, tv in torchvision_prefixes(backbone).items()}
    weights = OrderedDict()
    for key, value in state.items():
        head, dot, rest = key.partition(".")
        if "." in rest and f"{head}.{rest.split('.')[0]}" in ours:  # layerN.i.<...>
            block, _, tail = rest.partition(".")
            key = f"{ours[f'{head}.{block}']}.{tail}"
        elif head in ours:
            key = ours[head] + dot + rest
        weights[key] = value
    try:
        backbone.load_state_dict(weights)
    except RuntimeError as err:
        raise EncoderFileError(f"encoder: {path} does not fit a {cfg.backbone} with the {cfg.stem} stem at "
                               f"width {cfg.width} ({str(err).splitlines()[1].strip()})") from None
    return backbone.eval()


def encoder_config(path: str | Path) -> TrainConfig:
    """The training configuration an encoder file carries."""
    return TrainConfig.from_dict(read_encoder(path)[1]["config"])
