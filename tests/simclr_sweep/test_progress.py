"""The live progress view's lines, from the recorder's records (no Ray run needed)."""
import io
from types import SimpleNamespace

from simclr_sweep.progress import ProgressView
from simclr_sweep.recording import TableRecorder
from simclr_sweep.runner import trial_setup
from simclr_sweep.study import parse_study
from simclr_sweep.trainable import RESUME_OF, tune_config

DECLARATION = {"name": "progress", "metric": "knn_top1", "method": "random", "trials": 2,
               "fixed": {"epochs": 2}, "parameters": {"temperature": {"values": [0.2, 0.5]}}}


def test_a_resumed_trials_failure_prints_its_error_under_the_tables_id(tmp_path):
    # A resumed trial has a new Tune id; the recorder keys it by the id the tables know it by.
    study = parse_study(DECLARATION)
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\nRuntimeError: out of memory\n")
    trial = SimpleNamespace(trial_id="tune-new", error_file=str(error_file),
                            config=tune_config({"temperature": 0.2}, {RESUME_OF: "table-old"}))
    recorder = TableRecorder(study, tmp_path, trial_setup(study, tmp_path))
    out = io.StringIO()
    view = ProgressView(recorder, total=2, stream=out)
    recorder.on_trial_error(0, [trial], trial)
    view.on_trial_error(0, [trial], trial)
    assert f"trial table-old failed: RuntimeError: out of memory (traceback: {error_file})\n" in out.getvalue()
    assert "unknown error" not in out.getvalue()


def test_a_trials_error_reaches_the_terminal_without_its_control_sequences(tmp_path):
    study = parse_study(DECLARATION)
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\nRuntimeError: boom\x1b[2J\x1b]0;owned\x07\n")
    trial = SimpleNamespace(trial_id="t\x1b[31m1", error_file=str(error_file),
                            config=tune_config({"temperature": 0.2}, {}))
    recorder = TableRecorder(study, tmp_path, trial_setup(study, tmp_path))
    out = io.StringIO()
    view = ProgressView(recorder, total=2, stream=out)
    recorder.on_trial_error(0, [trial], trial)
    view.on_trial_error(0, [trial], trial)
    printed = out.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed
    assert "RuntimeError: boom\\x1b[2J\\x1b]0;owned\\x07" in printed
