"""The GPU check runs end to end in its CPU mode, records every part, and keeps going past a crash.

No timing assertions: speed targets are the benchmark's business (and are not judged on the CPU).
"""
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import gpu_check  # noqa: E402

PARTS = ["throughput", "packing", "study", "train", "data_feed"]


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    return proc, out


def _result(out: Path) -> dict:
    (path,) = out.glob("gpu_check_*.json")
    return json.loads(path.read_text())


def _parts(out: Path) -> dict:
    return {part["part"]: part for part in _result(out)["parts"]}


def test_cpu_mode_exits_zero_and_writes_one_json_and_one_table_named_by_device_and_date(cpu_check):
    proc, out = cpu_check
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2, names
    assert re.fullmatch(r"gpu_check_cpu-[a-z0-9-]+-cores_\d{4}-\d\d-\d\d\.json", names[0]), names
    assert names[1] == names[0].removesuffix(".json") + ".md"
    result = _result(out)
    assert (result["mode"], result["exit_status"]) == ("cpu", 0)


def test_every_part_is_present_with_finite_positive_figures(cpu_check):
    _, out = cpu_check
    parts = _parts(out)
    assert list(parts) == PARTS
    for name, part in parts.items():
        if name == "data_feed" and not gpu_check.DATA_FEED.exists():
            assert part["status"] == "skipped"
            assert "skipped: benchmarks/data_feed.py not present" in part["notes"]
            continue
        assert part["status"] in {"passed", "missed"}, (name, part.get("error"))
        assert part["figures"], name
        for figure, value in part["figures"].items():
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, figure, value)
        assert part["seconds"] > 0 and part["limit_s"] > 0


def test_throughput_measures_every_row_with_the_trainers_own_step(cpu_check):
    _, out = cpu_check
    part = _parts(out)["throughput"]
    rows = ("model_alone", "ours", "augment_only")
    expected = {f"{row}_{mode}_images_per_s" for row in rows for mode in ("eager", "compiled")}
    assert expected | {"reference_dataloader_images_per_s"} <= set(part["figures"])
    assert {"ours_over_reference_eager", "ours_over_model_eager", "ours_over_model_compiled"} <= set(part["figures"])
    assert part["details"]["rows"]["ours_eager"]["step_function"].endswith("make_step.<locals>.step")
    # Speed targets are named, measured, and not judged on the CPU.
    assert len(part["targets"]) == 4 and all(t["met"] is None and t["value"] > 0 for t in part["targets"])


def test_packing_ran_one_and_two_trial_processes(cpu_check):
    _, out = cpu_check
    figures = _parts(out)["packing"]["figures"]
    assert {"k1_aggregate_images_per_s", "k2_aggregate_images_per_s", "k2_speedup_vs_one"} <= set(figures)


def test_the_study_saw_all_its_trials_finish_at_once(cpu_check):
    _, out = cpu_check
    part = _parts(out)["study"]
    declared = part["details"]["declaration"]
    assert part["figures"]["trials_completed"] == declared["trials"]
    assert part["figures"]["most_at_once"] == min(declared["trials"], os.cpu_count())
    assert all(t["met"] is True for t in part["targets"]), part["targets"]
    assert part["details"]["statuses"] == ["completed"]


def test_train_saw_the_loss_fall(cpu_check):
    _, out = cpu_check
    part = _parts(out)["train"]
    assert part["targets"] and all(t["met"] is True for t in part["targets"]), part["targets"]
    for label, _, _ in gpu_check.CPU.train_runs:
        assert part["figures"][f"{label}_epoch_loss"] < part["figures"][f"{label}_first_loss"]
        assert len(part["details"][label]["loss_readings"]) >= 2
    assert any("compile and fp16 are the CUDA run's" in note for note in part["notes"])


def test_the_table_has_a_row_per_part(cpu_check):
    _, out = cpu_check
    (table,) = out.glob("gpu_check_*.md")
    text = table.read_text()
    for part in _result(out)["parts"]:
        rows = [line for line in text.splitlines() if line.startswith(f"| {part['title']} | {part['status']}")]
        assert len(rows) == 1, (part["title"], text)


def test_a_crashed_part_is_recorded_failed_and_the_others_still_run(tmp_path, monkeypatch):
    def crash(mode, work, limit):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")

    def cut_short(mode, work, limit):
        raise gpu_check.PartFailed("timed out after 5 s", {"figures": {"steps": 3.0}})

    def ran(mode, work, limit):
        return {"figures": {"images_per_s": 1.0}, "targets": [gpu_check._target("fast", 1.0, 2.0, judged=True)],
                "notes": [], "details": {}}

    monkeypatch.setattr(gpu_check, "_throughput_part", crash)
    monkeypatch.setattr(gpu_check, "_packing_part", cut_short)
    for name in ("_study_part", "_train_part", "_data_feed_part"):
        monkeypatch.setattr(gpu_check, name, ran)
    assert gpu_check.run_check(gpu_check.CPU, tmp_path) == 1
    parts = _parts(tmp_path)
    assert list(parts) == PARTS
    assert parts["throughput"]["status"] == "failed"
    assert parts["throughput"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert (parts["packing"]["status"], parts["packing"]["error"]) == ("failed", "timed out after 5 s")
    assert parts["packing"]["figures"] == {"steps": 3.0}  # what it measured before the limit is kept
    # A missed target is reported, not a crash: it alone would not fail the exit status.
    assert all(parts[name]["status"] == "missed" for name in ("study", "train", "data_feed"))
    (table,) = tmp_path.glob("gpu_check_*.md")
    assert "| 1. trainer throughput | failed: RuntimeError: CUDA error" in table.read_text()


def test_a_missed_target_alone_exits_zero(tmp_path, monkeypatch):
    def ran(mode, work, limit):
        return {"figures": {"x": 1.0}, "targets": [gpu_check._target("fast", 1.0, 2.0, judged=True)],
                "notes": [], "details": {}}

    for name in ("_throughput_part", "_packing_part", "_study_part", "_train_part", "_data_feed_part"):
        monkeypatch.setattr(gpu_check, name, ran)
    assert gpu_check.run_check(gpu_check.CPU, tmp_path) == 0
    assert {part["status"] for part in _result(tmp_path)["parts"]} == {"missed"}


def test_a_part_past_its_limit_is_ended_with_everything_it_started(tmp_path):
    rc, stdout, _, seconds = gpu_check._run(["sh", "-c", "sleep 60 & echo $!; wait"], 1.0, mode=gpu_check.CPU,
                                            cwd=tmp_path)
    assert rc is None and seconds < 30
    grandchild = int(stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper has ended.
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def test_a_part_cut_short_keeps_the_rows_it_measured(tmp_path, monkeypatch):
    def hung(cmd, limit, *, mode, cwd, env=None):
        rows = Path(cmd[cmd.index("--rows") + 1])
        rows.write_text(json.dumps({"rows": {"model_alone_eager": {"images_per_s": 50.0}}, "errors": {}}))
        return None, "", "", limit

    monkeypatch.setattr(gpu_check, "_run", hung)
    with pytest.raises(gpu_check.PartFailed) as failed:
        gpu_check._throughput_part(gpu_check.CPU, tmp_path, 7)
    assert str(failed.value) == "time limit: timed out after 7 s"
    assert failed.value.partial["figures"] == {"model_alone_eager_images_per_s": 50.0}


def test_the_gpu_run_is_bounded_by_its_parts_limits_under_8_minutes():
    assert sum(gpu_check._limit(gpu_check.CUDA, name) for name in gpu_check.PARTS) <= 470


def test_most_at_once_counts_overlapping_spans_only():
    t = [0, 1, 2, 3, 4]
    assert gpu_check._most_at_once([(t[0], t[2]), (t[1], t[3]), (t[2], t[4])]) == 2  # an end before a start
    assert gpu_check._most_at_once([(t[0], t[4])] * 4) == 4
    assert gpu_check._most_at_once([]) == 0
