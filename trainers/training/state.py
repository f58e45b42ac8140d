"""The trainer's whole state in one file: written atomically, read back with ``weights_only=True``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from study_files.atomic import replacing

FORMAT = "simclr-sweep-trainer-checkpoint"
VERSION = 1
# Fields a resumed run may change without changing what it trains (`epochs` only under a constant
# schedule: the cosine decay's length follows it, so more epochs would change the steps already taken).
RESUMABLE_CHANGES = frozenset({"epochs", "eval_every", "device", "linear_eval", "data_root", "download"})


class CheckpointError(ValueError):
    """A file that is not one of our checkpoints, or one written for a different run."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, nested dicts/lists) to ``path``, tagged as ours.

    Written aside and renamed, so a crash mid-write never leaves a torn checkpoint at ``path``.
    """
    with replacing(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)


def load_tensors(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file torch cannot read raises ValueError(reason)."""
    try:
        with warnings.catch_warnings():
            # A foreign pickle makes torch warn about its protocol before refusing it; callers refuse it themselves.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load of a foreign file fails in many ways; all mean "not ours"
        raise ValueError(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; anything else is refused in one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"resume_from: no checkpoint file at {path}")
    try:
        state = load_tensors(path)
    except ValueError as reason:
        raise CheckpointError(f"resume_from: {path} is not a simclr-sweep checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"resume_from: {path} is not a simclr-sweep checkpoint (no {FORMAT!r} tag)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"resume_from: {path} is checkpoint version {state.get('version')}, "
                              f"this trainer reads version {VERSION}")
    return state


def check_same_run(saved: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume a checkpoint into a run whose training differs (other than RESUMABLE_CHANGES)."""
    for key in sorted(set(saved) | set(current)):
        if key in RESUMABLE_CHANGES:
            continue
        if saved.get(key) != current.get(key):
            raise CheckpointError(f"resume_from: {path} was written with {key}={saved.get(key)!r}, "
                                  f"this run has {key}={current.get(key)!r}")
    if saved.get("epochs") != current.get("epochs") and current.get("schedule") != "constant":
        raise CheckpointError(f"resume_from: {path} was written with epochs={saved.get('epochs')!r}, this run has "
                              f"epochs={current.get('epochs')!r}; the {current.get('schedule')} schedule's length "
                              "follows epochs, so only a run with schedule: constant can change them")


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global RNG states this process uses (CPU, and the CUDA device's when on one)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_state(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
