"""Feed uint8 image batches to a device with no DataLoader and no per-image Python.

The data set is held once per process as one uint8 tensor on the device when it fits in its free
memory. Otherwise batches are gathered on the host, the next ones by a background thread into
pinned buffers, and copied to the device without blocking: from a pinned copy of a host tensor, or
straight from a memory-mapped cache file (``trainers.data.cache``), which the node's trials share
rather than copy. Each epoch is a permutation drawn from the caller's generator.
"""
from __future__ import annotations

import queue
import threading
import weakref
from typing import Callable, Iterator

import torch

from trainers.data.cache import is_mapped

Tensor = torch.Tensor

# Fraction of the device's free memory a data set may take; the rest is the model's.
_DEVICE_FRACTION = 0.4
# Batches the background thread gathers ahead of the step.
PREFETCH = 3

# One copy per (source tensor, place) in this process, a place being a device or "pinned":
# id(source) -> (weak ref to the source, {place: copy}); the entry goes when the source does.
# Keyed by id because a WeakKeyDictionary compares tensors with ==, which is elementwise.
_RESIDENT: dict[int, tuple[weakref.ref, dict[str, Tensor]]] = {}


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return nbytes <= _DEVICE_FRACTION * free
    return True


def _held_copy(images: Tensor, place: str, make: Callable[[], Tensor]) -> Tensor:
    """The process's one copy of ``images`` at ``place``, made by ``make`` the first time."""
    entry = _RESIDENT.get(id(images))
    if entry is None or entry[0]() is not images:
        entry = (weakref.ref(images), {})
        _RESIDENT[id(images)] = entry
        weakref.finalize(images, _RESIDENT.pop, id(images), None)
    copies = entry[1]
    if place not in copies:
        copies[place] = make()
    return copies[place]


class DeviceFeeder:
    """Uint8 NCHW images ready to be served to ``device`` in shuffled batches.

    ``resident`` tells whether the data set lives on the device (True) or in host memory (False,
    pinned when ``pin`` and the device is a CUDA device). A memory-mapped source is never copied
    into host memory: on the CPU, or on a device it does not fit, batches are gathered from the map
    (through the rows of a ``cache.MappedRows``, a split or capped part of one).
    ``max_device_bytes`` overrides the free-memory rule (0 forces host staging; used by tests and
    the benchmark).
    """

    def __init__(self, images: Tensor, device: torch.device | str, *, pin: bool = True,
                 max_device_bytes: int | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 NCHW tensor (got {images.dtype}, shape {tuple(images.shape)})")
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        nbytes = images.numel()
        fits = _fits_on(self.device, nbytes) if max_device_bytes is None else nbytes <= max_device_bytes
        self.mapped = is_mapped(images)
        fits = fits and not (self.mapped and self.device.type == "cpu")  # the map is the host copy
        self.resident = fits
        self._pin = not fits and pin and self.device.type == "cuda"
        if self.mapped and not fits:
            self.images = images  # staged per batch into pinned buffers: a pinned copy would be per process
        elif fits and images.device == self.device and images.is_contiguous():
            self.images = images  # caching the source itself would keep it alive for ever
        elif fits:
            self.images = _held_copy(images, str(self.device), lambda: images.to(self.device).contiguous())
        elif self._pin and not (images.is_pinned() and images.is_contiguous()):
            self.images = _held_copy(images, "pinned", lambda: images.cpu().contiguous().pin_memory())
        else:
            self.images = images.cpu().contiguous()

    def __len__(self) -> int:
        """Number of images."""
        return self.images.shape[0]

    def steps_per_epoch(self, batch_size: int, drop_last: bool = True) -> int:
        """Batches that one pass of ``batches(batch_size, ...)`` yields."""
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def batches(self, batch_size: int, generator: torch.Generator, drop_last: bool = True) -> Iterator[Tensor]:
        """One epoch of uint8 batches on the device, in an order drawn from ``generator``.

        The permutation is drawn on the generator's device (use a generator on the feeder's device
        for a resident data set: no synchronisation at all).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        n = len(self)
        order = torch.randperm(n, generator=generator, device=generator.device)
        steps = self.steps_per_epoch(batch_size, drop_last)
        if self.resident:
            order = order.to(self.device)
            for step in range(steps):
                yield self.images.index_select(0, order[step * batch_size:(step + 1) * batch_size])
            return
        order = order.cpu()  # one transfer per epoch when the generator is on the device
        for staged in self._gathered(order, steps, batch_size):
            # Pinned blocks come from the caching host allocator, which keeps a block until the
            # copy that reads it has finished, so a fresh buffer per batch is safe asynchronously.
            yield staged.to(self.device, non_blocking=self._pin)

    def _gathered(self, order: Tensor, steps: int, batch_size: int) -> Iterator[Tensor]:
        """The epoch's host batches, gathered ``PREFETCH`` ahead by a background thread (index_select
        releases the GIL, so the gather and page faults overlap the step)."""
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False

        def gather() -> None:
            try:
                for step in range(steps):
                    idx = order[step * batch_size:(step + 1) * batch_size]
                    staged = torch.empty((idx.numel(), *self.images.shape[1:]), dtype=torch.uint8,
                                         pin_memory=self._pin)
                    torch.index_select(self.images, 0, idx, out=staged)
                    if not put(staged):
                        return
            except BaseException as err:  # handed to the consumer, which raises it
                put(err)

        worker = threading.Thread(target=gather, name="feeder-gather", daemon=True)
        worker.start()
        try:
            for _ in range(steps):
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # a consumer that stops early (a diverged run) ends the thread too
            worker.join()
