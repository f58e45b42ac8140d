"""The throughput benchmark runs end to end in its tiny CPU mode and writes every section."""
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _rate(section):
    return section["images_per_s"]


def _timed_row(row):
    """A timed row: finite positive rate and step time, a peak memory (0 on the CPU)."""
    assert {"images_per_s", "step_ms", "peak_mem_gb"} <= set(row), row
    assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0
    assert math.isfinite(row["step_ms"]) and row["step_ms"] > 0
    assert row["peak_mem_gb"] == 0.0  # CPU
    # images/s and ms/step are two views of one measurement: batch 16 in the smoke setup.
    assert row["images_per_s"] * row["step_ms"] / 1e3 == pytest.approx(16)


def test_smoke_run_writes_every_section(tmp_path):
    out = tmp_path / "smoke.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "trainer_throughput.py"), "--smoke",
                           "--out", str(out)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())

    assert set(result) >= {"device", "date", "torch", "setup", "counting", "model_alone", "reference_dataloader",
                           "ours", "augment_only", "packing", "wall_s", "ratios", "targets"}
    assert set(result["model_alone"]) == {"eager", "compiled"}
    assert set(result["ours"]) == {"eager", "eager_item_per_step", "eager_one_call", "compiled", "step_function"}
    assert set(result["augment_only"]) == {"eager", "compiled"}
    for row in (*result["model_alone"].values(), result["reference_dataloader"], *result["augment_only"].values(),
                *(result["ours"][mode] for mode in ("eager", "eager_item_per_step", "eager_one_call", "compiled"))):
        _timed_row(row)
    assert result["reference_dataloader"]["workers"] >= 1
    assert result["ours"]["compiled"]["augmentation_compiled"] is True
    # (c) timed the trainer's own step, not a copy of it.
    assert result["ours"]["step_function"] == "trainers.training.loop.make_step.<locals>.step"
    packing = result["packing"]
    assert [r["k"] for r in packing["results"]] == [1, 2, 4]
    for r in packing["results"]:
        assert len(r["trials"]) == r["k"] and all(t["steps"] >= 1 for t in r["trials"])
        assert r["aggregate_images_per_s"] > 0 and all(t["peak_mem_gb"] == 0.0 for t in r["trials"])  # CPU
    assert packing["results"][0]["speedup_vs_one"] == 1.0
    assert set(result["ratios"]) == {"ours_over_reference_eager", "ours_over_model_eager", "ours_over_model_compiled"}
    assert result["ratios"]["ours_over_reference_eager"] == _rate(result["ours"]["eager"]) / _rate(result["reference_dataloader"])
    for value in result["ratios"].values():
        assert math.isfinite(value) and value > 0
    assert all(math.isfinite(v) and v > 0 for v in result["wall_s"].values())
    assert {t["target"].split(" >=")[0] for t in result["targets"]} >= {"(c)/(b) eager", "packing k=4"}
    assert result["setup"]["device"] == "cpu" and result["device"].startswith("cpu")
    # The printed table names every section.
    for label in ("(a) model alone", "(b) torchvision", "(c) ours", "(d) packing k=4", "ratios:"):
        assert label in proc.stdout
    print(f"smoke benchmark wall time: {wall:.1f} s")  # the design budget is < 60 s on 2 idle cores


def test_section_c_runs_the_step_that_fit_runs(monkeypatch):
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks import trainer_throughput as bench
    from trainers.training import loop

    built, stepped = [], []
    real = loop.make_step

    def recording(cfg, net, optimizer, scaler, augment, device):
        built.append(cfg)
        step = real(cfg, net, optimizer, scaler, augment, device)
        return lambda images, generator: stepped.append(images.shape) or step(images, generator)

    monkeypatch.setattr(loop, "make_step", recording)
    setup = bench.Setup(device="cpu", **bench.SMOKE)
    trainer = bench._trainer(setup, torch.device("cpu"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    run = bench._our_step(setup, torch.device("cpu"), trainer, trainer.model)
    run()
    assert built == [trainer.cfg] and stepped == [(16, 3, 16, 16)]
    assert (trainer.cfg.optimizer, trainer.cfg.temperature, trainer.cfg.batch_size) == ("lars", 0.5, 16)
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))


def test_a_backend_that_cannot_compile_the_augmentation_costs_one_row_not_the_run():
    sys.path.insert(0, str(ROOT))
    from benchmarks.trainer_throughput import _with_compiled_augmentation

    def measure(compiled):
        if compiled:
            raise RuntimeError("backend failed")
        return {"images_per_s": 5.0}

    row = _with_compiled_augmentation(measure)
    assert row["images_per_s"] == 5.0 and row["augmentation_compiled"] is False
    assert "backend failed" in row["augmentation_compile_error"]
