"""The throughput benchmark runs end to end in its tiny CPU mode and writes every section."""
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rate(section):
    return section["images_per_s"]


def test_smoke_run_writes_every_section(tmp_path):
    out = tmp_path / "smoke.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "trainer_throughput.py"), "--smoke",
                           "--out", str(out)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())

    for mode in ("eager", "compiled"):
        assert _rate(result["model_alone"][mode]) > 0
    assert _rate(result["reference_dataloader"]) > 0 and result["reference_dataloader"]["workers"] >= 1
    for mode in ("eager", "eager_item_per_step", "eager_one_call", "compiled"):
        assert _rate(result["ours"][mode]) > 0
    assert result["ours"]["compiled"]["augmentation_compiled"] is True
    assert _rate(result["augment_only"]["eager"]) > 0 and _rate(result["augment_only"]["compiled"]) > 0
    packing = result["packing"]
    assert [r["k"] for r in packing["results"]] == [1, 2, 4]
    for r in packing["results"]:
        assert len(r["trials"]) == r["k"] and all(t["steps"] >= 1 for t in r["trials"])
        assert r["aggregate_images_per_s"] > 0 and all(t["peak_mem_gb"] == 0.0 for t in r["trials"])  # CPU
    assert packing["results"][0]["speedup_vs_one"] == 1.0
    for name in ("ours_over_reference_eager", "ours_over_model_eager", "ours_over_model_compiled"):
        assert result["ratios"][name] > 0
    assert {t["target"].split(" >=")[0] for t in result["targets"]} >= {"(c)/(b) eager", "packing k=4"}
    assert result["setup"]["device"] == "cpu" and result["device"].startswith("cpu")
    # The printed table names every section.
    for label in ("(a) model alone", "(b) torchvision", "(c) ours", "(d) packing k=4", "ratios:"):
        assert label in proc.stdout
    print(f"smoke benchmark wall time: {wall:.1f} s")  # the design budget is < 60 s on 2 idle cores


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
