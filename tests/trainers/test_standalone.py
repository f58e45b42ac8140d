"""train_main: the `simclr-sweep train` command - files written, refusals, SIGKILL and resume, torchrun."""

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from trainers.training.standalone import CLEAR_LINE, Pace, progress_bar, train_main
from trainers.training.state import load_checkpoint

TINY = dict(dataset_size=48, batch_size=16, epochs=3, projection_dim=8, projection_hidden_dim=16, knn_k=5,
            augmentations="crop,flip,grayscale", optimizer="sgd", lr=0.05)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _config(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**TINY, **overrides}))
    return path


def _subprocess_train(config: Path, out: Path, resume: bool) -> subprocess.Popen:
    code = ("import sys; from pathlib import Path; from trainers.training.standalone import train_main; "
            f"sys.exit(train_main(Path({str(config)!r}), Path({str(out)!r}), {resume}))")
    return subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_run_prints_a_line_per_epoch_and_writes_checkpoint_and_metrics(tmp_path, capsys):
    out = tmp_path / "out"
    assert train_main(_config(tmp_path), out, resume=False) == 0
    out_text = capsys.readouterr().out
    lines = out_text.splitlines()
    assert "\r" not in out_text and "\x1b" not in out_text  # not a terminal: no live bar
    assert lines[0].startswith("training convnet on shapes for 3 epochs -> ") and len(lines) == 4
    assert [line.split("  ")[0] for line in lines[1:]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("knn_top1 " in line and " img/s" in line for line in lines[1:])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 3
    assert metrics["config"]["batch_size"] == 16 and 0 <= metrics["metrics"]["knn_top1"] <= 1
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3


@pytest.mark.parametrize("content, expected", [
    ({"tempreature": 0.5}, "error: tempreature: unknown field; did you mean 'temperature'?"),
    ({"epochs": "many"}, "error: epochs: must be an integer (got 'many')"),
    ("- just\n- a list\n", "error: config: {path} must hold a mapping of TrainConfig fields (got list)"),
    ("epochs: [1,\n", "error: config: {path} is not valid YAML or JSON ("),
    (None, "error: config: no such file: {path}"),
    ({"dataset": "cifar10", "data_root": "/nonexistent"}, "error: dataset: cifar10: no CIFAR-10 files under /nonexistent"),
])
def test_refusals_are_one_line_on_stderr_with_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "config.yaml"
    if isinstance(content, dict):
        path.write_text(yaml.safe_dump(content))
    elif content is not None:
        path.write_text(content)
    assert train_main(path, tmp_path / "out", resume=False) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected.format(path=path)) and err.count("\n") == 1
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_diverged_run_exits_1_and_writes_null_loss(tmp_path, capsys):
    out = tmp_path / "out"
    assert train_main(_config(tmp_path, lr=1e30, head="none"), out, resume=False) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["metrics"]["loss"] is None
    assert "diverged at epoch 1" in capsys.readouterr().err


def test_sigkilled_run_resumed_ends_exactly_as_an_uninterrupted_one(tmp_path):
    config = _config(tmp_path, epochs=4)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert train_main(config, straight, resume=False) == 0

    proc = _subprocess_train(config, killed, resume=False)
    for line in proc.stdout:
        if line.startswith("epoch 2/4"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(killed / "checkpoint.pt")["epoch"] in (2, 3)
    assert not (killed / "metrics.json").exists()

    assert train_main(config, killed, resume=True) == 0
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    for key in ("loss", "knn_top1", "lr"):
        assert a["metrics"][key] == b["metrics"][key]
    wa, wb = load_checkpoint(straight / "checkpoint.pt")["model"], load_checkpoint(killed / "checkpoint.pt")["model"]
    assert all(torch.equal(wa[name], wb[name]) for name in wa)


def test_resume_without_a_checkpoint_starts_afresh(tmp_path, capsys):
    assert train_main(_config(tmp_path, epochs=1), tmp_path / "out", resume=True) == 0
    assert "no checkpoint in" in capsys.readouterr().err


def test_runs_under_torchrun_with_two_gloo_processes(tmp_path):
    out = tmp_path / "out"
    config = _config(tmp_path, epochs=2)
    code = (f"import sys; from pathlib import Path; from trainers.training.standalone import train_main; "
            f"sys.exit(train_main(Path({str(config)!r}), Path({str(out)!r}), False))")
    script = tmp_path / "run.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on 2 processes" in done.stdout
    assert [line.split("  ")[0] for line in done.stdout.splitlines() if line.startswith("epoch")] == \
        ["epoch 1/2", "epoch 2/2"]
    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_live_bar_of_the_steps_is_replaced_by_each_epochs_line(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert train_main(_config(tmp_path, epochs=2), tmp_path / "out", resume=False) == 0
    text = terminal.getvalue()
    lines = text.split("\n")
    assert lines[0].startswith("training ") and lines[-1] == ""
    for epoch, line in zip((1, 2), lines[1:3]):
        bars, epoch_line = line.rsplit(CLEAR_LINE, 1)[0], line.rsplit(CLEAR_LINE, 1)[1]
        assert epoch_line.startswith(f"epoch {epoch}/2  loss ") and " img/s" in epoch_line
        drawn = bars.split(CLEAR_LINE)[1:]
        # 48 images / batch 16 = 3 steps: the first and the last are always drawn, the loss read
        # back at the epoch's end only.
        assert drawn[0] == progress_bar(epoch, 2, 1, 3, None) == f"epoch {epoch}/2 [" + "#" * 10 + "." * 20 + "] 1/3  loss -"
        assert drawn[-1].startswith(f"epoch {epoch}/2 [" + "#" * 30 + "] 3/3  loss ") and "loss -" not in drawn[-1]
        assert epoch_line.split("  ")[1] == drawn[-1].split("  ")[1]  # the same loss
        assert re.search(r"  \d+ img/s  \d+:\d\d left$", drawn[-1]), drawn[-1]  # timed from step 2 on
    assert len(lines) == 4


def test_the_live_bar_shows_the_rate_and_the_time_left():
    assert progress_bar(2, 8, 60, 195, 5.27, 1234.4, 222.0) == \
        "epoch 2/8 [#########.....................]  60/195  loss 5.2700  1234 img/s  3:42 left"
    assert progress_bar(1, 8, 10, 195, None, 80.0, 3 * 3600 + 62).endswith("  80 img/s  3:01:02 left")


def test_pace_times_the_steps_after_the_first_and_each_whole_epoch():
    pace = Pace(epochs=3, batch_size=10)
    assert pace.step(1, 1, 5, now=0.0) == (None, None)  # warm-up: not timed
    # 2 steps a second: 20 images/s; 2 steps of this epoch and 2 epochs of 5 steps left.
    assert pace.step(1, 3, 5, now=1.0) == (20.0, 1.0 + 2 * 2.5)
    pace.step(2, 1, 5, now=4.0)  # the first epoch took 4 s, its evaluation included
    assert pace.step(2, 2, 5, now=4.5) == (20.0, 1.5 + 1 * 4.0)


def test_train_runs_with_lr_1e_3_as_0_001(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**TINY, "epochs": 1}).replace("lr: 0.05", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert train_main(path, tmp_path / "out", resume=False) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["config"]["lr"] == 0.001


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    from trainers.training.standalone import read_config
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 5E-4\nbatch_size: 16\ndataset: shapes\n")
    assert read_config(path) == {"lr": 0.001, "weight_decay": 0.0005, "batch_size": 16, "dataset": "shapes"}
