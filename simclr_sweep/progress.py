"""The live progress view: trials by status and the best so far, one line per change.

On a terminal the line is redrawn in place; in a log (CI, a pipe) a new line is written only when
something changed, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ray.tune import Callback

from simclr_sweep.recording import TableRecorder
from simclr_sweep.terminal import safe
from simclr_sweep.trainable import table_trial_id
from study_files.vocabulary import STATUSES


class ProgressView(Callback):
    """Prints `[mm:ss] 2 running | 3 completed | 1 early_stopped | best knn_top1 0.734 (trial ...)`."""

    def __init__(self, recorder: TableRecorder, total: int, stream: TextIO | None = None):
        self.recorder = recorder
        self.total = total
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.started = time.time()
        self._last_line = ""
        self._last_draw = 0.0

    def line(self) -> str:
        elapsed = int(time.time() - self.started)
        counts = self.recorder.counts()
        done = sum(n for status, n in counts.items() if status != "running")
        parts = [f"{counts[s]} {s}" for s in STATUSES if counts.get(s)]
        top = self.recorder.best()
        metric = self.recorder.study.metric
        best_text = f"best {metric} {top.score:.4f} ({safe(top.trial_id)})" if top else f"best {metric} -"
        status = " | ".join(parts) if parts else "starting"
        return f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {done}/{self.total} done | {status} | {best_text}"

    def _draw(self, force: bool = False) -> None:
        text = self.line()
        if self.tty:
            if force or time.time() - self._last_draw >= 1.0:
                self.stream.write("\r\x1b[2K" + text)
                self.stream.flush()
                self._last_draw = time.time()
            return
        # Without a terminal, print only when the counts or the best changed (not the clock).
        key = text.split("] ", 1)[-1]
        if key != self._last_line:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_line = key

    def on_step_end(self, iteration, trials, **info):
        self._draw()

    def on_trial_start(self, iteration, trials, trial, **info):
        self._draw(force=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._draw(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        trial_id = table_trial_id(trial)  # records are keyed by the tables' id, which a resumed trial keeps
        record = self.recorder.records.get(trial_id)
        error = record.error if record else "unknown error"
        where = getattr(trial, "error_file", None)
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(f"trial {safe(trial_id)} failed: {safe(error)}" + (f" (traceback: {safe(where)})" if where else "") + "\n")
        self._last_line = ""
        self._draw(force=True)

    def on_experiment_end(self, trials, **info):
        self._draw(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
