"""benchmarks/report_scale.py runs, prints its table and writes its JSON (at a tiny scale here)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_writes_json_with_baselines(tmp_path):
    out = tmp_path / "scale.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report_scale.py"), "--trials", "12",
                          "--epochs", "5", "--repeats", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, check=True)
    assert "build_report (whole page)" in run.stdout
    result = json.loads(out.read_text())
    assert result["trials"] == 12 and result["epoch_rows"] == 10 * 5 + 5  # failed trial has no epochs
    assert result["build_report_s"] > 0 and result["baseline_read_tables_s"] > 0
    assert 4 < result["report_mb"] < 10
